//! `hatchery ws …`: one workspace or all of them.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::watch::{Next, Progress, Stream};
use super::{Client, Connection, Failure, finish, segment, text};
use crate::output::{Table, out};

#[derive(Debug, Subcommand)]
pub enum WsCommand {
    /// List the workspaces.
    List,
    /// Show one workspace.
    Get {
        /// Its id.
        id: String,
    },
    /// Create a workspace; the provider is derived (or the refusal explained).
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// The runtime (claude-code, hermes, codex, …).
        #[arg(long)]
        runtime: Option<String>,
        /// The model.
        #[arg(long)]
        model: Option<String>,
        /// The provider, when the model alone is ambiguous.
        #[arg(long)]
        provider: Option<String>,
        /// The parent workspace.
        #[arg(long)]
        parent: Option<String>,
        /// Wait until it is online (or failed), showing its progress.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Delete a workspace (and, with --confirm, its sub-workspaces).
    Delete {
        /// Its id.
        id: String,
        /// Delete its sub-workspaces too.
        #[arg(long)]
        confirm: bool,
    },
    /// Restart a workspace's agent.
    Restart {
        /// Its id.
        id: String,
    },
    /// Pause a workspace (its agent is stopped; it keeps its configuration).
    Pause {
        /// Its id.
        id: String,
    },
    /// Resume a paused workspace.
    Resume {
        /// Its id.
        id: String,
    },
    /// Print a workspace's agent log.
    Logs {
        /// Its id.
        id: String,
        /// Keep printing what the agent logs, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Print events: a workspace's, or every workspace's.
    Events {
        /// A workspace id; every workspace's events when omitted.
        id: Option<String>,
        /// Keep printing events as they happen, until interrupted.
        #[arg(short, long)]
        follow: bool,
    },
}

pub fn run_ws(connection: &Connection, command: WsCommand) -> ExitCode {
    finish(connection.client().and_then(|client| ws(&client, command)))
}

fn ws(client: &Client, command: WsCommand) -> Result<(), Failure> {
    let value = match command {
        WsCommand::List => client.call(Method::GET, "/workspaces", None)?.1,
        WsCommand::Get { id } => {
            client
                .call(Method::GET, &format!("/workspaces/{}", segment(&id)), None)?
                .1
        }
        WsCommand::Create {
            name,
            runtime,
            model,
            provider,
            parent,
            wait,
            timeout,
        } => {
            let mut body =
                json!({"name": name, "runtime": runtime, "model": model, "parent_id": parent});
            if let Some(provider) = provider {
                body["provider"] = json!(provider);
            }
            if wait {
                return create_and_wait(client, &body, timeout);
            }
            client.call(Method::POST, "/workspaces", Some(&body))?.1
        }
        WsCommand::Delete { id, confirm } => {
            let path = format!(
                "/workspaces/{}{}",
                segment(&id),
                if confirm { "?confirm=true" } else { "" }
            );
            client.call(Method::DELETE, &path, None)?.1
        }
        WsCommand::Restart { id } => action(client, &id, "restart")?,
        WsCommand::Pause { id } => action(client, &id, "pause")?,
        WsCommand::Resume { id } => action(client, &id, "resume")?,
        WsCommand::Logs { id, follow, tail } => return logs(client, &id, follow, tail),
        WsCommand::Events { id, follow } => return events(client, id.as_deref(), follow),
    };
    if client.json {
        out(value);
    } else {
        print_workspaces(&value);
    }
    Ok(())
}

/// The columns people want of a workspace.
fn print_workspaces(value: &Value) {
    let rows: Vec<&Value> = match value {
        Value::Array(list) => list.iter().collect(),
        one if one.get("id").is_some() => vec![one],
        other => {
            out(describe(other));
            return;
        }
    };
    let mut table = Table::new(vec![
        "ID", "NAME", "STATUS", "RUNTIME", "MODEL", "PROVIDER", "BILLING",
    ]);
    for row in rows {
        table.row(
            [
                "id",
                "name",
                "status",
                "runtime",
                "model",
                "provider",
                "llm_billing_mode",
            ]
            .iter()
            .map(|key| text(&row[*key]))
            .collect(),
        );
    }
    out(table.render());
}

/// A short answer (`{"status": "paused", "paused_count": 2}`) as `status: paused,
/// paused_count: 2`.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| format!("{key}: {}", text(value)))
            .collect::<Vec<_>>()
            .join(", "),
        other => text(other),
    }
}

fn action(client: &Client, id: &str, verb: &str) -> Result<Value, Failure> {
    let path = format!("/workspaces/{}/{verb}", segment(id));
    Ok(client.call(Method::POST, &path, Some(&json!({})))?.1)
}

/// Create, then follow the event stream until the workspace is online or failed. The
/// stream is opened first, so not even an agent faster than the create's answer is missed.
fn create_and_wait(client: &Client, body: &Value, timeout: Duration) -> Result<(), Failure> {
    let stream = Stream::open(client, "/events/stream")?;
    let (_, mut created) = client.call(Method::POST, "/workspaces", Some(body))?;
    if created["name"].is_null() {
        created["name"] = body["name"].clone();
    }
    let mut progress = Progress::new(client.json);
    progress.watch(&created);
    let outcome = progress.run(client, &stream, timeout);
    if client.json {
        let id = segment(&text(&created["id"]));
        let (_, now) = client.call(Method::GET, &format!("/workspaces/{id}"), None)?;
        out(now);
    }
    outcome.finish(client.json, timeout)
}

/// The log's last `tail` lines, then (with `follow`) what comes, as it comes.
fn logs(client: &Client, id: &str, follow: bool, tail: usize) -> Result<(), Failure> {
    let path = format!(
        "/workspaces/{}/logs?tail={tail}{}",
        segment(id),
        if follow { "&follow=true" } else { "" }
    );
    let mut response = client.open(&path)?;
    let mut stdout = std::io::stdout().lock();
    let mut buffer = [0u8; 8192];
    loop {
        match response.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                // A closed pipe (`… | head`) ends the command quietly.
                if stdout
                    .write_all(&buffer[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return Ok(());
                }
            }
            Err(e) => {
                crate::output::err(format_args!("error: the log stream broke: {e}"));
                return Err(Failure {
                    code: crate::exit::SERVER_ERROR,
                });
            }
        }
    }
}

/// The newest events (oldest first, as a log reads), then (with `follow`) new ones.
fn events(client: &Client, id: Option<&str>, follow: bool) -> Result<(), Failure> {
    let (list_path, stream_path) = match id {
        Some(id) => (
            format!("/events/{}", segment(id)),
            format!("/workspaces/{}/events/stream", segment(id)),
        ),
        None => ("/events".to_owned(), "/events/stream".to_owned()),
    };
    // Opened before the listing, so an event between the two is not lost; one in both is
    // printed once (by its seq).
    let stream = follow
        .then(|| Stream::open(client, &stream_path))
        .transpose()?;
    let (_, listed) = client.call(Method::GET, &list_path, None)?;
    let mut newest = 0;
    for event in listed.as_array().into_iter().flatten().rev() {
        newest = newest.max(event["seq"].as_i64().unwrap_or(0));
        print_event(
            client.json,
            &event["created_at"],
            &event["event_type"],
            &event["workspace_id"],
            &event["payload"],
        );
    }
    let Some(stream) = stream else {
        return Ok(());
    };
    loop {
        if let Next::Event(event) = stream.next(Duration::from_hours(1))? {
            if event.seq.is_some_and(|seq| seq <= newest) {
                continue;
            }
            let at = event.at_ms.map_or_else(std::time::SystemTime::now, |ms| {
                std::time::UNIX_EPOCH + Duration::from_millis(ms)
            });
            print_event(
                client.json,
                &json!(humantime::format_rfc3339_millis(at).to_string()),
                &json!(event.kind),
                &json!(event.workspace_id),
                &event.data,
            );
        }
    }
}

fn print_event(json: bool, at: &Value, kind: &Value, workspace: &Value, payload: &Value) {
    if json {
        out(
            json!({"created_at": at, "event_type": kind, "workspace_id": workspace, "payload": payload}),
        );
        return;
    }
    let payload = match payload {
        Value::Object(fields) if fields.is_empty() => String::new(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    out(format_args!(
        "{}  {:<28} {:<36} {payload}",
        text(at),
        text(kind),
        text(workspace)
    ));
}
