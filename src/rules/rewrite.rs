//! Compiled rules as egg rewrites, with type-checked unions.
//!
//! Every applier instantiates its right-hand side, then unifies it with the
//! matched class only if both have the same tensor type. A mismatch (or an
//! untypeable right-hand side) is recorded as a [`crate::analysis::Conflict`]
//! naming the rule; saturation turns it into [`crate::Error::UnsoundRule`].

use super::builtins::{WholeRule, apply_builtin};
use super::{Lhs, Rhs, Rule, RuleSet};
use crate::analysis::{Conflict, Facts, TEGraph, TensorAnalysis};
use crate::lang::TNode;
use egg::{Id, MultiPattern, Pattern, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};

/// The searcher of a compiled rule.
pub enum RuleSearcher {
    /// One pattern.
    Pattern(Pattern<TNode>),
    /// A multi-pattern.
    Multi(MultiPattern<TNode>),
    /// A built-in whole rule's searcher: matches the classes it would rewrite.
    Whole(WholeRule),
}

impl Searcher<TNode, TensorAnalysis> for RuleSearcher {
    fn search_eclass_with_limit(&self, egraph: &TEGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, TNode>> {
        match self {
            RuleSearcher::Pattern(p) => p.search_eclass_with_limit(egraph, eclass, limit),
            RuleSearcher::Multi(m) => m.search_eclass_with_limit(egraph, eclass, limit),
            RuleSearcher::Whole(rule) => (limit > 0 && rule.matches_class(egraph, eclass)).then(|| SearchMatches {
                eclass,
                substs: vec![Subst::default()],
                ast: None,
            }),
        }
    }

    fn search_with_limit(&self, egraph: &TEGraph, limit: usize) -> Vec<SearchMatches<'_, TNode>> {
        match self {
            RuleSearcher::Pattern(p) => p.search_with_limit(egraph, limit),
            RuleSearcher::Multi(m) => m.search_with_limit(egraph, limit),
            RuleSearcher::Whole(_) => {
                let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
                ids.sort_unstable();
                let mut out = Vec::new();
                let mut left = limit;
                for id in ids {
                    if left == 0 {
                        break;
                    }
                    if let Some(m) = self.search_eclass_with_limit(egraph, id, left) {
                        left -= m.substs.len();
                        out.push(m);
                    }
                }
                out
            }
        }
    }

    fn vars(&self) -> Vec<Var> {
        match self {
            RuleSearcher::Pattern(p) => p.vars(),
            RuleSearcher::Multi(m) => Searcher::<TNode, TensorAnalysis>::vars(m),
            RuleSearcher::Whole(_) => vec![],
        }
    }
}

/// The applier of a compiled rule: conditions, then the right-hand side, then checked unions.
pub struct RuleApplier {
    conditions: Vec<super::predicates::Condition>,
    rhs: Rhs,
}

/// Unifies `target` with `new` if their types agree; otherwise records a conflict.
/// Returns whether the e-graph changed.
pub fn checked_union(egraph: &mut TEGraph, rule: Symbol, target: Id, new: Id) -> bool {
    let (a, b) = (&egraph[target].data, &egraph[new].data);
    let problem = match (a, b) {
        (Facts::Tensor(x), Facts::Tensor(y)) if x.ty == y.ty => None,
        (Facts::Tensor(x), Facts::Tensor(y)) => Some((x.ty.to_string(), format!("type {}", y.ty))),
        (Facts::Tensor(x), Facts::Invalid(why)) => Some((x.ty.to_string(), format!("no type: {why}"))),
        (Facts::Invalid(_), _) => return false,
        (x, y) => Some((format!("{x:?}"), format!("{y:?}"))),
    };
    if let Some((kept, merged)) = problem {
        egraph.analysis.conflicts.push(Conflict {
            rule: rule.to_string(),
            kept,
            merged,
        });
        return false;
    }
    egraph.analysis.current_rule = Some(rule);
    let changed = egraph.union(target, new);
    egraph.analysis.current_rule = None;
    changed
}

impl egg::Applier<TNode, TensorAnalysis> for RuleApplier {
    fn apply_one(&self, egraph: &mut TEGraph, eclass: Id, subst: &Subst, _ast: Option<&PatternAst<TNode>>, rule: Symbol) -> Vec<Id> {
        if !self.conditions.iter().all(|c| c.holds(egraph, subst)) {
            return vec![];
        }
        let pairs: Vec<(Id, Id)> = match &self.rhs {
            Rhs::Pattern(p) => vec![(eclass, egraph.add_instantiation(&p.ast, subst))],
            Rhs::Multi(items) => items
                .iter()
                .map(|(v, p)| (subst[*v], egraph.add_instantiation(&p.ast, subst)))
                .collect(),
            Rhs::Builtin(name, vars) => {
                let args: Vec<Id> = vars.iter().map(|v| subst[*v]).collect();
                apply_builtin(name, egraph, eclass, &args)
            }
            Rhs::Whole(rule) => rule.apply_class(egraph, eclass),
        };
        pairs
            .into_iter()
            .filter(|&(t, n)| checked_union(egraph, rule, t, n))
            .map(|(t, _)| t)
            .collect()
    }
}

fn searcher_of(rule: &Rule) -> Result<RuleSearcher, crate::Error> {
    Ok(match &rule.lhs {
        Lhs::Pattern(p) => RuleSearcher::Pattern(p.clone()),
        Lhs::Multi(items) => {
            let ms: Vec<(Var, PatternAst<TNode>)> = items.iter().map(|(v, p)| (*v, p.ast.clone())).collect();
            RuleSearcher::Multi(MultiPattern::new(ms))
        }
        Lhs::Builtin(kind) => RuleSearcher::Whole(*kind),
    })
}

/// The egg rewrite of one compiled rule.
pub fn build_rewrite(rule: &Rule) -> Result<Rewrite<TNode, TensorAnalysis>, crate::Error> {
    let searcher = searcher_of(rule)?;
    let applier = RuleApplier {
        conditions: rule.conditions.clone(),
        rhs: rule.rhs.clone(),
    };
    Rewrite::new(rule.name.as_str(), searcher, applier).map_err(|problem| crate::Error::RuleInvalid {
        file: rule.file.clone(),
        line: rule.line,
        rule: rule.name.clone(),
        problem,
    })
}

/// egg rewrites for every rule of `set`, in inventory order.
pub fn build_rewrites(set: &RuleSet) -> Result<Vec<Rewrite<TNode, TensorAnalysis>>, crate::Error> {
    set.rules().map(build_rewrite).collect()
}
