//! The op kinds of the generator: one [`Builder::step`] per kind, each picking
//! compatible existing tensors and the op's attributes.

use super::*;

impl Builder {
    /// One generation step of kind `kind`.
    pub(super) fn step(&mut self, kind: u8, p: &mut Picks) -> Option<()> {
        match kind {
            // Elementwise unary ops (Exp on bounded inputs).
            0 | 1 => {
                let x = self.pick(p);
                let u = p.choose(&[
                    UnaryOp::Relu,
                    UnaryOp::Sigmoid,
                    UnaryOp::Tanh,
                    UnaryOp::Gelu,
                    UnaryOp::Exp,
                    UnaryOp::Neg,
                    UnaryOp::Abs,
                    UnaryOp::Identity,
                    UnaryOp::Dropout,
                    UnaryOp::Erf,
                ]);
                if u == UnaryOp::Exp {
                    let t = self.unary(UnaryOp::Tanh, &x)?;
                    self.unary(u, &t);
                } else {
                    self.unary(u, &x);
                }
            }
            // Unary ops with a restricted domain, on abs(x) + c, c >= 0.5.
            2 => {
                let x = self.pick(p);
                let a = self.unary(UnaryOp::Abs, &x)?;
                let c = self.random(vec![], uniform(0.5, 2.0));
                let s = self.binary(BinaryOp::Add, &a, &c)?;
                match p.below(4) {
                    0 => {
                        let e = self.random(vec![], uniform(-2.0, 2.0));
                        self.binary(BinaryOp::Pow, &s, &e)
                    }
                    _ => {
                        let u = p.choose(&[UnaryOp::Sqrt, UnaryOp::Log, UnaryOp::Reciprocal]);
                        self.unary(u, &s)
                    }
                };
            }
            // Binary ops with broadcasting.
            3..=5 => {
                let x = self.pick(p);
                let b = p.choose(&[
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Max,
                    BinaryOp::Min,
                    BinaryOp::Div,
                ]);
                if b == BinaryOp::Div {
                    let s = self.shape(&x);
                    let s = self.broadcast_shape(p, &s);
                    let lo = if p.coin() { 0.5 } else { -2.0 };
                    let c = self.random(s, uniform(lo, lo + 1.5));
                    self.binary(b, &x, &c);
                } else {
                    let y = self.operand(p, &x);
                    if p.below(4) == 0 {
                        self.binary(b, &y, &x)
                    } else {
                        self.binary(b, &x, &y)
                    };
                }
            }
            // MatMul, 2-D or batched, against a constant, an input or an existing tensor.
            6 | 7 => {
                let a = self.pick_rank(p, |r| r >= 1, 2);
                let sa = self.shape(&a);
                let k = *sa.last().unwrap();
                let n = p.dim();
                let batch: Vec<usize> = if sa.len() > 2 { sa[..sa.len() - 2].to_vec() } else { vec![] };
                let b = match p.below(6) {
                    0 => self.weights(vec![k], k),
                    1 => {
                        let mut s: Vec<usize> = batch.iter().map(|&d| if p.coin() { 1 } else { d }).collect();
                        s.extend([k, n]);
                        self.weights(s, k)
                    }
                    2 => self.input(vec![k, n]),
                    3 => {
                        let cands: Vec<String> = self
                            .tensors
                            .iter()
                            .filter(|t| {
                                let ta = TensorType::new(sa.clone(), DType::F32);
                                let tb = TensorType::new(self.shapes[*t].clone(), DType::F32);
                                infer::infer(&Op::MatMul, &[&ta, &tb]).is_ok()
                            })
                            .cloned()
                            .collect();
                        if cands.is_empty() {
                            self.weights(vec![k, n], k)
                        } else {
                            p.choose(&cands)
                        }
                    }
                    4 if sa.len() >= 2 => {
                        // a · aᵀ
                        let r = sa.len();
                        let mut perm: Vec<usize> = (0..r).collect();
                        perm.swap(r - 2, r - 1);
                        self.node(Op::Transpose { perm }, &[&a])?
                    }
                    _ => self.weights(vec![k, n], k),
                };
                self.node(Op::MatMul, &[&a, &b]);
            }
            // Transposes: one, two (composing or cancelling), through relu/gelu, of a matmul.
            8 | 9 => {
                let x = self.pick_rank(p, |r| r >= 2, 3);
                let r = self.shape(&x).len();
                let perm = p.perm(r);
                match p.below(4) {
                    0 => {
                        self.node(Op::Transpose { perm }, &[&x]);
                    }
                    1 => {
                        let t = self.node(Op::Transpose { perm: perm.clone() }, &[&x])?;
                        let q = if p.coin() {
                            let mut inv = vec![0; r];
                            for (i, &pi) in perm.iter().enumerate() {
                                inv[pi] = i;
                            }
                            inv
                        } else {
                            p.perm(r)
                        };
                        self.node(Op::Transpose { perm: q }, &[&t]);
                    }
                    2 => {
                        let u = p.choose(&[UnaryOp::Relu, UnaryOp::Gelu]);
                        if p.coin() {
                            let y = self.unary(u, &x)?;
                            self.node(Op::Transpose { perm }, &[&y]);
                        } else {
                            let t = self.node(Op::Transpose { perm }, &[&x])?;
                            self.unary(u, &t);
                        }
                    }
                    _ => {
                        let s = self.shape(&x);
                        let k = s[r - 1];
                        let w = self.weights(vec![k, p.dim()], k);
                        let m = self.node(Op::MatMul, &[&x, &w])?;
                        let mut sw: Vec<usize> = (0..r).collect();
                        sw.swap(r - 2, r - 1);
                        self.node(Op::Transpose { perm: sw }, &[&m]);
                    }
                }
            }
            // Reshape (same shape included) and Flatten.
            10 => {
                let x = self.pick(p);
                let s = self.shape(&x);
                if p.below(4) == 0 {
                    let axis = p.below(s.len() + 1);
                    self.node(Op::Flatten { axis }, &[&x]);
                } else {
                    let shape = self.reshape_target(p, &s);
                    let y = self.node(Op::Reshape { shape }, &[&x])?;
                    if p.below(3) == 0 {
                        let shape = self.reshape_target(p, &self.shape(&y));
                        self.node(Op::Reshape { shape }, &[&y]);
                    }
                }
            }
            // Conv (1x1 / 3x3 / 2x2, pads, strides, groups, optional bias), optional BN after.
            11 | 12 => {
                let x = self.pick_nchw(p);
                let s = self.shape(&x);
                let c = s[1];
                let group = p.choose(&divisors(c));
                let o = group * (1 + p.below((6 / group).max(1)));
                let k = p.choose(&[1, 3, 3, 2]);
                let pads = [0; 4].map(|_| p.below(k));
                let strides = [1 + p.below(2), 1 + p.below(2)];
                let dilations = if p.below(5) == 0 { [2, 2] } else { [1, 1] };
                let w = self.weights(vec![o, c / group, k, k], c / group * k * k);
                let mut ins = vec![x.clone(), w];
                if p.coin() {
                    ins.push(self.random(vec![o], uniform(-0.5, 0.5)));
                }
                let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                let params = ConvParams {
                    strides,
                    pads,
                    dilations,
                    group,
                    layout: Layout::Nchw,
                };
                let y = match self.node(Op::Conv(params.clone()), &refs) {
                    Some(y) => y,
                    None => {
                        // The kernel does not fit: a 1x1 convolution instead.
                        let w = self.weights(vec![o, c / group, 1, 1], c / group);
                        ins[1] = w;
                        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
                        let params = ConvParams { pads: [0; 4], ..params };
                        self.node(Op::Conv(params), &refs)?
                    }
                };
                if p.below(3) > 0 {
                    self.batchnorm(&y, o);
                }
            }
            // BatchNormalization on its own (channel axis 1).
            13 => {
                let x = self.pick_rank(p, |r| r >= 2, 4);
                let c = self.shape(&x)[1];
                self.batchnorm(&x, c);
            }
            // Pooling.
            14 => {
                let x = self.pick_nchw(p);
                let s = self.shape(&x);
                if p.below(4) == 0 {
                    let kind = p.choose(&[PoolKind::Max, PoolKind::AvgExcludePad]);
                    self.node(Op::GlobalPool(kind), &[&x]);
                    return Some(());
                }
                let kind = p.choose(&[PoolKind::Max, PoolKind::AvgExcludePad, PoolKind::AvgIncludePad]);
                let kernel = [1 + p.below(3.min(s[2])), 1 + p.below(3.min(s[3]))];
                let pads = [p.below(kernel[0]), p.below(kernel[1]), p.below(kernel[0]), p.below(kernel[1])];
                let strides = [1 + p.below(2), 1 + p.below(2)];
                self.node(
                    Op::Pool(
                        kind,
                        PoolParams {
                            kernel,
                            strides,
                            pads,
                            layout: Layout::Nchw,
                        },
                    ),
                    &[&x],
                );
            }
            // Softmax.
            15 => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let axis = p.below(self.shape(&x).len());
                self.node(Op::Softmax { axis }, &[&x]);
            }
            // LayerNormalization.
            16 => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let s = self.shape(&x);
                let axis = if p.coin() { s.len() - 1 } else { p.below(s.len()) };
                let ps = if p.coin() { s[axis..].to_vec() } else { vec![s[s.len() - 1]] };
                let scale = self.random(ps.clone(), uniform(0.5, 1.5));
                let bias = self.random(ps, normal(0.1));
                self.node(Op::LayerNorm { axis, epsilon: 1e-5 }, &[&x, &scale, &bias]);
            }
            // Concat of 2-3 tensors.
            17 => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let s = self.shape(&x);
                let axis = p.below(s.len());
                let fits = |t: &Vec<usize>| t.len() == s.len() && (0..s.len()).all(|i| i == axis || t[i] == s[i]);
                let cands: Vec<String> = self.tensors.iter().filter(|t| fits(&self.shapes[*t])).cloned().collect();
                let other = match p.below(3) {
                    0 => p.choose(&cands),
                    1 => {
                        let mut t = s.clone();
                        t[axis] = p.dim();
                        self.random(t, normal(1.0))
                    }
                    _ => self.unary(UnaryOp::Neg, &x)?,
                };
                if p.coin() {
                    self.node(Op::Concat { axis }, &[&x, &other]);
                } else {
                    self.node(Op::Concat { axis }, &[&other, &x, &other]);
                }
            }
            // Slice.
            18 => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let s = self.shape(&x);
                let mut axes: Vec<usize> = (0..s.len()).filter(|_| p.coin()).collect();
                if axes.is_empty() {
                    axes.push(p.below(s.len()));
                }
                let (mut starts, mut ends, mut steps) = (vec![], vec![], vec![]);
                for &a in &axes {
                    let st = p.below(s[a]);
                    starts.push(st);
                    ends.push(st + 1 + p.below(s[a] - st));
                    steps.push(1 + p.below(2));
                }
                self.node(Op::Slice { axes, starts, ends, steps }, &[&x]);
            }
            // Sibling matmuls sharing an input, with constant weights.
            19 => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let k = *self.shape(&x).last().unwrap();
                let n1 = p.dim();
                let n2 = if p.coin() { n1 } else { p.dim() };
                let w1 = self.weights(vec![k, n1], k);
                let w2 = self.weights(vec![k, n2], k);
                let m1 = self.node(Op::MatMul, &[&x, &w1])?;
                let m2 = self.node(Op::MatMul, &[&x, &w2])?;
                match p.below(3) {
                    0 if n1 == n2 => {
                        self.binary(BinaryOp::Add, &m1, &m2);
                    }
                    1 => {
                        let axis = self.shape(&m1).len() - 1;
                        self.node(Op::Concat { axis }, &[&m1, &m2]);
                    }
                    _ => {
                        self.extra_outputs.push(m1);
                        let u = p.choose(&[UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Identity]);
                        self.unary(u, &m2);
                    }
                }
            }
            // Matmul chains (associativity) and distributivity.
            20 => {
                let x = self.pick_rank(p, |r| r == 2, 2);
                let k = self.shape(&x)[1];
                let n = p.dim();
                let b = self.weights(vec![k, n], k);
                match p.below(3) {
                    0 => {
                        let q = p.dim();
                        let c = self.weights(vec![n, q], n);
                        let xb = self.node(Op::MatMul, &[&x, &b])?;
                        self.node(Op::MatMul, &[&xb, &c]);
                    }
                    1 => {
                        let c = self.weights(vec![k, n], k);
                        let xb = self.node(Op::MatMul, &[&x, &b])?;
                        let xc = self.node(Op::MatMul, &[&x, &c])?;
                        self.binary(BinaryOp::Add, &xb, &xc);
                    }
                    _ => {
                        let y = self.input(self.shape(&x));
                        let xb = self.node(Op::MatMul, &[&x, &b])?;
                        let yb = self.node(Op::MatMul, &[&y, &b])?;
                        self.binary(BinaryOp::Add, &xb, &yb);
                    }
                }
            }
            // A scalar factor after a matmul; bias + activation epilogues.
            21 => {
                let x = self.pick_rank(p, |r| r >= 2, 2);
                let k = *self.shape(&x).last().unwrap();
                let n = p.dim();
                let w = self.weights(vec![k, n], k);
                let m = self.node(Op::MatMul, &[&x, &w])?;
                if p.coin() {
                    let s = self.random(vec![], uniform(0.5, 2.0));
                    self.binary(BinaryOp::Mul, &m, &s);
                } else {
                    let b = self.random(vec![n], uniform(-0.5, 0.5));
                    let y = self.binary(BinaryOp::Add, &m, &b)?;
                    let u = p.choose(&[UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Sigmoid]);
                    self.unary(u, &y);
                }
            }
            // Identities the simplify rules remove: x·1, x+0, x−0, x/1, −(−x), casts to f32.
            22 => {
                let x = self.pick(p);
                let r = self.shape(&x).len();
                // Sometimes one more dim than x: the constant then enlarges x and must stay.
                let c_shape = if p.coin() { vec![1; 1 + p.below(r + 1)] } else { vec![] };
                let swap = p.below(4) == 0;
                match p.below(6) {
                    0 => {
                        let c = self.constant(c_shape, ConstInit::Fill(1.0));
                        if swap {
                            self.binary(BinaryOp::Mul, &c, &x)
                        } else {
                            self.binary(BinaryOp::Mul, &x, &c)
                        };
                    }
                    1 => {
                        let c = self.constant(c_shape, ConstInit::Fill(0.0));
                        if swap {
                            self.binary(BinaryOp::Add, &c, &x)
                        } else {
                            self.binary(BinaryOp::Add, &x, &c)
                        };
                    }
                    2 => {
                        let c = self.constant(c_shape, ConstInit::Values(vec![0.0]));
                        if swap {
                            self.binary(BinaryOp::Sub, &c, &x)
                        } else {
                            self.binary(BinaryOp::Sub, &x, &c)
                        };
                    }
                    3 => {
                        let c = self.constant(c_shape, ConstInit::Fill(1.0));
                        self.binary(BinaryOp::Div, &x, &c);
                    }
                    4 => {
                        let y = self.unary(UnaryOp::Neg, &x)?;
                        self.unary(UnaryOp::Neg, &y);
                    }
                    _ => {
                        self.node(Op::Cast { to: DType::F32 }, &[&x]);
                    }
                }
            }
            // Computations on constants (folded at compile time), then combined with x.
            24 => {
                let x = self.pick(p);
                let s = self.shape(&x);
                let r = s.len();
                let perm = p.perm(r);
                // c has the shape that `perm` turns into x's shape.
                let mut cs = vec![0; r];
                for (i, &pi) in perm.iter().enumerate() {
                    cs[pi] = s[i];
                }
                let c = self.random(cs, normal(1.0));
                let t = self.node(Op::Transpose { perm }, &[&c])?;
                let t = match p.below(3) {
                    0 => self.unary(p.choose(&[UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Neg]), &t)?,
                    1 => {
                        let d = self.random(vec![], uniform(0.5, 1.5));
                        self.binary(BinaryOp::Mul, &t, &d)?
                    }
                    _ => t,
                };
                let b = p.choose(&[BinaryOp::Add, BinaryOp::Mul, BinaryOp::Max]);
                self.binary(b, &x, &t);
            }
            // Gather along an axis of a tensor or of a constant table (embedding).
            25 => {
                let data = if p.coin() {
                    self.pick_rank(p, |r| r >= 1, 2)
                } else {
                    let shape = vec![2 + p.below(5), p.dim()];
                    self.random(shape, normal(1.0))
                };
                let s = self.shape(&data);
                let axis = p.below(s.len());
                let ishape: Vec<usize> = (0..p.below(3)).map(|_| 1 + p.below(3)).collect();
                let idx = self.index_input(ishape);
                self.node(Op::Gather { axis }, &[&data, &idx]);
            }
            // Reductions.
            _ => {
                let x = self.pick_rank(p, |r| r >= 1, 2);
                let r = self.shape(&x).len();
                let kind = p.choose(&[ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max]);
                let mut axes: Vec<usize> = (0..r).filter(|_| p.coin()).collect();
                if axes.is_empty() {
                    axes.push(p.below(r));
                }
                let keepdims = p.coin();
                self.node(Op::Reduce { kind, axes, keepdims }, &[&x]);
            }
        }
        Some(())
    }

    fn batchnorm(&mut self, x: &str, c: usize) -> Option<String> {
        let scale = self.random(vec![c], uniform(0.5, 1.5));
        let bias = self.random(vec![c], normal(0.1));
        let mean = self.random(vec![c], normal(0.1));
        let var = self.random(vec![c], uniform(0.5, 1.5));
        self.node(Op::BatchNorm { epsilon: 1e-5 }, &[x, &scale, &bias, &mean, &var])
    }
}
