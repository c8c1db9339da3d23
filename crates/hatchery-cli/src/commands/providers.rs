//! `hatchery providers …`: check a manifest, derive a provider, list the catalog.
//!
//! Output contract (other tools and tests rely on it): `derive` prints exactly one JSON
//! object on stdout; `check` prints a one-line summary, or one error line on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hatchery_registry::{BUILTIN_MANIFEST, DeriveOutcome, Registry};
use hatchery_server::registry_source::{LoadError, RegistrySource};
use serde_json::json;

use crate::exit;
use crate::output::{Table, err, or_dash, out};

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Validate a manifest (default: the built-in catalog) and print a one-line summary.
    Check {
        /// Manifest file; omit for the built-in catalog.
        file: Option<PathBuf>,
        /// Also warn about overlapping matchers and hygiene problems (never fails).
        #[arg(long)]
        lint: bool,
    },
    /// Derive the provider for a runtime and model; prints one JSON object.
    Derive {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Runtime name, exactly as in the manifest (e.g. claude-code).
        #[arg(long)]
        runtime: String,
        /// Model id, passed verbatim (surrounding spaces are trimmed by the algorithm).
        #[arg(long, allow_hyphen_values = true)]
        model: String,
        /// Add the trace of every rule tried.
        #[arg(long)]
        explain: bool,
    },
    /// Ask a running control plane what its live registry derives for a runtime and model,
    /// and how (--url, --token).
    Explain {
        /// Runtime name (e.g. claude-code).
        #[arg(long)]
        runtime: String,
        /// Model id.
        #[arg(long, allow_hyphen_values = true)]
        model: String,
        #[command(flatten)]
        connection: crate::commands::client::Connection,
    },
    /// List providers: the whole catalog, or one runtime's native set in priority order.
    List {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Only this runtime's native providers.
        #[arg(long)]
        runtime: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the exact model ids a runtime offers, with the provider each derives to.
    Models {
        #[command(flatten)]
        manifest: ManifestArg,
        /// Runtime name, exactly as in the manifest (e.g. claude-code).
        #[arg(long)]
        runtime: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the built-in catalog's YAML, a starting point for a manifest of your own.
    Builtin,
}

#[derive(Debug, Args)]
pub struct ManifestArg {
    /// Manifest file to use instead of the built-in catalog.
    #[arg(long, env = "HATCHERY_PROVIDERS", value_name = "FILE")]
    manifest: Option<PathBuf>,
}

/// Where a registry came from, for messages.
fn describe(path: Option<&Path>) -> String {
    path.map_or_else(
        || "(built-in catalog)".to_owned(),
        |p| p.display().to_string(),
    )
}

fn load(path: Option<&Path>) -> Result<Registry, LoadError> {
    path.map_or(RegistrySource::Builtin, |p| {
        RegistrySource::File(p.to_owned())
    })
    .load()
    .map(|(registry, _)| registry)
}

pub fn run(command: ProvidersCommand) -> ExitCode {
    match command {
        ProvidersCommand::Check { file, lint } => check(file.as_deref(), lint),
        ProvidersCommand::Derive {
            manifest,
            runtime,
            model,
            explain,
        } => derive(manifest.manifest.as_deref(), &runtime, &model, explain),
        ProvidersCommand::Explain {
            runtime,
            model,
            connection,
        } => crate::commands::client::run_explain(&connection, &runtime, &model),
        ProvidersCommand::List {
            manifest,
            runtime,
            json,
        } => with_registry(manifest.manifest.as_deref(), |r| {
            list(r, runtime.as_deref(), json)
        }),
        ProvidersCommand::Models {
            manifest,
            runtime,
            json,
        } => with_registry(manifest.manifest.as_deref(), |r| models(r, &runtime, json)),
        ProvidersCommand::Builtin => {
            let _ = std::io::stdout().write_all(BUILTIN_MANIFEST);
            ExitCode::SUCCESS
        }
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    err(format_args!("error: {message}"));
    ExitCode::from(exit::USER_ERROR)
}

fn with_registry(
    path: Option<&Path>,
    action: impl FnOnce(&Registry) -> Result<String, String>,
) -> ExitCode {
    let registry = match load(path) {
        Ok(registry) => registry,
        Err(err) => return fail(err),
    };
    match action(&registry) {
        Ok(text) => {
            out(text);
            ExitCode::SUCCESS
        }
        Err(message) => fail(message),
    }
}

fn check(path: Option<&Path>, lint: bool) -> ExitCode {
    let registry = match load(path) {
        Ok(registry) => registry,
        Err(err) => return fail(err),
    };
    out(format_args!(
        "ok: {} providers, {} runtimes, {} {}",
        registry.providers().len(),
        registry.runtimes().len(),
        registry.hash(),
        describe(path)
    ));
    if lint {
        for warning in registry.lint() {
            err(format_args!("warning: {warning}"));
        }
    }
    ExitCode::SUCCESS
}

fn derive(path: Option<&Path>, runtime: &str, model: &str, explain: bool) -> ExitCode {
    let registry = match load(path) {
        Ok(registry) => registry,
        Err(err) => {
            let message = format!(
                "provider registry unavailable: deriving provider for runtime `{runtime}`, model `{model}`: {err}"
            );
            out(json!({"outcome": "error", "kind": "registry_unavailable", "message": message}));
            return ExitCode::from(exit::USER_ERROR);
        }
    };
    let explanation = registry.explain(runtime, model);
    let body = hatchery_server::registry_source::explanation_json(&explanation, explain);
    out(body);
    if matches!(explanation.outcome, DeriveOutcome::Ambiguous(_)) {
        ExitCode::from(exit::USER_ERROR)
    } else {
        ExitCode::SUCCESS
    }
}

fn list(registry: &Registry, runtime: Option<&str>, json: bool) -> Result<String, String> {
    let providers = match runtime {
        Some(r) => registry
            .providers_for_runtime(r)
            .map_err(|e| e.to_string())?,
        None => registry.providers().iter().collect(),
    };
    if json {
        return serde_json::to_string_pretty(&providers).map_err(|e| e.to_string());
    }
    let mut table = Table::new(vec![
        "NAME", "PROTOCOL", "BILLING", "AUTH ENV", "BASE URL", "MATCHES",
    ]);
    for p in providers {
        let base_url = if p.base_url_template.is_empty() {
            &p.base_url_anthropic
        } else {
            &p.base_url_template
        };
        table.row(vec![
            p.name.clone(),
            p.protocol.to_string(),
            if p.is_platform() { "platform" } else { "byok" }.to_owned(),
            p.auth_env.join(","),
            or_dash(base_url),
            p.model_prefix_match.clone(),
        ]);
    }
    Ok(table.render())
}

fn models(registry: &Registry, runtime: &str, json: bool) -> Result<String, String> {
    let ids = registry
        .models_for_runtime(runtime)
        .map_err(|e| e.to_string())?;
    let rows: Vec<(&str, String)> = ids
        .into_iter()
        .map(|id| {
            let provider = match registry.derive(runtime, id) {
                DeriveOutcome::Derived(d) => d.provider.name.clone(),
                DeriveOutcome::PassThrough(reason) => format!("(pass-through: {reason})"),
                DeriveOutcome::Ambiguous(_) => "(ambiguous)".to_owned(),
            };
            (id, provider)
        })
        .collect();
    if json {
        let models: Vec<_> = rows
            .iter()
            .map(|(model, provider)| json!({"model": model, "provider": provider}))
            .collect();
        return serde_json::to_string_pretty(&json!({"runtime": runtime, "models": models}))
            .map_err(|e| e.to_string());
    }
    if rows.is_empty() {
        return Ok(format!(
            "runtime {runtime:?} lists no exact model ids (its providers are name-only arms)"
        ));
    }
    let mut table = Table::new(vec!["MODEL", "PROVIDER"]);
    for (model, provider) in rows {
        table.row(vec![model.to_owned(), provider]);
    }
    Ok(table.render())
}
