//! Rewrite rules from text files: loading, checking and turning them into egg rewrites.
//!
//! A rule set is a list of families (`fusion`, `layout`, `algebra`, `simplify`, ...),
//! one `.rules` file each. The default families are embedded in the binary;
//! [`RuleSet::add_dir`] adds a directory's files, each replacing the family of the
//! same name. The syntax and the predicate and builtin tables are documented in
//! `rules/README.md`.

pub mod approx;
pub mod approx_compute;
pub mod builtins;
pub mod check;
mod check_approx;
mod fusion_builtins;
pub mod instantiate;
mod layout_builtins;
pub mod lowrank;
mod lowrank_conv;
pub mod parse;
pub mod predicates;
pub mod prune;
mod rewrite;

use crate::error::{Error, Result};
use egg::{Pattern, Var};
use parse::{Body, Direction, RuleText, Sexp, Side};
use predicates::{Arg, ArgKind, Condition, PREDICATES};
pub use rewrite::{RuleApplier, RuleSearcher, build_rewrite, build_rewrites};
use std::path::Path;

/// The embedded default rule files, `(family, text)`.
pub const DEFAULT_FAMILIES: &[(&str, &str)] = &[
    ("algebra", include_str!("../../rules/algebra.rules")),
    ("fusion", include_str!("../../rules/fusion.rules")),
    ("layout", include_str!("../../rules/layout.rules")),
    ("simplify", include_str!("../../rules/simplify.rules")),
];

/// The approximate rule families, embedded like [`DEFAULT_FAMILIES`] but loaded
/// only when an error budget is given ([`RuleSet::with_approx_families`];
/// `eqopt optimize --max-error`): without one, the optimized graph computes
/// the same function as its input.
pub const APPROX_FAMILIES: &[(&str, &str)] = &[
    ("quant", include_str!("../../rules/quant.rules")),
    ("lowrank", include_str!("../../rules/lowrank.rules")),
    ("prune", include_str!("../../rules/prune.rules")),
];

/// The approximate families that lower the precision of activations, loaded
/// only when asked for (`eqopt optimize --activations bf16`, with a budget):
/// [`RuleSet::for_activations`].
pub const ACTIVATION_FAMILIES: &[(&str, &str)] = &[("activations", include_str!("../../rules/activations.rules"))];

/// The precision activations may be computed in by approximate rewrites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ActivationPrecision {
    /// Activations stay `f32`: the activation families (rules/activations.rules) do not run.
    #[default]
    F32,
    /// Matrix products may round their activation to bfloat16
    /// (`activations/gemm-bf16`).
    Bf16,
}

/// What a compiled rule searches for.
#[derive(Clone, Debug)]
pub enum Lhs {
    /// One pattern.
    Pattern(Pattern<crate::lang::TNode>),
    /// Several patterns that must all match (`?a = (...), ?b = (...)`).
    Multi(Vec<(Var, Pattern<crate::lang::TNode>)>),
    /// A built-in searcher (the whole rule is `= @name`).
    Builtin(builtins::WholeRule),
}

/// What a compiled rule adds.
#[derive(Clone, Debug)]
pub enum Rhs {
    /// A pattern, unified with the matched class.
    Pattern(Pattern<crate::lang::TNode>),
    /// Patterns unified with the classes bound to the variables (multi-pattern rules).
    Multi(Vec<(Var, Pattern<crate::lang::TNode>)>),
    /// A built-in applier over bound variables.
    Builtin(String, Vec<Var>),
    /// The built-in applier paired with [`Lhs::Builtin`].
    Whole(builtins::WholeRule),
}

/// One direction of a checked rule, ready to become an egg rewrite.
#[derive(Clone, Debug)]
pub struct Rule {
    /// `family/short-name`, with `-rev` appended for the reverse of a `<=>` rule.
    pub name: String,
    /// The family (file) it came from.
    pub family: String,
    /// Source file.
    pub file: String,
    /// Line of the `rule` keyword.
    pub line: usize,
    /// Marked approximate.
    pub approx: bool,
    /// Searcher.
    pub lhs: Lhs,
    /// Applier.
    pub rhs: Rhs,
    /// Conditions checked before applying.
    pub conditions: Vec<Condition>,
    /// Human-readable text of the two sides and conditions, for listings.
    pub text: RuleDisplay,
}

/// How a rule is shown by `eqopt rules list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDisplay {
    /// `=>`, `<=>` or `builtin`.
    pub direction: String,
    /// Left-hand side text.
    pub lhs: String,
    /// Right-hand side text.
    pub rhs: String,
    /// Conditions text.
    pub conditions: String,
}

impl Rule {
    /// True for multi-pattern rules (gated to the first iterations by saturation).
    pub fn is_multi(&self) -> bool {
        matches!(self.lhs, Lhs::Multi(_))
    }
}

/// A loaded, checked set of rule families.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    families: Vec<(String, String, Vec<Rule>)>,
}

impl RuleSet {
    /// The embedded default families.
    pub fn defaults() -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for (family, text) in DEFAULT_FAMILIES {
            set.add_family(family, &format!("<embedded>/{family}.rules"), text)?;
        }
        Ok(set)
    }

    /// This set plus the approximate families of [`APPROX_FAMILIES`] it lacks
    /// (a family of the same name already loaded, from `--rules`, is kept).
    pub fn with_approx_families(&self) -> Result<RuleSet> {
        let mut set = self.clone();
        for (family, text) in APPROX_FAMILIES {
            if !set.families.iter().any(|(f, _, _)| f == family) {
                set.add_family(family, &format!("<embedded>/{family}.rules"), text)?;
            }
        }
        Ok(set)
    }

    /// This set with the [`ACTIVATION_FAMILIES`] it lacks when `precision` is
    /// below f32, and without any family of those names when it is f32.
    pub fn for_activations(&self, precision: ActivationPrecision) -> Result<RuleSet> {
        let mut set = self.clone();
        match precision {
            ActivationPrecision::F32 => set
                .families
                .retain(|(f, _, _)| !ACTIVATION_FAMILIES.iter().any(|(name, _)| name == f)),
            ActivationPrecision::Bf16 => {
                for (family, text) in ACTIVATION_FAMILIES {
                    if !set.families.iter().any(|(f, _, _)| f == family) {
                        set.add_family(family, &format!("<embedded>/{family}.rules"), text)?;
                    }
                }
            }
        }
        Ok(set)
    }

    /// This set without its approximate rules.
    pub fn without_approx(&self) -> RuleSet {
        let mut set = self.clone();
        for (_, _, rules) in &mut set.families {
            rules.retain(|r| !r.approx);
        }
        set
    }

    /// The families' names, sorted.
    pub fn family_names(&self) -> Vec<String> {
        self.families.iter().map(|(f, _, _)| f.clone()).collect()
    }

    /// This set with only the families whose name `keep` accepts.
    pub fn retain_families(&self, keep: impl Fn(&str) -> bool) -> RuleSet {
        let mut set = self.clone();
        set.families.retain(|(f, _, _)| keep(f));
        set
    }

    /// Whether any rule of the set is marked approximate.
    pub fn has_approx(&self) -> bool {
        self.rules().any(|r| r.approx)
    }

    /// An empty rule set.
    pub fn empty() -> RuleSet {
        RuleSet::default()
    }

    /// Parses and checks `text` as family `family` (from `file`), replacing any
    /// family of that name.
    pub fn add_family(&mut self, family: &str, file: &str, text: &str) -> Result<()> {
        let mut rules = Vec::new();
        for rt in parse::parse_rules(text, file)? {
            rules.extend(compile(&rt, family, file)?);
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &rules {
            if !seen.insert(r.name.clone()) {
                return Err(Error::RuleInvalid {
                    file: file.into(),
                    line: r.line,
                    rule: r.name.clone(),
                    problem: "a rule of this name is already defined in the file".into(),
                });
            }
        }
        self.families.retain(|(f, _, _)| f != family);
        self.families.push((family.to_string(), file.to_string(), rules));
        self.families.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }

    /// Adds every `*.rules` file of `dir` (sorted by name) as a family named by the file stem.
    pub fn add_dir(&mut self, dir: &Path) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rules"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::Usage {
                option: "--rules".into(),
                expected: "a directory holding *.rules files".into(),
                found: format!("none in {}", dir.display()),
            });
        }
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            let family = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rules").to_string();
            self.add_family(&family, &path.display().to_string(), &text)?;
        }
        Ok(())
    }

    /// Every rule, families sorted by name, rules in file order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.families.iter().flat_map(|(_, _, r)| r.iter())
    }

    /// The inventory as text: one line per rule (family, name, direction, conditions).
    pub fn inventory(&self) -> String {
        let mut out = String::new();
        for r in self.rules() {
            let cond = if r.text.conditions.is_empty() {
                String::new()
            } else {
                format!("  if {}", r.text.conditions)
            };
            let approx = if r.approx { " [approx]" } else { "" };
            out.push_str(&format!(
                "{:<9} {:<34} {} {} {}{}{}\n",
                r.family, r.name, r.text.lhs, r.text.direction, r.text.rhs, cond, approx
            ));
        }
        out
    }
}

fn invalid(rt: &RuleText, file: &str, problem: impl Into<String>) -> Error {
    Error::RuleInvalid {
        file: file.into(),
        line: rt.pos.line,
        rule: rt.name.clone(),
        problem: problem.into(),
    }
}

fn side_text(s: &Side) -> String {
    match s {
        Side::Single(x) => x.to_string(),
        Side::Multi(v) => v.iter().map(|(n, p)| format!("{n} = {p}")).collect::<Vec<_>>().join(", "),
    }
}

fn pattern(rt: &RuleText, file: &str, s: &Sexp) -> Result<Pattern<crate::lang::TNode>> {
    s.to_string().parse::<Pattern<crate::lang::TNode>>().map_err(|e| {
        let pos = s.pos();
        Error::RuleSyntax {
            file: file.into(),
            line: pos.line,
            column: pos.column,
            expected: format!("a valid pattern in rule {}", rt.name),
            found: e.to_string(),
        }
    })
}

fn var(rt: &RuleText, file: &str, s: &Sexp) -> Result<Var> {
    match s.atom() {
        Some(a) if a.starts_with('?') => a.parse::<Var>().map_err(|_| invalid(rt, file, format!("bad variable {a}"))),
        _ => Err(invalid(rt, file, format!("expected a variable ?name, found {s}"))),
    }
}

/// Checks one parsed rule and compiles it (both directions for `<=>`).
pub fn compile(rt: &RuleText, family: &str, file: &str) -> Result<Vec<Rule>> {
    if !rt.name.starts_with(&format!("{family}/")) {
        return Err(invalid(
            rt,
            file,
            format!("rule names in {family}.rules must start with \"{family}/\""),
        ));
    }
    let base = |lhs, rhs, conditions, text| Rule {
        name: rt.name.clone(),
        family: family.into(),
        file: file.into(),
        line: rt.pos.line,
        approx: rt.approx,
        lhs,
        rhs,
        conditions,
        text,
    };
    match &rt.body {
        Body::Builtin(name, _) => {
            let kind = builtins::WholeRule::by_name(name).ok_or_else(|| {
                let known: Vec<&str> = builtins::BUILTIN_RULES.iter().map(|b| b.name).collect();
                invalid(rt, file, format!("unknown built-in rule @{name} (known: {})", known.join(", ")))
            })?;
            let approximate = kind.is_approximate();
            if approximate != rt.approx {
                let problem = if approximate {
                    format!(
                        "@{name} changes the computed function: mark the rule approx (`rule {} approx = @{name}`)",
                        rt.name
                    )
                } else {
                    format!("@{name} is exact: remove the approx marker")
                };
                return Err(invalid(rt, file, problem));
            }
            let text = RuleDisplay {
                direction: "builtin".into(),
                lhs: format!("@{name}"),
                rhs: String::new(),
                conditions: String::new(),
            };
            Ok(vec![base(Lhs::Builtin(kind), Rhs::Whole(kind), vec![], text)])
        }
        Body::Rewrite { .. } if rt.approx => Err(invalid(
            rt,
            file,
            "only built-in rules can be approx (they declare each rewrite's error): use @weights-f16, @weights-bf16, @weights-int8, @weights-int4, @weights-int4-g64, @lowrank, @prune-hidden or @gemm-bf16",
        )),
        Body::Rewrite {
            lhs,
            rhs,
            direction,
            conditions,
        } => {
            let conds = conditions.iter().map(|c| condition(rt, file, c)).collect::<Result<Vec<_>>>()?;
            let cond_text = conditions.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
            let forward = compile_dir(rt, file, lhs, rhs, &conds)?;
            let text = RuleDisplay {
                direction: if *direction == Direction::Both { "<=>" } else { "=>" }.into(),
                lhs: side_text(lhs),
                rhs: side_text(rhs),
                conditions: cond_text,
            };
            let mut out = vec![base(forward.0, forward.1, conds.clone(), text.clone())];
            if *direction == Direction::Both {
                let back = compile_dir(rt, file, rhs, lhs, &conds)?;
                let mut r = base(back.0, back.1, conds, text);
                r.name = format!("{}-rev", rt.name);
                out.push(r);
            }
            Ok(out)
        }
    }
}

fn compile_dir(rt: &RuleText, file: &str, lhs: &Side, rhs: &Side, conds: &[Condition]) -> Result<(Lhs, Rhs)> {
    let (searcher, bound): (Lhs, Vec<Var>) = match lhs {
        Side::Single(s) => {
            if s.atom().is_some_and(|a| a.starts_with('?')) {
                return Err(invalid(
                    rt,
                    file,
                    "a left-hand side must be an operator pattern, not a bare variable",
                ));
            }
            let p = pattern(rt, file, s)?;
            let vars = p.vars();
            (Lhs::Pattern(p), vars)
        }
        Side::Multi(items) => {
            let mut pats = Vec::new();
            let mut vars = Vec::new();
            for (v, s) in items {
                let var: Var = v.parse().map_err(|_| invalid(rt, file, format!("bad variable {v}")))?;
                if s.atom().is_some() {
                    return Err(invalid(
                        rt,
                        file,
                        format!("each pattern of a multi-pattern left-hand side must be an operator pattern, found {v} = {s}"),
                    ));
                }
                let p = pattern(rt, file, s)?;
                vars.push(var);
                vars.extend(p.vars());
                pats.push((var, p));
            }
            (Lhs::Multi(pats), vars)
        }
    };
    let check_bound = |v: &Var| {
        if bound.contains(v) {
            Ok(())
        } else {
            Err(invalid(
                rt,
                file,
                format!("variable {v} is used but not bound by the left-hand side"),
            ))
        }
    };
    for c in conds {
        for a in &c.args {
            if let Arg::Var(v) = a {
                check_bound(v)?;
            }
        }
    }
    let applier = match rhs {
        Side::Single(Sexp::List(items, _)) if items[0].atom().is_some_and(|a| a.starts_with('@')) => {
            let name = &items[0].atom().expect("checked")[1..];
            let spec = builtins::BUILTIN_APPLIERS.iter().find(|b| b.name == name).ok_or_else(|| {
                let known: Vec<&str> = builtins::BUILTIN_APPLIERS.iter().map(|b| b.name).collect();
                invalid(rt, file, format!("unknown built-in applier @{name} (known: {})", known.join(", ")))
            })?;
            let args = items[1..].iter().map(|s| var(rt, file, s)).collect::<Result<Vec<_>>>()?;
            if !spec.arities.contains(&args.len()) {
                return Err(invalid(
                    rt,
                    file,
                    format!("@{name} takes {:?} arguments, found {}", spec.arities, args.len()),
                ));
            }
            args.iter().try_for_each(check_bound)?;
            Rhs::Builtin(name.to_string(), args)
        }
        Side::Single(s) => {
            let p = pattern(rt, file, s)?;
            p.vars().iter().try_for_each(check_bound)?;
            Rhs::Pattern(p)
        }
        Side::Multi(items) => {
            let mut pats = Vec::new();
            for (v, s) in items {
                let var: Var = v.parse().map_err(|_| invalid(rt, file, format!("bad variable {v}")))?;
                check_bound(&var)?;
                let p = pattern(rt, file, s)?;
                p.vars().iter().try_for_each(check_bound)?;
                pats.push((var, p));
            }
            Rhs::Multi(pats)
        }
    };
    if matches!(searcher, Lhs::Pattern(_)) && matches!(applier, Rhs::Multi(_)) {
        return Err(invalid(
            rt,
            file,
            "a multi-pattern right-hand side needs a multi-pattern left-hand side",
        ));
    }
    Ok((searcher, applier))
}

fn condition(rt: &RuleText, file: &str, c: &Sexp) -> Result<Condition> {
    let Sexp::List(items, _) = c else {
        return Err(invalid(rt, file, format!("a condition must be (predicate args...), found {c}")));
    };
    let name = items[0].atom().expect("lists start with an atom");
    let (idx, spec) = PREDICATES.iter().enumerate().find(|(_, p)| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = PREDICATES.iter().map(|p| p.name).collect();
        invalid(rt, file, format!("unknown predicate {name} (known: {})", known.join(", ")))
    })?;
    let args = &items[1..];
    if args.len() != spec.args.len() {
        return Err(invalid(
            rt,
            file,
            format!("predicate {name} takes {} arguments, found {}", spec.args.len(), args.len()),
        ));
    }
    let mut out = Vec::new();
    for (a, kind) in args.iter().zip(spec.args) {
        let text = a.atom().unwrap_or_default();
        let bad = || invalid(rt, file, format!("predicate {name}: argument {a} should be {kind:?}"));
        out.push(match kind {
            ArgKind::Tensor | ArgKind::AttrVar => Arg::Var(var(rt, file, a)?),
            ArgKind::Int => Arg::Int(text.parse().map_err(|_| bad())?),
            ArgKind::Number => Arg::Number(text.parse().map_err(|_| bad())?),
            ArgKind::DType => Arg::DType(text.parse().map_err(|_| bad())?),
        });
    }
    Ok(Condition { predicate: idx, args: out })
}
