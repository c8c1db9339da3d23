//! The agents a backend whose agents outlive the control plane (containers, pods) started
//! or adopted: one per workspace, known by the engine's handle of it, whether we are
//! stopping it (then its end is no news), and its network address once the engine gives it
//! one (a pod's).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Set once we stop an agent: its end is then no news. Shared by the agent's entry and
/// whoever watches it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stopping(Arc<AtomicBool>);

impl Stopping {
    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether we stopped (or are stopping) the agent.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Tracked<H> {
    handle: H,
    stopping: Stopping,
    address: Option<IpAddr>,
}

/// The tracked agents, by workspace id. `H` is the engine's handle of one: a container id,
/// a pod uid (a new pod of the same name is another one). Clones share one map, so a
/// watch task can keep one.
#[derive(Debug)]
pub(crate) struct TrackedAgents<H> {
    agents: Arc<Mutex<HashMap<String, Tracked<H>>>>,
}

impl<H> Clone for TrackedAgents<H> {
    fn clone(&self) -> Self {
        Self {
            agents: Arc::clone(&self.agents),
        }
    }
}

impl<H> Default for TrackedAgents<H> {
    fn default() -> Self {
        Self {
            agents: Arc::default(),
        }
    }
}

impl<H: PartialEq> TrackedAgents<H> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked<H>>> {
        // A panic elsewhere leaves the map as consistent as any single insert or remove.
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Track `handle` as workspace `id`'s agent, in place of any other: its stop flag, or
    /// `None` when it is tracked already (then nothing changes).
    pub(crate) fn track(&self, id: &str, handle: H) -> Option<Stopping> {
        self.track_at(id, handle, None)
    }

    /// [`Self::track`], with the agent's address when it is known (then kept also when the
    /// agent is tracked already).
    pub(crate) fn track_at(
        &self,
        id: &str,
        handle: H,
        address: Option<IpAddr>,
    ) -> Option<Stopping> {
        let mut agents = self.lock();
        if let Some(tracked) = agents.get_mut(id)
            && tracked.handle == handle
        {
            tracked.address = address.or(tracked.address);
            return None;
        }
        let stopping = Stopping::default();
        agents.insert(
            id.to_owned(),
            Tracked {
                handle,
                stopping: stopping.clone(),
                address,
            },
        );
        Some(stopping)
    }

    /// We are stopping workspace `id`'s agent: its end is no news.
    pub(crate) fn mark_stopping(&self, id: &str) {
        if let Some(tracked) = self.lock().get(id) {
            tracked.stopping.set();
        }
    }

    /// Whether an agent of workspace `id` is tracked.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Whether an agent of workspace `id` is tracked and not being stopped.
    pub(crate) fn is_live(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|t| !t.stopping.is_set())
    }

    /// The agent `handle` of workspace `id` has this address: kept if it is the one
    /// tracked (a status of an older one of the workspace, or of one not ours, is not).
    pub(crate) fn set_address(&self, id: &str, handle: &H, address: IpAddr) {
        if let Some(tracked) = self.lock().get_mut(id)
            && tracked.handle == *handle
        {
            tracked.address = Some(address);
        }
    }

    /// The address of workspace `id`'s agent, while it is tracked, not being stopped and
    /// has one.
    pub(crate) fn address(&self, id: &str) -> Option<IpAddr> {
        self.lock()
            .get(id)
            .filter(|t| !t.stopping.is_set())
            .and_then(|t| t.address)
    }

    /// Forget workspace `id`'s agent, whichever it is.
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The agent `handle` of workspace `id` is gone: forgotten if it is the one tracked
    /// (a newer one of the workspace stays), and then its stop flag.
    pub(crate) fn release(&self, id: &str, handle: &H) -> Option<Stopping> {
        let mut agents = self.lock();
        if agents.get(id).is_some_and(|t| t.handle == *handle) {
            agents.remove(id).map(|t| t.stopping)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_is_tracked_once_and_released_only_by_its_own_handle() {
        let agents = TrackedAgents::<String>::default();
        let first = agents.track("w", "a".to_owned()).unwrap();
        assert!(
            agents.track("w", "a".to_owned()).is_none(),
            "tracked already"
        );
        assert!(agents.release("w", &"b".to_owned()).is_none());
        assert!(agents.is_live("w"));
        agents.mark_stopping("w");
        assert!(first.is_set());
        assert!(!agents.is_live("w"), "being stopped");
        let released = agents.release("w", &"a".to_owned()).unwrap();
        assert!(released.is_set());
        assert!(!agents.contains("w"));
    }

    #[test]
    fn a_new_handle_replaces_the_old_with_a_flag_of_its_own() {
        let agents = TrackedAgents::<String>::default();
        let old = agents.track("w", "a".to_owned()).unwrap();
        let new = agents.track("w", "b".to_owned()).unwrap();
        agents.mark_stopping("w");
        assert!(new.is_set());
        assert!(!old.is_set());
        assert!(
            agents.release("w", &"a".to_owned()).is_none(),
            "not the tracked one"
        );
        assert!(agents.contains("w"));
        agents.forget("w");
        assert!(!agents.contains("w"));
    }

    #[test]
    fn an_address_is_kept_for_the_tracked_agent_while_it_is_live() {
        let agents = TrackedAgents::<String>::default();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        agents.set_address("w", &"a".to_owned(), ip);
        assert_eq!(agents.address("w"), None, "not tracked yet");
        agents.track("w", "a".to_owned()).unwrap();
        assert_eq!(agents.address("w"), None, "no address yet");
        agents.set_address("w", &"old".to_owned(), "10.9.9.9".parse().unwrap());
        assert_eq!(agents.address("w"), None, "another agent's address");
        agents.set_address("w", &"a".to_owned(), ip);
        assert_eq!(agents.address("w"), Some(ip));
        assert!(agents.track("w", "a".to_owned()).is_none());
        assert_eq!(agents.address("w"), Some(ip), "tracked again, kept");
        agents.mark_stopping("w");
        assert_eq!(agents.address("w"), None, "being stopped");
        agents.track("w", "b".to_owned()).unwrap();
        assert_eq!(agents.address("w"), None, "a new agent has its own");

        // Adopted with the address its engine reports.
        let other: IpAddr = "10.4.5.6".parse().unwrap();
        assert!(agents.track_at("w", "b".to_owned(), Some(other)).is_none());
        assert_eq!(
            agents.address("w"),
            Some(other),
            "tracked already, addressed"
        );
        agents.track_at("v", "c".to_owned(), Some(ip)).unwrap();
        assert_eq!(agents.address("v"), Some(ip));
    }
}
