//! `providers check --lint`: warnings that never fail a load (spec §9, S7 and S8).
//!
//! Overlaps are decided exactly, not guessed: both matchers are compiled to DFAs and the
//! product automaton is searched breadth-first for a model id both match. The shortest
//! such id is reported as a witness, so the warning can be checked by hand.

use std::collections::{HashMap, VecDeque};

use regex_automata::Anchored;
use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::{start, syntax};
use serde::Serialize;

use crate::registry::{Provider, Registry};

/// Product states explored before giving up on one pair.
const SEARCH_BUDGET: usize = 200_000;

/// Bytes one matcher's DFA may take before the overlap is reported undecided.
const DFA_SIZE_LIMIT: usize = 4 << 20;

/// Whether two matchers can match one id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "overlap", rename_all = "snake_case")]
pub enum Overlap {
    /// Both match this id (the shortest one, by bytes).
    Witness {
        /// A model id both matchers match.
        model: String,
    },
    /// The search ran out of budget before deciding.
    Undecided,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LintWarning {
    /// Two native providers of one runtime can match the same id: deriving such an id
    /// (when no exact id claims it) is ambiguous.
    #[allow(missing_docs)]
    NativeOverlap {
        runtime: String,
        /// The first provider, in declared order.
        first: String,
        /// The second provider.
        second: String,
        /// A model id both match, or `undecided` when the search ran out of budget.
        overlap: Overlap,
    },
    /// A hygiene finding made while loading.
    Hygiene {
        /// What was found.
        message: String,
    },
}

impl std::fmt::Display for LintWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NativeOverlap {
                runtime,
                first,
                second,
                overlap: Overlap::Witness { model },
            } => write!(
                f,
                "runtime {runtime:?}: matchers of {first:?} and {second:?} overlap, e.g. both match {model:?}; unless an exact id claims it, such a model is ambiguous"
            ),
            Self::NativeOverlap {
                runtime,
                first,
                second,
                overlap: Overlap::Undecided,
            } => write!(
                f,
                "runtime {runtime:?}: could not decide whether the matchers of {first:?} and {second:?} overlap"
            ),
            Self::Hygiene { message } => f.write_str(message),
        }
    }
}

impl Registry {
    /// Every lint warning, hygiene findings first, then overlaps by runtime and pair.
    #[must_use]
    pub fn lint(&self) -> Vec<LintWarning> {
        let mut warnings: Vec<LintWarning> = self
            .hygiene_warnings()
            .iter()
            .map(|m| LintWarning::Hygiene { message: m.clone() })
            .collect();
        let mut decided: HashMap<(usize, usize), Option<Overlap>> = HashMap::new();
        for runtime in self.runtimes() {
            for (i, a) in runtime.refs.iter().enumerate() {
                for b in &runtime.refs[i + 1..] {
                    let key = (a.provider.min(b.provider), a.provider.max(b.provider));
                    let overlap = decided
                        .entry(key)
                        .or_insert_with(|| {
                            overlap(self.provider_at(a.provider), self.provider_at(b.provider))
                        })
                        .clone();
                    if let Some(overlap) = overlap {
                        warnings.push(LintWarning::NativeOverlap {
                            runtime: runtime.name.clone(),
                            first: a.name.clone(),
                            second: b.name.clone(),
                            overlap,
                        });
                    }
                }
            }
        }
        warnings
    }
}

/// `None` when no id matches both providers' matchers.
fn overlap(a: &Provider, b: &Provider) -> Option<Overlap> {
    let (Some(dfa_a), Some(dfa_b)) = (build(&a.model_prefix_match), build(&b.model_prefix_match))
    else {
        return Some(Overlap::Undecided);
    };
    let (Some(start_a), Some(start_b)) = (start_of(&dfa_a), start_of(&dfa_b)) else {
        return Some(Overlap::Undecided);
    };
    ProductSearch {
        a: &dfa_a,
        b: &dfa_b,
    }
    .run(start_a, start_b)
}

/// A DFA for one matcher, or `None` (reported as undecided) when determinizing it would
/// take more than [`DFA_SIZE_LIMIT`]: `a[ab]{30}$` alone needs about 2^31 states.
fn build(pattern: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .syntax(syntax::Config::new().octal(true))
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Unanchored)
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build(pattern)
        .ok()
}

fn start_of(dfa: &dense::DFA<Vec<u32>>) -> Option<StateID> {
    dfa.start_state(&start::Config::new().anchored(Anchored::No))
        .ok()
}

/// One side of the product: still running in some DFA state, or already matched (an
/// unanchored match found in a prefix stays found whatever follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Running(StateID),
    Matched,
}

/// A state of the product automaton.
type Pair = (Side, Side);

/// Each visited state, with the state and byte it was first reached from (`None` at the start).
type Visited = HashMap<Pair, Option<(Pair, u8)>>;

struct ProductSearch<'d> {
    a: &'d dense::DFA<Vec<u32>>,
    b: &'d dense::DFA<Vec<u32>>,
}

impl ProductSearch<'_> {
    fn run(&self, start_a: StateID, start_b: StateID) -> Option<Overlap> {
        let start = (Side::Running(start_a), Side::Running(start_b));
        let mut seen: Visited = HashMap::new();
        seen.insert(start, None);
        let mut queue = VecDeque::from([start]);
        // Printable ASCII first, so witnesses read like model ids.
        let bytes: Vec<u8> = (0x20..0x7f).chain(0..0x20).chain(0x7f..=0xff).collect();
        while let Some(state) = queue.pop_front() {
            if self.accepts_at_end(state) {
                return Some(Overlap::Witness {
                    model: witness(&seen, state),
                });
            }
            for &byte in &bytes {
                let next = (step(self.a, state.0, byte), step(self.b, state.1, byte));
                if self.is_dead(next) || seen.contains_key(&next) {
                    continue;
                }
                if seen.len() >= SEARCH_BUDGET {
                    return Some(Overlap::Undecided);
                }
                seen.insert(next, Some((state, byte)));
                queue.push_back(next);
            }
        }
        None
    }

    fn accepts_at_end(&self, (a, b): Pair) -> bool {
        let done = |dfa: &dense::DFA<Vec<u32>>, side: Side| match side {
            Side::Matched => true,
            Side::Running(id) => dfa.is_match_state(dfa.next_eoi_state(id)),
        };
        done(self.a, a) && done(self.b, b)
    }

    fn is_dead(&self, (a, b): Pair) -> bool {
        matches!(a, Side::Running(id) if self.a.is_dead_state(id))
            || matches!(b, Side::Running(id) if self.b.is_dead_state(id))
    }
}

fn step(dfa: &dense::DFA<Vec<u32>>, side: Side, byte: u8) -> Side {
    match side {
        Side::Matched => Side::Matched,
        Side::Running(id) => {
            let next = dfa.next_state(id, byte);
            // Matches are reported one byte late: a match state here means the input
            // before `byte` already holds a match.
            if dfa.is_match_state(next) {
                Side::Matched
            } else {
                Side::Running(next)
            }
        }
    }
}

fn witness(seen: &Visited, mut state: Pair) -> String {
    let mut bytes = Vec::new();
    while let Some(Some((parent, byte))) = seen.get(&state) {
        bytes.push(*byte);
        state = *parent;
    }
    bytes.reverse();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(a: &str, b: &str) -> Registry {
        let yaml = format!(
            "schema_version: 1
providers:
  - {{name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '{a}'}}
  - {{name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B_KEY], model_prefix_match: '{b}'}}
runtimes:
  rt:
    providers: [{{name: a}}, {{name: b}}]
"
        );
        Registry::from_bytes(yaml.as_bytes()).unwrap()
    }

    fn overlaps(a: &str, b: &str) -> Vec<LintWarning> {
        registry(a, b).lint()
    }

    #[test]
    fn disjoint_prefixes_do_not_warn() {
        assert!(overlaps("^claude-", "^gpt-").is_empty());
        assert!(overlaps("^a$", "^ab").is_empty());
    }

    /// The one overlap warning for two matchers; its witness must match both.
    fn witness_of(a: &str, b: &str) -> String {
        let r = registry(a, b);
        let warnings = r.lint();
        let [
            LintWarning::NativeOverlap {
                overlap: Overlap::Witness { model },
                ..
            },
        ] = warnings.as_slice()
        else {
            panic!("expected one overlap, got {warnings:?}");
        };
        assert!(r.providers().iter().all(|p| p.matches(model)), "{model}");
        model.clone()
    }

    #[test]
    fn overlapping_matchers_warn_with_a_witness_both_match() {
        assert!(
            witness_of("^claude-", "(?i)^CLAUDE-OPUS")
                .to_lowercase()
                .starts_with("claude-opus")
        );
    }

    #[test]
    fn unanchored_matchers_overlap_anywhere_in_the_id() {
        assert!(witness_of("kimi", "^moonshot/").contains("kimi"));
    }

    #[test]
    fn a_matcher_too_large_to_determinize_is_undecided_not_a_hang() {
        let warnings = overlaps("a[ab]{30}$", "^x");
        assert!(
            matches!(
                warnings.as_slice(),
                [LintWarning::NativeOverlap {
                    overlap: Overlap::Undecided,
                    ..
                }]
            ),
            "{warnings:?}"
        );
    }

    #[test]
    fn end_anchors_are_respected() {
        assert!(overlaps("^gpt-5$", "^gpt-5.5").is_empty());
        assert_eq!(overlaps("^gpt-5$", "^gpt-").len(), 1);
    }
}
