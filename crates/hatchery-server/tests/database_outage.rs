//! A database outage against the real server: while the database is away, creates and
//! heartbeats answer 503 `platform_unavailable` with `Retry-After` (never a 500), no
//! workspace is half-written, and once it is back the same process serves again — and its
//! background loops (event tailer, sweeps, heartbeat flush) resume — without a restart.
//!
//! On Postgres the server reaches the database through a TCP proxy the test owns, so one
//! test's outage disturbs no other: down, the proxy's port is closed (new connections are
//! refused) and the connections it carries are cut; up, it listens on the same port again.
//! On SQLite the outage is another connection holding the write lock past the busy timeout.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Db, Env, Running, TOKEN, spawn};
use hatchery_server::error::RETRY_AFTER_SECONDS;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection as _, Executor as _, Row as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// How long a cut connection still carries Postgres' answers to what Postgres already
/// received (nothing more reaches Postgres once the cut begins). The cut then never falls
/// between a commit Postgres made and its acknowledgement: a lost acknowledgement is a
/// commit no client can tell from a failed one (a 503 whose workspace exists), which is a
/// property of every client of a remote database, not of this server.
const DRAIN: Duration = Duration::from_millis(300);

/// The most a request may take while the database is away: the pool retries a refused
/// connection until its acquire timeout (10 s), then the server answers 503.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// The liveness TTL of the Postgres test.
const TTL: Duration = Duration::from_secs(3);

/// How soon after the database is back the server must serve again.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// A TCP proxy on loopback between the server and Postgres, which the test takes down and
/// brings back.
struct Proxy {
    address: SocketAddr,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await;
        let address = listener.local_addr().unwrap();
        let (up, watched) = watch::channel(true);
        let task = tokio::spawn(proxy(listener, upstream, watched));
        Self { address, up, task }
    }

    /// Refuse new connections and cut the ones carried.
    fn down(&self) {
        self.up.send_replace(false);
    }

    /// Forward again, on the same port.
    fn up(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on `address`, reusing the port the proxy had before its outage.
async fn bind(address: SocketAddr) -> TcpListener {
    for _ in 0..200 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        if socket.bind(address).is_ok() {
            return socket.listen(1024).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cannot listen on {address} again");
}

/// Wait until the proxy is `wanted` (up or down); `false` when the test is over.
async fn until(state: &mut watch::Receiver<bool>, wanted: bool) -> bool {
    state.wait_for(|up| *up == wanted).await.is_ok()
}

async fn proxy(listener: TcpListener, upstream: SocketAddr, mut up: watch::Receiver<bool>) {
    let address = listener.local_addr().unwrap();
    let for_pipes = up.clone();
    let mut listener = Some(listener);
    loop {
        let Some(open) = listener.take() else {
            return;
        };
        loop {
            tokio::select! {
                accepted = open.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(pipe(client, upstream, for_pipes.clone()));
                    }
                }
                _ = until(&mut up, false) => break,
            }
        }
        // The port closes: connecting now is refused, as with a stopped server.
        drop(open);
        if !until(&mut up, true).await {
            return;
        }
        listener = Some(bind(address).await);
    }
}

/// Carry one connection until either side closes it or the proxy goes down: then nothing
/// more is forwarded to Postgres (which sees the connection end and rolls back whatever was
/// open), Postgres' answers still flow for [`DRAIN`], and both sides are closed.
async fn pipe(client: TcpStream, upstream: SocketAddr, up: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut frozen = up.clone();
    let to_server = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            tokio::select! {
                biased;
                _ = until(&mut frozen, false) => return,
                read = client_read.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if server_write.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                },
            }
        }
        // Dropping `server_write` here ends the connection for Postgres.
    };
    let to_client = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let mut cut = up;
    let cut = async move {
        until(&mut cut, false).await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        _ = async { tokio::join!(to_server, to_client) } => {}
        () = cut => {}
    }
}

/// An answer, with what the test checks of it.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

async fn post(server: &Running, path: &str, body: &Value, token: &str) -> Answer {
    let started = Instant::now();
    let response = server
        .client
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    Answer {
        status,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        took: started.elapsed(),
    }
}

/// The 503 of a database that is away: its code, its message, and when to retry.
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {answer:?}");
    assert_eq!(
        answer.retry_after.as_deref(),
        Some(RETRY_AFTER_SECONDS.to_string().as_str()),
        "{what}: {answer:?}"
    );
    assert_eq!(answer.body["code"], "platform_unavailable", "{what}");
    assert_eq!(
        answer.body["error"], "platform datastore unavailable — retry shortly",
        "{what}"
    );
}

fn create_body(name: &str) -> Value {
    json!({"name": name, "runtime": "claude-code", "model": "moonshot/kimi-k2.6"})
}

fn beat_body(id: &str, task: &str) -> Value {
    json!({"workspace_id": id, "current_task": task, "active_tasks": 1})
}

/// A workspace whose agent has registered; its id and workspace token.
async fn registered(server: &Running, name: &str) -> (String, String) {
    let created = post(server, "/workspaces", &create_body(name), TOKEN).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let bootstrap = post(
        server,
        &format!("/admin/workspaces/{id}/bootstrap-token"),
        &json!({}),
        TOKEN,
    )
    .await;
    assert_eq!(bootstrap.status, 201, "{bootstrap:?}");
    let registered = post(
        server,
        "/registry/register",
        &json!({"id": id, "url": "http://localhost:9000/a2a", "agent_card": {"name": name}}),
        bootstrap.body["bootstrap_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(registered.status, 200, "{registered:?}");
    let token = registered.body["auth_token"].as_str().unwrap().to_owned();
    (id, token)
}

/// Every workspace in the database, by name, with how many config files, creation events
/// and provision jobs it has — read straight from the database, not through the server.
async fn workspaces_in(url: &str) -> Vec<(String, i64, i64, i64)> {
    sqlx::any::install_default_drivers();
    let mut connection = AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(
        "SELECT w.name, \
           (SELECT COUNT(*) FROM workspace_files f WHERE f.workspace_id = w.id), \
           (SELECT COUNT(*) FROM events e WHERE e.workspace_id = w.id \
              AND e.event_type = 'WORKSPACE_PROVISIONING'), \
           (SELECT COUNT(*) FROM provision_jobs j WHERE j.workspace_id = w.id) \
         FROM workspaces w",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let _ = connection.close().await;
    rows.iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// One column of one workspace, read straight from the database.
async fn column_of(url: &str, column: &str, id: &str) -> String {
    let mut connection = AnyConnection::connect(url).await.unwrap();
    let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column} FROM workspaces WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    let _ = connection.close().await;
    value
}

/// No workspace without its config files, its creation event and its job; none from a
/// create that answered 503; every one that answered 201.
fn assert_whole(rows: &[(String, i64, i64, i64)], created: &[String], refused: &[String]) {
    for (name, files, events, jobs) in rows {
        assert!(
            *files > 0 && *events == 1 && *jobs == 1,
            "workspace {name} is half-written: {files} files, {events} creation events, {jobs} jobs"
        );
    }
    let names: std::collections::HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for name in created {
        assert!(
            names.contains(name.as_str()),
            "{name} answered 201 and is gone"
        );
    }
    for name in refused {
        assert!(
            !names.contains(name.as_str()),
            "{name} answered 503 and was written"
        );
    }
}

/// Poll `attempt` until it says done, or fail after [`RECOVER_WITHIN`]; how long it took.
async fn within<F, Fut>(what: &str, mut attempt: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !attempt().await {
        assert!(
            started.elapsed() < RECOVER_WITHIN,
            "{what}: not within {RECOVER_WITHIN:?} of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Read an SSE response until `needle` appears; panics if the stream ends first.
async fn sse_until(response: &mut reqwest::Response, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(RECOVER_WITHIN, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("{needle} not streamed within {RECOVER_WITHIN:?}"))
            .unwrap()
            .expect("the stream opened before the outage is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[derive(Default)]
struct Burst {
    created: Vec<String>,
    refused: Vec<String>,
    answers: Vec<(String, Answer)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one outage, step by step")]
async fn postgres_outage_answers_503_then_recovers_without_a_restart() {
    let env = Env::new(Db::Postgres).await;
    let mut url = url::Url::parse(&env.db.url).unwrap();
    let upstream = tokio::net::lookup_host((
        url.host_str().unwrap().to_owned(),
        url.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .find(SocketAddr::is_ipv4)
    .unwrap();
    let proxy = Proxy::start(upstream).await;
    url.set_port(Some(proxy.address.port())).unwrap();
    let mut config = env.config();
    config.database_url = Some(url.to_string().into());
    // The background loops run on their real cadence, so the test sees them survive.
    config.supervision.sweep_interval = Duration::from_millis(200);
    config.supervision.heartbeat_flush_interval = Duration::from_millis(500);
    // Silence is judged on the test's clock, which jumps during the outage.
    config.supervision.heartbeat_ttl = TTL;
    config.supervision.provision_timeout = Duration::from_mins(1);
    config.supervision.provision_timeouts.clear();
    let server = spawn(config).await;

    let (id, token) = registered(&server, "beating").await;
    // A workspace whose agent never comes: its provisioning deadline passes during the
    // outage.
    let waiting = post(&server, "/workspaces", &create_body("waiting"), TOKEN).await;
    assert_eq!(waiting.status, 201, "{waiting:?}");
    let waiting = waiting.body["id"].as_str().unwrap().to_owned();
    let beat = post(
        &server,
        "/registry/heartbeat",
        &beat_body(&id, "before"),
        &token,
    )
    .await;
    assert_eq!(beat.status, 200, "{beat:?}");
    let mut stream = server
        .client
        .get(format!("{}/events/stream", server.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // Creates and heartbeats run flat out; the database goes away under them. Each client
    // stops at its first 503.
    let server = Arc::new(server);
    let cut = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..4 {
        let (server, cut) = (Arc::clone(&server), Arc::clone(&cut));
        clients.spawn(async move {
            let mut burst = Burst::default();
            for n in 0.. {
                let name = format!("burst-{client}-{n}");
                let after_cut = cut.load(Ordering::SeqCst);
                let answer = post(&server, "/workspaces", &create_body(&name), TOKEN).await;
                match answer.status {
                    201 => burst.created.push(name.clone()),
                    503 => burst.refused.push(name.clone()),
                    _ => panic!("create {name}: {answer:?}"),
                }
                if after_cut {
                    assert_eq!(answer.status, 503, "a create begun during the outage");
                }
                let done = answer.status == 503;
                burst.answers.push((name, answer));
                if done {
                    break;
                }
            }
            burst
        });
    }
    for client in 0..2 {
        let (server, token, id, cut) = (
            Arc::clone(&server),
            token.clone(),
            id.clone(),
            Arc::clone(&cut),
        );
        clients.spawn(async move {
            let mut burst = Burst::default();
            for n in 0.. {
                let what = format!("heartbeat {client}-{n}");
                let after_cut = cut.load(Ordering::SeqCst);
                let answer = post(
                    &server,
                    "/registry/heartbeat",
                    &beat_body(&id, &what),
                    &token,
                )
                .await;
                assert!(matches!(answer.status, 200 | 503), "{what}: {answer:?}");
                if after_cut {
                    assert_eq!(answer.status, 503, "a heartbeat begun during the outage");
                }
                let done = answer.status == 503;
                burst.answers.push((what, answer));
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            burst
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.down();
    let down_at = Instant::now();
    // Past the moment the cut's drain ends, every new request meets a database that is away.
    tokio::time::sleep(DRAIN * 2).await;
    cut.store(true, Ordering::SeqCst);
    // While it is away the provisioning deadlines pass (the sweep fails those workspaces
    // once it can), and a create and a heartbeat come in from scratch.
    env.clock.advance(Duration::from_mins(2));
    let (create_during, beat_during) = (create_body("during"), beat_body(&id, "during"));
    let drained = async {
        let mut burst = Burst::default();
        while let Some(done) = clients.join_next().await {
            let done = done.unwrap();
            burst.created.extend(done.created);
            burst.refused.extend(done.refused);
            burst.answers.extend(done.answers);
        }
        burst
    };
    let (mut burst, create, beat) = tokio::time::timeout(ANSWER_WITHIN, async {
        tokio::join!(
            drained,
            post(&server, "/workspaces", &create_during, TOKEN),
            post(&server, "/registry/heartbeat", &beat_during, &token),
        )
    })
    .await
    .expect("every request is answered while the database is away");
    assert_unavailable(&create, "a create during the outage");
    assert_unavailable(&beat, "a heartbeat during the outage");
    let (mut fastest_503, mut slowest_503) =
        (create.took.min(beat.took), create.took.max(beat.took));
    for (what, answer) in &burst.answers {
        if answer.status == 503 {
            assert_unavailable(answer, what);
            fastest_503 = fastest_503.min(answer.took);
            slowest_503 = slowest_503.max(answer.took);
        }
    }
    let refused_beats = burst
        .answers
        .iter()
        .filter(|(what, a)| what.starts_with("heartbeat") && a.status == 503)
        .count();
    assert_eq!(refused_beats, 2, "each heartbeat client ended on a 503");
    assert_eq!(burst.refused.len(), 4, "each create client ended on a 503");
    burst.refused.push("during".to_owned());
    // Long enough that the sweeps' own probe, which waits out the pool's acquire timeout
    // too, has failed at least once: the supervisor knows there was an outage.
    tokio::time::sleep_until((down_at + Duration::from_secs(12)).into()).await;
    let outage = down_at.elapsed();

    proxy.up();
    let mut after = 0;
    let create_back = within("a create", || {
        after += 1;
        let name = format!("after-{after}");
        let server = Arc::clone(&server);
        async move {
            let answer = post(&server, "/workspaces", &create_body(&name), TOKEN).await;
            assert!(matches!(answer.status, 201 | 503), "{answer:?}");
            answer.status == 201
        }
    })
    .await;
    burst.created.push(format!("after-{after}"));

    // The background loops went on through the outage. The provisioning sweep fails the
    // workspace whose deadline passed while the database was away (its pool wait backs
    // off, so it may see the database back a second or two after the requests do).
    let sweep_back = within("the provisioning sweep", || {
        let (url, waiting) = (env.db.url.clone(), waiting.clone());
        async move { column_of(&url, "status", &waiting).await == "failed" }
    })
    .await;
    // The clock moved two minutes while heartbeats were refused, yet the agent is not
    // called offline: it has one TTL from the database's return to beat again. Several
    // sweeps later it is still online, and it beats.
    tokio::time::sleep(TTL / 3).await;
    assert_eq!(column_of(&env.db.url, "status", &id).await, "online");
    let beat_back = within("a heartbeat", || {
        let (server, id, token) = (Arc::clone(&server), id.clone(), token.clone());
        async move {
            let answer = post(
                &server,
                "/registry/heartbeat",
                &beat_body(&id, "after"),
                &token,
            )
            .await;
            assert!(matches!(answer.status, 200 | 503), "{answer:?}");
            answer.status == 200
        }
    })
    .await;
    // The flush writes that beat; the tailer streams what was written since the return
    // to a stream opened before the outage.
    within("the heartbeat flush", || {
        let (url, id) = (env.db.url.clone(), id.clone());
        async move { column_of(&url, "current_task", &id).await == "after" }
    })
    .await;
    let mut seen = String::new();
    sse_until(&mut stream, &mut seen, &format!("after-{after}")).await;

    burst
        .created
        .extend(["beating".to_owned(), "waiting".to_owned()]);
    let rows = workspaces_in(&env.db.url).await;
    assert_whole(&rows, &burst.created, &burst.refused);
    tokio::time::sleep(TTL).await;
    assert_eq!(column_of(&env.db.url, "status", &id).await, "online");
    let mut connection = AnyConnection::connect(&env.db.url).await.unwrap();
    let offline: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_OFFLINE'",
    )
    .bind(&id)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    assert_eq!(
        offline, 0,
        "heartbeats refused during the outage are not silence"
    );
    assert_eq!(rows.len(), burst.created.len(), "{rows:?}");
    eprintln!(
        "postgres outage: {} creates answered 201 and {} 503 around the cut; 503s took \
         {fastest_503:?} to {slowest_503:?}; outage {outage:?}; once back, a create succeeded \
         after {create_back:?}, the sweeps {sweep_back:?} later, a heartbeat \
         answered 200 in {beat_back:?}",
        burst.created.len(),
        burst.refused.len(),
    );
}

/// SQLite: another connection holds the write lock past the busy timeout (5 s). A create
/// answers 503 with `Retry-After` and writes nothing; a heartbeat, which only reads, is
/// accepted and waits in memory; once the lock is released both are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_held_past_the_busy_timeout_answers_503_then_recovers() {
    let env = Env::new(Db::Sqlite).await;
    let server = spawn(env.config()).await;
    let (id, token) = registered(&server, "beating").await;
    sqlx::any::install_default_drivers();
    let mut holder = AnyConnection::connect(&env.db.url).await.unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();

    let (locked_out, while_locked) = (create_body("locked-out"), beat_body(&id, "while locked"));
    let (create, beat) = tokio::join!(
        post(&server, "/workspaces", &locked_out, TOKEN),
        post(&server, "/registry/heartbeat", &while_locked, &token),
    );
    assert_unavailable(&create, "a create while the lock is held");
    assert_eq!(beat.status, 200, "{beat:?}");
    let flushed = server.app.try_flush_heartbeats().await;
    assert!(
        flushed
            .as_ref()
            .is_err_and(hatchery_store::StoreError::is_unavailable),
        "{flushed:?}"
    );

    holder.execute("ROLLBACK").await.unwrap();
    let created = post(&server, "/workspaces", &create_body("after"), TOKEN).await;
    assert_eq!(created.status, 201, "{created:?}");
    server.app.try_flush_heartbeats().await.unwrap();
    assert_eq!(
        column_of(&env.db.url, "current_task", &id).await,
        "while locked"
    );
    let rows = workspaces_in(&env.db.url).await;
    assert_whole(
        &rows,
        &["beating".to_owned(), "after".to_owned()],
        &["locked-out".to_owned()],
    );
    assert_eq!(rows.len(), 2);
    eprintln!(
        "sqlite lock: the create answered 503 after {:?}",
        create.took
    );
}
