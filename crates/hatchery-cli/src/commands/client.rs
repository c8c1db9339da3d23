//! The operator client: `hatchery ws …` and `hatchery org import …` against a running
//! control plane (`--url`/`HATCHERY_URL`, `--token`/`HATCHERY_TOKEN`). Tables for people,
//! `--json` for scripts. Exit codes: 0 ok, 1 the server refused (4xx: the input), 2 the
//! server failed or could not be reached.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::exit;
use crate::output::{Table, err, out};

/// Where the control plane is, and the admin token.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The control plane's URL.
    #[arg(
        long,
        env = "HATCHERY_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// The admin token.
    #[arg(long, env = "HATCHERY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

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
        /// The parent workspace.
        #[arg(long)]
        parent: Option<String>,
    },
    /// Delete a workspace (and, with --confirm, its sub-workspaces).
    Delete {
        /// Its id.
        id: String,
        /// Delete its sub-workspaces too.
        #[arg(long)]
        confirm: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Import an org template (a YAML file): the whole team, in one transaction.
    Import {
        /// The template file.
        file: PathBuf,
        /// Show the plan; create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refuse the whole import if any node has a problem.
        #[arg(long)]
        strict: bool,
        /// Import even when required environment variables are not global secrets.
        #[arg(long)]
        force: bool,
        /// Replace an earlier import of the same org.
        #[arg(long, conflicts_with = "duplicate")]
        replace: bool,
        /// Import a second copy of the same org.
        #[arg(long)]
        duplicate: bool,
    },
}

/// A failed call, with its exit code.
struct Failure {
    code: u8,
}

impl Connection {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Failure> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_mins(1))
            .build()
            .map_err(|e| transport(&e))?;
        let mut request =
            client.request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|e| transport(&e))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            refusal(status, &value);
            return Err(Failure {
                code: if status >= 500 {
                    exit::SERVER_ERROR
                } else {
                    exit::USER_ERROR
                },
            });
        }
        Ok((status, value))
    }
}

fn transport(error: &reqwest::Error) -> Failure {
    err(format_args!(
        "error: cannot reach the control plane: {error}"
    ));
    Failure {
        code: exit::SERVER_ERROR,
    }
}

/// The server's refusal, its code, and what to do about it.
fn refusal(status: u16, body: &Value) {
    let message = body["error"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_owned);
    let code = body["code"].as_str().unwrap_or("");
    err(format_args!(
        "error: {message} (HTTP {status}{}{code})",
        if code.is_empty() { "" } else { ", " }
    ));
    if let Some(detail) = body["detail"].as_str().filter(|d| !d.is_empty()) {
        err(format_args!("  {detail}"));
    }
    let hint = match code {
        "provider_derivation_failed" => Some(format!(
            "hint: the model matches several providers{}: name one with \"provider\", or pick a model id of one of them (hatchery providers explain)",
            body["candidates"]
                .as_array()
                .map(|c| format!(
                    " ({})",
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        )),
        "byok_key_missing" => Some(
            "hint: set the provider's key as a secret of the workspace or a global secret"
                .to_owned(),
        ),
        "platform_key_missing" => {
            Some("hint: start the server with HATCHERY_PLATFORM_KEY".to_owned())
        }
        "admin_auth_required" | "invalid_admin_token" => {
            Some("hint: pass --token or set HATCHERY_TOKEN".to_owned())
        }
        "org_already_imported" => {
            Some("hint: --replace to replace it, or --duplicate for a second copy".to_owned())
        }
        "missing_required_env" => Some("hint: set them as global secrets, or --force".to_owned()),
        _ => None,
    };
    if let Some(hint) = hint {
        err(hint);
    }
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.code),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn run_ws(connection: &Connection, command: WsCommand) -> ExitCode {
    finish(ws(connection, command))
}

fn ws(connection: &Connection, command: WsCommand) -> Result<(), Failure> {
    use reqwest::Method;
    let (_, value) = match command {
        WsCommand::List => connection.call(Method::GET, "/workspaces", None)?,
        WsCommand::Get { id } => {
            connection.call(Method::GET, &format!("/workspaces/{id}"), None)?
        }
        WsCommand::Create {
            name,
            runtime,
            model,
            parent,
        } => {
            let body =
                json!({"name": name, "runtime": runtime, "model": model, "parent_id": parent});
            connection.call(Method::POST, "/workspaces", Some(body))?
        }
        WsCommand::Delete { id, confirm } => {
            let path = format!(
                "/workspaces/{id}{}",
                if confirm { "?confirm=true" } else { "" }
            );
            connection.call(Method::DELETE, &path, None)?
        }
    };
    if connection.json {
        out(value);
        return Ok(());
    }
    let rows: Vec<&Value> = match &value {
        Value::Array(list) => list.iter().collect(),
        one if one.get("id").is_some() => vec![one],
        other => {
            out(text(other));
            return Ok(());
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
    Ok(())
}

pub fn run_org(connection: &Connection, command: OrgCommand) -> ExitCode {
    finish(org(connection, command))
}

fn org(connection: &Connection, command: OrgCommand) -> Result<(), Failure> {
    let OrgCommand::Import {
        file,
        dry_run,
        strict,
        force,
        replace,
        duplicate,
    } = command;
    let template = std::fs::read_to_string(&file).map_err(|e| {
        err(format_args!("error: cannot read {}: {e}", file.display()));
        Failure {
            code: exit::USER_ERROR,
        }
    })?;
    let flags: Vec<&str> = [
        (dry_run, "dry_run=true"),
        (strict, "strict=true"),
        (replace, "replace=true"),
        (duplicate, "duplicate=true"),
    ]
    .iter()
    .filter_map(|(on, flag)| on.then_some(*flag))
    .collect();
    let query = if flags.is_empty() {
        String::new()
    } else {
        format!("?{}", flags.join("&"))
    };
    let body = json!({"template": template, "force": force});
    let (status, value) = connection.call(
        reqwest::Method::POST,
        &format!("/org/import{query}"),
        Some(body),
    )?;
    if connection.json {
        out(value);
        return Ok(());
    }
    if dry_run {
        let mut table = Table::new(vec![
            "PATH", "NAME", "RUNTIME", "MODEL", "PROVIDER", "BILLING", "PROBLEMS",
        ]);
        for node in value["nodes"].as_array().into_iter().flatten() {
            let problems = node["problems"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            table.row(vec![
                text(&node["path"]),
                text(&node["name"]),
                text(&node["runtime"]),
                text(&node["model"]),
                text(&node["provider"]),
                text(&node["billing"]),
                if problems.is_empty() {
                    "-".to_owned()
                } else {
                    problems
                },
            ]);
        }
        out(table.render());
        for missing in value["missing_env"].as_array().into_iter().flatten() {
            out(format_args!("missing environment: {}", text(missing)));
        }
        let ok = value["ok"] == true;
        out(if ok {
            "plan: every workspace can be created"
        } else {
            "plan: some workspaces cannot be created as they are"
        });
        return Ok(());
    }
    let mut table = Table::new(vec!["ID", "NAME", "STATUS", "ERROR"]);
    for node in value["workspaces"].as_array().into_iter().flatten() {
        table.row(vec![
            text(&node["id"]),
            text(&node["name"]),
            text(&node["status"]),
            text(&node["error"]),
        ]);
    }
    out(table.render());
    out(format_args!(
        "{}: {} workspace(s){}",
        text(&value["org"]),
        text(&value["count"]),
        if status == 207 {
            ", some failed (see ERROR)"
        } else {
            ""
        }
    ));
    Ok(())
}
