//! `hatchery bench heartbeats`: heartbeats from many registered workspaces, beating in
//! turn; `GET /health` is the baseline.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::harness::{BenchServer, client};
use super::load::{BenchArgs, ensure_no_errors, health_scenario, print_table, scenario};
use crate::output::err;

#[derive(Debug, Args)]
pub struct HeartbeatArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Registered workspaces beating in turn.
    #[arg(long, default_value_t = 5000)]
    workspaces: usize,
}

pub async fn bench_heartbeats(args: HeartbeatArgs) -> anyhow::Result<()> {
    let common = args.common;
    let server = BenchServer::start(common.data_dir.clone()).await?;
    let base = server.base.clone();
    let client = client(common.connections)?;
    err(format_args!(
        "bench: creating and registering {} workspaces …",
        args.workspaces
    ));
    let started = Instant::now();
    let mut agents = Vec::with_capacity(args.workspaces);
    for i in 0..args.workspaces {
        let id = server
            .create(&client, json!({"name": format!("agent-{i}")}))
            .await?;
        let token = server.token(&client, &id).await?;
        agents.push((id, token));
    }
    // One beat each first: out of `provisioning`, so the measured beats change no status.
    for (id, token) in &agents {
        client
            .post(format!("{base}/registry/heartbeat"))
            .bearer_auth(token)
            .json(&json!({"workspace_id": id}))
            .send()
            .await?
            .error_for_status()?;
    }
    err(format_args!(
        "bench: {} workspaces ready in {:.1} s; {} connections, {} per scenario",
        args.workspaces,
        started.elapsed().as_secs_f64(),
        common.connections,
        humantime::format_duration(common.duration)
    ));
    let health = health_scenario(&client, &common, &base).await;
    let agents = Arc::new(agents);
    let beats = scenario("POST /registry/heartbeat", &client, &common, {
        let url = format!("{base}/registry/heartbeat");
        let agents = Arc::clone(&agents);
        move |client: &reqwest::Client, n: usize| {
            let (id, token) = &agents[n % agents.len()];
            client.post(&url).bearer_auth(token).json(&json!({
                "workspace_id": id,
                "error_rate": 0.0,
                "active_tasks": n % 3,
                "uptime_seconds": n,
                "current_task": "",
            }))
        }
    })
    .await;
    print_table(&health, &[&health, &beats]);
    server.stop().await?;
    ensure_no_errors(&[&health, &beats])
}
