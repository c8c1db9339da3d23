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
        .env_remove("HATCHERY_DATABASE_URL")
        .env_remove("HATCHERY_SECRETS_KEY")
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

#[test]
fn serve_refuses_to_start_on_an_unreachable_database_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("providers.yaml");
    std::fs::write(&manifest, hatchery_registry::BUILTIN_MANIFEST).unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hatchery"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HATCHERY_DATA_DIR", dir.path())
        .env("HATCHERY_ADMIN_TOKEN", TOKEN)
        // Nothing listens on port 1: the connection is refused at once.
        .env(
            "HATCHERY_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot open the postgres database"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("nobody@"),
        "the URL is not echoed: {stderr}"
    );
}

/// Run `hatchery` with `args` in dev mode on `data_dir`.
fn hatchery(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(args)
        .env("HATCHERY_DATA_DIR", data_dir)
        .env_remove("HATCHERY_DATABASE_URL")
        .env_remove("HATCHERY_SECRETS_KEY")
        .env_remove("HATCHERY_NEW_SECRETS_KEY")
        .output()
        .unwrap()
}

fn serve_dev(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HATCHERY_DATA_DIR", data_dir)
        .env("HATCHERY_DEV", "1")
        .env_remove("HATCHERY_DATABASE_URL")
        .env_remove("HATCHERY_SECRETS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn rotate_key_re_seals_secrets_and_the_dev_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = serve_dev(dir.path(), port);
    assert_eq!(get(port, "/health")["dev_mode"], true);
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let saved = client
        .post(format!("{base}/settings/secrets"))
        .json(&serde_json::json!({"key": "OPENAI_API_KEY", "value": "sk-rotate-me"}))
        .send()
        .unwrap();
    assert_eq!(saved.status(), 200);
    let created: serde_json::Value = client
        .post(format!("{base}/workspaces"))
        .json(&serde_json::json!({"name": "w"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());

    let key_file = dir.path().join("secrets.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let out = hatchery(dir.path(), &["secrets", "rotate-key"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("re-sealed 1 secret(s)"), "{stderr}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(old_key, new_key);
    assert!(
        out.stdout.is_empty(),
        "the key went to the file, not the terminal"
    );

    // A wrong current key is refused and changes nothing.
    let refused = Command::new(env!("CARGO_BIN_EXE_hatchery"))
        .args(["secrets", "rotate-key"])
        .env("HATCHERY_DATA_DIR", dir.path())
        .env("HATCHERY_SECRETS_KEY", old_key.trim())
        .env_remove("HATCHERY_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), new_key);

    let port = free_port();
    let mut child = serve_dev(dir.path(), port);
    assert_eq!(get(port, "/health")["dev_mode"], true);
    // A workspace route in dev mode: no bearer passes (a bearer, if sent, must be the
    // workspace's own token).
    let values: serde_json::Value = client
        .get(format!(
            "http://127.0.0.1:{port}/workspaces/{id}/secrets/values"
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-rotate-me", "{values}");
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_fresh_data_dir_and_its_database_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("state");
    let port = free_port();
    let mut child = serve_dev(&data_dir, port);
    assert_eq!(get(port, "/health")["status"], "ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data_dir.join("hatchery.db-wal").exists() {
        assert!(Instant::now() < deadline, "the database never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    for file in ["hatchery.db", "hatchery.db-wal", "secrets.key"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}
