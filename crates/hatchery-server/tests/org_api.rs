//! Org import, its first part: the plan of a template (`POST /org/import?dry_run=true`)
//! against the real server on SQLite and Postgres. A dry run changes nothing; the import
//! itself answers 501 until it is built, and changes nothing either.

mod common;

use common::{Db, Env};
use serde_json::json;

hatchery_testkit::both_databases!(
    a_dry_run_plans_every_node_and_changes_nothing,
    bad_templates_are_refused_with_the_path_of_the_problem,
);

const TEAM: &str = "name: research\n\
    required_env: [SEARCH_API_KEY]\n\
    defaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
    workspaces:\n\
    \x20 - name: PM\n    children:\n\
    \x20     - name: Researcher\n\
    \x20     - name: Critic\n        model: anthropic:claude-opus-4-5\n";

async fn a_dry_run_plans_every_node_and_changes_nothing(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let before = server.counts().await;
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": TEAM}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["org"], "research");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["ok"], false, "one node cannot be created: {plan}");
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["provider"], "platform");
    assert_eq!(nodes[0]["provider_source"], "derived:exact_model");
    assert_eq!(nodes[1]["parent"], "workspaces[0]");
    let critic = &nodes[2]["problems"][0];
    assert!(
        critic.as_str().unwrap().starts_with("byok_key_missing"),
        "{critic}"
    );
    assert_eq!(plan["missing_env"], json!(["SEARCH_API_KEY"]));
    assert_eq!(server.counts().await, before, "a dry run creates nothing");

    // The same template as a JSON object plans the same.
    let object = json!({"name": "tiny", "defaults": {"runtime": "claude-code", "model": "moonshot/kimi-k2.6"},
                        "workspaces": [{"name": "solo"}]});
    let (status, plan) = server
        .post("/org/import?dry_run=true", &json!({"template": object}))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["ok"], true, "{plan}");

    // Not a dry run: not built yet, said plainly, nothing created.
    let (status, body) = server
        .post("/org/import", &json!({"template": object}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (501, Some("not_implemented"))
    );
    assert_eq!(server.counts().await, before);
}

async fn bad_templates_are_refused_with_the_path_of_the_problem(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let before = server.counts().await;
    let typo = TEAM.replace("        model: anthropic", "        modle: anthropic");
    let (status, body) = server
        .post("/org/import?dry_run=true", &json!({"template": typo}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid org template");
    assert_eq!(body["code"], "invalid_org_template");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("workspaces[0].children[1]") && detail.contains("did you mean `model`?"),
        "{detail}"
    );
    let (status, body) = server
        .post(
            "/org/import?dry_run=true",
            &json!({"template": "name: a\nname: b\n"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_org_template")),
        "{body}"
    );
    let (status, body) = server.post("/org/import?dry_run=true", &json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("provide 'dir' or 'template'"))
    );
    let (status, _) = server
        .post_as("/org/import?dry_run=true", &json!({"template": TEAM}), None)
        .await;
    assert_eq!(status, 401, "admin only");
    assert_eq!(server.counts().await, before);
}
