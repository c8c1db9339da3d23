//! `/workspaces` against the real server on SQLite and Postgres: the fail-closed create
//! (nothing persisted on 503/422), pass-through outcomes recorded, billing, the generated
//! config, field validation, and update/delete semantics.

mod common;

use std::sync::Arc;

use common::{Db, Env, Running, spawn, spawn_with_registry, write_manifest};
use hatchery_server::registry_source::{LiveRegistry, RegistrySource};
use serde_json::{Value, json};

/// `x-1` is matched by both `a` and `b`: ambiguous for `rt`.
const OVERLAPPING: &str = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^x-'}
  - {name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B_KEY], model_prefix_match: '^x-1'}
  - {name: platform, display_name: P, protocol: openai, auth_mode: k, auth_env: [P_KEY], model_prefix_match: '^p/'}
runtimes:
  rt: {providers: [{name: a}, {name: b}, {name: platform}]}
";

hatchery_testkit::both_databases!(
    ambiguous_model_is_refused_and_nothing_is_persisted,
    unavailable_registry_is_refused_and_nothing_is_persisted,
    pass_through_outcomes_are_created_and_recorded,
    known_model_stamps_the_provider_in_config_yaml,
    billing_follows_the_provider_and_fails_closed,
    explicit_provider_is_validated_never_overridden,
    field_validation_answers_with_the_spec_messages,
    malformed_and_oversized_bodies,
    ids_that_are_not_uuids_are_refused_before_auth,
    patch_type_checks_and_moves,
    patch_tells_absent_from_null,
    an_agent_token_changes_only_its_name_role_and_place,
    racing_moves_cannot_close_a_cycle,
    a_move_keeps_the_whole_subtree_within_the_depth_limit,
    patch_runtime_rederives_the_provider_failing_closed,
    delete_asks_for_confirmation_and_cascades,
    records_have_the_wire_shape,
);

async fn spawn_with_manifest(env: &Env, manifest: &str) -> Running {
    let path = write_manifest(env.dir.path(), "providers.yaml", manifest);
    let mut config = env.config();
    config.providers = Some(path);
    spawn(config).await
}

async fn ambiguous_model_is_refused_and_nothing_is_persisted(db: Db) {
    let env = Env::new(db).await;
    let server = spawn_with_manifest(&env, OVERLAPPING).await;
    server
        .create(
            &json!({"name": "first", "runtime": "rt", "model": "x-9", "secrets": {"A_KEY": "k"}}),
        )
        .await;
    let before = server.counts().await;

    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "w", "runtime": "rt", "model": "x-1", "secrets": {"A_KEY": "k", "B_KEY": "k"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "provider_derivation_failed");
    assert_eq!(body["runtime"], "rt");
    assert_eq!(body["model"], "x-1");
    assert_eq!(body["candidates"], json!(["a", "b"]));
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("rt") && error.contains("x-1"), "{error}");
    assert_eq!(server.counts().await, before, "no row, event or job");
    let secrets = server.store.secret_count().await.unwrap();
    assert_eq!(secrets, 1, "the refused create's secrets were not saved");
}

async fn unavailable_registry_is_refused_and_nothing_is_persisted(db: Db) {
    let env = Env::new(db).await;
    let registry = Arc::new(LiveRegistry::unavailable(
        RegistrySource::Builtin,
        "injected failure",
    ));
    let server = spawn_with_registry(env.config(), registry).await;
    let before = server.counts().await;
    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "w", "runtime": "claude-code", "model": "sonnet"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "registry_unavailable");
    assert!(body["error"].as_str().unwrap().contains("injected failure"));
    // Even a create that would pass through needs the registry to say so.
    let (status, _) = server
        .post(
            "/workspaces",
            &json!({"name": "w", "runtime": "unknown-rt"}),
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(server.counts().await, before);
    assert_eq!(before, (0, 0, 0));
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("hatchery_registry_available 0")
    );
}

async fn pass_through_outcomes_are_created_and_recorded(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    for (body, source, runtime) in [
        (
            json!({"name": "fed", "runtime": "my-federated-rt", "model": "anything"}),
            "passthrough:unknown_runtime",
            "my-federated-rt",
        ),
        (
            json!({"name": "empty", "runtime": "claude-code", "model": "  "}),
            "passthrough:empty_model",
            "claude-code",
        ),
        (
            json!({"name": "nomatch", "runtime": "claude-code", "model": "moonshot-v1-128k"}),
            "passthrough:no_match",
            "claude-code",
        ),
        (
            json!({"name": "bare"}),
            "passthrough:empty_model",
            "langgraph",
        ),
    ] {
        let created = server.create(&body).await;
        assert_eq!(created["status"], "provisioning");
        assert_eq!(created["provider"], Value::Null, "{body}");
        assert_eq!(created["provider_source"], source, "{body}");
        assert_eq!(created["llm_billing_mode"], Value::Null, "{body}");
        let id = created["id"].as_str().unwrap();
        let (_, record) = server.get(&format!("/workspaces/{id}")).await;
        assert_eq!(record["provider_source"], source);
        assert_eq!(
            record["runtime"], runtime,
            "a named runtime is never rewritten"
        );
        let (_, config) = server.get(&format!("/workspaces/{id}/config")).await;
        let yaml = config["files"]["config.yaml"].as_str().unwrap();
        assert!(yaml.contains("provider: null"), "{yaml}");
        assert!(
            yaml.contains(&format!("provider_source: \"{source}\"")),
            "{yaml}"
        );
        assert!(yaml.contains("llm_billing_mode: null"), "{yaml}");
    }
    let (_, events) = server.get("/events").await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|e| e["event_type"] == "WORKSPACE_PROVISIONING")
    );
    assert_eq!(
        events[0]["payload"],
        json!({"name": "bare", "tier": 2, "runtime": "langgraph"})
    );
    // A create that names no runtime ("bare") queues no job: its agent registers itself.
    assert_eq!(server.store.job_list().await.unwrap().len(), 3);
}

async fn known_model_stamps_the_provider_in_config_yaml(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let created = server
        .create(&json!({
            "name": "coder", "runtime": "claude-code", "model": "claude-sonnet-4-5",
            "secrets": {"ANTHROPIC_API_KEY": "sk-ant-secret-value"}
        }))
        .await;
    assert_eq!(created["provider"], "anthropic-api");
    assert_eq!(created["provider_source"], "derived:exact_model");
    assert_eq!(created["llm_billing_mode"], "byok");
    let id = created["id"].as_str().unwrap();
    let (status, config) = server.get(&format!("/workspaces/{id}/config")).await;
    assert_eq!(status, 200);
    let yaml = config["files"]["config.yaml"].as_str().unwrap();
    let (_, registry) = server.get("/admin/registry").await;
    for line in [
        "runtime: \"claude-code\"",
        "model: \"claude-sonnet-4-5\"",
        "provider: \"anthropic-api\"",
        "provider_source: \"derived:exact_model\"",
        "llm_billing_mode: \"byok\"",
        "provider_base_url: \"https://api.anthropic.com/v1\"",
        "provider_auth_env: [\"ANTHROPIC_API_KEY\"]",
        &format!("registry_hash: \"{}\"", registry["hash"].as_str().unwrap()),
    ] {
        assert!(
            yaml.lines().any(|l| l == line),
            "missing {line:?} in\n{yaml}"
        );
    }
    assert!(
        !yaml.contains("sk-ant-secret-value"),
        "key values never go into config files"
    );
    let (status, derivation) = server.get(&format!("/workspaces/{id}/derivation")).await;
    assert_eq!(status, 200);
    assert_eq!(derivation["provider"], "anthropic-api");
    assert_eq!(
        derivation["explain"]["outcome"]["provider"],
        "anthropic-api"
    );
    assert!(
        !derivation["explain"]["steps"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let prefix = server
        .create(
            &json!({"name": "p", "runtime": "claude-code", "model": "claude-opus-9-new",
                        "secrets": {"ANTHROPIC_API_KEY": "k"}}),
        )
        .await;
    assert_eq!(prefix["provider_source"], "derived:prefix_match");
}

async fn billing_follows_the_provider_and_fails_closed(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "w", "runtime": "claude-code", "model": "claude-sonnet-4-5"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "byok_key_missing");
    assert_eq!(body["variables"], json!(["ANTHROPIC_API_KEY"]));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("ANTHROPIC_API_KEY")
    );
    assert_eq!(server.counts().await, (0, 0, 0));

    // A global secret is as good as the request's own.
    let (status, _) = server
        .post(
            "/settings/secrets",
            &json!({"key": "ANTHROPIC_API_KEY", "value": "global"}),
        )
        .await;
    assert_eq!(status, 200);
    let created = server
        .create(&json!({"name": "w", "runtime": "claude-code", "model": "claude-sonnet-4-5"}))
        .await;
    assert_eq!(created["llm_billing_mode"], "byok");

    // Platform billing needs the platform key on the server.
    let platform = json!({"name": "p", "runtime": "hermes", "model": "moonshot/kimi-k2.6"});
    let created = server.create(&platform).await;
    assert_eq!(created["provider"], "platform");
    assert_eq!(created["llm_billing_mode"], "platform");
    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "p", "runtime": "hermes", "model": "moonshot/kimi-k2.6",
                                      "llm_billing_mode": "byok"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("billing_mode_conflict")),
        "{body}"
    );
    server.stop().await;

    let mut config = env.config();
    config.platform_key = None;
    let server = spawn(config).await;
    let before = server.counts().await;
    let (status, body) = server.post("/workspaces", &platform).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("platform_key_missing")),
        "{body}"
    );
    assert_eq!(server.counts().await, before);
}

async fn explicit_provider_is_validated_never_overridden(db: Db) {
    let env = Env::new(db).await;
    let server = spawn_with_manifest(&env, OVERLAPPING).await;
    let created = server
        .create(
            &json!({"name": "w", "runtime": "rt", "model": "x-1", "provider": "b",
                        "secrets": {"B_KEY": "k"}}),
        )
        .await;
    assert_eq!(created["provider"], "b");
    assert_eq!(created["provider_source"], "explicit");
    for (provider, allowed) in [("nope", json!([])), ("a", json!(["a", "b", "platform"]))] {
        let runtime = if provider == "a" { "other" } else { "rt" };
        let (status, body) = server
            .post(
                "/workspaces",
                &json!({"name": "w", "runtime": runtime, "model": "x-1",
                                          "provider": provider}),
            )
            .await;
        if runtime == "other" {
            // An unknown runtime has no native set: an existing provider is accepted.
            assert_eq!(status, 422, "{body}");
            assert_eq!(body["code"], "byok_key_missing");
            continue;
        }
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "provider_not_allowed");
        assert_eq!(body["allowed"], allowed);
    }
}

#[allow(clippy::too_many_lines, reason = "one table of cases")]
async fn field_validation_answers_with_the_spec_messages(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let long = |n: usize| "x".repeat(n);
    let cases = [
        (
            json!({"name": "a\nb"}),
            "invalid workspace fields",
            "name must not contain newline characters",
        ),
        (
            json!({"name": "w", "role": "r\r"}),
            "invalid workspace fields",
            "role must not contain newline characters",
        ),
        (
            json!({"name": "w", "model": "m\n"}),
            "invalid workspace fields",
            "model must not contain newline characters",
        ),
        (
            json!({"name": "w", "runtime": "r\n"}),
            "invalid workspace fields",
            "runtime must not contain newline characters",
        ),
        (
            json!({"name": "a{b"}),
            "invalid workspace fields",
            "name contains invalid characters",
        ),
        (
            json!({"name": "w", "role": "a|b"}),
            "invalid workspace fields",
            "role contains invalid characters",
        ),
        (
            json!({"name": long(256)}),
            "invalid workspace fields",
            "name must be at most 255 characters",
        ),
        (
            json!({"name": "w", "role": long(1001)}),
            "invalid workspace fields",
            "role must be at most 1000 characters",
        ),
        (
            json!({"name": "w", "model": long(101)}),
            "invalid workspace fields",
            "model must be at most 100 characters",
        ),
        (
            json!({"name": "w", "runtime": long(101)}),
            "invalid workspace fields",
            "runtime must be at most 100 characters",
        ),
        (
            json!({"name": "w", "tier": 5}),
            "invalid workspace fields",
            "tier must be between 1 and 4",
        ),
        (
            json!({"name": "w", "workspace_dir": "/etc/x"}),
            "invalid workspace directory",
            "",
        ),
        (
            json!({"name": "w", "workspace_dir": "rel"}),
            "invalid workspace directory",
            "",
        ),
        (
            json!({"name": "w", "workspace_dir": "/home/../etc"}),
            "invalid workspace directory",
            "",
        ),
        (
            json!({"name": "w", "workspace_access": "all"}),
            "invalid workspace access",
            "",
        ),
        (
            json!({"name": "w", "workspace_access": "read_only"}),
            "invalid workspace access",
            "",
        ),
        (json!({"role": "no name"}), "invalid workspace payload", ""),
        (json!({"name": ""}), "invalid workspace payload", ""),
        (
            json!({"name": "w", "tier": "2"}),
            "invalid workspace payload",
            "",
        ),
        (
            json!({"name": "w", "template": "nope"}),
            "invalid template",
            "",
        ),
        (
            json!({"name": "w", "parent_id": "not-a-uuid"}),
            "invalid workspace payload",
            "",
        ),
        (
            json!({"name": "w", "parent_id": "00000000-0000-4000-8000-000000000000"}),
            "invalid workspace payload",
            "",
        ),
        (
            json!({"name": "w", "secrets": {"lower": "v"}}),
            "invalid request body",
            "",
        ),
        (
            json!({"name": "w", "secrets": {"K": ""}}),
            "invalid request body",
            "",
        ),
    ];
    for (body, error, detail) in cases {
        let (status, answer) = server.post("/workspaces", &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"], error, "{body} -> {answer}");
        assert!(answer["code"].is_string(), "{answer}");
        if !detail.is_empty() {
            assert_eq!(answer["detail"], detail, "{body}");
        }
    }
    // Limits are UTF-8 bytes: 128 two-byte characters are 256 bytes.
    let (status, _) = server
        .post("/workspaces", &json!({"name": "é".repeat(128)}))
        .await;
    assert_eq!(status, 400);
    server
        .create(&json!({"name": "é".repeat(127), "tier": 4, "role": "",
                          "workspace_dir": "/srv/w", "workspace_access": "read_write"}))
        .await;
    assert_eq!(server.counts().await.0, 1);
}

async fn malformed_and_oversized_bodies(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let (status, body) = server
        .post_raw("/workspaces", b"{\"name\": ".to_vec())
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid workspace payload");
    assert_eq!(body["code"], "invalid_json");
    assert!(body["detail"].as_str().unwrap().contains("EOF"), "{body}");
    let (status, body) = server
        .post_raw("/workspaces", b"{} trailing".to_vec())
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));

    let mut huge = b"{\"name\":\"w\",\"role\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'r', 2 * 1024 * 1024));
    huge.extend(b"\"}");
    let (status, body) = server.post_raw("/workspaces", huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(server.counts().await, (0, 0, 0));
}

async fn ids_that_are_not_uuids_are_refused_before_auth(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    for path in [
        "/workspaces/nope",
        "/workspaces/nope/config",
        "/workspaces/nope/derivation",
        "/workspaces/nope/secrets",
        "/events/nope",
        "/workspaces/00000000000040008000000000000000",
    ] {
        let (status, body) = server.get_as(path, None).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["error"], "invalid workspace ID", "{path}");
    }
    let (status, body) = server
        .get("/workspaces/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("workspace not found"))
    );
    // Ids come back lower-case whatever case the path used.
    let created = server.create(&json!({"name": "w"})).await;
    let id = created["id"].as_str().unwrap();
    let (status, record) = server
        .get(&format!("/workspaces/{}", id.to_uppercase()))
        .await;
    assert_eq!((status, record["id"].as_str()), (200, Some(id)));
}

async fn patch_type_checks_and_moves(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let root = server.create_named("root").await;
    let child = server
        .create(&json!({"name": "child", "parent_id": root}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = server.create_named("other").await;

    let path = format!("/workspaces/{child}");
    for (body, error) in [
        (
            json!({"name": "a\nb"}),
            "name must not contain newline characters",
        ),
        (json!({"role": "x&y"}), "role contains invalid characters"),
        (
            json!({"name": "x".repeat(256)}),
            "name must be at most 255 characters",
        ),
        (json!({"tier": 0}), "tier must be between 1 and 4"),
        (json!({"tier": "1"}), "invalid request body"),
        (json!({"name": 7}), "invalid request body"),
        (json!({"collapsed": "yes"}), "invalid request body"),
        (json!({"parent_id": child}), "invalid request body"),
        (
            json!({"workspace_dir": "/proc/1"}),
            "invalid workspace directory",
        ),
    ] {
        let (status, answer) = server.patch(&path, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{body}: {answer}"
        );
    }
    // A cycle: root under its own child.
    let (status, answer) = server
        .patch(&format!("/workspaces/{root}"), &json!({"parent_id": child}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid_parent");

    let (status, answer) = server
        .patch(
            &path,
            &json!({"name": "renamed", "role": "r", "tier": 3, "collapsed": true,
                               "x": 10, "y": 2.5, "parent_id": other, "unknown": 1}),
        )
        .await;
    assert_eq!((status, answer), (200, json!({"status": "updated"})));
    let (status, answer) = server
        .patch(&path, &json!({"workspace_dir": "/srv/x"}))
        .await;
    assert_eq!(
        (status, answer),
        (200, json!({"status": "updated", "needs_restart": true}))
    );
    let (_, record) = server.get(&path).await;
    assert_eq!(record["name"], "renamed");
    assert_eq!(record["role"], "r");
    assert_eq!(record["tier"], 3);
    assert_eq!(record["collapsed"], true);
    assert_eq!(record["parent_id"], other.as_str());
    assert_eq!(
        record["x"].to_string(),
        "10",
        "integral floats print like Go"
    );
    assert_eq!(record["y"].to_string(), "2.5");
    let (_, events) = server.get(&format!("/events/{child}")).await;
    assert_eq!(events[0]["event_type"], "WORKSPACE_MOVED");
    assert_eq!(
        events[0]["payload"],
        json!({"old_parent_id": root, "new_parent_id": other})
    );

    let (status, _) = server
        .patch(
            "/workspaces/00000000-0000-4000-8000-000000000000",
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = server.request(reqwest::Method::PATCH, &path, None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid request body"))
    );
}

/// A key left out keeps its value; null clears what may be cleared and is a wrong type
/// where it may not; a workspace's token is refused an operator's field before its value
/// is read.
async fn patch_tells_absent_from_null(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let id = server.create(&json!({"name": "w", "role": "lead"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/workspaces/{id}");

    let (status, _) = server.patch(&path, &json!({"name": "kept-role"})).await;
    assert_eq!(status, 200);
    let (_, record) = server.get(&path).await;
    assert_eq!(record["role"], "lead", "an absent key keeps its value");
    let (status, _) = server.patch(&path, &json!({"role": null})).await;
    assert_eq!(status, 200);
    let (_, record) = server.get(&path).await;
    assert_eq!(record["role"], Value::Null, "null clears it");

    for (body, field, detail) in [
        (json!({"name": null}), "name", "name must be a string"),
        (json!({"tier": null}), "tier", "tier must be an integer"),
        (json!({"tier": 1.5}), "tier", "tier must be an integer"),
        (
            json!({"collapsed": null}),
            "collapsed",
            "collapsed must be a boolean",
        ),
        (json!({"x": null, "y": 1}), "x", "x must be a number"),
        (json!({"y": "1"}), "y", "y must be a number"),
        (json!({"role": 5}), "role", "role must be a string or null"),
    ] {
        let (status, answer) = server.patch(&path, &body).await;
        assert_eq!(
            (status, answer),
            (
                400,
                json!({"error": "invalid request body", "code": "invalid_field_type",
                       "field": field, "detail": detail})
            ),
            "{body}"
        );
    }

    let token = workspace_token(&server, &id).await;
    let (status, answer) = server
        .request_as(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({"tier": "not a number"})),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, &answer["code"]),
        (403, &json!("operator_only_field"))
    );
}

/// A workspace token of `id`, issued by the admin.
async fn workspace_token(server: &Running, id: &str) -> String {
    let (status, issued) = server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await;
    assert_eq!(status, 201, "{issued}");
    issued["auth_token"].as_str().unwrap().to_owned()
}

async fn an_agent_token_changes_only_its_name_role_and_place(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let team = server.create_named("team").await;
    let id = server
        .create(&json!({"name": "agent", "runtime": "langgraph"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = workspace_token(&server, &id).await;
    let path = format!("/workspaces/{id}");
    let (_, before) = server.get(&path).await;
    // Whatever changes what the sandbox may do or whom the agent may reach is the
    // operator's: host networking comes with a runtime, a host directory with
    // workspace_dir, a team with parent_id.
    for body in [
        json!({"runtime": "claude-code"}),
        json!({"tier": 4}),
        json!({"workspace_dir": "/srv/x"}),
        json!({"workspace_dir": null}),
        json!({"workspace_access": "read_write"}),
        json!({"parent_id": team}),
        json!({"model": "moonshot/kimi-k2.6"}),
        json!({"name": "sneaky", "runtime": "claude-code"}),
    ] {
        let (status, answer) = server
            .request_as(reqwest::Method::PATCH, &path, Some(&body), Some(&token))
            .await;
        assert_eq!(status, 403, "{body}: {answer}");
        assert_eq!(answer["code"], "operator_only_field", "{answer}");
        let field = body
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name")
            .unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains(field.as_str()),
            "the refusal names the field: {answer}"
        );
    }
    let (_, after) = server.get(&path).await;
    assert_eq!(before, after, "nothing of a refused PATCH was written");

    let allowed = json!({"name": "renamed", "role": "writer", "collapsed": true, "x": 1, "y": 2});
    let (status, answer) = server
        .request_as(reqwest::Method::PATCH, &path, Some(&allowed), Some(&token))
        .await;
    assert_eq!((status, answer), (200, json!({"status": "updated"})));
    let (_, after) = server.get(&path).await;
    assert_eq!(
        (after["name"].as_str(), after["role"].as_str()),
        (Some("renamed"), Some("writer"))
    );
    assert_eq!(after["runtime"], "langgraph");

    // The operator may change all of it.
    let (status, answer) = server
        .patch(&path, &json!({"tier": 3, "parent_id": team}))
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// Two moves that each pass the check on their own, but together would close a cycle
/// (`a` under `b`, `b` under `a`), both read the tree before either writes: the second
/// must be refused where it is written.
async fn racing_moves_cannot_close_a_cycle(db: Db) {
    use hatchery_store::{UpdateOutcome, WorkspacePatch, WorkspaceRow};
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(server.create_named(name).await);
    }
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let read = |id: String| {
        let store = server.store.clone();
        async move { store.workspace_get(&id).await.unwrap().unwrap() }
    };
    let moved = |row: &WorkspaceRow, parent: &str| WorkspacePatch {
        name: row.name.clone(),
        role: row.role.clone(),
        tier: row.tier,
        parent_id: Some(parent.to_owned()),
        collapsed: row.collapsed,
        runtime: row.runtime.clone(),
        workspace_dir: row.workspace_dir.clone(),
        x: row.x,
        y: row.y,
    };
    let (row_a, row_b) = (read(a.clone()).await, read(b.clone()).await);
    let first = server
        .store
        .workspace_update(a, row_a.version, &moved(&row_a, b), None, &[], 32)
        .await
        .unwrap();
    assert_eq!(first, UpdateOutcome::Updated);
    let second = server
        .store
        .workspace_update(b, row_b.version, &moved(&row_b, a), None, &[], 32)
        .await
        .unwrap();
    assert_eq!(second, UpdateOutcome::WouldCycle);
    // A longer loop too: c under a (fine), then b under c would close b → a → … → b.
    let row_c = read(c.clone()).await;
    let (status, answer) = server
        .patch(&format!("/workspaces/{c}"), &json!({"parent_id": a}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let row_b = read(b.clone()).await;
    let third = server
        .store
        .workspace_update(b, row_b.version, &moved(&row_b, c), None, &[], 32)
        .await
        .unwrap();
    assert_eq!(third, UpdateOutcome::WouldCycle);
    assert_ne!(read(c.clone()).await.version, row_c.version);

    // Through the API, racing pairs: never both moved.
    for _ in 0..10 {
        let left = server.create_named("x").await;
        let right = server.create_named("y").await;
        let (x_path, y_path) = (
            format!("/workspaces/{left}"),
            format!("/workspaces/{right}"),
        );
        let (x_under_y, y_under_x) = (json!({"parent_id": right}), json!({"parent_id": left}));
        let (one, two) = tokio::join!(
            server.patch(&x_path, &x_under_y),
            server.patch(&y_path, &y_under_x),
        );
        assert!(one.0 != 200 || two.0 != 200, "both moved: {one:?} {two:?}");
        // A bundle of either still exports: the tree stays a tree.
        let (status, bundle) = server.get(&format!("/bundles/export/{left}")).await;
        assert_eq!(status, 200, "{bundle}");
    }
}

/// A chain of `length` workspaces, each under the one before; their ids, top first.
async fn chain(server: &Running, name: &str, length: usize) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for n in 0..length {
        let body = match ids.last() {
            Some(parent) => json!({"name": format!("{name}{n}"), "parent_id": parent}),
            None => json!({"name": format!("{name}{n}")}),
        };
        ids.push(
            server.create(&body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

/// The tree is at most 32 levels below a root: a move counts the deepest of the moved
/// subtree, not only the workspace moved.
async fn a_move_keeps_the_whole_subtree_within_the_depth_limit(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let deep = chain(&server, "deep", 21).await;
    let tall = chain(&server, "tall", 16).await;
    // deep[20] has 20 ancestors; under it, tall[0] would be at 21 and tall[15] at 36.
    let (status, answer) = server
        .patch(
            &format!("/workspaces/{}", tall[0]),
            &json!({"parent_id": deep[20]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid_parent");
    // Within the limit: tall[4] and its 11 descendants under deep[20] end at level 32.
    let (status, answer) = server
        .patch(
            &format!("/workspaces/{}", tall[4]),
            &json!({"parent_id": deep[20]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, bundle) = server.get(&format!("/bundles/export/{}", deep[0])).await;
    assert_eq!(status, 200, "a tree the API allows exports whole: {bundle}");
}

/// `OVERLAPPING` plus a runtime where only `a` is native and one where only `b` is.
const TWO_RUNTIMES: &str = "schema_version: 1
providers:
  - {name: a, display_name: A, protocol: openai, auth_mode: k, auth_env: [A_KEY], model_prefix_match: '^x-'}
  - {name: b, display_name: B, protocol: openai, auth_mode: k, auth_env: [B_KEY], model_prefix_match: '^x-1'}
  - {name: platform, display_name: P, protocol: openai, auth_mode: k, auth_env: [P_KEY], model_prefix_match: '^p/'}
runtimes:
  rt: {providers: [{name: a}, {name: b}, {name: platform}]}
  only-a: {providers: [{name: a}]}
  only-b: {providers: [{name: b}]}
";

async fn config_yaml(server: &Running, id: &str) -> String {
    let (status, config) = server.get(&format!("/workspaces/{id}/config")).await;
    assert_eq!(status, 200, "{config}");
    config["files"]["config.yaml"].as_str().unwrap().to_owned()
}

async fn patch_runtime_rederives_the_provider_failing_closed(db: Db) {
    let env = Env::new(db).await;
    let server = spawn_with_manifest(&env, TWO_RUNTIMES).await;

    // Derived on `only-a`; on `rt` the same model is ambiguous: refused, nothing changes.
    let created = server
        .create(
            &json!({"name": "w", "runtime": "only-a", "model": "x-1", "secrets": {"A_KEY": "k"}}),
        )
        .await;
    assert_eq!(created["provider"], "a");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/workspaces/{id}");
    let yaml_before = config_yaml(&server, &id).await;
    let counts_before = server.counts().await;
    let (status, body) = server.patch(&path, &json!({"runtime": "rt"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "provider_derivation_failed");
    assert_eq!(body["candidates"], json!(["a", "b"]));
    let (_, record) = server.get(&path).await;
    assert_eq!(record["runtime"], "only-a");
    assert_eq!(record["provider"], "a");
    assert_eq!(config_yaml(&server, &id).await, yaml_before);
    assert_eq!(server.counts().await, counts_before);

    // A runtime where the model derives to another BYOK provider whose key is missing.
    let (status, body) = server.patch(&path, &json!({"runtime": "only-b"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "byok_key_missing");
    assert_eq!(body["variables"], json!(["B_KEY"]));
    // With the key among the workspace's secrets the move goes through and restamps.
    let (status, body) = server
        .post(
            &format!("/workspaces/{id}/secrets"),
            &json!({"key": "B_KEY", "value": "kb"}),
        )
        .await;
    assert!(status < 300, "{body}");
    let (status, body) = server.patch(&path, &json!({"runtime": "only-b"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["needs_restart"], true);
    let (_, record) = server.get(&path).await;
    assert_eq!(record["runtime"], "only-b");
    assert_eq!(record["provider"], "b");
    assert_eq!(record["provider_source"], "derived:prefix_match");
    assert_eq!(record["llm_billing_mode"], "byok");
    let yaml = config_yaml(&server, &id).await;
    for line in [
        "runtime: \"only-b\"",
        "provider: \"b\"",
        "provider_auth_env: [\"B_KEY\"]",
    ] {
        assert!(
            yaml.lines().any(|l| l == line),
            "missing {line:?} in\n{yaml}"
        );
    }

    // From pass-through to derived: an unknown runtime moved onto a known one is stamped.
    let passed = server
        .create(&json!({"name": "p", "runtime": "elsewhere", "model": "p/m"}))
        .await;
    assert_eq!(passed["provider"], Value::Null);
    let passed_path = format!("/workspaces/{}", passed["id"].as_str().unwrap());
    let (status, body) = server.patch(&passed_path, &json!({"runtime": "rt"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, record) = server.get(&passed_path).await;
    assert_eq!(record["provider"], "platform");
    assert_eq!(record["llm_billing_mode"], "platform");

    // An explicit provider stays explicit and must be allowed on the new runtime.
    let explicit = server
        .create(
            &json!({"name": "e", "runtime": "rt", "model": "x-1", "provider": "a",
                        "secrets": {"A_KEY": "k"}}),
        )
        .await;
    assert_eq!(explicit["provider_source"], "explicit");
    let explicit_path = format!("/workspaces/{}", explicit["id"].as_str().unwrap());
    let (status, body) = server
        .patch(&explicit_path, &json!({"runtime": "only-b"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "provider_not_allowed");
    let (status, body) = server
        .patch(&explicit_path, &json!({"runtime": "only-a"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, record) = server.get(&explicit_path).await;
    assert_eq!(record["provider"], "a");
    assert_eq!(record["provider_source"], "explicit");

    // Renaming alone re-derives nothing and needs no restart.
    let (status, body) = server.patch(&path, &json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.get("needs_restart"), None);
}

async fn delete_asks_for_confirmation_and_cascades(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let root = server.create_named("root").await;
    let child = server
        .create(&json!({"name": "child", "parent_id": root}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grandchild = server
        .create(&json!({"name": "gc", "parent_id": child}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = server.delete(&format!("/workspaces/{root}")).await;
    assert_eq!(status, 409);
    assert_eq!(body["status"], "confirmation_required");
    assert_eq!(
        body["message"],
        "This workspace has sub-workspaces. Delete with ?confirm=true to cascade delete."
    );
    assert_eq!(body["children"], json!([{"id": child, "name": "child"}]));
    assert_eq!(body["children_count"], 1);
    assert_eq!(
        server.counts().await.0,
        3,
        "nothing removed without confirmation"
    );

    let (status, body) = server
        .delete(&format!("/workspaces/{root}?confirm=true"))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "removed", "cascade_deleted": 2}))
    );
    assert_eq!(
        server.counts().await.0,
        0,
        "removed workspaces leave the list"
    );
    for id in [&root, &child, &grandchild] {
        let (status, record) = server.get(&format!("/workspaces/{id}")).await;
        assert_eq!((status, record["status"].as_str()), (200, Some("removed")));
    }
    let (_, events) = server.get(&format!("/events/{root}")).await;
    assert_eq!(events[0]["event_type"], "WORKSPACE_REMOVED");
    assert_eq!(events[0]["payload"], json!({"cascade_deleted": 2}));
    let (_, events) = server.get(&format!("/events/{grandchild}")).await;
    assert_eq!(events[0]["payload"], json!({}));
    assert!(
        server
            .store
            .job_list()
            .await
            .unwrap()
            .iter()
            .all(|j| j.state == "cancelled"),
        "removal cancels pending provision jobs"
    );
    // Again: still removed, nothing more to cascade. A never-existing id is 404.
    let (status, body) = server.delete(&format!("/workspaces/{root}")).await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "removed", "cascade_deleted": 0}))
    );
    let (status, _) = server
        .delete("/workspaces/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
    // A removed workspace cannot be a parent or be changed.
    let (status, _) = server
        .post("/workspaces", &json!({"name": "x", "parent_id": root}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .patch(&format!("/workspaces/{root}"), &json!({"name": "x"}))
        .await;
    assert_eq!(status, 410);

    let lone = server.create_named("lone").await;
    let (status, body) = server
        .delete(&format!("/workspaces/{lone}?purge=true"))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "purged", "cascade_deleted": 0}))
    );
    let (status, _) = server.get(&format!("/workspaces/{lone}")).await;
    assert_eq!(status, 404, "purged rows are gone");
}

async fn records_have_the_wire_shape(db: Db) {
    let env = Env::new(db).await;
    let server = env.spawn().await;
    let created = server
        .create(
            &json!({"name": "w", "canvas": {"x": 3, "y": 4.5}, "budget_limit": 500,
                        "max_concurrent_tasks": -1}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["awareness_namespace"], format!("workspace:{id}"));
    assert_eq!(created["workspace_access"], "none");
    let (_, list) = server.get("/workspaces").await;
    let full = &list[0];
    for key in [
        "id",
        "name",
        "role",
        "tier",
        "status",
        "url",
        "parent_id",
        "agent_card",
        "active_tasks",
        "max_concurrent_tasks",
        "last_error_rate",
        "last_sample_error",
        "uptime_seconds",
        "current_task",
        "runtime",
        "workspace_dir",
        "x",
        "y",
        "collapsed",
        "budget_limit",
        "monthly_spend",
    ] {
        assert!(full.get(key).is_some(), "full record lacks {key}: {full}");
    }
    assert_eq!(full["role"], Value::Null);
    assert_eq!(full["agent_card"], Value::Null);
    assert_eq!(full["current_task"], "");
    assert_eq!(full["url"], "");
    assert_eq!(
        full["tier"], 2,
        "an omitted tier is standard, never privileged"
    );
    assert_eq!(full["max_concurrent_tasks"], 1);
    assert_eq!(full["budget_limit"], 500);
    assert_eq!(full["x"].to_string(), "3");
    assert_eq!(full["last_error_rate"].to_string(), "0");
    let (_, single) = server.get(&format!("/workspaces/{id}")).await;
    assert!(single.get("last_outbound_at").is_some());
    for key in [
        "budget_limit",
        "monthly_spend",
        "current_task",
        "last_sample_error",
        "workspace_dir",
    ] {
        assert!(single.get(key).is_none(), "single view has {key}");
    }
    // Compact JSON: clients substring-match.
    let text = server
        .client
        .get(format!("{}/workspaces/{id}", server.base))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"status\":\"provisioning\""), "{text}");
}
