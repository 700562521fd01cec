//! Tests of the static memory planner: edge cases, errors, `Plan::check`,
//! arena/lower-bound ratios on realistic lifetimes, random requests, speed.

use eqopt_kir::plan::{BufferReq, Order, Plan, PlanError, Strategy, plan, plan_with};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

const ALIGN: usize = 64;

fn req(size: usize, def: usize, last_use: usize) -> BufferReq {
    BufferReq {
        size,
        def,
        last_use,
        inplace_of: None,
    }
}

fn inplace(size: usize, def: usize, last_use: usize, of: usize) -> BufferReq {
    BufferReq {
        inplace_of: Some(of),
        ..req(size, def, last_use)
    }
}

// ---------------------------------------------------------------- edge cases

#[test]
fn no_buffers() {
    let p = plan(&[], ALIGN).unwrap();
    assert_eq!((p.arena_bytes, p.no_reuse_bytes, p.lower_bound), (0, 0, 0));
    assert!(p.offsets.is_empty() && p.inplace.is_empty());
    p.check(&[]).unwrap();
}

#[test]
fn single_buffer() {
    let reqs = [req(100, 3, 5)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.offsets, vec![0]);
    assert_eq!((p.arena_bytes, p.no_reuse_bytes, p.lower_bound), (128, 128, 128));
}

#[test]
fn zero_size_buffers_take_nothing() {
    let reqs = [req(0, 0, 9), req(64, 0, 9), req(0, 2, 3), req(0, 0, 0)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!((p.arena_bytes, p.no_reuse_bytes, p.lower_bound), (64, 64, 64));
    assert_eq!(p.offsets, vec![0, 0, 0, 0]);
}

#[test]
fn all_live_at_once_is_no_reuse() {
    let reqs: Vec<BufferReq> = (0..50).map(|i| req(1000 + 37 * i, i % 3, 10)).collect();
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.arena_bytes, p.no_reuse_bytes);
    assert_eq!(p.lower_bound, p.no_reuse_bytes);
}

#[test]
fn disjoint_lifetimes_share_everything() {
    let reqs: Vec<BufferReq> = (0..10).map(|i| req(4096, i, i)).collect();
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.arena_bytes, 4096);
    assert!(p.offsets.iter().all(|&o| o == 0));
}

#[test]
fn touching_lifetimes_do_not_share_without_inplace() {
    let reqs = [req(4096, 0, 1), req(4096, 1, 2)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.arena_bytes, 8192);
    assert_eq!(p.inplace, vec![None, None]);
}

#[test]
fn offsets_are_aligned() {
    let reqs = [req(1, 0, 5), req(3, 0, 5), req(65, 1, 2), req(7, 3, 4)];
    for align in [1, 2, 64, 4096] {
        let p = plan(&reqs, align).unwrap();
        assert!(p.offsets.iter().all(|o| o % align == 0), "{align}: {:?}", p.offsets);
    }
    assert_eq!(plan(&reqs, 1).unwrap().no_reuse_bytes, 76);
}

// ---------------------------------------------------------------- in place

#[test]
fn inplace_chain_shares_one_offset() {
    // conv -> relu (in place) -> scale (in place) -> conv
    let reqs = [req(4096, 0, 1), inplace(4096, 1, 2, 0), inplace(4096, 2, 3, 1), req(2048, 3, 4)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.inplace, vec![None, Some(0), Some(1), None]);
    assert_eq!(p.offsets[0], p.offsets[1]);
    assert_eq!(p.offsets[1], p.offsets[2]);
    assert_eq!(p.lower_bound, 4096 + 2048);
    assert_eq!(p.arena_bytes, 4096 + 2048);
}

#[test]
fn illegal_inplace_is_ignored() {
    // Different size; source still read after the def; source ending before the def.
    let reqs = [
        req(4096, 0, 1),
        inplace(2048, 1, 2, 0),
        req(4096, 3, 5),
        inplace(4096, 4, 6, 2),
        req(64, 7, 7),
        inplace(64, 9, 9, 4),
    ];
    let p = plan(&reqs, ALIGN).unwrap();
    assert!(p.inplace.iter().all(Option::is_none), "{:?}", p.inplace);
    assert_eq!(p.lower_bound, 8192);
}

#[test]
fn one_source_two_candidates() {
    // Both 1 and 2 want 0's bytes at kernel 1; only one can have them.
    let reqs = [req(4096, 0, 1), inplace(4096, 1, 2, 0), inplace(4096, 1, 3, 0)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.inplace, vec![None, Some(0), None]);
    assert_eq!(p.arena_bytes, 8192);
    assert_eq!(p.lower_bound, 8192);
}

#[test]
fn one_kernel_chain_does_not_alias_its_ends() {
    // 1 lives only at kernel 1, so 0 and 2 would touch there: 2 must not join.
    let reqs = [req(4096, 0, 1), inplace(4096, 1, 1, 0), inplace(4096, 1, 2, 1)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.inplace, vec![None, Some(0), None]);
    // Mutual candidates with one-kernel lifetimes: no cycle.
    let reqs = [inplace(64, 3, 3, 1), inplace(64, 3, 3, 0)];
    let p = plan(&reqs, ALIGN).unwrap();
    assert_eq!(p.inplace.iter().filter(|x| x.is_some()).count(), 1);
}

// ---------------------------------------------------------------- errors

#[test]
fn errors() {
    assert_eq!(
        plan(&[req(1, 3, 2)], ALIGN),
        Err(PlanError::Lifetime {
            index: 0,
            def: 3,
            last_use: 2
        })
    );
    assert_eq!(
        plan(&[req(1, 0, 2), inplace(1, 2, 3, 2)], ALIGN),
        Err(PlanError::InplaceIndex { index: 1, target: 2 })
    );
    assert_eq!(
        plan(&[inplace(1, 0, 0, 0)], ALIGN),
        Err(PlanError::InplaceIndex { index: 0, target: 0 })
    );
    for align in [0, 3, 48] {
        assert_eq!(plan(&[], align), Err(PlanError::Alignment(align)));
    }
    assert_eq!(plan(&[req(usize::MAX - 10, 0, 0)], ALIGN), Err(PlanError::Overflow));
    assert_eq!(
        plan(&[req(usize::MAX / 2, 0, 0), req(usize::MAX / 2, 1, 1)], ALIGN),
        Err(PlanError::Overflow)
    );
}

#[test]
fn check_rejects_bad_plans() {
    let reqs = [req(100, 0, 2), inplace(100, 2, 3, 0), req(64, 1, 3)];
    let good = plan(&reqs, ALIGN).unwrap();
    good.check(&reqs).unwrap();
    assert_eq!(good.inplace, vec![None, Some(0), None]);
    let with = |f: &dyn Fn(&mut Plan)| {
        let mut p = good.clone();
        f(&mut p);
        p.check(&reqs)
    };
    assert_eq!(with(&|p| p.offsets.truncate(2)), Err(PlanError::Length { expected: 3, found: 2 }));
    assert_eq!(
        with(&|p| p.offsets[2] += 1),
        Err(PlanError::Misaligned {
            index: 2,
            offset: p_off(&good, 2) + 1
        })
    );
    assert_eq!(with(&|p| p.arena_bytes -= 64), Err(PlanError::OutsideArena { index: p_top(&good) }));
    assert_eq!(
        with(&|p| p.offsets[2] = p.offsets[0]),
        Err(PlanError::Overlap { a: 0, b: 2 }),
        "live together"
    );
    assert_eq!(
        with(&|p| p.inplace[2] = Some(0)),
        Err(PlanError::BadInplace { index: 2, source_index: 0 }),
        "not declared"
    );
    assert_eq!(
        with(&|p| {
            p.arena_bytes += 128;
            p.offsets[1] = p.arena_bytes - 128;
        }),
        Err(PlanError::BadInplace { index: 1, source_index: 0 }),
        "recorded pair at two offsets"
    );
    assert_eq!(
        with(&|p| p.inplace[1] = None),
        Err(PlanError::Overlap { a: 0, b: 1 }),
        "unrecorded pair"
    );
    // Touching lifetimes without a declared pair are an overlap.
    let touching = [req(64, 0, 1), req(64, 1, 2)];
    let bad = Plan {
        offsets: vec![0, 0],
        arena_bytes: 64,
        no_reuse_bytes: 128,
        lower_bound: 128,
        inplace: vec![None, None],
        align: ALIGN,
        strategy: Strategy::ALL[0],
    };
    assert_eq!(bad.check(&touching), Err(PlanError::Overlap { a: 0, b: 1 }));
}

fn p_off(p: &Plan, i: usize) -> usize {
    p.offsets[i]
}

/// The request that ends at the top of the arena (first such).
fn p_top(p: &Plan) -> usize {
    let sizes = [128, 128, 64];
    (0..3).find(|&i| p.offsets[i] + sizes[i] == p.arena_bytes).unwrap()
}

// ---------------------------------------------------------------- realistic lifetimes

/// SplitMix64: a small deterministic generator for the synthetic graphs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() - 1)]
    }
}

/// Builds lifetimes the way a lowering would: one kernel per op, in a topological
/// order; an op's output is defined at its kernel, its inputs are read there.
/// Elementwise ops declare their first input as in-place candidate when it is
/// the same size (the planner ignores it where the input is read later).
struct Graph {
    reqs: Vec<BufferReq>,
    kernel: usize,
}

impl Graph {
    fn new() -> Graph {
        Graph {
            reqs: Vec::new(),
            kernel: 0,
        }
    }

    fn read(&mut self, b: usize) {
        let r = &mut self.reqs[b];
        r.last_use = r.last_use.max(self.kernel);
    }

    /// A kernel reading `inputs`, writing a new buffer of `bytes`.
    fn op(&mut self, inputs: &[usize], bytes: usize) -> usize {
        for &b in inputs {
            self.read(b);
        }
        self.reqs.push(req(bytes, self.kernel, self.kernel));
        self.kernel += 1;
        self.reqs.len() - 1
    }

    /// An elementwise kernel over `x` (and `others`, broadcast or same shape).
    fn ew(&mut self, x: usize, others: &[usize]) -> usize {
        let mut ins = vec![x];
        ins.extend_from_slice(others);
        let y = self.op(&ins, self.reqs[x].size);
        self.reqs[y].inplace_of = Some(x);
        y
    }

    /// A concatenation lowered to one copy kernel per part into one buffer.
    fn concat(&mut self, parts: &[usize]) -> usize {
        let bytes = parts.iter().map(|&p| self.reqs[p].size).sum();
        let out = self.reqs.len();
        self.reqs.push(req(bytes, self.kernel, self.kernel));
        for &p in parts {
            self.read(p);
            self.read(out);
            self.kernel += 1;
        }
        out
    }
}

const F32: usize = 4;

/// A VGG/MobileNet-like chain: convolutions (some expanding 4-6x, MobileNet
/// style), batch-norm and activation in place, pools halving the resolution;
/// channel counts vary per layer; a classifier at the end.
fn chain(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let batch = rng.range(1, 4);
    let (mut hw, mut c) = (rng.pick(&[112, 128, 96]), 16);
    // Channels such that one activation stays within 1 KB..10 MB.
    let fit = |c: usize, hw: usize| c.clamp(256usize.div_ceil(batch * hw * hw), (10 << 20) / (batch * hw * hw * F32));
    let mut x = g.op(&[], batch * 3 * hw * hw * F32);
    while g.reqs.len() < 300 {
        for _ in 0..rng.range(4, 12) {
            c = fit(c * rng.range(3, 6) / 4, hw);
            if rng.range(0, 3) == 0 {
                let wide = fit(c * rng.range(4, 6), hw);
                x = g.op(&[x], batch * wide * hw * hw * F32);
                x = g.ew(x, &[]);
            }
            x = g.op(&[x], batch * c * hw * hw * F32);
            x = g.ew(x, &[]);
            if rng.range(0, 2) == 0 {
                x = g.ew(x, &[]);
            }
        }
        if hw > 7 {
            hw /= 2;
            c = fit(c, hw);
            x = g.op(&[x], batch * c * hw * hw * F32);
        } else {
            x = g.op(&[x], batch * c.max(256) * F32);
            x = g.op(&[x], batch * 1000 * F32);
            hw = rng.pick(&[112, 128, 96]);
            x = g.op(&[x], batch * 3 * hw * hw * F32);
        }
    }
    g.reqs
}

/// DenseNet-like dense blocks: every layer reads the concatenation of the block
/// input and all earlier layer outputs, so many buffers of mixed sizes stay live
/// to the end of the block; transitions halve the resolution.
fn densenet(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let batch = rng.range(1, 2);
    let growth = rng.pick(&[12, 24, 32]);
    let (mut hw, mut c) = (56, 64);
    let act = |c: usize, hw: usize| batch * c * hw * hw * F32;
    let mut x = g.op(&[], act(c, hw));
    while g.reqs.len() < 300 {
        let mut feats = vec![x];
        for _ in 0..rng.range(6, 16) {
            let cat = g.concat(&feats);
            let mut y = g.op(&[cat], act(4 * growth, hw));
            y = g.ew(y, &[]);
            y = g.op(&[y], act(growth, hw));
            y = g.ew(y, &[]);
            feats.push(y);
        }
        x = g.concat(&feats);
        c = g.reqs[x].size / act(1, hw);
        if hw > 7 {
            hw /= 2;
            c /= 2;
        }
        x = g.op(&[x], act(c, hw));
    }
    g.reqs
}

/// A ResNet-like net of bottleneck blocks: the block input is read again by the
/// residual add at its end; a projection convolution where the shape changes.
fn resnet(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let batch = rng.range(1, 2);
    let mut hw = 56;
    let mut c = 256;
    let act = |c: usize, hw: usize| batch * c * hw * hw * F32;
    let mut x = g.op(&[], act(64, 112));
    x = g.op(&[x], act(c, hw));
    for (stage, blocks) in [3, 4, rng.range(6, 23), 3].into_iter().enumerate() {
        for b in 0..blocks {
            let down = b == 0 && stage > 0;
            let (out_c, out_hw) = if down { (c * 2, hw / 2) } else { (c, hw) };
            let mid = out_c / 4;
            let mut y = g.op(&[x], act(mid, hw));
            y = g.ew(y, &[]);
            y = g.op(&[y], act(mid, out_hw));
            y = g.ew(y, &[]);
            y = g.op(&[y], act(out_c, out_hw));
            let skip = if down { g.op(&[x], act(out_c, out_hw)) } else { x };
            y = g.ew(y, &[skip]);
            x = g.ew(y, &[]);
            (c, hw) = (out_c, out_hw);
        }
    }
    let pooled = g.op(&[x], batch * c * F32);
    g.op(&[pooled], batch * 1000 * F32);
    g.reqs
}

/// Inception-like modules: four branches of one to three convolutions read the
/// module input, run one after the other, and are joined by a concatenation.
fn inception(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let batch = rng.range(1, 4);
    let (mut hw, mut c) = (35, 256);
    let act = |c: usize, hw: usize| batch * c * hw * hw * F32;
    let mut x = g.op(&[], act(c, hw));
    let mut modules = 0;
    while g.reqs.len() < 300 {
        let mut parts = Vec::new();
        for depth in 1..=4 {
            let mut y = if depth == 4 { g.op(&[x], act(c, hw)) } else { x };
            for _ in 0..depth.min(3) {
                let width = rng.pick(&[32, 48, 64, 96, 128, 192]);
                y = g.op(&[y], act(width, hw));
                y = g.ew(y, &[]);
            }
            parts.push(y);
        }
        x = g.concat(&parts);
        c = g.reqs[x].size / act(1, hw);
        modules += 1;
        if modules % 4 == 0 && hw > 8 {
            hw /= 2;
            x = g.op(&[x], act(c, hw));
        }
    }
    g.reqs
}

/// U-Net-like: encoder levels whose last activation is kept (long skip) until
/// the matching decoder level concatenates it with the upsampled features.
fn unet(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let batch = rng.range(1, 2);
    let act = |c: usize, hw: usize| batch * c * hw * hw * F32;
    let levels = 5;
    let convs = rng.range(4, 6);
    let top = rng.pick(&[128, 160, 192]);
    let mut x = g.op(&[], act(3, top));
    while g.reqs.len() < 300 {
        let mut skips = Vec::new();
        let (mut hw, mut c) = (top, 16);
        for _ in 0..levels {
            for _ in 0..convs {
                x = g.op(&[x], act(c, hw));
                x = g.ew(x, &[]);
            }
            skips.push((x, c, hw));
            (hw, c) = (hw / 2, c * 2);
            x = g.op(&[x], act(c / 2, hw));
        }
        for _ in 0..convs {
            x = g.op(&[x], act(c, hw));
            x = g.ew(x, &[]);
        }
        while let Some((skip, sc, shw)) = skips.pop() {
            let up = g.op(&[x], act(sc, shw));
            x = g.concat(&[up, skip]);
            (c, hw) = (sc, shw);
            for _ in 0..convs {
                x = g.op(&[x], act(c, hw));
                x = g.ew(x, &[]);
            }
        }
        x = g.op(&[x], act(3, top));
    }
    g.reqs
}

/// Transformer layers: pre-norm attention (Q, K, V projections; per head a
/// K transpose, scores, scale and softmax in place, context; the heads
/// concatenated; output projection; residual add) and an MLP (2-4x, GELU in
/// place, residual add). Every other instance is a decoder whose layers also
/// attend to an encoder memory that lives throughout.
fn transformer(rng: &mut Rng) -> Vec<BufferReq> {
    let mut g = Graph::new();
    let seq = rng.pick(&[64, 128, 256, 384]);
    let d = rng.pick(&[256, 512, 768, 1024]);
    let head = rng.pick(&[32, 64]);
    let heads = (d / head).min(8);
    let mlp = rng.range(2, 4);
    let tok = |w: usize| seq * w * F32;
    let decoder = rng.range(0, 1) == 1;
    let memory = g.op(&[], tok(d));
    let mut x = g.op(&[], tok(d));
    let attend = |g: &mut Graph, x: usize, kv: usize| {
        let h = g.op(&[x], tok(d));
        let q = g.op(&[h], tok(d));
        let k = g.op(&[kv], tok(d));
        let v = g.op(&[kv], tok(d));
        let mut ctxs = Vec::new();
        for _ in 0..heads {
            let kt = g.op(&[k], tok(head));
            let mut s = g.op(&[q, kt], seq * seq * F32);
            s = g.ew(s, &[]);
            s = g.ew(s, &[]);
            ctxs.push(g.op(&[s, v], tok(head)));
        }
        let ctx = g.concat(&ctxs);
        let o = g.op(&[ctx], tok(d));
        g.ew(o, &[x])
    };
    while g.reqs.len() < 300 {
        x = attend(&mut g, x, x);
        if decoder {
            x = attend(&mut g, x, memory);
        }
        let h = g.op(&[x], tok(d));
        let mut f = g.op(&[h], tok(mlp * d));
        f = g.ew(f, &[]);
        let o = g.op(&[f], tok(d));
        x = g.ew(o, &[x]);
    }
    g.reqs
}

type Generator = fn(&mut Rng) -> Vec<BufferReq>;

/// Plans several instances of each generator; prints arena / lower bound and
/// asserts the worst ratio stays under `bound`.
fn ratios(name: &str, generate: Generator, bound: f64) {
    let mut worst = 1.0f64;
    for seed in 0..8 {
        let reqs = generate(&mut Rng(seed));
        assert!(
            reqs.iter().all(|r| r.size >= 1024 && r.size <= 16 << 20),
            "{name}: sizes out of range"
        );
        let p = plan(&reqs, ALIGN).unwrap();
        p.check(&reqs).unwrap();
        let ratio = p.arena_bytes as f64 / p.lower_bound as f64;
        let per: Vec<String> = Strategy::ALL
            .iter()
            .map(|&s| {
                let q = plan_with(&reqs, ALIGN, &[s]).unwrap();
                format!("{:.3}", q.arena_bytes as f64 / q.lower_bound as f64)
            })
            .collect();
        println!(
            "{name} seed {seed}: {} buffers, arena/lower bound {ratio:.4} (no reuse {:.2}x), by strategy {}, kept {:?}",
            reqs.len(),
            p.no_reuse_bytes as f64 / p.lower_bound as f64,
            per.join(" "),
            p.strategy
        );
        worst = worst.max(ratio);
    }
    println!("{name}: worst arena/lower bound {worst:.4}");
    assert!(worst <= bound, "{name}: arena/lower bound {worst:.4} > {bound}");
}

#[test]
fn ratio_chain() {
    ratios("chain", chain, 1.05);
}

#[test]
fn ratio_resnet() {
    ratios("resnet", resnet, 1.05);
}

#[test]
fn ratio_transformer() {
    ratios("transformer", transformer, 1.05);
}

#[test]
fn ratio_inception() {
    ratios("inception", inception, 1.05);
}

#[test]
fn ratio_densenet() {
    ratios("densenet", densenet, 1.05);
}

#[test]
fn ratio_unet() {
    ratios("unet", unet, 1.05);
}

#[test]
fn generators_declare_inplace_pairs_the_planner_takes() {
    for generate in [chain as Generator, resnet, inception, unet, densenet, transformer] {
        let reqs = generate(&mut Rng(1));
        let p = plan(&reqs, ALIGN).unwrap();
        assert!(p.inplace.iter().filter(|x| x.is_some()).count() >= 10);
    }
}

// ---------------------------------------------------------------- size

/// Large inputs plan validly; times are printed (`--nocapture`), never asserted: a
/// slow shared machine must not fail a test.
#[test]
fn thousands_of_buffers_plan_validly() {
    let mut reqs = Vec::new();
    let mut rng = Rng(7);
    while reqs.len() < 4000 {
        let mut more = match rng.range(0, 2) {
            0 => resnet(&mut rng),
            1 => transformer(&mut rng),
            _ => unet(&mut rng),
        };
        let base = reqs.iter().map(|r: &BufferReq| r.last_use + 1).max().unwrap_or(0);
        let first = reqs.len();
        for r in &mut more {
            r.def += base;
            r.last_use += base;
            r.inplace_of = r.inplace_of.map(|i| i + first);
        }
        reqs.extend(more);
    }
    let t = std::time::Instant::now();
    let p = plan(&reqs, ALIGN).unwrap();
    let elapsed = t.elapsed();
    println!(
        "{} buffers planned in {elapsed:?}, arena/lower bound {:.4}",
        reqs.len(),
        p.arena_bytes as f64 / p.lower_bound as f64
    );
    for s in Strategy::ALL {
        let t = std::time::Instant::now();
        let q = plan_with(&reqs, ALIGN, &[s]).unwrap();
        println!(
            "  {s:?}: {:?}, ratio {:.4}",
            t.elapsed(),
            q.arena_bytes as f64 / q.lower_bound as f64
        );
    }
    p.check(&reqs).unwrap();
    assert!(
        p.arena_bytes as f64 <= 1.05 * p.lower_bound as f64,
        "realistic graphs reach the bound"
    );
    // Random lifetimes stay above the lower bound: the refinement runs its whole budget.
    let random: Vec<BufferReq> = (0..4000)
        .map(|_| {
            let def = rng.range(0, 3000);
            req(rng.range(1 << 10, 10 << 20), def, def + rng.range(0, 40))
        })
        .collect();
    // Everything live at once: too many pairs for conflict lists, placement scans.
    let dense: Vec<BufferReq> = (0..2200).map(|i| req(1024 + 64 * (i % 50), i % 7, 9)).collect();
    for (name, reqs) in [("random", random), ("all live", dense)] {
        let t = std::time::Instant::now();
        let p = plan(&reqs, ALIGN).unwrap();
        let elapsed = t.elapsed();
        println!(
            "{name}: {} buffers planned in {elapsed:?}, arena/lower bound {:.4}",
            reqs.len(),
            p.arena_bytes as f64 / p.lower_bound as f64
        );
        p.check(&reqs).unwrap();
        assert!(p.lower_bound <= p.arena_bytes && p.arena_bytes <= p.no_reuse_bytes);
    }
}

// ---------------------------------------------------------------- random requests

/// Random requests; some turned into legal in-place pairs, some into illegal ones.
fn requests() -> impl proptest::strategy::Strategy<Value = Vec<BufferReq>> {
    let one = (0usize..6000, 0usize..40, 0usize..12, any::<u8>(), any::<prop::sample::Index>());
    prop::collection::vec(one, 0..60).prop_map(|raw| {
        let n = raw.len();
        let mut reqs: Vec<BufferReq> = raw
            .iter()
            .map(|&(size, def, len, _, _)| req(if size < 600 { 0 } else { size }, def, def + len))
            .collect();
        for (j, &(_, _, len, flag, pick)) in raw.iter().enumerate() {
            let i = pick.index(n);
            if i == j {
                continue;
            }
            match flag % 4 {
                0 | 1 => {
                    // A legal pair (a later edit of `i` may spoil it).
                    let (size, def) = (reqs[i].size, reqs[i].last_use);
                    reqs[j] = inplace(size, def, def + len, i);
                }
                2 => reqs[j].inplace_of = Some(i),
                _ => {}
            }
        }
        reqs
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_plans_are_valid(reqs in requests(), align_log in 0u32..8) {
        let align = 1usize << align_log;
        let p = plan(&reqs, align).unwrap();
        p.check(&reqs).unwrap();
        prop_assert!(p.lower_bound <= p.arena_bytes, "{} > {}", p.lower_bound, p.arena_bytes);
        prop_assert!(p.arena_bytes <= p.no_reuse_bytes);
        prop_assert_eq!(&p, &plan(&reqs, align).unwrap());
        for s in Strategy::ALL {
            let q = plan_with(&reqs, align, &[s]).unwrap();
            q.check(&reqs).unwrap();
            prop_assert!(q.lower_bound <= q.arena_bytes && q.arena_bytes <= q.no_reuse_bytes);
            if !s.merge_inplace {
                prop_assert!(q.inplace.iter().all(Option::is_none));
            }
        }
        let max = reqs.iter().map(|r| r.size.next_multiple_of(align)).max().unwrap_or(0);
        prop_assert!(p.lower_bound >= max);
    }

    /// The lower bound against a brute force over kernels: live bytes minus the
    /// best set of in-place pairs recorded by some valid plan can only be lower.
    #[test]
    fn lower_bound_is_a_peak(reqs in requests()) {
        let p = plan(&reqs, 64).unwrap();
        let sizes: Vec<usize> = reqs.iter().map(|r| r.size.next_multiple_of(64)).collect();
        let kernels = reqs.iter().map(|r| r.last_use + 1).max().unwrap_or(0);
        let peak_without_pairs = (0..kernels)
            .map(|k| (0..reqs.len()).filter(|&i| reqs[i].def <= k && k <= reqs[i].last_use).map(|i| sizes[i]).sum::<usize>())
            .max()
            .unwrap_or(0);
        prop_assert!(p.lower_bound <= peak_without_pairs);
        // At each kernel the plan's own bytes are at least the bound.
        for k in 0..kernels {
            let live = (0..reqs.len())
                .filter(|&i| reqs[i].def <= k && k <= reqs[i].last_use)
                .filter(|&i| !p.inplace.iter().enumerate().any(|(j, &s)| s == Some(i) && reqs[j].def == k))
                .map(|i| sizes[i])
                .sum::<usize>();
            prop_assert!(live <= p.arena_bytes);
        }
        if reqs.iter().all(|r| r.inplace_of.is_none()) {
            prop_assert_eq!(p.lower_bound, peak_without_pairs);
        }
    }
}

#[test]
fn order_variants_are_public() {
    let reqs = [req(100, 0, 3), req(200, 1, 2), req(300, 3, 4)];
    for order in [Order::Size, Order::Breadth, Order::Start] {
        let s = Strategy {
            order,
            merge_inplace: true,
            ceiling: true,
        };
        let p = plan_with(&reqs, ALIGN, &[s]).unwrap();
        assert_eq!(p.strategy.order, order);
        p.check(&reqs).unwrap();
    }
}
