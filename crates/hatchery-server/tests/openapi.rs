//! The OpenAPI document: generated from the handlers, served at `/openapi.json`, and held
//! to a committed snapshot so that a change to the API is always a deliberate one
//! (`cargo insta review`, or `INSTA_UPDATE=always`, accepts an intended change).

mod common;

use common::Db;
use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(hatchery_server::http::openapi()).unwrap()
}

#[test]
fn the_document_is_the_committed_snapshot() {
    insta::assert_json_snapshot!("openapi", document());
}

#[test]
fn every_operation_says_its_success_and_its_refusals() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 40, "only {} paths", paths.len());
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                operation_ids.insert(id.to_owned()),
                "{method} {path}: operationId {id} twice"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s == "101"),
                "{method} {path}: no success answer"
            );
            assert!(
                responses.contains_key("500"),
                "{method} {path}: the internal error is not documented"
            );
            if path.contains("{id}") {
                assert!(
                    responses.contains_key("400"),
                    "{method} {path}: a bad id is not documented"
                );
            }
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: the refusal without credential is not documented"
                );
            }
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}: no summary"
            );
        }
    }
}

/// What the server serves is the document, and the routes it names are the routes the
/// server answers: each documented path answers something other than a bare 404 or 405.
#[tokio::test]
async fn the_served_document_names_the_routes_the_server_has() {
    let env = common::Env::new(Db::Sqlite).await;
    let server = env.spawn().await;
    let document_served: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document_served, document());
    let client = reqwest::Client::new();
    let some_id = "00000000-0000-4000-8000-000000000000";
    for (path, item) in document_served["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", some_id)
            .replace("{workspace_id}", some_id)
            .replace("{token_id}", "t")
            .replace("{key}", "SOME_KEY")
            .replace("{file}", "app.js");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = client
                .request(method.clone(), format!("{}{concrete}", server.base))
                .bearer_auth(common::TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_ne!(
                answer.status(),
                reqwest::StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            if answer.status() == reqwest::StatusCode::NOT_FOUND {
                // A documented 404 says what was not found; the router's own 404 is empty.
                let body = answer.text().await.unwrap();
                assert!(body.starts_with('{'), "{method} {path}: {body:?}");
            }
        }
    }
}
