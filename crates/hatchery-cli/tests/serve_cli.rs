//! `hatchery serve` as a user runs it: the real binary on a loopback port, refusals at
//! start, SIGHUP reload, SIGTERM shutdown.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-cli-token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data_dir: &std::path::Path, providers: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HATCHERY_DATA_DIR", data_dir)
        .env("HATCHERY_PROVIDERS", providers)
        .env("HATCHERY_ADMIN_TOKEN", TOKEN)
        .env_remove("HATCHERY_DEV")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// GET with the admin token, retrying while the server comes up (bounded).
fn get(port: u16, path: &str) -> serde_json::Value {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(TOKEN)
            .send()
        {
            Ok(response) => return response.json().unwrap(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("server never answered: {e}"),
        }
    }
}

#[test]
fn serve_refuses_to_start_on_an_invalid_manifest_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(&manifest, "schema_version: 1\nproviders: []\n").unwrap();
    let out = serve(dir.path(), &manifest, free_port())
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("provider registry unavailable") && stderr.contains("no_providers"),
        "{stderr}"
    );
}

#[test]
fn serve_reloads_on_sighup_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    let first = hatchery_registry::BUILTIN_MANIFEST;
    std::fs::write(&manifest, first).unwrap();
    let port = free_port();
    let mut child = serve(dir.path(), &manifest, port);
    let before = get(port, "/admin/registry");
    assert_eq!(get(port, "/health")["status"], "ok");

    let mut changed = first.to_vec();
    changed.extend_from_slice(b"\n# edited\n");
    std::fs::write(&manifest, &changed).unwrap();
    signal(&child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(port, "/admin/registry")["hash"] == before["hash"] {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}
