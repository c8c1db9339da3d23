//! Event retention against the real server on SQLite and Postgres: the sweeper deletes
//! events past the configured age or count, oldest first; a cursor (`?after=`,
//! `Last-Event-ID`, `/ws?after=`) older than what was kept gets 410 `cursor_expired`,
//! across restarts; a cursor at the pruned horizon resumes with nothing lost; a live stream
//! that retention overtakes is told so and ends.

mod common;

use std::time::Duration;

use common::{Db, Env, Running, TOKEN, spawn};
use hatchery_server::event_hub::{Cursor, Delivery};
use serde_json::Value;

hatchery_testkit::both_databases!(
    a_cursor_older_than_retention_gets_410_and_one_at_the_horizon_resumes,
    count_retention_and_an_emptied_log_keep_the_cursor_contract,
    a_stream_that_retention_overtakes_is_told_and_ends,
);

const RETENTION: Duration = Duration::from_hours(1);

fn env_config(env: &Env, count: Option<u64>) -> hatchery_server::ServerConfig {
    let mut config = env.config();
    config.supervision.event_retention = RETENTION;
    config.supervision.event_retention_count = count;
    config
}

async fn create(server: &Running, name: &str) -> String {
    server.create_named(name).await
}

/// The seq of the newest event.
async fn newest_seq(server: &Running) -> i64 {
    let (status, events) = server.get("/events").await;
    assert_eq!(status, 200, "{events}");
    events[0]["seq"].as_i64().unwrap()
}

fn assert_expired(status: u16, body: &Value, pruned_through: i64) {
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["code"], "cursor_expired", "{body}");
    assert_eq!(body["pruned_through"], pruned_through, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("re-read the current state") && message.contains("GET /events"),
        "{message}"
    );
}

/// A streaming GET; its status, and the response to read on.
async fn stream(server: &Running, path: &str, last_event_id: Option<i64>) -> reqwest::Response {
    let mut request = server
        .client
        .get(format!("{}{path}", server.base))
        .bearer_auth(TOKEN);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    request.send().await.unwrap()
}

/// Read SSE frames until one mentions `needle`; the frames read.
async fn read_until(response: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("within 10 s")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

/// The status `/ws?after=` answers the handshake with.
async fn websocket_status(server: &Running, after: i64) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!(
        "{}/ws?after={after}",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("websocket: {other}"),
    }
}

async fn a_cursor_older_than_retention_gets_410_and_one_at_the_horizon_resumes(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env_config(&env, None)).await;
    create(&server, "old-a").await;
    let old_b = create(&server, "old-b").await;
    let oldest_kept_before = newest_seq(&server).await;
    // Nothing is old yet: the sweep deletes nothing, and every cursor is good.
    assert_eq!(server.app.prune_events().await.unwrap(), 0);
    let (status, _) = server.get("/events?after=0").await;
    assert_eq!(status, 200);

    env.clock.advance(RETENTION + Duration::from_secs(1));
    let fresh = create(&server, "fresh").await;
    assert_eq!(server.app.prune_events().await.unwrap(), 2);
    let horizon = oldest_kept_before;

    // What is kept: the fresh event only.
    let (_, events) = server.get("/events").await;
    let kept: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["workspace_id"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [fresh.as_str()]);

    // Cursors below the horizon: 410, on every way of reading the log.
    for after in [0, horizon - 1] {
        let (status, body) = server.get(&format!("/events?after={after}")).await;
        assert_expired(status, &body, horizon);
    }
    let (status, body) = server.get(&format!("/events/{old_b}?after=0")).await;
    assert_expired(status, &body, horizon);
    let response = stream(&server, "/events/stream", Some(0)).await;
    assert_eq!(response.status(), 410);
    assert_expired(410, &response.json().await.unwrap(), horizon);
    let response = stream(&server, "/events/stream?after=0", None).await;
    assert_eq!(response.status(), 410);
    assert_eq!(websocket_status(&server, 0).await, 410);

    // At the horizon: nothing was lost, so it resumes.
    let (status, after_horizon) = server.get(&format!("/events?after={horizon}")).await;
    assert_eq!(status, 200);
    assert_eq!(after_horizon[0]["workspace_id"], fresh.as_str());
    let mut resumed = stream(&server, "/events/stream", Some(horizon)).await;
    assert_eq!(resumed.status(), 200);
    read_until(&mut resumed, &fresh).await;
    assert_eq!(websocket_status(&server, horizon).await, 101);
    // Without a cursor, from now on, as always.
    assert_eq!(stream(&server, "/events/stream", None).await.status(), 200);

    // The horizon outlives the process.
    drop(resumed);
    server.stop().await;
    let server = spawn(env_config(&env, None)).await;
    let (status, body) = server.get("/events?after=0").await;
    assert_expired(status, &body, horizon);
    let later = create(&server, "later").await;
    let (_, page) = server.get(&format!("/events?after={horizon}")).await;
    let ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["workspace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [fresh.as_str(), later.as_str()]);
}

async fn count_retention_and_an_emptied_log_keep_the_cursor_contract(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env_config(&env, Some(2))).await;
    for i in 0..5 {
        create(&server, &format!("w{i}")).await;
    }
    let (_, all) = server.get("/events").await;
    // Newest first; seqs need not be dense (Postgres draws two per event).
    let seqs: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    let newest = seqs[0];
    // Only the two newest stay.
    assert_eq!(server.app.prune_events().await.unwrap(), 3);
    let (_, kept) = server.get("/events").await;
    assert_eq!(kept.as_array().unwrap().len(), 2);
    let horizon = seqs[2];
    let (status, body) = server.get(&format!("/events?after={horizon}")).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(2)));
    let (status, body) = server.get(&format!("/events?after={}", horizon - 1)).await;
    assert_expired(status, &body, horizon);
    // A second pass finds nothing more to do.
    assert_eq!(server.app.prune_events().await.unwrap(), 0);

    // Everything ages out: the log is empty, and its cursor is the horizon.
    env.clock.advance(RETENTION + Duration::from_secs(1));
    assert_eq!(server.app.prune_events().await.unwrap(), 2);
    assert_eq!(server.store.event_count().await.unwrap(), 0);
    assert_eq!(server.store.event_last_seq().await.unwrap(), newest);
    // A cursor from before the restart of the log is refused; a stream from now on works,
    // and new events are numbered above the horizon.
    let mut live = stream(&server, "/events/stream", None).await;
    assert_eq!(live.status(), 200);
    let next = create(&server, "next").await;
    read_until(&mut live, &next).await;
    let (_, page) = server.get(&format!("/events?after={newest}")).await;
    assert_eq!(page[0]["workspace_id"], next.as_str());
    assert!(page[0]["seq"].as_i64().unwrap() > newest);

    // Restarted on an emptied log: the tailer starts at the horizon, so live events flow.
    env.clock.advance(RETENTION + Duration::from_secs(1));
    assert_eq!(server.app.prune_events().await.unwrap(), 1);
    drop(live);
    server.stop().await;
    let server = spawn(env_config(&env, Some(2))).await;
    let mut live = stream(&server, "/events/stream", None).await;
    let after_restart = create(&server, "after restart").await;
    read_until(&mut live, &after_restart).await;
}

async fn a_stream_that_retention_overtakes_is_told_and_ends(db: Db) {
    let env = Env::new(db).await;
    let server = spawn(env_config(&env, None)).await;
    create(&server, "a").await;
    create(&server, "b").await;
    // A subscriber from the beginning, that has not read yet.
    let mut cursor = Cursor::open(&server.app.hub, server.store.clone(), None, Some(0))
        .await
        .unwrap();
    env.clock.advance(RETENTION + Duration::from_secs(1));
    assert_eq!(server.app.prune_events().await.unwrap(), 2);
    let horizon = server.store.event_pruned_through().await.unwrap();
    match cursor.next(Duration::from_secs(1)).await {
        Some(Delivery::Expired { pruned_through }) => assert_eq!(pruned_through, horizon),
        other => panic!("expected the expiry, got {other:?}"),
    }
    assert!(
        cursor.next(Duration::from_secs(1)).await.is_none(),
        "the stream ends"
    );
}
