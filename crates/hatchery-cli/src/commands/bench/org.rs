//! `hatchery bench org-import`: plan and import a generated org tree through the API of
//! an in-process server on a fresh SQLite data directory. Baseline, measured in the same
//! run: one single-workspace create.

use std::time::{Duration, Instant};

use clap::Args;
use hatchery_api::org::ImportBody;
use serde_json::{Value, json};

use super::harness::{BenchServer, TOKEN, client, millis, percentile};
use crate::output::{err, out};

#[derive(Debug, Args)]
pub struct OrgImportArgs {
    /// Workspaces in the generated tree (10 roots, each with children and grandchildren).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Timed runs of each measure.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// A tree of `count` nodes: up to 10 roots, each with up to 9 children, the rest as
/// grandchildren spread over the children.
fn tree(count: usize) -> Value {
    let roots = count.min(10);
    let children = count.saturating_sub(roots).min(roots * 9);
    let grandchildren = count - roots - children;
    // children[r]: how many children root r has; grandchildren[k]: of child k.
    let per_root: Vec<usize> = (0..roots)
        .map(|r| children / roots + usize::from(r < children % roots))
        .collect();
    let per_child: Vec<usize> = (0..children)
        .map(|k| grandchildren / children.max(1) + usize::from(k < grandchildren % children.max(1)))
        .collect();
    let mut child_index = 0;
    let workspaces: Vec<Value> = per_root
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            let kids: Vec<Value> = (0..n)
                .map(|c| {
                    let grand = per_child.get(child_index).copied().unwrap_or(0);
                    child_index += 1;
                    let grands: Vec<Value> = (0..grand)
                        .map(|g| json!({"name": format!("grandchild {r}.{c}.{g}")}))
                        .collect();
                    json!({"name": format!("child {r}.{c}"), "children": grands})
                })
                .collect();
            json!({"name": format!("root {r}"), "children": kids})
        })
        .collect();
    json!({
        "name": "bench",
        "defaults": {"runtime": "claude-code", "model": "moonshot/kimi-k2.6"},
        "workspaces": workspaces,
    })
}

/// How many workspaces `template` holds, read as the server reads it.
fn count(template: &Value) -> anyhow::Result<usize> {
    Ok(hatchery_core::org::decode(template.clone())?.node_count())
}

pub async fn bench_org_import(args: OrgImportArgs) -> anyhow::Result<()> {
    let server = BenchServer::start(None).await?;
    let client = client(4)?;
    let template = tree(args.nodes);
    let nodes = count(&template)?;
    let import_body = serde_json::to_value(ImportBody {
        template: Some(template),
        ..ImportBody::default()
    })?;
    let post = |path: &str, body: Value| {
        let request = client
            .post(format!("{}{path}", server.base))
            .bearer_auth(TOKEN)
            .json(&body);
        async move {
            let started = Instant::now();
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            anyhow::ensure!(status.is_success(), "{status}: {text}");
            Ok::<_, anyhow::Error>(started.elapsed())
        }
    };
    err(format_args!(
        "bench: {} single creates (baseline), {} dry runs and {} imports of {nodes} workspaces …",
        args.runs, args.runs, args.runs
    ));
    let mut single = Vec::new();
    let mut dry = Vec::new();
    let mut import = Vec::new();
    for run in 0..args.runs {
        let body = json!({"name": format!("single {run}"), "runtime": "claude-code", "model": "moonshot/kimi-k2.6"});
        single.push(post("/workspaces", body).await?);
        dry.push(post("/org/import?dry_run=true", import_body.clone()).await?);
        import.push(post("/org/import?duplicate=true", import_body.clone()).await?);
    }
    for list in [&mut single, &mut dry, &mut import] {
        list.sort_unstable();
    }
    out("| measure | p50 | max | ratio to one create (p50) |\n|---|---|---|---|");
    let base = percentile(&single, 0.5).as_secs_f64().max(1e-9);
    for (name, list) in [
        ("one create (baseline)", &single),
        ("dry run (plan) of the tree", &dry),
        ("import of the tree (plan + one transaction)", &import),
    ] {
        let p50: Duration = percentile(list, 0.5);
        out(format_args!(
            "| {name} | {:.1} ms | {:.1} ms | {:.0}× |",
            millis(p50),
            millis(list.last().copied().unwrap_or_default()),
            p50.as_secs_f64() / base
        ));
    }
    out(format_args!(
        "\n{nodes} workspaces per tree; per workspace, the import costs {:.2}× one create",
        percentile(&import, 0.5).as_secs_f64()
            / base
            / f64::from(u32::try_from(nodes).unwrap_or(u32::MAX))
    ));
    server.stop().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_the_asked_size() {
        for n in [1, 10, 11, 100, 1000] {
            assert_eq!(count(&tree(n)).ok(), Some(n), "{n}");
        }
    }
}
