//! `hatchery providers explain`: what the running control plane's registry derives for a
//! runtime and model, and every rule it tried: the question to ask before a create fails.

use std::process::ExitCode;

use hatchery_api::registry::ExplainAnswer;
use reqwest::Method;
use serde_json::Value;

use super::{Client, Connection, Failure, decode, finish, or_dash, text};
use crate::exit;
use crate::output::out;

pub fn run_explain(connection: &Connection, runtime: &str, model: &str) -> ExitCode {
    finish(
        connection
            .client()
            .and_then(|client| explain(&client, runtime, model)),
    )
}

fn explain(client: &Client, runtime: &str, model: &str) -> Result<(), Failure> {
    let query =
        reqwest::Url::parse_with_params("http://x/", [("runtime", runtime), ("model", model)])
            .map_err(|e| Failure::user(e.to_string()))?;
    let path = format!("/admin/registry/explain?{}", query.query().unwrap_or(""));
    let (_, value) = client.call(Method::GET, &path, None)?;
    let answer: ExplainAnswer = decode(&value)?;
    let ambiguous = answer.kind.as_deref() == Some("ambiguous");
    if client.json {
        out(&value);
    } else {
        print(&answer, runtime, model);
    }
    if ambiguous {
        // As a create would be refused, so is this: scripts can tell.
        return Err(Failure {
            code: exit::USER_ERROR,
        });
    }
    Ok(())
}

fn print(answer: &ExplainAnswer, runtime: &str, model: &str) {
    let verdict = match answer.outcome.as_str() {
        "derived" => format!(
            "provider {} ({} billing)",
            or_dash(answer.provider.as_deref()),
            or_dash(answer.billing.as_deref())
        ),
        "passthrough" => format!(
            "no provider stamped (pass-through: {})",
            or_dash(answer.reason.as_deref())
        ),
        _ => format!("refused: {}", or_dash(answer.message.as_deref())),
    };
    out(format_args!("{runtime} + {model} → {verdict}"));
    out(format_args!("registry {}", answer.registry_hash));
    out("rules tried:");
    // Each step is the registry's own trace, with keys of its own: shown as it came.
    for (number, step) in answer.explain.iter().enumerate() {
        let details: Vec<String> = step
            .details
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "runtime" | "model"))
            .map(|(key, value)| format!("{}: {}", key.replace('_', " "), list(value)))
            .collect();
        out(format_args!(
            "  {}. {}{}{}",
            number + 1,
            step.step.replace('_', " "),
            if details.is_empty() { "" } else { " — " },
            details.join("; ")
        ));
    }
    if let Some(candidates) = &answer.candidates {
        out(format_args!(
            "hint: name one of {} as the provider (`hatchery ws create … --provider NAME`), or pick a model id only one of them lists (`hatchery providers models --runtime {runtime}`)",
            candidates.join(", ")
        ));
    }
}

/// An array as `a, b, c`; anything else as text.
fn list(value: &Value) -> String {
    match value {
        Value::Array(items) if items.is_empty() => "none".to_owned(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    }
}
