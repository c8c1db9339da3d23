//! Derivation: which provider a (runtime, model) pair must use, as a typed outcome.
//!
//! One algorithm (spec §6.1) serves three callers: [`Registry::derive_provider`] with an
//! auth-env tie-break, [`Registry::derive`] for provisioning (no auth env, typed
//! pass-through vs. fail), and [`Registry::explain`], which records every rule it tried.

use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::prefix_index::{PrefixIndex, ProviderMask};
use crate::registry::{Provider, Registry, Runtime};

/// How a derived provider was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The id is listed in the reference's `models`.
    ExactModel,
    /// The provider's `model_prefix_match` matched the id.
    PrefixMatch,
}

/// A successful derivation.
#[derive(Debug, Clone, Copy)]
pub struct Derivation<'r> {
    /// The provider to stamp into the workspace's config.
    pub provider: &'r Provider,
    /// Which rule found it.
    pub via: MatchedBy,
    /// Several qualified and the caller's available auth env picked this one.
    pub tie_broken_by_auth_env: bool,
}

/// Why derivation legitimately produced no provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassThroughReason {
    /// The model is empty after trimming.
    EmptyModel,
    /// The runtime is not in the manifest (unknown or federated runtime).
    UnknownRuntime,
    /// No exact id and no native matcher matched.
    NoMatch,
}

impl PassThroughReason {
    /// Stable wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmptyModel => "empty_model",
            Self::UnknownRuntime => "unknown_runtime",
            Self::NoMatch => "no_match",
        }
    }
}

impl fmt::Display for PassThroughReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Two or more native matchers matched and nothing broke the tie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguity {
    /// The runtime asked for.
    pub runtime: String,
    /// The model, trimmed.
    pub model: String,
    /// The candidates, sorted by name.
    pub candidates: Vec<String>,
}

impl fmt::Display for Ambiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted: Vec<String> = self.candidates.iter().map(|c| format!("`{c}`")).collect();
        write!(
            f,
            "derive provider for known runtime/model: runtime `{}`, model `{}` is ambiguous, it matches {}; set `provider` explicitly or fix the manifest",
            self.runtime,
            self.model,
            join_with_and(&quoted)
        )
    }
}

fn join_with_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What provisioning does with a (runtime, model): stamp a provider, pass through with a
/// recorded reason, or fail closed.
#[derive(Debug, Clone)]
pub enum DeriveOutcome<'r> {
    /// A provider was derived.
    Derived(Derivation<'r>),
    /// No provider, for one of the three legitimate reasons.
    PassThrough(PassThroughReason),
    /// The registry knows the runtime and the model is matched by several providers.
    Ambiguous(Ambiguity),
}

impl DeriveOutcome<'_> {
    /// Whether provisioning must stop.
    #[must_use]
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Ambiguous(_))
    }
}

/// The CLI and API wire shape: `{"outcome":"derived","provider":"P","via":…}`,
/// `{"outcome":"passthrough","reason":…}` or `{"outcome":"error","kind":"ambiguous",…}`.
impl Serialize for DeriveOutcome<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Derived(d) => {
                map.serialize_entry("outcome", "derived")?;
                map.serialize_entry("provider", &d.provider.name)?;
                map.serialize_entry("via", &d.via)?;
                map.serialize_entry(
                    "billing",
                    if d.provider.is_platform() {
                        "platform"
                    } else {
                        "byok"
                    },
                )?;
            }
            Self::PassThrough(reason) => {
                map.serialize_entry("outcome", "passthrough")?;
                map.serialize_entry("reason", reason)?;
            }
            Self::Ambiguous(a) => {
                map.serialize_entry("outcome", "error")?;
                map.serialize_entry("kind", "ambiguous")?;
                map.serialize_entry("message", &a.to_string())?;
                map.serialize_entry("runtime", &a.runtime)?;
                map.serialize_entry("model", &a.model)?;
                map.serialize_entry("candidates", &a.candidates)?;
            }
        }
        map.end()
    }
}

/// Errors of [`Registry::derive_provider`], the auth-env-aware form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    /// The model is empty after trimming.
    #[error("deriving provider for runtime `{runtime}`: the model is empty")]
    EmptyModel {
        /// The runtime asked for.
        runtime: String,
    },
    /// The runtime is not in the manifest.
    #[error(
        "deriving provider for runtime `{runtime}`, model `{model}`: the runtime is not in the provider registry"
    )]
    UnknownRuntime {
        /// The runtime asked for.
        runtime: String,
        /// The model, trimmed.
        model: String,
    },
    /// No exact id and no native matcher matched.
    #[error(
        "deriving provider for runtime `{runtime}`, model `{model}`: no native provider lists or matches this model"
    )]
    NoMatch {
        /// The runtime asked for.
        runtime: String,
        /// The model, trimmed.
        model: String,
    },
    /// Several native matchers matched.
    #[error("{0}")]
    Ambiguous(Ambiguity),
}

/// One rule tried while deriving, for people reading an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[allow(missing_docs)] // the fields' names say what they hold
pub enum ExplainStep {
    /// Whitespace was trimmed from the model.
    TrimmedModel {
        /// The model as given.
        from: String,
        /// The model used from here on.
        to: String,
    },
    /// The model is empty: pass through.
    EmptyModel,
    /// The runtime is not in the manifest: pass through.
    RuntimeNotFound {
        /// The runtime asked for.
        runtime: String,
    },
    /// The runtime was found; these are its native providers, in order.
    RuntimeFound {
        runtime: String,
        /// Its native providers.
        native_providers: Vec<String>,
    },
    /// Exact step: these references list the id (declared order).
    ExactIds {
        /// Providers whose reference lists the id.
        listed_by: Vec<String>,
    },
    /// Prefix step: one provider's matcher was tried.
    PrefixTried {
        provider: String,
        /// Its `model_prefix_match`.
        pattern: String,
        /// Whether it matched.
        matched: bool,
    },
    /// Several candidates; the available auth env narrowed them to these.
    AuthEnvTieBreak {
        /// Candidates before.
        candidates: Vec<String>,
        /// Those sharing an auth variable with the available set.
        kept: Vec<String>,
    },
    /// Several references list the id and nothing narrowed them: the first-declared wins.
    FirstDeclaredWins { provider: String },
}

/// A derivation with the trace of every rule tried.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation<'r> {
    /// The runtime asked for.
    pub runtime: String,
    /// The model as given.
    pub model: String,
    /// The registry's content hash.
    pub registry_hash: &'r str,
    /// Rules tried, in order.
    pub steps: Vec<ExplainStep>,
    /// What [`Registry::derive`] answers for the same runtime and model.
    pub outcome: DeriveOutcome<'r>,
}

/// Receives explanation steps; the no-op form compiles away on the hot path.
trait Trace {
    fn enabled(&self) -> bool;
    fn push(&mut self, step: ExplainStep);
}

impl Trace for () {
    #[inline]
    fn enabled(&self) -> bool {
        false
    }
    #[inline]
    fn push(&mut self, _: ExplainStep) {}
}

impl Trace for Vec<ExplainStep> {
    fn enabled(&self) -> bool {
        true
    }
    fn push(&mut self, step: ExplainStep) {
        Vec::push(self, step);
    }
}

/// What the algorithm found, before it becomes a public outcome or error. Borrowed, so the
/// pass-through outcomes of [`Registry::derive`] allocate nothing.
enum Found<'r> {
    Provider(Derivation<'r>),
    EmptyModel,
    UnknownRuntime,
    NoMatch(&'r Runtime),
    Ambiguous(&'r Runtime, Vec<&'r Provider>),
}

impl Registry {
    /// Provisioning's derivation (spec §6.2): no auth env, so any prefix overlap is
    /// ambiguous and an id listed twice goes to the first-declared reference.
    #[must_use]
    pub fn derive(&self, runtime: &str, model: &str) -> DeriveOutcome<'_> {
        outcome_of(self.find(runtime, model, &[], &mut ()), model)
    }

    /// [`Registry::derive`] with every rule it tried.
    #[must_use]
    pub fn explain(&self, runtime: &str, model: &str) -> Explanation<'_> {
        let mut steps = Vec::new();
        let found = self.find(runtime, model, &[], &mut steps);
        Explanation {
            runtime: runtime.to_owned(),
            model: model.to_owned(),
            registry_hash: self.hash(),
            steps,
            outcome: outcome_of(found, model),
        }
    }

    /// The spec's `derive_provider` (§6.1): `available_auth_env` breaks ties between
    /// candidates that share an auth variable with it.
    pub fn derive_provider(
        &self,
        runtime: &str,
        model: &str,
        available_auth_env: &[&str],
    ) -> Result<Derivation<'_>, DeriveError> {
        let trimmed = || model.trim().to_owned();
        match self.find(runtime, model, available_auth_env, &mut ()) {
            Found::Provider(derivation) => Ok(derivation),
            Found::EmptyModel => Err(DeriveError::EmptyModel {
                runtime: runtime.to_owned(),
            }),
            Found::UnknownRuntime => Err(DeriveError::UnknownRuntime {
                runtime: runtime.to_owned(),
                model: trimmed(),
            }),
            Found::NoMatch(rt) => Err(DeriveError::NoMatch {
                runtime: rt.name.clone(),
                model: trimmed(),
            }),
            Found::Ambiguous(rt, candidates) => Err(DeriveError::Ambiguous(ambiguity(
                rt,
                &trimmed(),
                &candidates,
            ))),
        }
    }

    fn find(
        &self,
        runtime_name: &str,
        model_given: &str,
        available_auth_env: &[&str],
        trace: &mut impl Trace,
    ) -> Found<'_> {
        let model = model_given.trim();
        if trace.enabled() && model.len() != model_given.len() {
            trace.push(ExplainStep::TrimmedModel {
                from: model_given.to_owned(),
                to: model.to_owned(),
            });
        }
        if model.is_empty() {
            trace.push(ExplainStep::EmptyModel);
            return Found::EmptyModel;
        }
        let Some(runtime) = self.find_runtime(runtime_name) else {
            if trace.enabled() {
                trace.push(ExplainStep::RuntimeNotFound {
                    runtime: runtime_name.to_owned(),
                });
            }
            return Found::UnknownRuntime;
        };
        if trace.enabled() {
            trace.push(ExplainStep::RuntimeFound {
                runtime: runtime.name.clone(),
                native_providers: runtime.refs.iter().map(|r| r.name.clone()).collect(),
            });
        }
        if let Some(derivation) = self.exact_step(runtime, model, available_auth_env, trace) {
            return Found::Provider(derivation);
        }
        self.prefix_step(runtime, model, available_auth_env, trace)
    }

    fn exact_step(
        &self,
        runtime: &Runtime,
        model: &str,
        available_auth_env: &[&str],
        trace: &mut impl Trace,
    ) -> Option<Derivation<'_>> {
        let listed = runtime.exact.get(model);
        if trace.enabled() {
            let listed_by = listed
                .into_iter()
                .flatten()
                .map(|&i| runtime.refs[i].name.clone())
                .collect();
            trace.push(ExplainStep::ExactIds { listed_by });
        }
        let listed = listed?;
        if let [only] = listed.as_slice() {
            return Some(Derivation {
                provider: self.provider_at(runtime.refs[*only].provider),
                via: MatchedBy::ExactModel,
                tie_broken_by_auth_env: false,
            });
        }
        let candidates: Vec<&Provider> = listed
            .iter()
            .map(|&i| self.provider_at(runtime.refs[i].provider))
            .collect();
        let first = *candidates.first()?;
        let narrowed = narrow_by_auth_env(&candidates, available_auth_env, trace);
        let (provider, tie_broken) = if let [only] = narrowed.as_slice() {
            (*only, true)
        } else {
            if trace.enabled() {
                trace.push(ExplainStep::FirstDeclaredWins {
                    provider: first.name.clone(),
                });
            }
            (first, false)
        };
        Some(Derivation {
            provider,
            via: MatchedBy::ExactModel,
            tie_broken_by_auth_env: tie_broken,
        })
    }

    fn prefix_step<'r>(
        &'r self,
        runtime: &'r Runtime,
        model: &str,
        available_auth_env: &[&str],
        trace: &mut impl Trace,
    ) -> Found<'r> {
        let matched = match &self.prefix_index {
            // An explanation lists every native provider it tried, so it scans.
            Some(index) if !trace.enabled() => {
                let mask = self.indexed_matches(runtime, index, model);
                if mask.is_power_of_two() {
                    return Found::Provider(Derivation {
                        provider: self.provider_at(mask.trailing_zeros() as usize),
                        via: MatchedBy::PrefixMatch,
                        tie_broken_by_auth_env: false,
                    });
                }
                runtime
                    .refs
                    .iter()
                    .filter(|r| mask & (1 << r.provider) != 0)
                    .map(|r| self.provider_at(r.provider))
                    .collect()
            }
            _ => self.scan_matches(runtime, model, trace),
        };
        match matched.as_slice() {
            [] => Found::NoMatch(runtime),
            [only] => Found::Provider(Derivation {
                provider: only,
                via: MatchedBy::PrefixMatch,
                tie_broken_by_auth_env: false,
            }),
            [_, _, ..] => {
                match narrow_by_auth_env(&matched, available_auth_env, trace).as_slice() {
                    [only] => Found::Provider(Derivation {
                        provider: only,
                        via: MatchedBy::PrefixMatch,
                        tie_broken_by_auth_env: true,
                    }),
                    // The auth env narrowed the set but not to one: name the narrowed set.
                    narrowed @ [_, _, ..] => Found::Ambiguous(runtime, narrowed.to_vec()),
                    _ => Found::Ambiguous(runtime, matched),
                }
            }
        }
    }

    /// The native providers whose matcher matches, as a mask: one trie walk, then only the
    /// general matchers whose literal prefix (or, lacking one, first byte) the id has.
    fn indexed_matches(&self, runtime: &Runtime, index: &PrefixIndex, model: &str) -> ProviderMask {
        let hits = index.walk(model.as_bytes());
        let mut matched = hits.matched & runtime.native_mask;
        let mut to_run = hits.to_run & runtime.native_mask;
        while to_run != 0 {
            let i = to_run.trailing_zeros() as usize;
            to_run &= to_run - 1;
            if self.provider_at(i).matches(model) {
                matched |= 1 << i;
            }
        }
        matched
    }

    /// Every native matcher in declared order, recording each in the trace.
    fn scan_matches<'r>(
        &'r self,
        runtime: &Runtime,
        model: &str,
        trace: &mut impl Trace,
    ) -> Vec<&'r Provider> {
        let mut matched = Vec::new();
        for index in 0..runtime.refs.len() {
            let provider = self.ref_provider(runtime, index);
            let is_match = provider.matches(model);
            if trace.enabled() {
                trace.push(ExplainStep::PrefixTried {
                    provider: provider.name.clone(),
                    pattern: provider.model_prefix_match.clone(),
                    matched: is_match,
                });
            }
            if is_match {
                matched.push(provider);
            }
        }
        matched
    }

    fn ref_provider(&self, runtime: &Runtime, index: usize) -> &Provider {
        self.provider_at(runtime.refs[index].provider)
    }
}

/// Keep the candidates that share an auth variable with `available`.
fn narrow_by_auth_env<'r>(
    candidates: &[&'r Provider],
    available: &[&str],
    trace: &mut impl Trace,
) -> Vec<&'r Provider> {
    if available.is_empty() {
        return Vec::new();
    }
    let kept: Vec<&Provider> = candidates
        .iter()
        .copied()
        .filter(|p| p.auth_env.iter().any(|v| available.contains(&v.as_str())))
        .collect();
    if trace.enabled() {
        trace.push(ExplainStep::AuthEnvTieBreak {
            candidates: candidates.iter().map(|p| p.name.clone()).collect(),
            kept: kept.iter().map(|p| p.name.clone()).collect(),
        });
    }
    kept
}

fn ambiguity(runtime: &Runtime, model: &str, candidates: &[&Provider]) -> Ambiguity {
    let mut names: Vec<String> = candidates.iter().map(|p| p.name.clone()).collect();
    names.sort();
    Ambiguity {
        runtime: runtime.name.clone(),
        model: model.to_owned(),
        candidates: names,
    }
}

fn outcome_of<'r>(found: Found<'r>, model: &str) -> DeriveOutcome<'r> {
    match found {
        Found::Provider(derivation) => DeriveOutcome::Derived(derivation),
        Found::EmptyModel => DeriveOutcome::PassThrough(PassThroughReason::EmptyModel),
        Found::UnknownRuntime => DeriveOutcome::PassThrough(PassThroughReason::UnknownRuntime),
        Found::NoMatch(_) => DeriveOutcome::PassThrough(PassThroughReason::NoMatch),
        Found::Ambiguous(runtime, candidates) => {
            DeriveOutcome::Ambiguous(ambiguity(runtime, model.trim(), &candidates))
        }
    }
}
