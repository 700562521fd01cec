//! The random graph generator of the property test: a case is a list of steps,
//! each an op kind and small random numbers that pick existing tensors of
//! compatible shapes and the op's attributes.

use eqopt::dtype::{DType, TensorType};
use eqopt::graph::op::{BinaryOp, ConvParams, Layout, PoolKind, PoolParams, ReduceKind, UnaryOp};
use eqopt::graph::tensor::{ConstInit, Distribution};
use eqopt::graph::{Constant, Graph, Input, Node, Op, infer};
use std::collections::{BTreeMap, BTreeSet};

/// Number of op kinds [`Builder::step`] knows.
pub const KINDS: u8 = 26;
/// Random numbers per step.
pub const PICKS: usize = 16;

/// The random numbers of one step, consumed in order (0 once exhausted).
struct Picks<'a> {
    v: &'a [u32],
    i: usize,
}

impl Picks<'_> {
    /// A number in `0..n` (0 for `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        let x = self.v.get(self.i).copied().unwrap_or(0) as usize;
        self.i += 1;
        if n == 0 { 0 } else { x % n }
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 1
    }
    /// A dimension in `1..=6`.
    fn dim(&mut self) -> usize {
        1 + self.below(6)
    }
    fn choose<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
    /// A random permutation of `0..n`.
    fn perm(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

/// Builds a graph step by step, keeping every node well typed.
struct Builder {
    inputs: Vec<Input>,
    constants: Vec<Constant>,
    nodes: Vec<Node>,
    /// Shapes of every defined name.
    shapes: BTreeMap<String, Vec<usize>>,
    /// Inputs and node outputs, in creation order (candidate operands).
    tensors: Vec<String>,
    /// Integer (Gather index) inputs, not candidate operands.
    index_inputs: BTreeSet<String>,
    /// Intermediates to expose as extra outputs.
    extra_outputs: Vec<String>,
    counter: usize,
}

fn normal(std: f64) -> Distribution {
    Distribution::Normal { mean: 0.0, std }
}

fn uniform(low: f64, high: f64) -> Distribution {
    Distribution::Uniform { low, high }
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n % d == 0).collect()
}

impl Builder {
    fn new() -> Self {
        Builder {
            inputs: Vec::new(),
            constants: Vec::new(),
            nodes: Vec::new(),
            shapes: BTreeMap::new(),
            tensors: Vec::new(),
            index_inputs: BTreeSet::new(),
            extra_outputs: Vec::new(),
            counter: 0,
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    fn shape(&self, name: &str) -> Vec<usize> {
        self.shapes[name].clone()
    }

    fn input(&mut self, shape: Vec<usize>) -> String {
        let name = self.fresh("in");
        self.inputs.push(Input {
            name: name.clone(),
            ty: TensorType::new(shape.clone(), DType::F32),
        });
        self.shapes.insert(name.clone(), shape);
        self.tensors.push(name.clone());
        name
    }

    /// An i64 input (indices for Gather; `random_inputs` keeps them in range).
    fn index_input(&mut self, shape: Vec<usize>) -> String {
        let name = self.fresh("idx");
        self.inputs.push(Input {
            name: name.clone(),
            ty: TensorType::new(shape.clone(), DType::I64),
        });
        self.shapes.insert(name.clone(), shape);
        self.index_inputs.insert(name.clone());
        name
    }

    fn constant(&mut self, shape: Vec<usize>, init: ConstInit) -> String {
        let name = self.fresh("c");
        let seed = self.counter as u64 * 7919;
        let init = match init {
            ConstInit::Random { dist, .. } => ConstInit::Random { dist, seed },
            other => other,
        };
        self.constants.push(Constant {
            name: name.clone(),
            ty: TensorType::new(shape.clone(), DType::F32),
            init,
        });
        self.shapes.insert(name.clone(), shape);
        name
    }

    fn random(&mut self, shape: Vec<usize>, dist: Distribution) -> String {
        self.constant(shape, ConstInit::Random { dist, seed: 0 })
    }

    /// Weights scaled by 1/√fan_in, so that values stay O(1) through matmul chains.
    fn weights(&mut self, shape: Vec<usize>, fan_in: usize) -> String {
        self.random(shape, normal(1.0 / (fan_in.max(1) as f64).sqrt()))
    }

    /// Adds a node if it is well typed; returns its name.
    fn node(&mut self, op: Op, inputs: &[&str]) -> Option<String> {
        let dtype = |i: &str| if self.index_inputs.contains(i) { DType::I64 } else { DType::F32 };
        let tys: Vec<TensorType> = inputs.iter().map(|i| TensorType::new(self.shape(i), dtype(i))).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = infer::infer(&op, &refs).ok()?;
        if ty.numel() == 0 || ty.numel() > 4096 {
            return None;
        }
        let name = self.fresh("n");
        self.nodes.push(Node {
            name: name.clone(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            ty: ty.clone(),
        });
        self.shapes.insert(name.clone(), ty.shape);
        self.tensors.push(name.clone());
        Some(name)
    }

    fn unary(&mut self, u: UnaryOp, x: &str) -> Option<String> {
        self.node(Op::Unary(u), &[x])
    }

    fn binary(&mut self, b: BinaryOp, x: &str, y: &str) -> Option<String> {
        self.node(Op::Binary(b), &[x, y])
    }

    fn last(&self) -> String {
        self.tensors.last().expect("the graph has an input").clone()
    }

    /// Mostly the newest tensor (to build chains), sometimes any.
    fn pick(&mut self, p: &mut Picks) -> String {
        if p.below(3) < 2 {
            self.last()
        } else {
            let i = p.below(self.tensors.len());
            self.tensors[i].clone()
        }
    }

    /// A tensor whose rank satisfies `ok` (preferring the newest), or a new input of rank `fallback`.
    fn pick_rank(&mut self, p: &mut Picks, ok: impl Fn(usize) -> bool, fallback: usize) -> String {
        let cands: Vec<String> = self.tensors.iter().filter(|t| ok(self.shapes[*t].len())).cloned().collect();
        if cands.is_empty() {
            let shape = (0..fallback).map(|_| p.dim()).collect();
            return self.input(shape);
        }
        if p.below(3) < 2 {
            cands.last().unwrap().clone()
        } else {
            p.choose(&cands)
        }
    }

    /// A rank-4 tensor, or a new NCHW input with spatial dims 2..=6.
    fn pick_nchw(&mut self, p: &mut Picks) -> String {
        let cands: Vec<String> = self.tensors.iter().filter(|t| self.shapes[*t].len() == 4).cloned().collect();
        if cands.is_empty() || p.below(4) == 0 {
            let shape = vec![1 + p.below(2), p.dim(), 2 + p.below(5), 2 + p.below(5)];
            return self.input(shape);
        }
        if p.below(3) < 2 {
            cands.last().unwrap().clone()
        } else {
            p.choose(&cands)
        }
    }

    /// A shape that broadcasts into `shape` (a suffix with some dims set to 1), or
    /// occasionally one that enlarges it by a leading dim.
    fn broadcast_shape(&mut self, p: &mut Picks, shape: &[usize]) -> Vec<usize> {
        match p.below(6) {
            0 => vec![],
            1 => {
                let mut s = vec![p.dim()];
                s.extend(shape.iter().map(|&d| if p.below(3) == 0 { 1 } else { d }));
                s
            }
            _ => {
                let keep = p.below(shape.len() + 1);
                shape[shape.len() - keep..]
                    .iter()
                    .map(|&d| if p.below(3) == 0 { 1 } else { d })
                    .collect()
            }
        }
    }

    /// A second operand for an elementwise binary op on `x`.
    fn operand(&mut self, p: &mut Picks, x: &str) -> String {
        let shape = self.shape(x);
        match p.below(4) {
            0 => {
                // An existing tensor that broadcasts with x (possibly x itself).
                let cands: Vec<String> = self
                    .tensors
                    .iter()
                    .filter(|t| infer::broadcast(&self.shapes[*t], &shape).is_some())
                    .cloned()
                    .collect();
                p.choose(&cands)
            }
            1 => {
                let s = self.broadcast_shape(p, &shape);
                self.input(s)
            }
            _ => {
                let s = self.broadcast_shape(p, &shape);
                self.random(s, normal(1.0))
            }
        }
    }

    /// A random reshape target for `shape`.
    fn reshape_target(&mut self, p: &mut Picks, shape: &[usize]) -> Vec<usize> {
        let n: usize = shape.iter().product();
        let r = shape.len();
        match p.below(5) {
            0 => shape.to_vec(),
            1 => vec![n],
            2 if r >= 2 => {
                let i = p.below(r - 1);
                let mut s = shape[..i].to_vec();
                s.push(shape[i] * shape[i + 1]);
                s.extend_from_slice(&shape[i + 2..]);
                s
            }
            3 if r >= 1 => {
                let i = p.below(r);
                let f = p.choose(&divisors(shape[i]));
                let mut s = shape[..i].to_vec();
                s.push(f);
                s.push(shape[i] / f);
                s.extend_from_slice(&shape[i + 1..]);
                s
            }
            _ => {
                let i = p.below(r + 1);
                let mut s = shape.to_vec();
                s.insert(i, 1);
                s
            }
        }
    }

    /// One generation step of kind `kind`.
    fn step(&mut self, kind: u8, p: &mut Picks) -> Option<()> {
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

    fn finish(mut self, extra: Option<usize>) -> Graph {
        if self.nodes.is_empty() {
            let x = self.last();
            self.unary(UnaryOp::Relu, &x);
        }
        let mut outputs = vec![self.nodes.last().unwrap().name.clone()];
        if let Some(i) = extra {
            // Sometimes a graph input is also an output.
            let n = if i % 8 == 0 {
                self.inputs[0].name.clone()
            } else {
                self.nodes[i % self.nodes.len()].name.clone()
            };
            self.extra_outputs.push(n);
        }
        for o in self.extra_outputs.drain(..) {
            if !outputs.contains(&o) {
                outputs.push(o);
            }
        }
        Graph::new("random", self.inputs, self.constants, self.nodes, outputs).expect("the generated graph is well typed")
    }
}

/// The graph of a generated case.
pub fn build(case: &crate::Case) -> Graph {
    let (shape, steps, _, extra) = case;
    let mut b = Builder::new();
    b.input(shape.clone());
    for (kind, picks) in steps {
        let mut p = Picks { v: picks, i: 0 };
        let _ = b.step(*kind, &mut p);
    }
    b.finish(*extra)
}
