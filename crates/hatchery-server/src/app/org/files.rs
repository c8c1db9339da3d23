//! What an org import reads from disk for its nodes: the workspace templates nodes are
//! based on, and each node's files (prompt files, `files_dir`), confined to the template's
//! directory and bounded. All of it is blocking and runs on a blocking thread
//! ([`read_template_files`]), never on the runtime's workers. The files sent with an
//! inline template are laid out in a private directory first ([`unpack_files`]), so they
//! are read the same way.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use hatchery_core::org::{Node, OrgTemplate};
use hatchery_store::WorkspaceFile;

use super::flatten;
use super::templates::MAX_TEMPLATE_BYTES;
use crate::app::Error;

/// The most files a node's `files_dir` may hold, and the most bytes of all its files.
const MAX_NODE_FILES: usize = 200;
const MAX_NODE_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// How deep a `files_dir` walk goes below the directory itself.
const MAX_FILES_DIR_DEPTH: usize = 16;
/// The most entries (files, directories, links) a `files_dir` walk looks at, so a tree of
/// empty directories is bounded too.
const MAX_FILES_DIR_ENTRIES: usize = 2000;

/// Why a node's files (its prompt files, its `files_dir`) cannot be read: one of that
/// node's problems in the plan. Paths are as the template writes them, relative to its
/// directory (never the server's own paths).
#[derive(Debug, thiserror::Error)]
pub(super) enum NodeFileError {
    /// An inline or single-file template names a file.
    #[error(
        "{field}: {relative:?} needs a template directory (org/<name>/org.yaml, or `hatchery org import DIR`); an inline or single-file template has no files"
    )]
    NoDirectory { field: String, relative: String },
    /// Empty, absolute, or with `..`.
    #[error("{field}: {relative:?} must be a relative path inside the template")]
    NotRelative { field: String, relative: String },
    /// A symlink leads out of the template (inside `files_dir`: out of `files_dir`).
    #[error("{field}: {path:?} points outside the template")]
    Outside { field: String, path: String },
    /// Reading failed.
    #[error("{field}: {path:?}: {source}")]
    Io {
        field: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A pipe, socket or device: opening one may block until some writer comes.
    #[error(
        "{field}: {path:?} is not a regular file or directory (a pipe, socket or device is never read)"
    )]
    NotRegular { field: String, path: String },
    /// A single file over the byte limit.
    #[error("{field}: {path:?} is larger than {MAX_NODE_FILE_BYTES} bytes")]
    TooLarge { field: String, path: String },
    /// `files_dir` holds more files than a workspace takes.
    #[error(
        "files_dir: {relative:?} holds more than {MAX_NODE_FILES} files; keep only what the agent needs"
    )]
    TooManyFiles { relative: String },
    /// `files_dir`'s files add up to more bytes than a workspace takes.
    #[error(
        "files_dir: {relative:?} holds more than {MAX_NODE_FILE_BYTES} bytes of files; keep only what the agent needs"
    )]
    TooManyBytes { relative: String },
    /// `files_dir` has more entries than a walk looks at.
    #[error("files_dir: {relative:?} has more than {MAX_FILES_DIR_ENTRIES} entries")]
    TooManyEntries { relative: String },
    /// `files_dir` nests deeper than a walk goes.
    #[error("files_dir: {path:?} is more than {MAX_FILES_DIR_DEPTH} directories deep")]
    TooDeep { path: String },
    /// A symlink leads to a directory that contains it: read, it would never end.
    #[error(
        "files_dir: {path:?} leads back to {target:?}, a directory that contains it (a symlink loop); remove the link"
    )]
    Loop { path: String, target: String },
}

impl NodeFileError {
    fn io(field: &str, path: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let (field, path) = (field.to_owned(), path.into());
        move |source| Self::Io {
            field,
            path,
            source,
        }
    }
}

/// What an import reads from disk for its nodes, read by [`read_template_files`].
pub(super) struct TemplateFiles {
    /// The template with every node's workspace template applied.
    pub(super) resolved: OrgTemplate,
    /// Why a node's workspace template could not be applied, by node path.
    pub(super) template_problems: HashMap<String, String>,
    /// Each node's files, parents first as [`flatten`] lists them.
    pub(super) files: Vec<Result<Vec<WorkspaceFile>, NodeFileError>>,
}

/// Apply the nodes' workspace templates and read every node's files, on a blocking thread:
/// a template directory may be large, slow or odd (a pipe, a deep tree), and the runtime's
/// workers must stay free to answer everyone else meanwhile.
pub(super) async fn read_template_files(
    templates: Option<&Path>,
    template: &OrgTemplate,
    base: Option<&Path>,
) -> Result<TemplateFiles, Error> {
    let templates = templates.map(Path::to_path_buf);
    let template = template.clone();
    let base = base.map(Path::to_path_buf);
    tokio::task::spawn_blocking(move || {
        let (resolved, template_problems) =
            resolve_workspace_templates(templates.as_deref(), &template);
        let files = flatten(&resolved.workspaces)
            .into_iter()
            .map(|node| node_files(&resolved, node, base.as_deref()))
            .collect();
        TemplateFiles {
            resolved,
            template_problems,
            files,
        }
    })
    .await
    .map_err(|e| Error::internal("failed to read the org template's files", e))
}

/// The files a node brings to its workspace's config: its prompts (inline, or read from
/// `*_file`, the node's own or the template's defaults) and its `files_dir` under
/// `files/`. Paths are relative to the template's directory and never leave it. Blocking.
fn node_files(
    template: &OrgTemplate,
    node: &Node,
    base: Option<&Path>,
) -> Result<Vec<WorkspaceFile>, NodeFileError> {
    let defaults = &template.defaults;
    let read = |field: &str, relative: &str| -> Result<String, NodeFileError> {
        let path = confined(base, field, relative)?;
        read_regular(&path, field, relative, MAX_NODE_FILE_BYTES)
    };
    let mut files = Vec::new();
    let mut prompt = |name: &str, inline: Option<&String>, file: Option<&String>, field: &str| {
        let content = match (inline, file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(relative)) => Some(read(field, relative)?),
            (None, None) => None,
        };
        if let Some(content) = content {
            files.push(WorkspaceFile {
                path: name.to_owned(),
                content,
            });
        }
        Ok::<_, NodeFileError>(())
    };
    prompt(
        "system-prompt.md",
        node.system_prompt.as_ref(),
        None,
        "system_prompt",
    )?;
    prompt(
        "initial-prompt.md",
        node.initial_prompt
            .as_ref()
            .or(defaults.initial_prompt.as_ref()),
        node.initial_prompt_file
            .as_ref()
            .or(defaults.initial_prompt_file.as_ref()),
        "initial_prompt_file",
    )?;
    prompt(
        "idle-prompt.md",
        node.idle_prompt.as_ref().or(defaults.idle_prompt.as_ref()),
        node.idle_prompt_file
            .as_ref()
            .or(defaults.idle_prompt_file.as_ref()),
        "idle_prompt_file",
    )?;
    for (index, schedule) in node.schedules.iter().enumerate() {
        if let (None, Some(relative)) = (&schedule.prompt, &schedule.prompt_file) {
            read(&format!("schedules[{index}].prompt_file"), relative)?;
        }
    }
    if let Some(relative) = &node.files_dir {
        files.extend(files_dir(base, relative)?);
    }
    Ok(files)
}

/// The regular files under a node's `files_dir`, each as `files/<path inside it>`. Symlinks
/// are followed only to where they stay inside it; a directory reached a second way is
/// read once, and one that contains the link leading to it (a loop) is refused. Bounded
/// in files, bytes, entries and depth. Blocking.
fn files_dir(base: Option<&Path>, relative: &str) -> Result<Vec<WorkspaceFile>, NodeFileError> {
    const FIELD: &str = "files_dir";
    use std::os::unix::fs::MetadataExt as _;
    let identity = |meta: &std::fs::Metadata| (meta.dev(), meta.ino());
    let root = confined(base, FIELD, relative)?;
    // Where a path is, as the template writes it.
    let shown = |path: &Path| match path.strip_prefix(&root) {
        Ok(inside) if inside.as_os_str().is_empty() => relative.to_owned(),
        Ok(inside) => Path::new(relative).join(inside).display().to_string(),
        Err(_) => relative.to_owned(),
    };
    let root_meta = std::fs::metadata(&root).map_err(NodeFileError::io(FIELD, relative))?;
    let mut files = Vec::new();
    let mut visited = std::collections::HashSet::from([identity(&root_meta)]);
    let mut read_already = std::collections::HashSet::new();
    let (mut entries, mut bytes) = (0_usize, 0_u64);
    // Depth first; each directory with the identities of those that lead to it, so a link
    // back to one of them (a loop) is told from a second way to a directory read already.
    let mut pending = vec![(root.clone(), vec![identity(&root_meta)])];
    while let Some((dir, above)) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(NodeFileError::io(FIELD, shown(&dir)))? {
            entries += 1;
            if entries > MAX_FILES_DIR_ENTRIES {
                return Err(NodeFileError::TooManyEntries {
                    relative: relative.to_owned(),
                });
            }
            let path = entry.map_err(NodeFileError::io(FIELD, shown(&dir)))?.path();
            let target =
                std::fs::canonicalize(&path).map_err(NodeFileError::io(FIELD, shown(&path)))?;
            if !target.starts_with(&root) {
                return Err(NodeFileError::Outside {
                    field: FIELD.to_owned(),
                    path: shown(&path),
                });
            }
            let meta =
                std::fs::metadata(&target).map_err(NodeFileError::io(FIELD, shown(&path)))?;
            if meta.is_dir() {
                let id = identity(&meta);
                if above.contains(&id) {
                    return Err(NodeFileError::Loop {
                        path: shown(&path),
                        target: shown(&target),
                    });
                }
                if !visited.insert(id) {
                    continue;
                }
                if above.len() > MAX_FILES_DIR_DEPTH {
                    return Err(NodeFileError::TooDeep { path: shown(&path) });
                }
                let mut below = above.clone();
                below.push(id);
                pending.push((target, below));
                continue;
            }
            // A link to a file read already adds nothing: it is named by its target.
            if !read_already.insert(target.clone()) {
                continue;
            }
            if read_already.len() > MAX_NODE_FILES {
                return Err(NodeFileError::TooManyFiles {
                    relative: relative.to_owned(),
                });
            }
            let left = MAX_NODE_FILE_BYTES.saturating_sub(bytes);
            let content =
                read_regular(&target, FIELD, &shown(&path), left).map_err(|e| match e {
                    NodeFileError::TooLarge { .. } => NodeFileError::TooManyBytes {
                        relative: relative.to_owned(),
                    },
                    other => other,
                })?;
            bytes += content.len() as u64;
            files.push(WorkspaceFile {
                path: format!(
                    "files/{}",
                    target.strip_prefix(&root).unwrap_or(&target).display()
                ),
                content,
            });
        }
    }
    Ok(files)
}

/// The text of the regular file at `path` (resolved already), at most `limit` bytes. Never
/// opens anything else: opening a pipe blocks until a writer comes. The template
/// directory is the operator's, so a swap between the check and the open is not guarded
/// against; it would hold one blocking thread, never the runtime. Blocking.
fn read_regular(
    path: &Path,
    field: &str,
    shown: &str,
    limit: u64,
) -> Result<String, NodeFileError> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(NodeFileError::io(field, shown))?;
    if !meta.is_file() {
        return Err(NodeFileError::NotRegular {
            field: field.to_owned(),
            path: shown.to_owned(),
        });
    }
    let too_large = || NodeFileError::TooLarge {
        field: field.to_owned(),
        path: shown.to_owned(),
    };
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(NodeFileError::io(field, shown))?;
    // It may grow after the check: read one byte past the limit to tell.
    let mut content = String::new();
    file.take(limit.saturating_add(1))
        .read_to_string(&mut content)
        .map_err(NodeFileError::io(field, shown))?;
    if content.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(content)
}

/// `template` with every node that names a workspace template (`template: coder`)
/// given what it does not say itself — runtime, model, tier, role — from that
/// template's `config.yaml` in `templates`, which may in turn name one it is based on.
/// Problems (an unknown template, a cycle of them) by node path. Blocking.
fn resolve_workspace_templates(
    templates: Option<&Path>,
    template: &OrgTemplate,
) -> (OrgTemplate, HashMap<String, String>) {
    let mut resolved = template.clone();
    let mut problems = HashMap::new();
    let mut pending: Vec<(String, &mut Node)> = resolved
        .workspaces
        .iter_mut()
        .enumerate()
        .map(|(i, n)| (format!("workspaces[{i}]"), n))
        .collect();
    while let Some((path, node)) = pending.pop() {
        if let Some(name) = node.template.clone()
            && let Err(problem) = apply_workspace_template(templates, node, &name)
        {
            problems.insert(path.clone(), problem);
        }
        pending.extend(
            node.children
                .iter_mut()
                .enumerate()
                .map(|(i, c)| (format!("{path}.children[{i}]"), c)),
        );
    }
    (resolved, problems)
}

/// Fill `node`'s gaps from workspace template `name` and those it is based on.
fn apply_workspace_template(
    templates: Option<&Path>,
    node: &mut Node,
    name: &str,
) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(name) = next.take() {
        if seen.contains(&name) {
            seen.push(name);
            return Err(format!(
                "template: a cycle of templates: {}",
                seen.join(" → ")
            ));
        }
        let plain = !name.is_empty()
            && name != "org"
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        let not_found = || format!("template: workspace template {name:?} not found");
        let path = templates
            .filter(|_| plain)
            .map(|root| root.join(&name).join("config.yaml"))
            .ok_or_else(not_found)?;
        let shown = format!("{name}/config.yaml");
        let config = match read_regular(&path, "template", &shown, MAX_TEMPLATE_BYTES) {
            Ok(config) => config,
            Err(NodeFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(not_found());
            }
            Err(e) => return Err(e.to_string()),
        };
        let config = hatchery_core::org::yaml_to_json(config.as_bytes())
            .map_err(|e| format!("template: {name:?}: {e}"))?;
        let text = |key: &str| config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        node.runtime = node.runtime.take().or_else(|| text("runtime"));
        node.model = node.model.take().or_else(|| text("model"));
        node.role = node.role.take().or_else(|| text("description"));
        node.tier = node
            .tier
            .or_else(|| config.get("tier").and_then(serde_json::Value::as_i64));
        seen.push(name);
        next = text("template");
    }
    Ok(())
}

/// `relative` under the template directory `base`, resolved: a plain relative path (no
/// `..`, not absolute) whose real location (symlinks followed) is inside `base`.
fn confined(base: Option<&Path>, field: &str, relative: &str) -> Result<PathBuf, NodeFileError> {
    let Some(base) = base else {
        return Err(NodeFileError::NoDirectory {
            field: field.to_owned(),
            relative: relative.to_owned(),
        });
    };
    let plain = !relative.is_empty()
        && Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !plain {
        return Err(NodeFileError::NotRelative {
            field: field.to_owned(),
            relative: relative.to_owned(),
        });
    }
    let base = std::fs::canonicalize(base).map_err(NodeFileError::io(field, "."))?;
    let path =
        std::fs::canonicalize(base.join(relative)).map_err(NodeFileError::io(field, relative))?;
    if !path.starts_with(&base) {
        return Err(NodeFileError::Outside {
            field: field.to_owned(),
            path: relative.to_owned(),
        });
    }
    Ok(path)
}

pub use hatchery_api::org::MAX_SENT_FILES;

/// Lay out the files sent with an inline template in a fresh private directory, so they
/// are read exactly as a template directory's would be (same confinement, same limits).
/// Each path must be plain and relative; the whole request is already bounded in size.
pub(crate) fn unpack_files(
    files: &std::collections::BTreeMap<String, String>,
) -> Result<tempfile::TempDir, Error> {
    let refuse = |detail: String| {
        Error::invalid(
            "invalid request body",
            "invalid_template_files",
            Some("files"),
            detail,
        )
    };
    if files.len() > MAX_SENT_FILES {
        return Err(refuse(format!("at most {MAX_SENT_FILES} files")));
    }
    let dir = tempfile::Builder::new()
        .prefix("hatchery-org-")
        .tempdir()
        .map_err(|e| Error::internal("failed to unpack the template's files", e))?;
    for (relative, content) in files {
        let plain = !relative.is_empty()
            && Path::new(relative)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(refuse(format!(
                "files: {relative:?} must be a plain relative path"
            )));
        }
        let path = dir.path().join(relative);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, content));
        if let Err(e) = written {
            // A path that is both a file and a directory, say.
            return Err(refuse(format!("files: {relative:?}: {e}")));
        }
    }
    Ok(dir)
}
