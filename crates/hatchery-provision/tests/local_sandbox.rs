//! The local backend's sandbox from the inside, with real bubblewrap sandboxes: what an
//! agent sees of the host (its program, not the program's neighbours), what privileges it
//! holds (no capabilities, a user namespace of its own; as root, none is no sandbox), that
//! what it prints reaches its exit report without terminal control characters, and that
//! the socket it serves A2A on is reachable from the host.

use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hatchery_provision::local::{LocalBackend, LocalConfig};
use hatchery_provision::{
    AgentEndpoint, AgentLaunch, Backend as _, Exit, Limits, WorkspaceSpec, escape_controls,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// What the sandboxed probe writes its findings to, inside the sandbox.
const REPORT: &str = "/workspace/report";
/// The variable that turns `probe_in_sandbox` from a no-op into the sandboxed probe.
const PROBE_VARIABLE: &str = "HATCHERY_SANDBOX_PROBE";

/// A control plane's side of a sandbox: its data directory, with the socket agents get.
struct Host {
    dir: tempfile::TempDir,
    _socket: UnixListener,
}

impl Host {
    fn new() -> Self {
        assert!(
            Path::new("/usr/bin/bwrap").exists(),
            "bubblewrap is needed: apt-get install -y bubblewrap"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let socket = UnixListener::bind(dir.path().join("run/hatchery.sock")).unwrap();
        Self {
            dir,
            _socket: socket,
        }
    }

    /// A backend whose runtime `probe` runs `command`, through `bwrap`.
    fn backend(
        &self,
        command: Vec<String>,
        bwrap: &Path,
    ) -> (LocalBackend, UnboundedReceiver<Exit>) {
        LocalBackend::new(LocalConfig {
            root: self.dir.path().join("workspaces"),
            hidden: vec![self.dir.path().to_owned()],
            socket: self.dir.path().join("run/hatchery.sock"),
            launch: AgentLaunch {
                by_runtime: HashMap::from([("probe".to_owned(), command)]),
                grace: Duration::from_secs(1),
                ..AgentLaunch::new(vec!["/bin/false".to_owned()])
            },
            bwrap: bwrap.to_owned(),
            prlimit: "/usr/bin/prlimit".into(),
            cgroups: None,
        })
    }

    /// Where workspace `w` keeps `relative` on the host.
    fn workspace_file(&self, relative: &str) -> PathBuf {
        self.dir.path().join("workspaces/w").join(relative)
    }

    /// Run `command` in a sandbox until it exits: its exit report and what it wrote to
    /// [`REPORT`].
    async fn run(&self, command: Vec<String>) -> (Exit, String) {
        self.run_with(command, Path::new("/usr/bin/bwrap")).await
    }

    async fn run_with(&self, command: Vec<String>, bwrap: &Path) -> (Exit, String) {
        let (backend, mut exits) = self.backend(command, bwrap);
        backend.start(&spec()).await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(30), exits.recv())
            .await
            .expect("the sandbox exits within 30 s")
            .expect("an exit report");
        let report =
            std::fs::read_to_string(self.workspace_file("workspace/report")).unwrap_or_default();
        (exit, report)
    }
}

fn spec() -> WorkspaceSpec {
    WorkspaceSpec {
        id: "w".into(),
        runtime: "probe".into(),
        files: vec![("settings".into(), "original\n".into())],
        env: vec![(PROBE_VARIABLE.into(), "1".into())],
        bootstrap_token: "boot".into(),
        heartbeat_interval: Duration::from_secs(20),
        limits: Limits::default(),
    }
}

fn shell(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

/// Whether this test runs as root (real uid 0: what bubblewrap asks).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0")
}

/// The sandboxed half of `a_program_in_the_build_directory_runs_and_sees_nothing_beside_it`:
/// this test binary, run inside a sandbox, lists the directory it lives in. Outside a
/// sandbox it does nothing.
#[test]
fn probe_in_sandbox() {
    if std::env::var_os(PROBE_VARIABLE).is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut beside: Vec<String> = std::fs::read_dir(exe.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    std::fs::write(REPORT, format!("ran\n{}\n", beside.join("\n"))).unwrap();
}

#[tokio::test]
async fn a_program_in_the_build_directory_runs_and_sees_nothing_beside_it() {
    let host = Host::new();
    // This very test binary, in target/<profile>/deps among its build's other files.
    let exe = std::env::current_exe().unwrap();
    let (exit, report) = host
        .run(vec![
            exe.display().to_string(),
            "--exact".into(),
            "probe_in_sandbox".into(),
            "--test-threads=1".into(),
        ])
        .await;
    assert_eq!(exit.code, Some(0), "{}", exit.last_lines);
    let name = exe.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(report, format!("ran\n{name}\n"), "only the program itself");
}

#[tokio::test]
async fn a_secret_beside_the_program_stays_out_of_the_sandbox() {
    let host = Host::new();
    // A program in a directory of its own (under /tmp), beside what agents must not read.
    let install = tempfile::tempdir().unwrap();
    let bin = install.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join(".env"), "API_KEY=s3cret\n").unwrap();
    let program = bin.join("agent");
    std::fs::write(
        &program,
        "#!/bin/sh\nhere=$(dirname \"$0\")\n\
         { echo ran; cat \"$here/.env\" 2>/dev/null; ls -a \"$here\"; } > /workspace/report\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (exit, report) = host.run(vec![program.display().to_string()]).await;
    assert_eq!(exit.code, Some(0), "{}", exit.last_lines);
    assert!(report.starts_with("ran\n"), "{report}");
    assert!(!report.contains("s3cret"), "{report}");
    assert!(!report.contains(".env"), "{report}");
}

#[tokio::test]
async fn a_sandboxed_process_holds_no_capabilities_in_a_user_namespace_of_its_own() {
    let host = Host::new();
    let (exit, report) = host
        .run(shell(
            "{ grep '^Cap' /proc/self/status; \
               echo \"uid_map $(cat /proc/self/uid_map)\"; \
               echo \"userns $(readlink /proc/self/ns/user)\"; } > /workspace/report",
        ))
        .await;
    assert_eq!(exit.code, Some(0), "{}", exit.last_lines);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = report
            .lines()
            .find(|l| l.starts_with(set))
            .unwrap_or_else(|| panic!("{set} in {report}"));
        assert!(
            line.ends_with("0000000000000000"),
            "{set} must be empty: {report}"
        );
    }
    let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    let userns = report
        .lines()
        .find_map(|l| l.strip_prefix("userns "))
        .unwrap();
    assert_ne!(Path::new(userns), host_userns, "{report}");
    let uid_map: Vec<&str> = report
        .lines()
        .find_map(|l| l.strip_prefix("uid_map "))
        .unwrap()
        .split_whitespace()
        .collect();
    if running_as_root() {
        // What root means: bubblewrap maps root inside to root outside (it maps only the
        // caller's uid), so the agent is uid 0 on the host; what keeps it from the host is
        // that it holds no capability, in any namespace, and gets none back.
        assert_eq!(uid_map, ["0", "0", "1"], "{report}");
    }
}

#[tokio::test]
async fn root_in_the_sandbox_cannot_make_its_read_only_view_writable() {
    let host = Host::new();
    // With capabilities this succeeds and writes through to the host's file.
    let (exit, _) = host
        .run(shell(
            "mount -o remount,bind,rw /config 2>&1; echo pwned > /config/settings 2>&1; true",
        ))
        .await;
    assert_eq!(exit.code, Some(0), "{}", exit.last_lines);
    assert_eq!(
        std::fs::read_to_string(host.workspace_file("config/settings")).unwrap(),
        "original\n"
    );
}

#[tokio::test]
async fn as_root_a_sandbox_without_a_user_namespace_is_refused() {
    if !running_as_root() {
        eprintln!("skipped: bubblewrap keeps capabilities only for root");
        return;
    }
    let host = Host::new();
    // bubblewrap run where no user namespace can be made (a namespace of our own, root in
    // it, whose limit of user namespaces is 0).
    let bwrap = host.dir.path().join("bwrap-without-user-namespaces");
    std::fs::write(
        &bwrap,
        "#!/bin/sh\nexec /usr/bin/unshare --user --map-root-user --pid --fork --mount-proc \
         /bin/sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec /usr/bin/bwrap \"$@\"' \
         bwrap \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&bwrap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (exit, report) = host
        .run_with(shell("echo ran > /workspace/report"), &bwrap)
        .await;
    assert_eq!(report, "", "the agent must not run: {}", exit.last_lines);
    assert_ne!(exit.code, Some(0));
    assert!(
        exit.last_lines.contains("Creating new namespace failed"),
        "{}",
        exit.last_lines
    );
}

#[tokio::test]
async fn terminal_control_characters_never_reach_the_exit_report() {
    let host = Host::new();
    let (exit, _) = host
        .run(shell(
            "printf 'title\\033]0;pwned\\007 clear\\033[2J\\r over\\tline\\nsecond\\302\\233c\\n'; exit 3",
        ))
        .await;
    assert_eq!(exit.code, Some(3));
    assert_eq!(
        exit.last_lines,
        "title\\u{1b}]0;pwned\\u{7} clear\\u{1b}[2J\\r over\tline\nsecond\\u{9b}c"
    );
    // The job runner escapes every backend's report again: that changes nothing.
    assert_eq!(escape_controls(&exit.last_lines), exit.last_lines);
}

/// What the sandboxed half of `the_agents_socket_in_the_sandbox_is_reachable_from_the_host`
/// says to whoever connects.
const GREETING: &[u8] = b"hello from the sandbox\n";

/// The sandboxed half of `the_agents_socket_in_the_sandbox_is_reachable_from_the_host`:
/// this test binary, run inside a sandbox, serves one connection on the socket it is told
/// to (`HATCHERY_AGENT_SOCKET`), as an agent would. Outside a sandbox it does nothing.
#[test]
fn a2a_socket_probe_in_sandbox() {
    use std::io::Write as _;
    if std::env::var_os(PROBE_VARIABLE).is_none() {
        return;
    }
    let path = std::env::var("HATCHERY_AGENT_SOCKET").unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    // Bounded: a host that never calls must not keep the sandbox forever.
    listener.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "nobody called");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.write_all(GREETING).unwrap();
}

#[tokio::test]
async fn the_agents_socket_in_the_sandbox_is_reachable_from_the_host() {
    use std::io::Read as _;
    let host = Host::new();
    let exe = std::env::current_exe().unwrap();
    let (backend, mut exits) = host.backend(
        vec![
            exe.display().to_string(),
            "--exact".into(),
            "a2a_socket_probe_in_sandbox".into(),
            "--test-threads=1".into(),
        ],
        Path::new("/usr/bin/bwrap"),
    );
    assert_eq!(backend.a2a_endpoint("w"), None, "before the start");
    backend.start(&spec()).await.unwrap();
    let Some(AgentEndpoint::Unix(socket)) = backend.a2a_endpoint("w") else {
        panic!("a running sandbox has an endpoint");
    };
    assert_eq!(socket, host.workspace_file("a2a/agent.sock"));

    // The socket the sandboxed process made in /run/a2a appears in the host's a2a/.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        if let Ok(exit) = exits.try_recv() {
            panic!("the probe exited early: {}", exit.last_lines);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no socket at {socket:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut said = Vec::new();
    std::os::unix::net::UnixStream::connect(&socket)
        .unwrap()
        .read_to_end(&mut said)
        .unwrap();
    assert_eq!(said, GREETING);

    let exit = tokio::time::timeout(Duration::from_secs(30), exits.recv())
        .await
        .expect("the probe exits once it has answered")
        .expect("an exit report");
    assert_eq!(exit.code, Some(0), "{}", exit.last_lines);
    assert_eq!(backend.a2a_endpoint("w"), None, "after the exit");
}
