//! `hatchery ws …`: one workspace or all of them.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use hatchery_api::delegations::DelegationView;
use hatchery_api::events::EventView;
use hatchery_api::workspaces::{
    CreateAnswer, CreateWorkspace, DeleteAnswer, PauseAnswer, RestartAnswer, ResumeAnswer,
    WorkspaceCommon, WorkspaceFull, WorkspaceSingle,
};
use hatchery_core::WorkspaceStatus;

use super::chat::{Chat, converse};
use super::watch::{Next, Progress, Standing, Stream};
use super::{Client, Connection, Failure, decode, finish, or_dash, segment};
use crate::output::{Table, out};

#[derive(Debug, Subcommand)]
pub enum WsCommand {
    /// List the workspaces.
    List,
    /// Show one workspace.
    Get {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
    },
    /// Create a workspace; the provider is derived (or the refusal explained).
    Create {
        /// Display name: at most 255 bytes, none of `{ } [ ] | > * & !`; need not be unique.
        #[arg(long)]
        name: String,
        /// The runtime (claude-code, hermes, codex, …).
        #[arg(long)]
        runtime: Option<String>,
        /// Model id, passed verbatim (e.g. claude-sonnet-4-5, moonshot/kimi-k2.6); the
        /// provider is derived from it and the runtime.
        #[arg(long)]
        model: Option<String>,
        /// The provider, when the model alone is ambiguous.
        #[arg(long)]
        provider: Option<String>,
        /// The parent workspace's id; the new one is created under it.
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
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
        /// Delete its sub-workspaces too.
        #[arg(long)]
        confirm: bool,
    },
    /// Restart a workspace's agent.
    Restart {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
    },
    /// Pause a workspace (its agent is stopped; it keeps its configuration).
    Pause {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
    },
    /// Resume a paused workspace.
    Resume {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
    },
    /// Print a workspace's agent log.
    Logs {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
        /// Keep printing what the agent logs, until interrupted.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Talk to a workspace's agent, as the operator: one message, or (without MESSAGE) a
    /// conversation, a message per line of input.
    Chat {
        /// The workspace's id (`hatchery ws list` shows it).
        id: String,
        /// What to say; read line by line from standard input when omitted.
        message: Option<String>,
        /// Show the answer as it is produced (`message/stream`).
        #[arg(long)]
        stream: bool,
        /// Continue this conversation (an agent's `contextId`) instead of starting one.
        #[arg(long)]
        context: Option<String>,
    },
    /// List the tasks a workspace handed to its peers (its delegations), newest first.
    Delegations {
        /// The delegating workspace's id (`hatchery ws list` shows it).
        id: String,
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
    let (value, answer) = match command {
        WsCommand::List => (
            client.call(Method::GET, "/workspaces", None)?.1,
            Answer::Workspaces,
        ),
        WsCommand::Get { id } => (
            client
                .call(Method::GET, &format!("/workspaces/{}", segment(&id)), None)?
                .1,
            Answer::Workspace,
        ),
        WsCommand::Create {
            name,
            runtime,
            model,
            provider,
            parent,
            wait,
            timeout,
        } => {
            let body = CreateWorkspace {
                name: Some(name),
                runtime,
                model,
                parent_id: parent,
                provider,
                ..CreateWorkspace::default()
            };
            if wait {
                return create_and_wait(client, &body, timeout);
            }
            (
                client.send(Method::POST, "/workspaces", &body)?.1,
                Answer::Created,
            )
        }
        WsCommand::Delete { id, confirm } => {
            let path = format!(
                "/workspaces/{}{}",
                segment(&id),
                if confirm { "?confirm=true" } else { "" }
            );
            (client.call(Method::DELETE, &path, None)?.1, Answer::Deleted)
        }
        WsCommand::Restart { id } => (action(client, &id, "restart")?, Answer::Restarted),
        WsCommand::Pause { id } => (action(client, &id, "pause")?, Answer::Paused),
        WsCommand::Resume { id } => (action(client, &id, "resume")?, Answer::Resumed),
        WsCommand::Logs { id, follow, tail } => return logs(client, &id, follow, tail),
        WsCommand::Events { id, follow } => return events(client, id.as_deref(), follow),
        WsCommand::Delegations { id } => (
            client
                .call(
                    Method::GET,
                    &format!("/workspaces/{}/delegations", segment(&id)),
                    None,
                )?
                .1,
            Answer::Delegations,
        ),
        WsCommand::Chat {
            id,
            message,
            stream,
            context,
        } => {
            let mut chat = Chat::new(client, &id, stream, context);
            return match message {
                Some(message) => chat.say(&message),
                None => converse(&mut chat),
            };
        }
    };
    if client.json {
        out(value);
        Ok(())
    } else {
        print_answer(answer, &value)
    }
}

/// An answer for people: workspaces as a table, a short answer as `key: value` pairs in
/// the order of their names.
fn print_answer(answer: Answer, value: &Value) -> Result<(), Failure> {
    let rows = match answer {
        Answer::Workspaces => decode::<Vec<WorkspaceFull>>(value)?
            .iter()
            .map(|w| Row::of(&w.common))
            .collect(),
        Answer::Workspace => vec![Row::of(&decode::<WorkspaceSingle>(value)?.common)],
        Answer::Created => vec![Row::created(&decode(value)?)],
        Answer::Delegations => {
            print_delegations(&decode::<Vec<DelegationView>>(value)?);
            return Ok(());
        }
        Answer::Deleted => {
            let DeleteAnswer {
                status,
                cascade_deleted,
            } = decode(value)?;
            out(format_args!(
                "cascade_deleted: {cascade_deleted}, status: {status}"
            ));
            return Ok(());
        }
        Answer::Restarted => {
            let RestartAnswer {
                status,
                config_dir,
                reset_session,
            } = decode(value)?;
            out(format_args!(
                "config_dir: {config_dir}, reset_session: {reset_session}, status: {status}"
            ));
            return Ok(());
        }
        Answer::Paused => {
            let PauseAnswer {
                status,
                paused_count,
            } = decode(value)?;
            out(format_args!(
                "paused_count: {paused_count}, status: {status}"
            ));
            return Ok(());
        }
        Answer::Resumed => {
            let ResumeAnswer {
                status,
                resumed_count,
            } = decode(value)?;
            out(format_args!(
                "resumed_count: {resumed_count}, status: {status}"
            ));
            return Ok(());
        }
    };
    print_workspaces(&rows);
    Ok(())
}

/// Which answer a command expects.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Workspaces,
    Workspace,
    Created,
    Deleted,
    Restarted,
    Paused,
    Resumed,
    Delegations,
}

/// The columns people want of a workspace; `-` where the answer has none.
struct Row {
    id: String,
    name: Option<String>,
    status: WorkspaceStatus,
    runtime: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    billing: Option<String>,
}

impl Row {
    fn of(workspace: &WorkspaceCommon) -> Self {
        Self {
            id: workspace.brief.id.clone(),
            name: Some(workspace.brief.name.clone()),
            status: workspace.brief.status,
            runtime: Some(workspace.runtime.clone()),
            model: Some(workspace.model.clone()),
            provider: workspace.provider.clone(),
            billing: workspace.llm_billing_mode.clone(),
        }
    }

    /// A create's answer: it names neither the workspace nor its runtime and model.
    fn created(answer: &CreateAnswer) -> Self {
        Self {
            id: answer.id.clone(),
            name: None,
            status: answer.status,
            runtime: None,
            model: None,
            provider: answer.provider.clone(),
            billing: answer.llm_billing_mode.clone(),
        }
    }
}

fn print_workspaces(rows: &[Row]) {
    let mut table = Table::new(vec![
        "ID", "NAME", "STATUS", "RUNTIME", "MODEL", "PROVIDER", "BILLING",
    ]);
    for row in rows {
        table.row(vec![
            row.id.clone(),
            or_dash(row.name.as_deref()),
            row.status.to_string(),
            or_dash(row.runtime.as_deref()),
            or_dash(row.model.as_deref()),
            or_dash(row.provider.as_deref()),
            or_dash(row.billing.as_deref()),
        ]);
    }
    out(table.render());
}

/// Delegations as a table: what a person asks of them (to whom, how far, since when, and
/// the one-line summary, which carries the answer's beginning).
fn print_delegations(delegations: &[DelegationView]) {
    let mut table = Table::new(vec!["ID", "TARGET", "STATUS", "UPDATED", "SUMMARY"]);
    for delegation in delegations {
        let summary = match &delegation.error {
            Some(error) => format!("{}: {error}", delegation.summary),
            None => delegation.summary.clone(),
        };
        table.row(vec![
            delegation.delegation_id.clone(),
            delegation.target_id.clone(),
            delegation.status.to_string(),
            delegation.updated_at.clone(),
            one_line(&summary, 100),
        ]);
    }
    out(table.render());
}

/// `text` on one line, at most `limit` characters (`…` when cut).
fn one_line(text: &str, limit: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

fn action(client: &Client, id: &str, verb: &str) -> Result<Value, Failure> {
    let path = format!("/workspaces/{}/{verb}", segment(id));
    Ok(client.call(Method::POST, &path, Some(&json!({})))?.1)
}

/// Create, then follow the event stream until the workspace is online or failed. The
/// stream is opened first, so not even an agent faster than the create's answer is missed.
fn create_and_wait(
    client: &Client,
    body: &CreateWorkspace,
    timeout: Duration,
) -> Result<(), Failure> {
    let stream = Stream::open(client, "/events/stream")?;
    let created: CreateAnswer = decode(&client.send(Method::POST, "/workspaces", body)?.1)?;
    let mut progress = Progress::new(client.json);
    progress.follow(
        &created.id,
        body.name.as_deref().unwrap_or_default(),
        Standing::of(Some(created.status), None),
    );
    let outcome = progress.run(client, &stream, timeout);
    if client.json {
        let id = segment(&created.id);
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
    let listed: Vec<EventView> = decode(&client.call(Method::GET, &list_path, None)?.1)?;
    let mut newest = 0;
    for event in listed.iter().rev() {
        newest = newest.max(event.seq);
        print_event(
            client.json,
            &event.created_at,
            &event.event_type,
            event.workspace_id.as_deref(),
            &event.payload,
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
                &humantime::format_rfc3339_millis(at).to_string(),
                &event.kind,
                event.workspace_id.as_deref(),
                &event.data,
            );
        }
    }
}

fn print_event(json: bool, at: &str, kind: &str, workspace: Option<&str>, payload: &Value) {
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
        "{at}  {kind:<28} {:<36} {payload}",
        or_dash(workspace)
    ));
}
