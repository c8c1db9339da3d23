//! Two `hatchery serve` replicas on one PostgreSQL, both with the local backend on this
//! machine: creates spread over both end with one agent each; a pause handled by one
//! replica stops an agent the other runs; when one replica is killed with -9, the survivor
//! starts its agents again once their leases run out — still one agent per workspace —
//! and each subscriber of either replica hears every event once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hatchery_testkit::{Db, TestDb};
use serde_json::json;

mod common;

const TOKEN: &str = "replicas-local-admin";
const WORKSPACES: usize = 200;

async fn start(data_dir: &std::path::Path, database_url: &str) -> common::Serve {
    let mut env = common::server_env(data_dir, TOKEN, "local");
    env.extend([
        ("HATCHERY_DATABASE_URL", database_url.to_owned()),
        ("HATCHERY_JOB_LEASE", "2s".to_owned()),
        ("HATCHERY_HEARTBEAT_TTL", "3s".to_owned()),
    ]);
    common::Serve::start(&env).await
}

/// The processes whose command line names `needle`, with their parent's pid.
fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let zombie = status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'));
            let parent = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))?
                .trim()
                .parse()
                .ok()?;
            (!zombie && text.contains(needle)).then_some((parent, text))
        })
        .collect()
}

/// The replicas (by pid) that run a sandbox of workspace `id`: the parent of each
/// sandbox's outer process.
fn runners_of(id: &str, replicas: &[u32]) -> Vec<u32> {
    processes_naming(id)
        .into_iter()
        .map(|(parent, _)| parent)
        .filter(|parent| replicas.contains(parent))
        .collect()
}

/// Wait (bounded) until every workspace is online with exactly one sandbox, run by one of
/// `replicas`.
async fn until_one_agent_each(admin: &common::Admin, ids: &[String], replicas: &[u32]) {
    let deadline = Instant::now() + Duration::from_mins(3);
    loop {
        let (_, list) = admin.call(reqwest::Method::GET, "/workspaces", None).await;
        let online: HashSet<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["status"] == "online")
            .filter_map(|w| w["id"].as_str())
            .collect();
        let pending: Vec<&String> = ids
            .iter()
            .filter(|id| !online.contains(id.as_str()) || runners_of(id, replicas).len() != 1)
            .collect();
        if pending.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} workspaces not online with one agent, e.g. {}: {:?}",
            pending.len(),
            pending[0],
            processes_naming(pending[0])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Collect the `id:` (seq) of every event a replica's stream delivers, until it ends.
fn subscribe(base: &str) -> Arc<Mutex<Vec<i64>>> {
    let seqs = Arc::new(Mutex::new(Vec::new()));
    let (url, collected) = (format!("{base}/events/stream"), Arc::clone(&seqs));
    tokio::spawn(async move {
        let Ok(mut response) = reqwest::Client::new()
            .get(url)
            .bearer_auth(TOKEN)
            .send()
            .await
        else {
            return;
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(seq) = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .and_then(|s| s.trim().parse().ok())
                {
                    collected.lock().unwrap().push(seq);
                }
            }
        }
    });
    seqs
}

fn assert_once(seqs: &[i64], replica: &str) {
    let mut seen = HashSet::new();
    for seq in seqs {
        assert!(seen.insert(*seq), "{replica}: event {seq} delivered twice");
    }
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "{replica}: events out of order"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::too_many_lines, reason = "one story, step by step")]
async fn two_replicas_keep_one_agent_per_workspace_and_the_survivor_adopts_the_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDb::create(Db::Postgres, dir.path()).await;
    let first = start(&dir.path().join("a"), &database.url).await;
    let mut second = start(&dir.path().join("b"), &database.url).await;
    let replicas = [first.child.id(), second.child.id()];
    let first_admin = common::Admin::new(&first.base, TOKEN);
    let heard_first = subscribe(&first.base);
    let heard_second = subscribe(&second.base);

    // Creates spread over both replicas, all at once; either may run any start.
    let mut creating = tokio::task::JoinSet::new();
    for n in 0..WORKSPACES {
        let base = if n % 2 == 0 {
            &first.base
        } else {
            &second.base
        }
        .clone();
        creating.spawn(async move {
            let body = json!({"name": format!("w{n}"), "runtime": "claude-code",
                              "model": "moonshot/kimi-k2.6"});
            common::Admin::new(&base, TOKEN).create(body).await
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = creating.join_next().await {
        ids.push(id.unwrap());
    }
    until_one_agent_each(&first_admin, &ids, &replicas).await;
    let by_runner: HashMap<u32, usize> = ids.iter().fold(HashMap::new(), |mut counts, id| {
        *counts.entry(runners_of(id, &replicas)[0]).or_default() += 1;
        counts
    });
    assert_eq!(
        by_runner.len(),
        2,
        "both replicas run agents: {by_runner:?}"
    );

    // A pause handled by the first replica stops an agent the second runs.
    let theirs = ids
        .iter()
        .find(|id| runners_of(id, &replicas) == [second.child.id()])
        .unwrap()
        .clone();
    let (status, body) = first_admin
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{theirs}/pause"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !runners_of(&theirs, &replicas).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the other replica's agent still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = first_admin
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{theirs}/resume"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    until_one_agent_each(&first_admin, &ids, &replicas).await;

    // The second replica dies without a word; its sandboxes die with it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard_before_death = heard_second.lock().unwrap().clone();
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    // Once their leases run out, the survivor runs every agent: one each.
    until_one_agent_each(&first_admin, &ids, &[first.child.id()]).await;

    assert_once(&heard_first.lock().unwrap(), "first");
    assert_once(&heard_before_death, "second");
    assert!(
        !heard_first.lock().unwrap().is_empty() && !heard_before_death.is_empty(),
        "both subscribers heard events"
    );
}
