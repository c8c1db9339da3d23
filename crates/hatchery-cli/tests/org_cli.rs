//! An org import is all or nothing, even when the server dies in the middle of writing
//! it: the real `hatchery serve`, aborted (as by `kill -9`) halfway through the import's
//! transaction, comes back with none of the tree; imported again, all of it.

use serde_json::json;

mod common;

const TOKEN: &str = "org-cli-admin";

const TEAM: &str = "name: crashy
defaults:
  runtime: claude-code
  model: moonshot/kimi-k2.6
workspaces:
  - name: PM
    children:
      - name: Lead
        children:
          - name: A
          - name: B
      - name: Writer
      - name: Critic
";

async fn serve(data: &std::path::Path, port: u16, extra: &[(&str, &str)]) -> common::Server {
    let mut env = common::server_env(data, TOKEN, "none");
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    common::Server::start_on(port, &env, TOKEN).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_the_middle_of_an_import_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut server = serve(
        &data,
        port,
        &[("HATCHERY_TEST_CRASH_AT", "org-import-midway")],
    )
    .await;
    let status = server
        .crash_on("/org/import", json!({"template": TEAM}))
        .await;
    assert!(!status.success());
    drop(server);

    let server = serve(&data, port, &[]).await;
    let (_, list) = server.call(reqwest::Method::GET, "/workspaces", None).await;
    assert_eq!(list, json!([]), "none of the tree");
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/org/import",
            Some(json!({"template": TEAM})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, list) = server.call(reqwest::Method::GET, "/workspaces", None).await;
    assert_eq!(list.as_array().unwrap().len(), 6, "all of it");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_org_templates_import_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let templates = templates.display().to_string();
    let server = serve(
        &dir.path().join("data"),
        common::free_port(),
        &[("HATCHERY_TEMPLATES_DIR", templates.as_str())],
    )
    .await;
    let (status, listed) = server
        .call(reqwest::Method::GET, "/org/templates", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    let dirs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dir"].as_str().unwrap())
        .collect();
    assert!(
        dirs.contains(&"research-team") && dirs.contains(&"software-team"),
        "{dirs:?}"
    );
    for dir in dirs {
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                "/org/import",
                Some(json!({"dir": dir})),
            )
            .await;
        assert_eq!(status, 201, "{dir}: {body}");
        assert!(
            body["workspaces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|w| w["status"] == "provisioning"),
            "{body}"
        );
    }
}
