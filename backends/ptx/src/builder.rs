//! A small builder for one PTX entry: typed virtual registers, labels, shared
//! arrays and parameters, assembled into the text form of `SUBSET.md`.
//!
//! Registers are never reused: every value gets a fresh register and `ptxas`
//! does the allocation. Register types are distinct Rust types, so an
//! instruction cannot be given an operand of the wrong class by accident.

use std::fmt::{self, Write as _};

macro_rules! reg_type {
    ($name:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name(pub(crate) u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("%", $prefix, "{}"), self.0)
            }
        }
    };
}

reg_type!(Pred, "p", "A predicate register.");
reg_type!(H16, "h", "A 16-bit register (`.b16`).");
reg_type!(R32, "r", "A 32-bit integer register (`.b32`).");
reg_type!(R64, "rd", "A 64-bit integer register (`.b64`).");
reg_type!(F32, "f", "An `f32` register.");

/// A label in the entry's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label(String);

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `f32` immediate in PTX's exact `0fXXXXXXXX` form.
pub fn fimm(x: f32) -> String {
    format!("0f{:08X}", x.to_bits())
}

/// One `.entry` under construction.
#[derive(Debug)]
pub struct Kb {
    name: String,
    params: usize,
    counts: [u32; 5],
    labels: u32,
    shared: Vec<(String, usize)>,
    body: String,
    max_threads: u32,
}

impl Kb {
    /// An empty entry called `name`, launched with at most `max_threads` threads a block.
    pub fn new(name: &str, max_threads: u32) -> Kb {
        Kb {
            name: name.to_string(),
            params: 0,
            counts: [0; 5],
            labels: 0,
            shared: Vec::new(),
            body: String::new(),
            max_threads,
        }
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declares the next `.u64` parameter and loads it as a global address.
    pub fn param_ptr(&mut self) -> R64 {
        let p = format!("{}_param_{}", self.name, self.params);
        self.params += 1;
        let r = self.r64();
        self.op(&format!("ld.param.u64 {r}, [{p}]"));
        self.op(&format!("cvta.to.global.u64 {r}, {r}"));
        r
    }

    fn next(&mut self, class: usize) -> u32 {
        let n = self.counts[class];
        self.counts[class] += 1;
        n
    }

    /// A fresh predicate register.
    pub fn pred(&mut self) -> Pred {
        Pred(self.next(0))
    }
    /// A fresh `.b16` register.
    pub fn h16(&mut self) -> H16 {
        H16(self.next(1))
    }
    /// A fresh 32-bit register.
    pub fn r32(&mut self) -> R32 {
        R32(self.next(2))
    }
    /// A fresh 64-bit register.
    pub fn r64(&mut self) -> R64 {
        R64(self.next(3))
    }
    /// A fresh `f32` register.
    pub fn f32(&mut self) -> F32 {
        F32(self.next(4))
    }

    /// A fresh label (placed later by [`Kb::place`]).
    pub fn label(&mut self, hint: &str) -> Label {
        self.labels += 1;
        Label(format!("L{}_{hint}", self.labels))
    }

    /// Places `label` here.
    pub fn place(&mut self, label: &Label) {
        let _ = writeln!(self.body, "{label}:");
    }

    /// Declares a shared array of `bytes` bytes (16-aligned) and returns a
    /// register holding its 32-bit shared address.
    pub fn shared(&mut self, bytes: usize) -> R32 {
        let name = format!("{}_smem{}", self.name, self.shared.len());
        self.shared.push((name.clone(), bytes));
        let r = self.r32();
        self.op(&format!("mov.u32 {r}, {name}"));
        r
    }

    /// Total bytes of the shared arrays declared so far.
    pub fn shared_bytes(&self) -> usize {
        self.shared.iter().map(|(_, b)| b.next_multiple_of(16)).sum()
    }

    /// Appends one instruction (without the `;`).
    pub fn op(&mut self, text: &str) {
        let _ = writeln!(self.body, "    {text};");
    }

    /// Appends one instruction guarded by `p` (or by `!p` when `negate`).
    pub fn op_if(&mut self, p: Pred, negate: bool, text: &str) {
        let bang = if negate { "!" } else { "" };
        let _ = writeln!(self.body, "    @{bang}{p} {text};");
    }

    /// Appends a comment line (kept in the text for readers of the module).
    pub fn comment(&mut self, text: &str) {
        let _ = writeln!(self.body, "    // {text}");
    }

    /// A 32-bit register set to `v`.
    pub fn imm32(&mut self, v: i64) -> R32 {
        let r = self.r32();
        self.op(&format!("mov.u32 {r}, {}", v as u32));
        r
    }

    /// An `f32` register set to `v`.
    pub fn fconst(&mut self, v: f32) -> F32 {
        let r = self.f32();
        self.op(&format!("mov.f32 {r}, {}", fimm(v)));
        r
    }

    /// A 32-bit register holding a special register (`%tid.x`, `%ctaid.y`, ...).
    pub fn special(&mut self, name: &str) -> R32 {
        let r = self.r32();
        self.op(&format!("mov.u32 {r}, {name}"));
        r
    }

    /// The assembled `.visible .entry` text.
    pub fn finish(self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, ".visible .entry {}(", self.name);
        for i in 0..self.params {
            let comma = if i + 1 < self.params { "," } else { "" };
            let _ = writeln!(s, "    .param .u64 {}_param_{i}{comma}", self.name);
        }
        let _ = writeln!(s, ")");
        let _ = writeln!(s, ".maxntid {}, 1, 1", self.max_threads);
        let _ = writeln!(s, "{{");
        for (class, prefix, ty) in [
            (0, "p", "pred"),
            (1, "h", "b16"),
            (2, "r", "b32"),
            (3, "rd", "b64"),
            (4, "f", "f32"),
        ] {
            if self.counts[class] > 0 {
                let _ = writeln!(s, "    .reg .{ty} %{prefix}<{}>;", self.counts[class]);
            }
        }
        for (name, bytes) in &self.shared {
            let _ = writeln!(s, "    .shared .align 16 .b8 {name}[{}];", bytes.next_multiple_of(16));
        }
        s.push_str(&self.body);
        let _ = writeln!(s, "    ret;");
        let _ = writeln!(s, "}}");
        s
    }
}
