//! What agents send is capped, and listings are paged by bytes as well as rows, against the
//! real server on SQLite and Postgres: an agent card, a URL or an activity body over its
//! limit is refused with 413 naming the field (nothing stored); `/events`, SSE catch-up,
//! activity and peers pages stop at their byte budget, say so (`x-hatchery-truncated`),
//! and continuing from the last row skips nothing.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Db, Env, Running, TOKEN, spawn};
use hatchery_server::app::limits::{
    MAX_ACTIVITY_BODY_BYTES, MAX_AGENT_CARD_BYTES, MAX_AGENT_URL_BYTES, PAGE_BUDGET_BYTES,
};
use serde_json::{Value, json};

hatchery_testkit::both_databases!(
    agent_payloads_are_capped_field_by_field,
    event_pages_stop_at_their_byte_budget_and_skip_nothing,
    activity_pages_stop_at_their_byte_budget_and_continue_before,
    peer_pages_stop_at_their_byte_budget_and_continue_after,
);

/// A GET as the admin (or with `token`): status, body, and whether the page says it was
/// cut short by its byte budget.
async fn get_page(server: &Running, path: &str, token: &str) -> (u16, Value, bool) {
    let response = server.get_response(path, token).await;
    let status = response.status().as_u16();
    let truncated = match response.headers().get("x-hatchery-truncated") {
        None => false,
        Some(value) => {
            assert_eq!(value, "true");
            true
        }
    };
    let body = response.json().await.unwrap();
    (status, body, truncated)
}

async fn create(server: &Running, body: Value) -> String {
    server.create(&body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A workspace token for `id`, minted by the admin.
async fn token_of(server: &Running, id: &str) -> String {
    let (status, body) = server
        .post(&format!("/workspaces/{id}/tokens"), &json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["auth_token"].as_str().unwrap().to_owned()
}

/// A JSON object `{"blob": "xx…"}` whose compact text is exactly `bytes` long.
fn object_of_size(bytes: usize) -> Value {
    let value = json!({"blob": "x".repeat(bytes - r#"{"blob":""}"#.len())});
    assert_eq!(value.to_string().len(), bytes);
    value
}

/// The 413 of a field over its limit.
fn assert_too_large(status: u16, body: &Value, field: &str, limit: usize) {
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert_eq!(body["field"], field, "{body}");
    assert_eq!(body["limit_bytes"], limit, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains(field),
        "the message names the field: {body}"
    );
}

#[allow(clippy::too_many_lines, reason = "one story, field by field")]
async fn agent_payloads_are_capped_field_by_field(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "agent"})).await;
    let token = token_of(&server, &id).await;
    let events_before = server.store.event_count().await.unwrap();

    // Register: a card or a URL over its limit is refused, and nothing changes.
    let register = |url: String, card: Value| json!({"id": id, "url": url, "agent_card": card});
    let (status, body) = server
        .post_as(
            "/registry/register",
            &register(
                "http://localhost:9000/a2a".to_owned(),
                object_of_size(MAX_AGENT_CARD_BYTES + 1),
            ),
            Some(&token),
        )
        .await;
    assert_too_large(status, &body, "agent_card", MAX_AGENT_CARD_BYTES);
    let long_url = format!("http://localhost:9000/{}", "a".repeat(MAX_AGENT_URL_BYTES));
    let (status, body) = server
        .post_as(
            "/registry/register",
            &register(long_url.clone(), json!({"name": "a"})),
            Some(&token),
        )
        .await;
    assert_too_large(status, &body, "url", MAX_AGENT_URL_BYTES);
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["status"], "provisioning", "{row}");
    assert_eq!(row["agent_card"], Value::Null);
    assert_eq!(
        server.store.event_count().await.unwrap(),
        events_before,
        "no event for a refused registration"
    );

    // At the limits exactly: accepted.
    let url_at_limit = format!(
        "http://localhost:9000/{}",
        "a".repeat(MAX_AGENT_URL_BYTES - "http://localhost:9000/".len())
    );
    let (status, body) = server
        .post_as(
            "/registry/register",
            &register(url_at_limit.clone(), object_of_size(MAX_AGENT_CARD_BYTES)),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["url"], url_at_limit.as_str());

    // Update-card: the same card limit.
    let (status, body) = server
        .post_as(
            "/registry/update-card",
            &json!({"workspace_id": id, "agent_card": object_of_size(MAX_AGENT_CARD_BYTES + 1)}),
            Some(&token),
        )
        .await;
    assert_too_large(status, &body, "agent_card", MAX_AGENT_CARD_BYTES);
    let (status, body) = server
        .post_as(
            "/registry/update-card",
            &json!({"workspace_id": id, "agent_card": {"name": "small"}}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, row) = server.get(&format!("/workspaces/{id}")).await;
    assert_eq!(row["agent_card"], json!({"name": "small"}));

    // Activity: each body has its limit, named by the field that carried it.
    let activity = format!("/workspaces/{id}/activity");
    let big = object_of_size(MAX_ACTIVITY_BODY_BYTES + 1);
    for (report, field) in [
        (
            json!({"activity_type": "agent_log", "request_body": big}),
            "request_body",
        ),
        (
            json!({"activity_type": "agent_log", "metadata": big}),
            "metadata",
        ),
        (
            json!({"activity_type": "agent_log", "response_body": big}),
            "response_body",
        ),
    ] {
        let (status, body) = server.post_as(&activity, &report, Some(&token)).await;
        assert_too_large(status, &body, field, MAX_ACTIVITY_BODY_BYTES);
    }
    let (_, listed) = server.get(&activity).await;
    assert_eq!(listed, json!([]), "nothing was logged");
    let at_limit = object_of_size(MAX_ACTIVITY_BODY_BYTES);
    let (status, body) = server
        .post_as(
            &activity,
            &json!({"activity_type": "agent_log", "request_body": at_limit, "response_body": at_limit}),
            Some(&token),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"status": "logged"})));
    let (_, listed) = server.get(&activity).await;
    assert_eq!(listed[0]["request_body"], at_limit);

    // An external workspace's URL: the register limit.
    let (status, body) = server
        .post(
            "/workspaces",
            &json!({"name": "ext", "external": true, "url": long_url}),
        )
        .await;
    assert_too_large(status, &body, "url", MAX_AGENT_URL_BYTES);

    // The whole-body limit answers as it did: no field.
    let (status, body) = server
        .post_raw(
            "/registry/update-card",
            serde_json::to_vec(&json!({"workspace_id": id, "agent_card": object_of_size(2 << 20)}))
                .unwrap(),
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(body["limit_bytes"], 1 << 20);
    assert_eq!(body.get("field"), None, "{body}");
}

async fn event_pages_stop_at_their_byte_budget_and_skip_nothing(db: Db) {
    const CARDS: usize = 40;
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "w"})).await;
    let token = token_of(&server, &id).await;
    // Small data: whole pages, no header, as before.
    let (status, small, truncated) = get_page(&server, "/events?after=0", TOKEN).await;
    assert_eq!((status, truncated), (200, false));
    assert_eq!(small.as_array().unwrap().len(), 1);
    let start = small[0]["seq"].as_i64().unwrap();

    // 40 events of 60 KB: 2.4 MB, more than two budgets.
    for i in 0..CARDS {
        let card = json!({"n": i, "blob": "x".repeat(60_000)});
        let (status, body) = server
            .post_as(
                "/registry/update-card",
                &json!({"workspace_id": id, "agent_card": card}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let per_page = usize::try_from(PAGE_BUDGET_BYTES).unwrap() / 60_000 + 1;

    // Forward by cursor: pages stop at the budget; together they are every event, once,
    // in order.
    for path in ["/events", &format!("/events/{id}")] {
        let mut after = start;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let (status, page, truncated) =
                get_page(&server, &format!("{path}?after={after}&limit=1000"), TOKEN).await;
            assert_eq!(status, 200, "{page}");
            let page = page.as_array().unwrap().clone();
            if page.is_empty() {
                assert!(!truncated);
                break;
            }
            pages += 1;
            assert!(page.len() <= per_page, "{} rows in one page", page.len());
            assert_eq!(truncated, seen.len() + page.len() < CARDS, "page {pages}");
            for event in &page {
                let seq = event["seq"].as_i64().unwrap();
                assert!(seq > after, "strictly after the cursor");
                after = seq;
                seen.push(event["payload"]["agent_card"]["n"].as_u64().unwrap());
            }
        }
        assert!(pages >= 3, "{path}: {pages} pages");
        assert_eq!(seen, (0..CARDS as u64).collect::<Vec<_>>(), "{path}");
    }

    // Newest first (no cursor): the newest that fit, and the header.
    let (_, newest, truncated) = get_page(&server, "/events", TOKEN).await;
    let newest = newest.as_array().unwrap();
    assert!(truncated);
    assert_eq!(newest.len(), per_page);
    assert_eq!(
        newest[0]["payload"]["agent_card"]["n"],
        CARDS - 1,
        "the newest first"
    );

    // SSE catch-up reads the log by the same budget and loses nothing.
    let response = server
        .client
        .get(format!("{}/events/stream", server.base))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", start.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut response = response;
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.len() < CARDS {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("the catch-up within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if let Some(id) = frame.strip_prefix("id: ") {
                ids.push(id.lines().next().unwrap().parse::<i64>().unwrap());
            }
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > start);
}

async fn activity_pages_stop_at_their_byte_budget_and_continue_before(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let id = create(&server, json!({"name": "w"})).await;
    let token = token_of(&server, &id).await;
    let path = format!("/workspaces/{id}/activity");
    // Small data: as before, and no header.
    let (status, body) = server
        .post_as(
            &path,
            &json!({"activity_type": "agent_log", "summary": "small"}),
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, small, truncated) = get_page(&server, &path, TOKEN).await;
    assert_eq!((status, truncated), (200, false));
    assert_eq!(small.as_array().unwrap().len(), 1);

    // Ten reports of 200 KB each, a moment apart: about two budgets.
    for i in 0..10 {
        env.clock.advance(Duration::from_millis(1));
        let (status, body) = server
            .post_as(
                &path,
                &json!({"activity_type": "agent_log", "summary": format!("r{i}"),
                        "request_body": {"blob": "x".repeat(200_000)}}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut summaries = Vec::new();
    let mut query = format!("{path}?limit=500");
    let mut pages = 0;
    loop {
        let (status, page, truncated) = get_page(&server, &query, TOKEN).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 6, "{} rows of 200 KB in one page", page.len());
        summaries.extend(
            page.iter()
                .map(|r| r["summary"].as_str().unwrap().to_owned()),
        );
        if !truncated {
            break;
        }
        let last = page.last().unwrap()["id"].as_str().unwrap().to_owned();
        query = format!("{path}?limit=500&before={last}");
    }
    assert!(pages >= 2, "{pages} pages");
    let mut expected: Vec<String> = (0..10).rev().map(|i| format!("r{i}")).collect();
    expected.push("small".to_owned());
    assert_eq!(summaries, expected, "newest first, each once");

    // A cursor that is not an activity id.
    let (status, body, _) = get_page(&server, &format!("{path}?before=nope"), TOKEN).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}

async fn peer_pages_stop_at_their_byte_budget_and_continue_after(db: Db) {
    const CHILDREN: usize = 30;
    let env = Env::new(db).await;
    let server = spawn(env.config()).await;
    let parent = create(&server, json!({"name": "lead"})).await;
    let mut children = Vec::new();
    for i in 0..CHILDREN {
        env.clock.advance(Duration::from_millis(1));
        let child = create(
            &server,
            json!({"name": format!("c{i}"), "parent_id": parent}),
        )
        .await;
        let token = token_of(&server, &child).await;
        let card = json!({"name": format!("c{i}"), "blob": "x".repeat(60_000)});
        let (status, body) = server
            .post_as(
                "/registry/update-card",
                &json!({"workspace_id": child, "agent_card": card}),
                Some(&token),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        children.push((child, token));
    }
    let (me, my_token) = &children[0];
    let path = format!("/registry/{me}/peers");

    // Page by page: siblings oldest first, then the parent; each once.
    let mut names = Vec::new();
    let mut query = path.clone();
    let mut first_page_last = None;
    loop {
        let (status, page, truncated) = get_page(&server, &query, my_token).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        assert!(
            page.len() <= 18,
            "{} peers of 60 KB in one page",
            page.len()
        );
        names.extend(page.iter().map(|p| p["name"].as_str().unwrap().to_owned()));
        let last = page.last().unwrap()["id"].as_str().unwrap().to_owned();
        first_page_last.get_or_insert(last.clone());
        if !truncated {
            break;
        }
        query = format!("{path}?after={last}");
    }
    let mut expected: Vec<String> = (1..CHILDREN).map(|i| format!("c{i}")).collect();
    expected.push("lead".to_owned());
    assert_eq!(names, expected);

    // The peer a page ended on is removed meanwhile: the next page starts where it was.
    let cursor = first_page_last.unwrap();
    let (_, second) = server
        .get_as(&format!("{path}?after={cursor}"), Some(my_token))
        .await;
    let (status, _) = server.delete(&format!("/workspaces/{cursor}")).await;
    assert_eq!(status, 200);
    let (status, again) = server
        .get_as(&format!("{path}?after={cursor}"), Some(my_token))
        .await;
    assert_eq!((status, &again), (200, &second));
    let all: HashSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(all.len(), CHILDREN, "no duplicates");

    // A cursor that never was a peer: start again; one that is not an id: a bad request.
    let stranger = create(&server, json!({"name": "stranger"})).await;
    let (status, body) = server
        .get_as(&format!("{path}?after={stranger}"), Some(my_token))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (410, Some("cursor_expired"))
    );
    let (status, body) = server
        .get_as(&format!("{path}?after=nope"), Some(my_token))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    // `q` still filters, across pages.
    let (status, filtered, truncated) = get_page(&server, &format!("{path}?q=C2"), my_token).await;
    assert_eq!((status, truncated), (200, false));
    let filtered: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        filtered,
        [
            "c2", "c20", "c21", "c22", "c23", "c24", "c25", "c26", "c27", "c28", "c29"
        ]
    );
}
