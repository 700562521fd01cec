//! The random graph generator of the property test: a case is a list of steps,
//! each an op kind and small random numbers that pick existing tensors of
//! compatible shapes and the op's attributes.

use eqopt::dtype::{DType, TensorType};
use eqopt::graph::op::{BinaryOp, ConvParams, Layout, PoolKind, PoolParams, ReduceKind, UnaryOp};
use eqopt::graph::tensor::{ConstInit, Distribution};
use eqopt::graph::{Constant, Graph, Input, Node, Op, infer};
use std::collections::{BTreeMap, BTreeSet};

mod steps;

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
