//! Org templates: a team as a tree of workspaces (Molecule's org template YAML), read
//! strictly, and the plan of importing one.
//!
//! Reading: strict YAML ([`crate::yaml`]: duplicate keys, alias bombs and deep nesting
//! refused) straight into the types, which refuse unknown keys with their path and a
//! suggestion (`workspaces[2].children[0]: unknown field `modle`, did you mean `model`?`);
//! a template sent as JSON is decoded by the same types with the same messages.
//!
//! Planning: every node is checked the way a single create is — the same field rules and
//! the same fail-closed provider decision — with no silent defaults: a node's runtime and
//! model come from the node, else the template's `defaults`, else the node has a problem
//! naming it. Names must be unique among siblings; the tree is bounded in size and depth;
//! required environment variables must be global secrets. The plan changes nothing.

use std::collections::HashSet;

use hatchery_registry::Registry;
use serde::{Deserialize, Serialize};

use crate::fields::{TextFields, check_text_fields, check_tier, is_valid_env_name};
use crate::provider::{ProviderRequest, decide_provider};
use crate::yaml::{self, YamlError};

/// The most workspaces one template may create.
pub const MAX_NODES: usize = 1000;
/// The deepest a template's tree may go (a root is depth 1).
pub const MAX_DEPTH: usize = 16;
/// The tier of a node that names none, here or in `defaults` (Molecule's default).
const DEFAULT_TIER: i64 = 2;

/// A whole org template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // field names are the template format's keys
pub struct OrgTemplate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub workspaces: Vec<Node>,
    #[serde(default)]
    pub required_env: Vec<EnvRequirement>,
    #[serde(default)]
    pub recommended_env: Vec<EnvRequirement>,
    #[serde(default)]
    pub global_memories: Option<serde_json::Value>,
}

impl OrgTemplate {
    /// How many workspaces the tree holds, children included.
    #[must_use]
    pub fn node_count(&self) -> usize {
        count_nodes(&self.workspaces)
    }
}

/// What nodes inherit when they do not say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Defaults {
    pub runtime: Option<String>,
    pub tier: Option<i64>,
    pub model: Option<String>,
    #[serde(default)]
    pub plugins: Vec<String>,
    pub initial_prompt: Option<String>,
    pub initial_prompt_file: Option<String>,
    pub idle_prompt: Option<String>,
    pub idle_prompt_file: Option<String>,
    pub idle_interval_seconds: Option<u64>,
    #[serde(default)]
    pub required_env: Vec<EnvRequirement>,
    #[serde(default)]
    pub recommended_env: Vec<EnvRequirement>,
    pub initial_memories: Option<serde_json::Value>,
}

/// One workspace of the tree.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Node {
    pub name: String,
    pub role: Option<String>,
    pub runtime: Option<String>,
    pub tier: Option<i64>,
    pub model: Option<String>,
    pub template: Option<String>,
    pub files_dir: Option<String>,
    pub system_prompt: Option<String>,
    pub workspace_dir: Option<String>,
    pub workspace_access: Option<String>,
    #[serde(default)]
    pub plugins: Vec<String>,
    pub initial_prompt: Option<String>,
    pub initial_prompt_file: Option<String>,
    pub idle_prompt: Option<String>,
    pub idle_prompt_file: Option<String>,
    pub idle_interval_seconds: Option<u64>,
    pub max_concurrent_tasks: Option<u64>,
    #[serde(default)]
    pub schedules: Vec<Schedule>,
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub external: bool,
    pub url: Option<String>,
    pub canvas: Option<Canvas>,
    #[serde(default)]
    pub required_env: Vec<EnvRequirement>,
    #[serde(default)]
    pub recommended_env: Vec<EnvRequirement>,
    pub initial_memories: Option<serde_json::Value>,
    #[serde(default)]
    pub children: Vec<Node>,
}

/// A recurring prompt.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Schedule {
    pub name: String,
    pub cron_expr: String,
    pub timezone: Option<String>,
    pub prompt: Option<String>,
    pub prompt_file: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A messaging channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Channel {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: serde_json::Value,
    #[serde(default)]
    pub allowed_users: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Where a node sits on the canvas.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Canvas {
    pub x: f64,
    pub y: f64,
}

/// An environment requirement: a name, or any one of several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EnvRequirement {
    /// This variable.
    Name(String),
    /// Any one of these.
    AnyOf {
        /// The alternatives.
        any_of: Vec<String>,
    },
}

impl EnvRequirement {
    /// The names any one of which meets it.
    #[must_use]
    pub fn names(&self) -> &[String] {
        match self {
            Self::Name(name) => std::slice::from_ref(name),
            Self::AnyOf { any_of } => any_of,
        }
    }

    /// `NAME`, or `one of A, B`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::AnyOf { any_of } => format!("one of {}", any_of.join(", ")),
        }
    }
}

/// Why a template could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not strict YAML (duplicate keys, aliases beyond the limits, too deep, …).
    #[error("invalid org template: {0}")]
    Yaml(String),
    /// Valid YAML of the wrong shape: an unknown or missing field, a wrong type.
    #[error("invalid org template: {0}")]
    Shape(String),
}

impl From<YamlError> for TemplateError {
    fn from(error: YamlError) -> Self {
        match error {
            YamlError::Document(message) => Self::Yaml(message),
            YamlError::Shape(message) => Self::Shape(message),
        }
    }
}

/// Read a template from its YAML bytes.
pub fn parse_template(bytes: &[u8]) -> Result<OrgTemplate, TemplateError> {
    match yaml::from_slice::<Option<OrgTemplate>>(bytes)? {
        Some(template) => Ok(template),
        None => Err(TemplateError::Shape("the template is empty".to_owned())),
    }
}

/// Strict YAML as JSON (a workspace template's `config.yaml`, say).
pub fn yaml_to_json(bytes: &[u8]) -> Result<serde_json::Value, TemplateError> {
    Ok(yaml::from_slice(bytes)?)
}

/// Decode a template already in JSON form (an inline template of an import request).
pub fn decode(value: serde_json::Value) -> Result<OrgTemplate, TemplateError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = with_suggestion(&e.inner().to_string());
        TemplateError::Shape(if path == "." {
            message
        } else {
            format!("{path}: {message}")
        })
    })
}

/// serde's "unknown field `modle`, expected one of `name`, `model`, …" with the closest
/// expected field suggested, as the YAML reader suggests it.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let expected: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    yaml::suggest(unknown, &expected)
}

/// What the planner needs to know of the server.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// Names of the global secrets (the keys a node's agent will have).
    pub global_secrets: &'a [&'a str],
    /// Whether the server holds the platform gateway credential.
    pub platform_key_configured: bool,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedNode {
    /// Where it is in the template (`workspaces[0].children[1]`).
    pub path: String,
    /// Its name.
    pub name: String,
    /// Its parent's path (`None` for a root).
    pub parent: Option<String>,
    /// The runtime it would run (from the node or `defaults`).
    pub runtime: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// The tier.
    pub tier: i64,
    /// An agent hatchery does not run.
    pub external: bool,
    /// The provider the registry derives (`None`: pass-through, or a problem).
    pub provider: Option<String>,
    /// How the provider was obtained (`derived:exact_model`, …).
    pub provider_source: Option<String>,
    /// Who pays (`platform`, `byok`).
    pub billing: Option<String>,
    /// What stops it from being created as it is; empty when it would be.
    pub problems: Vec<String>,
}

/// The plan of an import: every node, with what it would be or why it cannot be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// The template's name (the org's).
    pub org: String,
    /// Nodes in depth-first order, parents before children.
    pub nodes: Vec<PlannedNode>,
    /// Required environment variables no global secret provides.
    pub missing_env: Vec<String>,
    /// Problems of the template as a whole (size, depth).
    pub problems: Vec<String>,
}

impl Plan {
    /// Whether every node can be created as it is (missing env aside: `force` overrides it).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.nodes.iter().all(|n| n.problems.is_empty())
    }
}

/// Plan the import of `template` on `registry`. Pure: nothing is created.
#[must_use]
pub fn plan(template: &OrgTemplate, registry: &Registry, context: PlanContext<'_>) -> Plan {
    let mut plan = Plan {
        org: template.name.clone(),
        nodes: Vec::new(),
        missing_env: Vec::new(),
        problems: Vec::new(),
    };
    if template.name.trim().is_empty() {
        plan.problems
            .push("name: the org template needs a name".to_owned());
    }
    let count = template.node_count();
    if count > MAX_NODES {
        plan.problems.push(format!(
            "the template has {count} workspaces; at most {MAX_NODES} are allowed"
        ));
        return plan;
    }
    if template.workspaces.is_empty() {
        plan.problems
            .push("workspaces: the template creates no workspace".to_owned());
    }
    let mut walker = Walker {
        template,
        registry,
        context,
        plan: &mut plan,
    };
    walker.siblings(&template.workspaces, "workspaces", None, 1);
    let required = template
        .required_env
        .iter()
        .chain(&template.defaults.required_env)
        .chain(all_nodes(&template.workspaces).flat_map(|n| n.required_env.iter()));
    let mut seen = HashSet::new();
    for requirement in required {
        for name in requirement.names() {
            if !is_valid_env_name(name) {
                plan.problems.push(format!(
                    "required_env: {name:?} is not a valid variable name"
                ));
            }
        }
        let met = requirement
            .names()
            .iter()
            .any(|name| context.global_secrets.contains(&name.as_str()));
        if !met && seen.insert(requirement.describe()) {
            plan.missing_env.push(requirement.describe());
        }
    }
    plan
}

/// What is wrong with a node's schedules: a cron expression that does not parse, a time
/// zone the time zone database does not know, a schedule with no prompt.
fn schedule_problems(schedules: &[Schedule]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, schedule) in schedules.iter().enumerate() {
        let at = format!("schedules[{index}]");
        if let Err(e) = schedule.cron_expr.parse::<croner::Cron>() {
            problems.push(format!(
                "{at}.cron_expr: {:?} is not a cron expression: {e}",
                schedule.cron_expr
            ));
        }
        if let Some(zone) = &schedule.timezone
            && jiff::tz::db().get(zone).is_err()
        {
            problems.push(format!("{at}.timezone: unknown time zone {zone:?}"));
        }
        if schedule.prompt.is_none() && schedule.prompt_file.is_none() {
            problems.push(format!("{at}: a schedule needs a prompt (or prompt_file)"));
        }
    }
    problems
}

fn count_nodes(nodes: &[Node]) -> usize {
    nodes.iter().map(|n| 1 + count_nodes(&n.children)).sum()
}

fn all_nodes(nodes: &[Node]) -> Box<dyn Iterator<Item = &Node> + '_> {
    Box::new(
        nodes
            .iter()
            .flat_map(|n| std::iter::once(n).chain(all_nodes(&n.children))),
    )
}

struct Walker<'a, 'p> {
    template: &'a OrgTemplate,
    registry: &'a Registry,
    context: PlanContext<'a>,
    plan: &'p mut Plan,
}

impl Walker<'_, '_> {
    fn siblings(&mut self, nodes: &[Node], at: &str, parent: Option<&str>, depth: usize) {
        let mut names = HashSet::new();
        for (index, node) in nodes.iter().enumerate() {
            let path = format!("{at}[{index}]");
            let mut planned = self.node(node, &path, parent);
            if !names.insert(node.name.trim().to_owned()) {
                planned.problems.push(format!(
                    "name {:?} is used twice among its siblings",
                    node.name
                ));
            }
            if depth > MAX_DEPTH {
                planned
                    .problems
                    .push(format!("the tree is deeper than {MAX_DEPTH} levels here"));
            }
            self.plan.nodes.push(planned);
            if depth <= MAX_DEPTH {
                self.siblings(
                    &node.children,
                    &format!("{path}.children"),
                    Some(&path),
                    depth + 1,
                );
            }
        }
    }

    fn node(&self, node: &Node, path: &str, parent: Option<&str>) -> PlannedNode {
        let defaults = &self.template.defaults;
        let runtime = node.runtime.clone().or_else(|| defaults.runtime.clone());
        let model = node.model.clone().or_else(|| defaults.model.clone());
        let tier = node.tier.or(defaults.tier).unwrap_or(DEFAULT_TIER);
        let mut planned = PlannedNode {
            path: path.to_owned(),
            name: node.name.clone(),
            parent: parent.map(str::to_owned),
            runtime: runtime.clone(),
            model: model.clone(),
            tier,
            external: node.external,
            provider: None,
            provider_source: None,
            billing: None,
            problems: Vec::new(),
        };
        let fields = TextFields {
            name: Some(&node.name),
            role: node.role.as_deref(),
            model: model.as_deref(),
            runtime: runtime.as_deref(),
        };
        // The messages name their field (`name must not be empty`).
        if let Err(e) = check_text_fields(&fields, true) {
            planned.problems.push(e.to_string());
        }
        if let Err(e) = check_tier(tier) {
            planned.problems.push(e.to_string());
        }
        planned.problems.extend(schedule_problems(&node.schedules));
        if node.external {
            if node.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
                planned
                    .problems
                    .push("url: an external workspace needs the url of its agent".to_owned());
            }
            return planned;
        }
        // No silent defaults: what runs, and against which model, is said somewhere.
        let (Some(runtime), Some(model)) = (runtime, model) else {
            let missing = if planned.runtime.is_none() {
                "runtime"
            } else {
                "model"
            };
            planned.problems.push(format!(
                "{missing}: node {:?} names no {missing}, and the template's defaults name none",
                node.name
            ));
            return planned;
        };
        let mut secret_names: Vec<&str> = self.context.global_secrets.to_vec();
        secret_names.sort_unstable();
        let request = ProviderRequest {
            runtime: &runtime,
            model: &model,
            provider: None,
            billing_mode: None,
            secret_names: &secret_names,
            platform_key_configured: self.context.platform_key_configured,
        };
        match decide_provider(self.registry, &request) {
            Ok(decision) => {
                planned.provider = decision.provider.map(|p| p.name.clone());
                planned.provider_source = Some(decision.source.as_str().to_owned());
                planned.billing = decision.billing.map(|b| b.as_str().to_owned());
            }
            Err(refusal) => planned
                .problems
                .push(format!("{}: {refusal}", refusal.code())),
        }
        planned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: &str = "name: research\n\
        defaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
        workspaces:\n\
        \x20 - name: PM\n    children:\n\
        \x20     - name: Research Lead\n        children:\n          - name: Researcher\n\
        \x20     - name: Writer\n        model: moonshot/kimi-k2.6\n";

    fn context() -> PlanContext<'static> {
        PlanContext {
            global_secrets: &[],
            platform_key_configured: true,
        }
    }

    #[test]
    fn a_team_reads_and_plans_clean_on_the_built_in_catalog() {
        let template = parse_template(TEAM.as_bytes()).unwrap();
        let plan = plan(&template, Registry::builtin(), context());
        assert!(plan.is_clean(), "{plan:#?}");
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["PM", "Research Lead", "Researcher", "Writer"]);
        assert_eq!(
            plan.nodes[2].parent.as_deref(),
            Some("workspaces[0].children[0]")
        );
        assert!(
            plan.nodes
                .iter()
                .all(|n| n.provider.as_deref() == Some("platform"))
        );
        assert!(plan.nodes.iter().all(|n| n.tier == 2));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path_and_a_suggestion() {
        let text = TEAM.replace("        model: moonshot", "        modle: moonshot");
        let error = parse_template(text.as_bytes()).unwrap_err().to_string();
        assert!(
            error.contains("workspaces[0].children[1]")
                && error.contains("unknown field `modle`, did you mean `model`?"),
            "{error}"
        );
        let far = TEAM.replace("        model: moonshot", "        flavour: moonshot");
        let error = parse_template(far.as_bytes()).unwrap_err().to_string();
        assert!(error.contains("unknown field `flavour`") && !error.contains("did you mean"));
    }

    #[test]
    fn strict_yaml_is_enforced() {
        let duplicate = "name: a\nname: b\n";
        assert!(matches!(
            parse_template(duplicate.as_bytes()),
            Err(TemplateError::Yaml(_))
        ));
        assert!(parse_template(b"").is_err());
        assert!(
            parse_template(b"workspaces: []\n").is_err(),
            "name is required"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        let error = parse_template(b"name: a\nname: b\n").unwrap_err();
        assert!(
            matches!(&error, TemplateError::Yaml(m) if m.contains("duplicate key `name`") && m.contains("line 2")),
            "{error:?}"
        );
        // Also inside free-form values, where no field type would notice.
        let nested = "name: a\nglobal_memories:\n  notes: {x: 1, x: 2}\n";
        let error = parse_template(nested.as_bytes()).unwrap_err();
        assert!(
            matches!(&error, TemplateError::Yaml(m) if m.contains("duplicate key `x`")),
            "{error:?}"
        );
    }

    /// `levels` lists of ten, each made of aliases to the one before: 10^levels nodes.
    fn alias_bomb(levels: usize) -> String {
        let mut text =
            String::from("name: a\nglobal_memories:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..levels {
            let alias = format!("*l{}", level - 1);
            let list = [alias.as_str(); 10].join(", ");
            text.push_str(&format!("  l{level}: &l{level} [{list}]\n"));
        }
        text
    }

    #[test]
    fn a_billion_laughs_is_refused_quickly() {
        let started = std::time::Instant::now();
        let error = parse_template(alias_bomb(9).as_bytes()).unwrap_err();
        assert!(
            matches!(&error, TemplateError::Yaml(m) if m.contains("alias bomb")),
            "{error:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn aliases_are_refused_past_the_budget_not_before() {
        // An anchor of 1000 events (a list of 998 scalars), aliased `uses` times.
        let with_uses = |uses: usize| {
            let items = vec!["x"; 998].join(", ");
            let aliases = vec!["*big"; uses].join(", ");
            format!("name: a\nglobal_memories:\n  big: &big [{items}]\n  uses: [{aliases}]\n")
        };
        let at_the_limit = yaml::MAX_ALIAS_EVENTS / 1000;
        parse_template(with_uses(at_the_limit - 10).as_bytes()).unwrap();
        let error = parse_template(with_uses(at_the_limit + 10).as_bytes()).unwrap_err();
        assert!(
            matches!(&error, TemplateError::Yaml(m) if m.contains("more than 100000 events")),
            "{error:?}"
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        // The template's mapping is level 1, so `global_memories` may nest 63 lists.
        let nested = |lists: usize| {
            format!(
                "name: a\nglobal_memories: {}{}\n",
                "[".repeat(lists),
                "]".repeat(lists)
            )
        };
        parse_template(nested(yaml::MAX_DEPTH - 1).as_bytes()).unwrap();
        let error = parse_template(nested(yaml::MAX_DEPTH).as_bytes()).unwrap_err();
        assert!(
            matches!(&error, TemplateError::Yaml(m) if m.contains("nesting deeper than 64 levels")),
            "{error:?}"
        );
    }

    #[test]
    fn nothing_is_filled_in_silently() {
        let text = "name: t\nworkspaces:\n  - name: lonely\n";
        let plan = plan(
            &parse_template(text.as_bytes()).unwrap(),
            Registry::builtin(),
            context(),
        );
        let problems = &plan.nodes[0].problems;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("runtime:") && p.contains("lonely")),
            "{problems:?}"
        );
        assert!(!plan.is_clean());
    }

    #[test]
    fn node_problems_name_the_refusal_and_siblings_must_differ() {
        let text = "name: t\ndefaults:\n  runtime: claude-code\nworkspaces:\n\
            \x20 - name: a\n    model: anthropic:claude-opus-4-5\n\
            \x20 - name: a\n    model: moonshot/kimi-k2.6\n";
        let plan = plan(
            &parse_template(text.as_bytes()).unwrap(),
            Registry::builtin(),
            context(),
        );
        assert!(
            plan.nodes[0]
                .problems
                .iter()
                .any(|p| p.starts_with("byok_key_missing")),
            "{:?}",
            plan.nodes[0].problems
        );
        assert!(
            plan.nodes[1]
                .problems
                .iter()
                .any(|p| p.contains("used twice")),
            "{:?}",
            plan.nodes[1].problems
        );
    }

    #[test]
    fn required_env_must_be_global_secrets() {
        let text = "name: t\nrequired_env: [SEARCH_KEY, {any_of: [A_KEY, B_KEY]}]\n\
            defaults:\n  runtime: claude-code\n  model: moonshot/kimi-k2.6\n\
            workspaces:\n  - name: a\n";
        let template = parse_template(text.as_bytes()).unwrap();
        let missing = plan(&template, Registry::builtin(), context()).missing_env;
        assert_eq!(missing, ["SEARCH_KEY", "one of A_KEY, B_KEY"]);
        let held = PlanContext {
            global_secrets: &["SEARCH_KEY", "B_KEY"],
            platform_key_configured: true,
        };
        assert!(
            plan(&template, Registry::builtin(), held)
                .missing_env
                .is_empty()
        );
    }

    #[test]
    fn oversized_and_overdeep_trees_are_refused() {
        let wide = OrgTemplate {
            name: "t".into(),
            workspaces: (0..=MAX_NODES)
                .map(|i| Node {
                    name: format!("n{i}"),
                    ..Node::default()
                })
                .collect(),
            ..OrgTemplate::default()
        };
        let plan_wide = plan(&wide, Registry::builtin(), context());
        assert!(
            plan_wide
                .problems
                .iter()
                .any(|p| p.contains("at most 1000"))
        );

        let mut deep = Node {
            name: "leaf".into(),
            ..Node::default()
        };
        for level in 0..MAX_DEPTH {
            deep = Node {
                name: format!("level{level}"),
                children: vec![deep],
                ..Node::default()
            };
        }
        let template = OrgTemplate {
            name: "t".into(),
            defaults: Defaults {
                runtime: Some("claude-code".into()),
                model: Some("moonshot/kimi-k2.6".into()),
                ..Defaults::default()
            },
            workspaces: vec![deep],
            ..OrgTemplate::default()
        };
        let plan_deep = plan(&template, Registry::builtin(), context());
        let leaf = plan_deep.nodes.last().unwrap();
        assert_eq!(leaf.name, "leaf");
        assert!(
            leaf.problems.iter().any(|p| p.contains("deeper than 16")),
            "{leaf:?}"
        );
    }

    #[test]
    fn schedules_are_checked() {
        let schedule = |cron: &str, zone: Option<&str>| Schedule {
            name: "s".into(),
            cron_expr: cron.into(),
            timezone: zone.map(str::to_owned),
            prompt: Some("go".into()),
            prompt_file: None,
            enabled: true,
        };
        assert!(schedule_problems(&[schedule("0 9 * * 1", Some("Europe/Berlin"))]).is_empty());
        let problems = schedule_problems(&[
            schedule("every monday", None),
            schedule("0 9 * * 1", Some("Mars/Olympus_Mons")),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("schedules[0].cron_expr"),
            "{problems:?}"
        );
        assert!(problems[1].contains("unknown time zone"), "{problems:?}");
        let mut silent = schedule("0 9 * * 1", None);
        silent.prompt = None;
        assert!(schedule_problems(&[silent])[0].contains("needs a prompt"));
    }

    #[test]
    fn suggestions_stay_close() {
        assert_eq!(strsim::levenshtein("modle", "model"), 2);
        assert_eq!(strsim::levenshtein("", "abc"), 3);
        assert_eq!(strsim::levenshtein("tier", "tier"), 0);
    }
}

#[cfg(test)]
mod shipped_templates {
    use super::*;

    #[test]
    fn the_example_org_templates_plan_clean_on_the_built_in_catalog() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/org");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let template = parse_template(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let planned = plan(
                &template,
                Registry::builtin(),
                PlanContext {
                    global_secrets: &[],
                    platform_key_configured: true,
                },
            );
            assert!(planned.is_clean(), "{}: {planned:#?}", path.display());
            assert!(planned.missing_env.is_empty(), "{}", path.display());
            assert!(
                planned
                    .nodes
                    .iter()
                    .all(|n| n.provider.as_deref() == Some("platform")),
                "{}: {planned:#?}",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= 2, "the repository ships its example templates");
    }
}
