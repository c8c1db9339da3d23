//! `hatchery bench api`: create and read workspaces through the API; `GET /health` is the
//! baseline.

use serde_json::json;

use super::harness::{BenchServer, TOKEN, client};
use super::load::{BenchArgs, ensure_no_errors, health_scenario, print_table, scenario};
use crate::output::err;

pub async fn bench_api(args: BenchArgs) -> anyhow::Result<()> {
    let server = BenchServer::start(args.data_dir.clone()).await?;
    let base = server.base.clone();
    let client = client(args.connections)?;
    err(format_args!(
        "bench: {} connections, {} per scenario, SQLite in a fresh data dir",
        args.connections,
        humantime::format_duration(args.duration)
    ));
    let health = health_scenario(&client, &args, &base).await;
    // A platform-billed model: the full derivation, billing and config path.
    let create = scenario("POST /workspaces", &client, &args, {
        let url = format!("{base}/workspaces");
        let body = json!({"name": "bench", "runtime": "hermes", "model": "moonshot/kimi-k2.6"});
        move |client: &reqwest::Client, _| client.post(&url).bearer_auth(TOKEN).json(&body)
    })
    .await;
    let id = server
        .create(
            &client,
            json!({"name": "read-me", "runtime": "hermes", "model": "moonshot/kimi-k2.6"}),
        )
        .await?;
    let read = scenario("GET /workspaces/:id", &client, &args, {
        let url = format!("{base}/workspaces/{id}");
        move |client: &reqwest::Client, _| client.get(&url).bearer_auth(TOKEN)
    })
    .await;
    print_table(&health, &[&health, &create, &read]);
    server.stop().await?;
    ensure_no_errors(&[&health, &create, &read])
}
