//! `hatchery org …`: import an org template (a file, a directory, or one of the server's),
//! following its workspaces until they are online; list the server's templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use hatchery_api::org::{DryRunAnswer, ImportAnswer, ImportBody, TemplateSummary};
use reqwest::Method;

use super::watch::{Progress, Standing, Stream};
use super::{Client, Connection, Failure, decode, finish, or_dash};
use crate::output::{Table, out};

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Import an org template: the whole team, in one transaction, then follow it until
    /// every workspace is online or failed.
    Import {
        /// A template file (`team.yaml`), or a template directory holding `org.yaml` and
        /// the files its nodes name.
        #[arg(required_unless_present = "template", conflicts_with = "template")]
        path: Option<PathBuf>,
        /// One of the server's templates by name (`hatchery org templates` lists them).
        #[arg(long)]
        template: Option<String>,
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
        /// Return once imported, without following the workspaces.
        #[arg(long)]
        no_wait: bool,
        /// How long to follow the workspaces.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// List the org templates of the server's templates directory.
    Templates,
}

pub fn run_org(connection: &Connection, command: OrgCommand) -> ExitCode {
    finish(connection.client().and_then(|client| org(&client, command)))
}

fn org(client: &Client, command: OrgCommand) -> Result<(), Failure> {
    let OrgCommand::Import {
        path,
        template,
        dry_run,
        strict,
        force,
        replace,
        duplicate,
        no_wait,
        timeout,
    } = command
    else {
        return templates(client);
    };
    let mut body = match (&path, template) {
        (Some(path), _) => read_template(path)?,
        (None, Some(name)) => ImportBody {
            dir: Some(name),
            ..ImportBody::default()
        },
        (None, None) => return Err(Failure::user("give a template file or --template NAME")),
    };
    body.force = force;
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
    let follow = !dry_run && !no_wait;
    // Opened before the import, so no workspace can come online unseen.
    let stream = follow
        .then(|| Stream::open(client, "/events/stream"))
        .transpose()?;
    let (status, value) = client.send(Method::POST, &format!("/org/import{query}"), &body)?;
    if dry_run {
        if client.json {
            out(value);
        } else {
            print_plan(&decode(&value)?);
        }
        return Ok(());
    }
    let Some(stream) = stream else {
        if client.json {
            out(value);
        } else {
            print_imported(&decode(&value)?, status);
        }
        return Ok(());
    };
    let answer: ImportAnswer = decode(&value)?;
    if !client.json {
        out(format_args!(
            "{}: {} workspace(s) imported; following them until online",
            answer.org, answer.count,
        ));
    }
    let mut progress = Progress::new(client.json);
    for node in &answer.workspaces {
        progress.follow(
            &node.id,
            &node.name,
            Standing::of(Some(node.status), node.error.as_deref()),
        );
    }
    let outcome = progress.run(client, &stream, timeout);
    if client.json {
        out(value);
    }
    outcome.finish(client.json, timeout)
}

/// The body for a local template: a file's YAML, or a directory's `org.yaml` with the files
/// beside it (its nodes' prompts and `files_dir`), by their paths inside the directory.
fn read_template(path: &Path) -> Result<ImportBody, Failure> {
    let unreadable =
        |e: std::io::Error| Failure::user(format!("cannot read {}: {e}", path.display()));
    if !path.is_dir() {
        let yaml = std::fs::read_to_string(path).map_err(unreadable)?;
        return Ok(ImportBody {
            template: Some(yaml.into()),
            ..ImportBody::default()
        });
    }
    let manifest = path.join("org.yaml");
    let yaml = std::fs::read_to_string(&manifest)
        .map_err(|e| Failure::user(format!("cannot read {}: {e}", manifest.display())))?;
    let mut files = BTreeMap::new();
    collect_files(path, path, &mut files).map_err(unreadable)?;
    files.remove("org.yaml");
    Ok(ImportBody {
        template: Some(yaml.into()),
        files: Some(files),
        ..ImportBody::default()
    })
}

/// The most files a template directory may send (the server's own limit); its body limit
/// bounds the bytes.
const MAX_FILES: usize = hatchery_api::org::MAX_SENT_FILES;

/// Every regular file under `dir` (hidden entries and symlinks skipped: a template sends
/// what it holds, nothing it points at).
fn collect_files(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_files(root, &path, files)?;
        } else if kind.is_file() {
            if files.len() >= MAX_FILES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_FILES} files"
                )));
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            files.insert(
                relative.to_string_lossy().into_owned(),
                std::fs::read_to_string(&path)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            );
        }
    }
    Ok(())
}

fn print_plan(answer: &DryRunAnswer) {
    let mut table = Table::new(vec![
        "PATH", "NAME", "RUNTIME", "MODEL", "PROVIDER", "BILLING", "PROBLEMS",
    ]);
    for node in &answer.plan.nodes {
        table.row(vec![
            node.path.clone(),
            node.name.clone(),
            or_dash(node.runtime.as_deref()),
            or_dash(node.model.as_deref()),
            or_dash(node.provider.as_deref()),
            or_dash(node.billing.as_deref()),
            if node.problems.is_empty() {
                "-".to_owned()
            } else {
                node.problems.join("; ")
            },
        ]);
    }
    out(table.render());
    for missing in &answer.plan.missing_env {
        out(format_args!("missing environment: {missing}"));
    }
    out(if answer.ok {
        "plan: every workspace can be created"
    } else {
        "plan: some workspaces cannot be created as they are"
    });
}

fn print_imported(answer: &ImportAnswer, status: u16) {
    let mut table = Table::new(vec!["ID", "NAME", "STATUS", "ERROR"]);
    for node in &answer.workspaces {
        table.row(vec![
            node.id.clone(),
            node.name.clone(),
            node.status.to_string(),
            or_dash(node.error.as_deref()),
        ]);
    }
    out(table.render());
    out(format_args!(
        "{}: {} workspace(s){}",
        answer.org,
        answer.count,
        if status == 207 {
            ", some failed (see ERROR)"
        } else {
            ""
        }
    ));
}

fn templates(client: &Client) -> Result<(), Failure> {
    let (_, value) = client.call(Method::GET, "/org/templates", None)?;
    if client.json {
        out(value);
        return Ok(());
    }
    let mut table = Table::new(vec!["NAME", "WORKSPACES", "REQUIRED ENV", "READY"]);
    for template in decode::<Vec<TemplateSummary>>(&value)? {
        table.row(vec![
            template.dir,
            template.workspaces.to_string(),
            if template.required_env.is_empty() {
                "-".to_owned()
            } else {
                template.required_env.join(", ")
            },
            if template.required_env_satisfied {
                "yes"
            } else {
                "needs secrets"
            }
            .to_owned(),
        ]);
    }
    out(table.render());
    Ok(())
}
