//! Bundles (spec §11): a workspace and its live subtree as one portable document, and
//! back. An import goes through the org import — every node built as a create builds a
//! workspace, the tree in one transaction — all or nothing: any node that cannot be
//! created refuses the whole bundle.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use hatchery_core::WorkspaceStatus;
use hatchery_core::org::{Node, OrgTemplate};
use hatchery_store::EarlierImports;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::org::{ImportOptions, ImportedNode};
use super::{App, Error, Resource, store_error};

/// A bundle as imported: the keys hatchery reads (the others are carried by exports
/// and ignored here).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(no_recursion)]
pub struct Bundle {
    /// The workspace's name.
    pub name: String,
    /// Its role (`""` for none).
    #[serde(default)]
    pub description: String,
    /// Its tier.
    pub tier: Option<i64>,
    /// Its model (`""` for none).
    #[serde(default)]
    pub model: String,
    /// Its files by name; `config.yaml` says the runtime.
    #[serde(default)]
    pub prompts: BTreeMap<String, String>,
    /// Its children.
    #[serde(default)]
    pub sub_workspaces: Vec<Bundle>,
}

/// How many levels below the exported workspace a bundle follows: the org tree's own
/// limit.
const MAX_BUNDLE_DEPTH: usize = 32;

/// The runtime a bundle's `config.yaml` names (its first `runtime:` line), if any.
fn runtime_of(prompts: &BTreeMap<String, String>) -> Option<String> {
    let line = prompts
        .get("config.yaml")?
        .lines()
        .find_map(|l| l.strip_prefix("runtime:"))?
        .trim();
    // hatchery writes values as JSON; others may write plain YAML scalars.
    let runtime = serde_json::from_str::<String>(line).unwrap_or_else(|_| line.to_owned());
    Some(runtime).filter(|r| !r.is_empty())
}

fn node_of(bundle: &Bundle) -> Node {
    Node {
        name: bundle.name.clone(),
        role: Some(bundle.description.clone()).filter(|d| !d.is_empty()),
        runtime: runtime_of(&bundle.prompts),
        tier: bundle.tier,
        model: Some(bundle.model.clone()).filter(|m| !m.is_empty()),
        children: bundle.sub_workspaces.iter().map(node_of).collect(),
        ..Node::default()
    }
}

/// A workspace and its live subtree, as `GET /bundles/export/:id` gives it (spec §11:
/// every key always present).
#[derive(Debug, Serialize, ToSchema)]
#[schema(no_recursion)]
pub struct BundleExport {
    /// `1.0`.
    schema: &'static str,
    /// The source workspace's id.
    #[schema(format = Uuid)]
    id: String,
    /// Its name.
    name: String,
    /// Its role, `""` if none.
    description: String,
    /// Its tier.
    tier: i64,
    /// Its model, `""` if none.
    model: String,
    /// Not stored by hatchery yet: `""`.
    system_prompt: &'static str,
    /// Not stored by hatchery yet: empty.
    skills: Vec<Value>,
    /// Not stored by hatchery yet: empty.
    tools: Vec<Value>,
    /// Its files by name (`config.yaml` among them).
    prompts: BTreeMap<String, String>,
    /// The bundles of its live children.
    sub_workspaces: Vec<BundleExport>,
    /// Its agent card.
    #[schema(value_type = Option<Object>)]
    agent_card: Value,
    /// `""`.
    author: &'static str,
    /// `1.0.0`.
    version: &'static str,
}

/// What `POST /bundles/import` made: the new tree.
#[derive(Debug, Serialize, ToSchema)]
#[schema(no_recursion)]
pub struct BundleImported {
    /// The new workspace.
    #[schema(format = Uuid)]
    workspace_id: String,
    /// Its name.
    name: String,
    /// `provisioning`.
    status: WorkspaceStatus,
    /// Its children, when it has any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    children: Vec<BundleImported>,
}

/// The answer's tree, from the imported nodes in the order the import walked them
/// (parents first).
fn answer_of(
    bundle: &Bundle,
    imported: &mut std::slice::Iter<'_, ImportedNode>,
) -> Option<BundleImported> {
    let node = imported.next()?;
    Some(BundleImported {
        workspace_id: node.id.clone(),
        name: node.name.clone(),
        status: node.status,
        children: bundle
            .sub_workspaces
            .iter()
            .filter_map(|child| answer_of(child, imported))
            .collect(),
    })
}

impl App {
    /// Export workspace `id` and its live subtree; removed workspaces are not exportable.
    pub async fn bundle_export(&self, id: &str) -> Result<BundleExport, Error> {
        self.bundle_export_below(id, 0).await
    }

    /// [`App::bundle_export`] of a workspace `depth` levels below the exported one. The
    /// depth is capped at the tree's own limit: a tree stored by an older build that did
    /// not hold moves to it (or a cycle) is refused rather than followed without end.
    fn bundle_export_below<'a>(
        &'a self,
        id: &'a str,
        depth: usize,
    ) -> BoxFuture<'a, Result<BundleExport, Error>> {
        Box::pin(async move {
            if depth > MAX_BUNDLE_DEPTH {
                return Err(Error::Conflict {
                    code: "bundle_too_deep",
                    message: format!(
                        "the subtree is deeper than {MAX_BUNDLE_DEPTH} levels (or loops): cannot export it as one bundle"
                    ),
                });
            }
            let row = self
                .store
                .workspace_get(id)
                .await
                .map_err(store_error("failed to export"))?
                .filter(|r| r.status != WorkspaceStatus::Removed)
                .ok_or_else(|| Error::NotFound {
                    kind: Resource::Bundle,
                    id: id.to_owned(),
                })?;
            let prompts: BTreeMap<String, String> = self
                .store
                .workspace_files(id)
                .await
                .map_err(store_error("failed to export"))?
                .into_iter()
                .map(|f| (f.path, f.content))
                .collect();
            let children = self
                .store
                .workspace_live_children(id)
                .await
                .map_err(store_error("failed to export"))?;
            let mut sub_workspaces = Vec::with_capacity(children.len());
            for (child, _) in children {
                sub_workspaces.push(self.bundle_export_below(&child, depth + 1).await?);
            }
            Ok(BundleExport {
                schema: "1.0",
                agent_card: super::stored_json(row.agent_card.as_deref()),
                id: row.id,
                name: row.name,
                description: row.role.unwrap_or_default(),
                tier: row.tier,
                model: row.model,
                system_prompt: "",
                skills: Vec::new(),
                tools: Vec::new(),
                prompts,
                sub_workspaces,
                author: "",
                version: "1.0.0",
            })
        })
    }

    /// Import a bundle as new workspaces (fresh ids, the tree preserved), all or nothing.
    pub async fn bundle_import(&self, bundle: &Bundle) -> Result<BundleImported, Error> {
        let template = OrgTemplate {
            name: bundle.name.clone(),
            workspaces: vec![node_of(bundle)],
            ..OrgTemplate::default()
        };
        let options = ImportOptions {
            strict: true,
            // A bundle carries no environment requirements.
            force: true,
            earlier: EarlierImports::Duplicate,
            as_org: false,
        };
        let imported = self.org_import(&template, None, options).await?;
        answer_of(bundle, &mut imported.iter()).ok_or_else(|| {
            Error::internal("failed to import bundle", "the import wrote no workspace")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_comes_from_the_first_runtime_line_of_config_yaml() {
        let prompts = |text: &str| BTreeMap::from([("config.yaml".to_owned(), text.to_owned())]);
        assert_eq!(
            runtime_of(&prompts(
                "# by hatchery\nruntime: \"claude-code\"\nruntime: \"x\"\n"
            )),
            Some("claude-code".to_owned())
        );
        assert_eq!(
            runtime_of(&prompts("runtime: hermes\n")),
            Some("hermes".to_owned())
        );
        assert_eq!(runtime_of(&prompts("model: m\n")), None);
        assert_eq!(runtime_of(&BTreeMap::new()), None);
    }
}
