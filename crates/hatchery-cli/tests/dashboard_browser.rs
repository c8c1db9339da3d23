//! The dashboard in a real browser: headless Chromium, driven by playwright-core
//! (`tests/browser/dashboard.test.mjs`), against the real `hatchery serve` with the local
//! backend. The script loads the dashboard, creates a workspace and watches it come online
//! without a reload, opens its details, meets two fail-closed refusals (an ambiguous model,
//! a missing own key), previews an org import, and chats with the workspace's sandboxed
//! agent (the answer streamed in, the history read back after a reload, a paused
//! workspace's refusal in words); it saves a screenshot of each state (path printed at the
//! end). The server reads `tests/browser/providers.yaml`, which has
//! the ambiguous pair the built-in catalog has not.
//!
//! Needs Node.js, Debian's Chromium and the script's packages: `scripts/setup` installs
//! them (CI runs it first), so their absence is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

const TOKEN: &str = "dashboard-browser-admin";
/// The whole browser script's bound (it takes well under a minute).
const PATIENCE: Duration = Duration::from_mins(3);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_in_chromium() {
    let browser_tests = repository().join("tests/browser");
    assert!(
        browser_tests.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/browser: run scripts/setup"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run scripts/setup"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::server_env(&dir.path().join("data"), TOKEN, "local");
    // A manifest with one ambiguous pair, so the ambiguity step runs rather than skips.
    let manifest = browser_tests.join("providers.yaml");
    env.push(("HATCHERY_PROVIDERS", manifest.display().to_string()));
    let templates = repository().join("templates");
    env.push(("HATCHERY_TEMPLATES_DIR", templates.display().to_string()));
    let server = common::Server::start_on(common::free_port(), &env, TOKEN).await;
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&artifacts).unwrap();

    let (passed, said) = common::run_bounded(
        Command::new("node")
            .arg("dashboard.test.mjs")
            .current_dir(&browser_tests)
            .env("HATCHERY_URL", &server.base)
            .env("HATCHERY_TOKEN", TOKEN)
            .env("ARTIFACTS_DIR", &artifacts)
            .env("HATCHERY_AMBIGUOUS_RUNTIME", "claude-code")
            .env("HATCHERY_AMBIGUOUS_MODEL", "kimi-k2.6"),
        PATIENCE,
    )
    .await;
    assert!(
        passed,
        "the browser test failed; screenshots in {}:\n{said}",
        artifacts.display()
    );
    // Only cutting the browser's connections (`ss -K`) may be impossible on a machine; every
    // other step must have run.
    let skipped: Vec<&str> = said
        .lines()
        .filter(|line| line.starts_with("ok ") && line.contains(" # SKIP"))
        .filter(|line| !line.contains(" - 6. "))
        .collect();
    assert!(
        skipped.is_empty(),
        "steps were skipped: {skipped:?}\n{said}"
    );
    println!("{said}screenshots: {}", artifacts.display());
}
