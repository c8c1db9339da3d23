//! The operator client: `hatchery ws …`, `org …`, `secrets set|list|delete`, `providers
//! explain` and `login` against a running control plane. Tables for people, `--json` for
//! scripts. Exit codes: 0 ok, 1 the server refused (4xx: the input), 2 the server failed
//! or could not be reached.

mod chat;
mod config;
mod explain;
mod org;
mod secrets;
mod watch;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hatchery_api::ErrorBody;
use hatchery_api::errors::AmbiguousProvider;
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

pub use config::{LoginArgs, run_login, run_logout};
pub use explain::run_explain;
pub use org::{OrgCommand, run_org};
pub use secrets::{Scope, SecretsAction, run_secrets};
pub use ws::{WsCommand, run_ws};

use crate::exit;
use crate::output::err;

/// The control plane's address when neither a flag, the environment nor `hatchery login`
/// gave one.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// How long one request may take (streams excepted).
const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);

/// Where the control plane is, and the admin token: flags, else the environment, else the
/// file `hatchery login` wrote.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The control plane's URL [default: the one `hatchery login` saved, else
    /// `http://127.0.0.1:8080`].
    #[arg(long, env = "HATCHERY_URL", global = true)]
    url: Option<String>,
    /// The admin token [default: the one `hatchery login` saved for that URL].
    #[arg(long, env = "HATCHERY_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// A failed command, with its exit code (its message is already printed).
pub(crate) struct Failure {
    code: u8,
}

impl Failure {
    /// The user's input was refused: print why.
    fn user(message: impl std::fmt::Display) -> Self {
        err(format_args!("error: {message}"));
        Self {
            code: exit::USER_ERROR,
        }
    }
}

/// A connection resolved: the URL and token to use, and the HTTP client.
#[derive(Clone)]
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    json: bool,
    http: reqwest::blocking::Client,
}

impl Connection {
    /// Resolve the URL and token. A saved token is sent only to the URL it was saved for:
    /// pointing `--url` elsewhere never leaks it.
    pub(crate) fn client(&self) -> Result<Client, Failure> {
        let saved = config::load().map_err(Failure::user)?;
        let base = self
            .url
            .clone()
            .or_else(|| saved.as_ref().map(|s| s.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let token = self.token.clone().or_else(|| {
            saved
                .filter(|s| s.url.trim_end_matches('/') == base)
                .and_then(|s| s.token)
        });
        let http = reqwest::blocking::Client::builder()
            .timeout(None)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| transport(&e))?;
        Ok(Client {
            base,
            token,
            json: self.json,
            http,
        })
    }
}

impl Client {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// One call; a refusal is printed (with its code and a hint) and becomes the failure.
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Failure> {
        let mut request = self.request(method, path).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let text = response.text().map_err(|e| transport(&e))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        check(status, &value)?;
        Ok((status, value))
    }

    /// [`Client::call`] with a body of hatchery-api's types.
    pub(crate) fn send<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<(u16, Value), Failure> {
        let body = serde_json::to_value(body)
            .map_err(|e| Failure::user(format_args!("cannot encode the request: {e}")))?;
        self.call(method, path, Some(&body))
    }

    /// A POST whose answer may take long and is read as it comes (an agent's): no
    /// timeout; a refusal is explained and becomes the failure.
    pub(crate) fn post_open<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::blocking::Response, Failure> {
        opened(self.request(reqwest::Method::POST, path).json(body))
    }

    /// A call whose answer is read as it comes (logs, event streams): the open response.
    pub(crate) fn open(&self, path: &str) -> Result<reqwest::blocking::Response, Failure> {
        opened(self.request(reqwest::Method::GET, path))
    }
}

/// Send `request` and hand back its answer unread, unless it is a refusal: that one is
/// read, explained, and becomes the failure.
fn opened(
    request: reqwest::blocking::RequestBuilder,
) -> Result<reqwest::blocking::Response, Failure> {
    let response = request.send().map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    if status >= 400 {
        let text = response.text().map_err(|e| transport(&e))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Err(refused(status, &value));
    }
    Ok(response)
}

/// A 4xx is the input's fault (exit 1), a 5xx the server's (exit 2); either is explained.
fn check(status: u16, body: &Value) -> Result<(), Failure> {
    if status < 400 {
        Ok(())
    } else {
        Err(refused(status, body))
    }
}

/// The failure for a 4xx or 5xx answer, explained on stderr.
fn refused(status: u16, body: &Value) -> Failure {
    refusal(status, body);
    Failure {
        code: if status >= 500 {
            exit::SERVER_ERROR
        } else {
            exit::USER_ERROR
        },
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
    // Not every refusal is the server's JSON (a proxy's page, an empty body): that one is
    // shown as it came.
    let refused = ErrorBody::deserialize(body).ok();
    let message = refused
        .as_ref()
        .map_or_else(|| body.to_string(), |r| r.error.clone());
    let code = refused.as_ref().map_or("", |r| r.code.as_str());
    err(format_args!(
        "error: {message} (HTTP {status}{}{code})",
        if code.is_empty() { "" } else { ", " }
    ));
    if let Some(detail) = refused
        .as_ref()
        .and_then(|r| r.detail.as_deref())
        .filter(|d| !d.is_empty())
    {
        err(format_args!("  {detail}"));
    }
    let hint = match code {
        "provider_derivation_failed" => Some(format!(
            "hint: the model matches several providers{}: name one with \"provider\", or pick a model id of one of them (hatchery providers explain)",
            AmbiguousProvider::deserialize(body)
                .ok()
                .and_then(|a| a.candidates)
                .map(|c| format!(" ({})", c.join(", ")))
                .unwrap_or_default()
        )),
        "byok_key_missing" => Some(
            "hint: set the provider's key: `hatchery secrets set NAME` (global) or, after creating, `--workspace ID`"
                .to_owned(),
        ),
        "platform_key_missing" => {
            Some("hint: start the server with HATCHERY_PLATFORM_KEY".to_owned())
        }
        "admin_auth_required" | "invalid_admin_token" => {
            Some("hint: run `hatchery login`, pass --token or set HATCHERY_TOKEN".to_owned())
        }
        "org_already_imported" => {
            Some("hint: --replace to replace it, or --duplicate for a second copy".to_owned())
        }
        "workspace_not_available" => Some(
            "hint: its agent is not up: `hatchery ws get ID` says why; `hatchery ws resume ID` resumes a paused one"
                .to_owned(),
        ),
        "agent_timeout" => Some(
            "hint: the agent may still be working; the server's HATCHERY_A2A_IDLE_TIMEOUT is how long it waits"
                .to_owned(),
        ),
        "agent_unreachable" | "agent_bad_answer" => {
            Some("hint: `hatchery ws logs ID` shows what its agent says".to_owned())
        }
        "missing_required_env" => Some(
            "hint: set them with `hatchery secrets set NAME`, or import with --force".to_owned(),
        ),
        _ => None,
    };
    if let Some(hint) = hint {
        err(hint);
    }
}

/// An answer read as the wire type it is. One that is not is the server's fault (exit 2):
/// this client and that server disagree on the API.
fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, Failure> {
    T::deserialize(value).map_err(|e| {
        err(format_args!(
            "error: the control plane's answer is not what this client expects: {e}"
        ));
        Failure {
            code: exit::SERVER_ERROR,
        }
    })
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

/// An optional text as a table shows it: `-` when there is none.
fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// A value made safe to put in a URL path as one segment: an id typed by the user must
/// not turn `/workspaces/{id}` into another route (`..` and `/` are encoded too).
fn segment(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
