//! How agents are launched, told the same way to every backend: what each runtime runs (a
//! command line on this machine, an image in an engine or a cluster) and what runs by
//! default, which runtimes may have the host's network, and how long a stop waits.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A command line, program first: what a runtime runs in the local backend.
pub type CommandLine = Vec<String>;
/// An image (a reference or an engine's id): what a runtime runs in a container or a pod.
pub type Image = String;

/// Between SIGTERM and SIGKILL, unless configured otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How a backend launches agents. `P` is what a runtime runs ([`CommandLine`] or
/// [`Image`]); `D` what runs by default, the same type once the backend runs (before, the
/// server may hold something to resolve first, such as an image still to build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLaunch<P, D = P> {
    /// What each runtime runs; runtimes not listed run `default`.
    pub by_runtime: HashMap<String, P>,
    /// What runs when a runtime has nothing of its own: `hatchery agent`.
    pub default: D,
    /// Runtimes allowed the host's network (all others get none).
    pub host_network: HashSet<String>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl<P, D> AgentLaunch<P, D> {
    /// Every runtime runs `default`, none with the host's network, with the default grace.
    #[must_use]
    pub fn new(default: D) -> Self {
        Self {
            by_runtime: HashMap::new(),
            default,
            host_network: HashSet::new(),
            grace: DEFAULT_GRACE,
        }
    }

    /// Whether `runtime`'s agents may have the host's (the node's) network.
    #[must_use]
    pub fn allows_host_network(&self, runtime: &str) -> bool {
        self.host_network.contains(runtime)
    }

    /// The runtimes allowed the host's network, sorted.
    #[must_use]
    pub fn host_network_runtimes(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.host_network.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The same launch with `default` in place of the one to be resolved.
    #[must_use]
    pub fn with_default<E>(self, default: E) -> AgentLaunch<P, E> {
        AgentLaunch {
            by_runtime: self.by_runtime,
            default,
            host_network: self.host_network,
            grace: self.grace,
        }
    }
}

impl<P> AgentLaunch<P> {
    /// What `runtime` runs: its own, else the default.
    #[must_use]
    pub fn for_runtime(&self, runtime: &str) -> &P {
        self.by_runtime.get(runtime).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_runs_its_own_else_the_default_and_shares_the_network_only_if_listed() {
        let launch = AgentLaunch {
            by_runtime: HashMap::from([("custom".to_owned(), "custom:1".to_owned())]),
            host_network: HashSet::from(["b".to_owned(), "a".to_owned()]),
            ..AgentLaunch::new("agent:1".to_owned())
        };
        assert_eq!(launch.for_runtime("custom"), "custom:1");
        assert_eq!(launch.for_runtime("other"), "agent:1");
        assert!(launch.allows_host_network("a"));
        assert!(!launch.allows_host_network("custom"));
        assert_eq!(launch.host_network_runtimes(), ["a", "b"]);
        assert_eq!(launch.grace, DEFAULT_GRACE);
    }
}
