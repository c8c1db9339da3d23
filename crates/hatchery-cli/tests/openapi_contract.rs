//! The OpenAPI contract test: schemathesis (`tests/contract`) reads the real server's
//! `/openapi.json` and sends it requests generated from it, valid and invalid, with a fixed
//! seed. It fails on any 5xx, on a status, content type or body the document does not
//! describe, on a schema-invalid request the server accepts, on a method the server
//! should refuse, and on an operation that answers without the credential it documents.
//!
//! The server runs with no provisioning backend (nothing to start), on a fresh SQLite
//! file, seeded with a small org (a root and a child, a secret, a token) whose ids
//! schemathesis uses for most path parameters, so requests reach past the 404s.
//! Streams that never end (SSE, the WebSocket) are left out. Needs the virtual
//! environment `scripts/setup` makes; its absence is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

mod common;

const TOKEN: &str = "contract-admin";
/// schemathesis's whole run is bounded by this (it takes well under a minute).
const PATIENCE: Duration = Duration::from_mins(5);

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn schemathesis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/contract/.venv/bin/schemathesis")
}

/// What the generated requests find on the server.
struct Seeded {
    root: String,
    child: String,
    token_id: String,
}

/// A root and a child, a secret of each scope, a token.
async fn seed(admin: &common::Admin) -> Seeded {
    use reqwest::Method;
    let root = admin
        .create(json!({"name": "Contract Lead", "runtime": "claude-code", "model": "moonshot/kimi-k2.6"}))
        .await;
    let child = admin
        .create(json!({"name": "Contract Builder", "runtime": "hermes", "model": "moonshot/kimi-k2.6", "parent_id": root}))
        .await;
    for (path, key) in [
        (format!("/workspaces/{root}/secrets"), "SOME_KEY"),
        ("/settings/secrets".to_owned(), "GLOBAL_KEY"),
    ] {
        let body = json!({"key": key, "value": "a value"});
        let (status, answer) = admin.call(Method::PUT, &path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = admin
        .call(Method::POST, &format!("/workspaces/{root}/tokens"), None)
        .await;
    assert_eq!(status, 201, "{answer}");
    let (_, tokens) = admin
        .call(Method::GET, &format!("/workspaces/{root}/tokens"), None)
        .await;
    let token_id = tokens["tokens"][0]["id"].as_str().unwrap().to_owned();
    Seeded {
        root,
        child,
        token_id,
    }
}

/// schemathesis's configuration: the seeded ids for most path parameters.
fn config(seeded: &Seeded) -> String {
    let Seeded {
        root,
        child,
        token_id,
    } = seeded;
    format!(
        "[dictionaries.workspaces]\nvalues = [\"{root}\", \"{child}\"]\n\
         [dictionaries.keys]\nvalues = [\"SOME_KEY\", \"GLOBAL_KEY\"]\n\
         [dictionaries.tokens]\nvalues = [\"{token_id}\"]\n\
         [parameters]\n\
         \"path.id\" = {{ dictionary = \"workspaces\", probability = 0.7 }}\n\
         \"path.workspace_id\" = {{ dictionary = \"workspaces\", probability = 0.7 }}\n\
         \"path.key\" = {{ dictionary = \"keys\", probability = 0.7 }}\n\
         \"path.token_id\" = {{ dictionary = \"tokens\", probability = 0.5 }}\n\
         # A removed workspace refuses every change (410) whatever the body says, and a\n\
         # template's missing environment (412) is a refusal too.\n\
         [checks.negative_data_rejection]\n\
         expected-statuses = [400, 401, 403, 404, 405, 406, 409, 410, 412, 413, 415, 422, 428, 429]\n\
         # A message's answer is its agent's: the seeded workspaces have none running, so\n\
         # 502, 503 and 504 are what the document says this route answers, not faults of\n\
         # the server's (status_code_conformance still holds it to the document).\n\
         [[operations]]\n\
         include-operation-id = \"workspace_a2a\"\n\
         checks.not_a_server_error.expected-statuses = [\"2xx\", \"3xx\", \"4xx\", 502, 503, 504]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_keeps_to_its_openapi_document() {
    let schemathesis = schemathesis();
    assert!(
        schemathesis.is_file(),
        "schemathesis is not installed in tests/contract/.venv: run scripts/setup"
    );
    let dir = tempfile::tempdir().unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let mut env = common::server_env(&dir.path().join("data"), TOKEN, "none");
    env.push(("HATCHERY_SECRETS_KEY", common::SECRETS_KEY.to_owned()));
    env.push(("HATCHERY_TEMPLATES_DIR", templates.display().to_string()));
    let server = common::Server::start_on(common::free_port(), &env, TOKEN).await;
    let seeded = seed(&common::Admin::new(&server.base, TOKEN)).await;
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config(&seeded)).unwrap();

    let (passed, said) = common::run_bounded(
        Command::new(&schemathesis)
            .arg("--config-file")
            .arg(&config_file)
            .arg("--no-color")
            .args(["run", &format!("{}/openapi.json", server.base)])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,negative_data_rejection,unsupported_method,\
                 ignored_auth",
            ])
            // Streams that never end cannot be checked request by request.
            .args(["--exclude-path-regex", "(/stream$|^/ws$)"])
            // A fixed seed, so a run is repeatable; HATCHERY_CONTRACT_SEED and
            // HATCHERY_CONTRACT_EXAMPLES explore further by hand.
            .args(["--seed", &setting("HATCHERY_CONTRACT_SEED", "20261203")])
            .args([
                "--max-examples",
                &setting("HATCHERY_CONTRACT_EXAMPLES", "40"),
            ])
            .args(["--workers", "2", "--request-timeout", "10"])
            .current_dir(dir.path()),
        PATIENCE,
    )
    .await;
    assert!(
        passed,
        "schemathesis found the server breaking its document:\n{said}"
    );
    // It really ran: every selected operation (all but the streams) was exercised.
    let count = |label: &str| {
        said.lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().split('/').next()?.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {label:?} in schemathesis's summary:\n{said}"))
    };
    let selected = count("Selected:");
    assert!(
        selected >= 45,
        "only {selected} operations selected:\n{said}"
    );
    assert_eq!(count("Tested:"), selected, "{said}");
    println!("{said}");
}
