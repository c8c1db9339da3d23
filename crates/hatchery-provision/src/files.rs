//! What backends that run agents on this machine share: each workspace's directory (its
//! writable `workspace/`, its `config/`, and `a2a/` where the agent's socket lives), the
//! agent's environment, and reading a log file's tail or following it.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::{BackendError, WorkspaceSpec};

/// Where the control plane's socket appears inside a sandbox or container.
pub const AGENT_SOCKET: &str = "/run/hatchery/hatchery.sock";
/// Where the workspace's `a2a/` directory appears inside a sandbox or container: the
/// agent serves A2A on a socket in it, which the control plane reaches from the host.
pub const AGENT_A2A_DIR: &str = "/run/a2a";
/// The agent's A2A socket inside a sandbox or container (in [`AGENT_A2A_DIR`]).
pub const AGENT_A2A_SOCKET: &str = "/run/a2a/agent.sock";
/// The name of the agent's socket in its `a2a/` directory.
const A2A_SOCKET_NAME: &str = "agent.sock";
/// The most bytes of a log read to find its last lines.
const TAIL_BYTES: u64 = 256 * 1024;
/// How many log lines an exit report carries.
pub(crate) const EXIT_LOG_LINES: usize = 20;
/// The most bytes a followed log yields per step.
const FOLLOW_CHUNK: u64 = 64 * 1024;
/// How often a followed log file is looked at.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

pub(crate) fn transient(context: &str, error: impl std::fmt::Display) -> BackendError {
    BackendError::Transient(format!("{context}: {error}"))
}

/// A config file's path must stay inside the config directory.
pub(crate) fn safe_relative(path: &str) -> Result<&Path, BackendError> {
    let relative = Path::new(path);
    let clean = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if clean {
        Ok(relative)
    } else {
        Err(BackendError::Permanent(format!(
            "config file path {path:?} is not a plain relative path"
        )))
    }
}

/// Where workspace `id`'s agent socket is on the host: `<root>/<id>/a2a/agent.sock`, seen
/// inside as [`AGENT_A2A_SOCKET`].
#[must_use]
pub fn a2a_socket_on_host(root: &Path, id: &str) -> PathBuf {
    root.join(id).join("a2a").join(A2A_SOCKET_NAME)
}

/// Create `<root>/<id>/{workspace,config,a2a}` and write the config files: what an agent
/// sees at `/workspace`, `/config` and `/run/a2a`.
pub(crate) fn lay_out(root: &Path, spec: &WorkspaceSpec) -> Result<PathBuf, BackendError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = root.join(&spec.id);
    let config_dir = dir.join("config");
    for sub in ["workspace", "config", "a2a"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| transient("creating the workspace directory", e))?;
    }
    // Whoever can enter `a2a/` can talk to the agent as the control plane does, unchecked:
    // its owner only, also when an earlier start made it otherwise.
    std::fs::set_permissions(dir.join("a2a"), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| transient("restricting the agent's socket directory", e))?;
    for (path, content) in &spec.files {
        let target = config_dir.join(safe_relative(path)?);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| transient("writing config", e))?;
        }
        std::fs::write(&target, content).map_err(|e| transient("writing config", e))?;
    }
    Ok(dir)
}

/// The agent's environment: the workspace's secrets first, then hatchery's own variables,
/// which win (a secret named `HATCHERY_URL` cannot redirect the agent; the job runner
/// keeps other `HATCHERY_*` secrets out of the spec). `url` is where the
/// agent reaches the control plane (`unix:/run/hatchery/hatchery.sock`); `agent_socket`,
/// when the backend reaches the agent through one, where the agent serves A2A
/// (`HATCHERY_AGENT_SOCKET`). Names with `=` and values with NUL cannot be passed and are
/// refused.
pub(crate) fn agent_env(
    spec: &WorkspaceSpec,
    url: &str,
    agent_socket: Option<&str>,
) -> Result<Vec<(String, String)>, BackendError> {
    let mut own = vec![
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME", "/workspace".to_owned()),
        ("HATCHERY_URL", url.to_owned()),
        ("HATCHERY_WORKSPACE_ID", spec.id.clone()),
        ("HATCHERY_BOOTSTRAP_TOKEN", spec.bootstrap_token.clone()),
        ("HATCHERY_CONFIG_DIR", "/config".to_owned()),
        (
            "HATCHERY_HEARTBEAT_INTERVAL",
            format!("{}ms", spec.heartbeat_interval.as_millis()),
        ),
    ];
    if let Some(socket) = agent_socket {
        own.push(("HATCHERY_AGENT_SOCKET", socket.to_owned()));
    }
    let pairs = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(own.iter().map(|(k, v)| (*k, v.as_str())));
    let mut env: Vec<(String, String)> = Vec::with_capacity(spec.env.len() + own.len());
    for (name, value) in pairs {
        if name.is_empty() || name.contains(['\0', '=']) || value.contains('\0') {
            return Err(BackendError::Permanent(format!(
                "environment variable {name:?} cannot be passed: empty, or NUL or '=' in it"
            )));
        }
        env.retain(|(existing, _)| existing != name);
        env.push((name.to_owned(), value.to_owned()));
    }
    Ok(env)
}

/// The last `lines` lines of a file, from at most its last [`TAIL_BYTES`] (empty when
/// it is missing; invalid UTF-8 shown as replacement characters).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    use std::io::{Read as _, Seek as _};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(TAIL_BYTES);
    if file.seek(std::io::SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.take(TAIL_BYTES).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A read that started mid-file drops its first, partial line.
    let skip = usize::from(from > 0 && all.len() > lines);
    all[all.len().saturating_sub(lines).max(skip)..].join("\n")
}

/// What is written to the file from now on, as it is written. A truncated or replaced
/// file is followed from its new beginning; the stream ends only when dropped.
pub(crate) fn follow_file(path: PathBuf) -> BoxStream<'static, Bytes> {
    let start = std::fs::metadata(&path).map_or(0, |m| m.len());
    Box::pin(futures_util::stream::unfold(
        (path, start),
        |(path, offset)| async move {
            loop {
                tokio::time::sleep(FOLLOW_POLL).await;
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                if len < offset {
                    return Some((Bytes::new(), (path, 0)));
                }
                if len > offset {
                    // A bounded chunk per step: a fast writer cannot balloon memory.
                    let to = len.min(offset + FOLLOW_CHUNK);
                    let chunk = read_range(&path, offset, to).unwrap_or_default();
                    return Some((Bytes::from(chunk), (path, to)));
                }
            }
        },
    ))
}

/// Bytes `from..to` of a file.
fn read_range(path: &Path, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read as _, Seek as _};
    let mut file = std::fs::File::open(path)?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut buffer = Vec::new();
    file.take(to - from).read_to_end(&mut buffer)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: Vec<(&str, &str)>) -> WorkspaceSpec {
        WorkspaceSpec {
            id: "w".into(),
            runtime: "r".into(),
            files: Vec::new(),
            env: env
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            bootstrap_token: "boot".into(),
            heartbeat_interval: Duration::from_secs(20),
            limits: crate::Limits::default(),
        }
    }

    #[test]
    fn config_paths_stay_inside() {
        assert!(safe_relative("config.yaml").is_ok());
        assert!(safe_relative("skills/a.md").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&path, 2), "3\n4");
        assert_eq!(tail(&path, 10), "1\n2\n3\n4");
        assert_eq!(tail(&dir.path().join("missing"), 3), "");
    }

    #[test]
    fn tail_reads_only_the_end_of_a_large_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut text = "x".repeat(1_000_000);
        text.push_str("\nlast words\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(tail(&path, 1), "last words");
    }

    #[test]
    fn hatchery_variables_win_over_secrets_of_the_same_name() {
        let env = agent_env(
            &spec(vec![
                ("API_KEY", "s3cret"),
                ("HATCHERY_URL", "http://evil"),
                ("HATCHERY_AGENT_SOCKET", "/workspace/evil.sock"),
            ]),
            "unix:/run/hatchery/hatchery.sock",
            Some(AGENT_A2A_SOCKET),
        )
        .unwrap();
        let value = |name: &str| {
            let found: Vec<_> = env.iter().filter(|(k, _)| k == name).collect();
            assert_eq!(found.len(), 1, "{name} once: {env:?}");
            found[0].1.clone()
        };
        assert_eq!(value("HATCHERY_URL"), "unix:/run/hatchery/hatchery.sock");
        assert_eq!(value("API_KEY"), "s3cret");
        assert_eq!(value("HATCHERY_BOOTSTRAP_TOKEN"), "boot");
        assert_eq!(value("HATCHERY_HEARTBEAT_INTERVAL"), "20000ms");
        assert_eq!(value("HATCHERY_AGENT_SOCKET"), "/run/a2a/agent.sock");

        for bad in [("A", "x\0y"), ("A=B", "x"), ("", "x")] {
            assert!(
                agent_env(&spec(vec![bad]), "unix:/s", None).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_layout_has_a_private_directory_for_the_agents_socket() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let mut spec = spec(Vec::new());
        spec.files = vec![("config.yaml".into(), "runtime: r\n".into())];
        let dir = lay_out(root.path(), &spec).unwrap();
        assert_eq!(dir, root.path().join("w"));
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("a2a")), 0o700);
        assert!(dir.join("workspace").is_dir());
        assert_eq!(
            std::fs::read_to_string(dir.join("config/config.yaml")).unwrap(),
            "runtime: r\n"
        );
        assert_eq!(
            a2a_socket_on_host(root.path(), "w"),
            dir.join("a2a/agent.sock")
        );
        // A later start tightens a directory someone opened up.
        std::fs::set_permissions(dir.join("a2a"), std::fs::Permissions::from_mode(0o777)).unwrap();
        lay_out(root.path(), &spec).unwrap();
        assert_eq!(mode(&dir.join("a2a")), 0o700);
    }

    #[tokio::test]
    async fn a_followed_file_yields_what_is_appended_and_restarts_after_truncation() {
        use futures_util::StreamExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "old\n").unwrap();
        let mut stream = follow_file(path.clone());
        std::fs::write(&path, "old\nnew\n").unwrap();
        assert_eq!(stream.next().await.unwrap(), Bytes::from("new\n"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(stream.next().await.unwrap(), Bytes::new());
        std::fs::write(&path, "again\n").unwrap();
        assert_eq!(stream.next().await.unwrap(), Bytes::from("again\n"));
    }
}
