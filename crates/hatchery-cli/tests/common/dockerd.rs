//! A real Docker engine for the docker backend's tests: Debian's `dockerd` (installed by
//! scripts/setup), started with its own state directories and socket, without bridge
//! networking or iptables, and stopped by its PID when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dockerd` of a test's own.
pub struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Start one and wait (bounded) until it answers on its socket.
    pub async fn start() -> Self {
        let dockerd = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dockerd is not installed: run scripts/setup (Debian package docker.io)");
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--host")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--shutdown-timeout=2",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let engine = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Connecting pings it.
            if hatchery_provision::docker::connect(&engine.endpoint())
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd never answered: {}",
                engine.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        engine
    }

    /// Its socket, as `HATCHERY_DOCKER_HOST` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// A client of it.
    pub async fn client(&self) -> bollard::Docker {
        hatchery_provision::docker::connect(&self.endpoint())
            .await
            .unwrap()
    }

    /// What it logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(20));
    }
}
