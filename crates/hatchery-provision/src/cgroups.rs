//! Memory, CPU and process limits for the local backend's sandboxes, with control groups:
//! v2 where its memory, cpu and pids controllers are delegated to hatchery, else the v1
//! hierarchies of those controllers where they are writable. Without either the sandbox
//! keeps only its rlimits (which cannot limit CPU, and limit address space rather than
//! memory), and the control plane says so when it starts.
//!
//! Each sandbox gets `<base>/<workspace id>` in every hierarchy, where `<base>` is a
//! group of this installation's own beside the control plane's (`hatchery-<name>`). The
//! sandbox joins it before it starts anything: bubblewrap waits for its arguments on
//! stdin, so the process is moved while it is still alone, and all it forks inherits the
//! group.

use std::path::{Path, PathBuf};

use crate::Limits;

/// The controllers hatchery sets limits with.
const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];
/// The CPU accounting period, in microseconds.
const CPU_PERIOD_MICROS: u64 = 100_000;

/// Which control group interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy.
    V2,
    /// One hierarchy per controller.
    V1,
}

/// Where this installation's sandbox groups go.
#[derive(Debug, Clone)]
pub struct Cgroups {
    version: Version,
    /// `(controller, base directory)`; for v2, one entry for all controllers.
    bases: Vec<(&'static str, PathBuf)>,
}

/// One sandbox's groups.
#[derive(Debug)]
pub struct SandboxGroup {
    dirs: Vec<PathBuf>,
}

fn io_context(what: &str, path: &Path, error: &std::io::Error) -> String {
    format!("{what} {}: {error}", path.display())
}

/// `(hierarchy id, controllers, path)` of each line of `/proc/self/cgroup`.
fn own_groups(text: &str) -> Vec<(String, Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.to_owned();
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((id, controllers, parts.next()?.to_owned()))
        })
        .collect()
}

/// `(fstype, mount point, super options)` of each mount in `/proc/self/mountinfo`.
fn mounts(text: &str) -> Vec<(String, PathBuf, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            let mut after = after.split_whitespace();
            let fstype = after.next()?.to_owned();
            let options = after.nth(1)?.split(',').map(str::to_owned).collect();
            Some((fstype, PathBuf::from(mount_point), options))
        })
        .collect()
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| io_context("writing", path, &e))
}

impl Cgroups {
    /// The groups of installation `name`, made now; or why there are none.
    pub fn detect(name: &str) -> Result<Self, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
        let (own, mounts) = (own_groups(&own), mounts(&mountinfo));
        let v2 = Self::detect_v2(name, &own, &mounts);
        v2.or_else(|v2_reason| {
            Self::detect_v1(name, &own, &mounts)
                .map_err(|v1_reason| format!("{v2_reason}; {v1_reason}"))
        })
    }

    fn detect_v2(
        name: &str,
        own: &[(String, Vec<String>, String)],
        mounts: &[(String, PathBuf, Vec<String>)],
    ) -> Result<Self, String> {
        let mount = mounts
            .iter()
            .find(|(fstype, _, _)| fstype == "cgroup2")
            .map(|(_, point, _)| point)
            .ok_or("no cgroup v2 hierarchy is mounted")?;
        let path = own
            .iter()
            .find(|(id, controllers, _)| id == "0" && controllers.is_empty())
            .map(|(_, _, path)| path)
            .ok_or("this process is in no cgroup v2 group")?;
        let parent = mount.join(path.trim_start_matches('/'));
        let available =
            std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        if !CONTROLLERS
            .iter()
            .all(|c| available.split_whitespace().any(|a| a == *c))
        {
            return Err(format!(
                "cgroup v2: {} does not delegate the memory, cpu and pids controllers (run hatchery in a group that does, e.g. systemd's Delegate=yes)",
                parent.display()
            ));
        }
        let base = parent.join(format!("hatchery-{name}"));
        std::fs::create_dir_all(&base).map_err(|e| io_context("creating", &base, &e))?;
        write(&base.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
        Ok(Self {
            version: Version::V2,
            bases: vec![("all", base)],
        })
    }

    fn detect_v1(
        name: &str,
        own: &[(String, Vec<String>, String)],
        mounts: &[(String, PathBuf, Vec<String>)],
    ) -> Result<Self, String> {
        let mut bases = Vec::new();
        for controller in CONTROLLERS {
            let mount = mounts
                .iter()
                .find(|(fstype, _, options)| {
                    fstype == "cgroup" && options.iter().any(|o| o == controller)
                })
                .map(|(_, point, _)| point)
                .ok_or_else(|| format!("cgroup v1: no {controller} hierarchy is mounted"))?;
            let path = own
                .iter()
                .find(|(_, controllers, _)| controllers.iter().any(|c| c == controller))
                .map_or("/", |(_, _, path)| path.as_str());
            let base = mount
                .join(path.trim_start_matches('/'))
                .join(format!("hatchery-{name}"));
            std::fs::create_dir_all(&base)
                .map_err(|e| format!("cgroup v1: {}", io_context("creating", &base, &e)))?;
            bases.push((controller, base));
        }
        Ok(Self {
            version: Version::V1,
            bases,
        })
    }

    /// Remove this installation's groups, if no sandbox's is left in them (best effort:
    /// at shutdown).
    pub fn remove_bases(&self) {
        for (_, base) in &self.bases {
            let _ = std::fs::remove_dir(base);
        }
    }

    /// Which interface.
    #[must_use]
    pub fn version(&self) -> Version {
        self.version
    }

    /// Make the groups of workspace `id`, limited to `limits`.
    pub fn create(&self, id: &str, limits: Limits) -> Result<SandboxGroup, String> {
        let quota = limits.cpu_millis.saturating_mul(CPU_PERIOD_MICROS) / 1000;
        let mut dirs = Vec::new();
        for (controller, base) in &self.bases {
            let dir = base.join(id);
            // A group left by a sandbox that died with an earlier control plane.
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| io_context("creating", &dir, &e))?;
            let settings: Vec<(&str, String)> = match (self.version, *controller) {
                (Version::V2, _) => vec![
                    ("memory.max", limits.memory_bytes.to_string()),
                    ("memory.swap.max", "0".to_owned()),
                    ("cpu.max", format!("{quota} {CPU_PERIOD_MICROS}")),
                    ("pids.max", limits.processes.to_string()),
                ],
                (Version::V1, "memory") => {
                    vec![("memory.limit_in_bytes", limits.memory_bytes.to_string())]
                }
                (Version::V1, "cpu") => vec![
                    ("cpu.cfs_period_us", CPU_PERIOD_MICROS.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
                (Version::V1, _) => vec![("pids.max", limits.processes.to_string())],
            };
            for (file, value) in settings {
                let path = dir.join(file);
                // Swap accounting may be off: that limit is best effort.
                if file == "memory.swap.max" && !path.exists() {
                    continue;
                }
                write(&path, &value)?;
            }
            dirs.push(dir);
        }
        Ok(SandboxGroup { dirs })
    }
}

impl SandboxGroup {
    /// Move process `pid` into the groups: its children from then on are in them too, so
    /// call it before the process forks.
    pub fn join(&self, pid: i32) -> Result<(), String> {
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Remove the groups once their processes are gone (a few tries: the kernel lets go
    /// of an exited process's group membership a moment after it is reaped).
    pub async fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_the_kernel_writes_them() {
        let own = own_groups("4:memory:/process_api/c43e\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(own[0].1, vec!["memory".to_owned()]);
        assert_eq!(own[0].2, "/process_api/c43e");
        assert_eq!(own[1].1, vec!["cpu".to_owned(), "cpuacct".to_owned()]);
        assert!(own[2].1.is_empty());
        assert_eq!(own[2].2, "/user.slice");

        let mounts = mounts(
            "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             30 23 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(mounts[0].0, "cgroup");
        assert_eq!(mounts[0].1, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert!(mounts[0].2.contains(&"cpu".to_owned()));
        assert_eq!(mounts[1].0, "cgroup2");
    }
}
