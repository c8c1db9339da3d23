//! Bundles against the real server on SQLite and Postgres: a workspace and its live
//! subtree exported, imported back as new workspaces with the tree preserved, all or
//! nothing; removed workspaces are not exportable.

mod common;

use common::{Db, Env};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    a_subtree_exports_and_imports_back_as_new_workspaces,
    bad_bundles_are_refused_and_nothing_is_created,
    a_tree_that_loops_is_refused_not_followed_without_end,
);

const TEAM: &str = "name: bundled
defaults:
  runtime: claude-code
  model: moonshot/kimi-k2.6
workspaces:
  - name: Lead
    role: Leads.
    tier: 3
    children:
      - name: Helper
";

async fn a_subtree_exports_and_imports_back_as_new_workspaces(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let (status, imported) = server.post("/org/import", &json!({"template": TEAM})).await;
    assert_eq!(status, 201, "{imported}");
    let lead = imported["workspaces"][0]["id"].as_str().unwrap().to_owned();

    let (status, bundle) = server.get(&format!("/bundles/export/{lead}")).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["schema"], "1.0");
    assert_eq!(bundle["id"], lead);
    assert_eq!(bundle["name"], "Lead");
    assert_eq!(bundle["description"], "Leads.");
    assert_eq!(bundle["tier"], 3);
    assert_eq!(bundle["model"], "moonshot/kimi-k2.6");
    assert_eq!(bundle["version"], "1.0.0");
    assert!(
        bundle["prompts"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("claude-code")
    );
    let subs = bundle["sub_workspaces"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["name"], "Helper");
    assert_eq!(subs[0]["sub_workspaces"], json!([]));

    let (status, answer) = server.post("/bundles/import", &bundle).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["name"], "Lead");
    assert_eq!(answer["status"], "provisioning");
    let new_lead = answer["workspace_id"].as_str().unwrap();
    assert_ne!(new_lead, lead, "a new workspace");
    let new_helper = answer["children"][0]["workspace_id"].as_str().unwrap();
    let (_, row) = server.get(&format!("/workspaces/{new_helper}")).await;
    assert_eq!(row["parent_id"], new_lead, "the tree is preserved");
    assert_eq!(row["provider"], "platform", "derived as a create derives");
    let (_, row) = server.get(&format!("/workspaces/{new_lead}")).await;
    assert_eq!(row["tier"], 3);
    assert_eq!(row["role"], "Leads.");
    let (_, list) = server.get("/workspaces").await;
    assert_eq!(list.as_array().unwrap().len(), 4);

    // A bundle import is not an org import: the org can still be re-imported only by
    // replace or duplicate, and bundles import again and again.
    let (status, _) = server.post("/bundles/import", &bundle).await;
    assert_eq!(status, 201);

    // Removed workspaces are not exportable.
    let (status, _) = server
        .delete(&format!("/workspaces/{lead}?confirm=true"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.get(&format!("/bundles/export/{lead}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("bundle not found"))
    );
}

async fn bad_bundles_are_refused_and_nothing_is_created(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let before = server.counts().await;
    let (status, body) = server
        .post_raw("/bundles/import", b"{not json".to_vec())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid bundle"))
    );
    let config = |runtime: &str| json!({"config.yaml": format!("runtime: \"{runtime}\"\n")});
    let bundle: Value = json!({
        "name": "Lead", "model": "moonshot/kimi-k2.6", "prompts": config("claude-code"),
        "sub_workspaces": [{"name": "Needs a key", "model": "anthropic:claude-opus-4-5",
                            "prompts": config("claude-code")}],
    });
    let (status, body) = server.post("/bundles/import", &bundle).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(server.counts().await, before, "all or nothing");
    let (status, _) = server
        .get("/bundles/export/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
}

/// A cycle stored by an older build (two racing moves could close one) must not make an
/// export recurse without end: it is refused past the tree's depth limit.
async fn a_tree_that_loops_is_refused_not_followed_without_end(db: Db) {
    use sqlx::Connection as _;
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let a = server.create_named("a").await;
    let b = server.create(&json!({"name": "b", "parent_id": a})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&env.db.url).await.unwrap();
    sqlx::query("UPDATE workspaces SET parent_id = $1 WHERE id = $2")
        .bind(&b)
        .bind(&a)
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let (status, answer) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        server.get(&format!("/bundles/export/{a}")),
    )
    .await
    .expect("the export answers");
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "bundle_too_deep");
}
