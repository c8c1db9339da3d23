//! The manifest as written: fields decoded from the strict YAML tree, not yet validated.
//!
//! Decoding follows the format's reading rules: unknown keys are ignored, `null` and an
//! absent key both mean empty, a string field takes any scalar's literal text, and a
//! boolean accepts YAML 1.1's `yes/no/on/off/y/n`. A value of the wrong shape (a mapping
//! where a list belongs) is a `parse` error naming the field's path.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::error::ManifestError;
use crate::yaml::{self, Document, NodeId, NodeKind, Resolved, ScalarForm};

/// `schema_version` as written.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaVersion {
    /// The key is absent or null.
    Absent,
    /// An integer.
    Int(i128),
    /// A float (refused: the version must be an integer).
    Float(String),
}

/// The whole document, fields in document order.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// `schema_version`.
    pub schema_version: SchemaVersion,
    /// `providers`, in list order.
    pub providers: Vec<RawProvider>,
    /// `runtimes`, in document order.
    pub runtimes: Vec<RawRuntime>,
}

/// One `providers[]` entry as written.
#[derive(Debug, Clone, Default)]
#[allow(missing_docs)] // field names are the manifest's keys; the spec documents them
pub struct RawProvider {
    pub name: String,
    pub display_name: String,
    pub vendor_logo: String,
    pub protocol: String,
    pub auth_mode: String,
    pub base_url_template: String,
    pub base_url_anthropic: String,
    pub auth_env: Vec<String>,
    pub auth_token_env: String,
    pub model_prefix_match: String,
    pub model_aliases: Vec<String>,
    pub deprecated: bool,
    pub upstream_vendor: String,
    /// hatchery extension: model ids that must derive to this provider (used by tests and docs).
    pub example_models: Vec<String>,
}

/// One `runtimes.<name>` entry as written.
#[derive(Debug, Clone, Default)]
pub struct RawRuntime {
    /// The mapping key.
    pub name: String,
    /// `display_name` (SDK copy of the format).
    pub display_name: String,
    /// `providers`, in priority order.
    pub providers: Vec<RawProviderRef>,
}

/// One `runtimes.<name>.providers[]` reference as written.
#[derive(Debug, Clone, Default)]
pub struct RawProviderRef {
    /// The catalog provider it names.
    pub name: String,
    /// Exact model ids; empty for a name-only arm.
    pub models: Vec<String>,
    /// `models: null` was written out (a hygiene warning, not an error).
    pub models_explicit_null: bool,
}

/// Where a field is, built without allocating; formatted only for an error message.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'static str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root(name) => f.write_str(name),
            Self::Field(parent, key) => write!(f, "{parent}.{key}"),
            Self::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Decode a parsed document into the manifest's fields.
pub fn decode(doc: &Document) -> Result<RawManifest, ManifestError> {
    let decoder = Decoder { doc };
    let mut manifest = RawManifest {
        schema_version: SchemaVersion::Absent,
        providers: Vec::new(),
        runtimes: Vec::new(),
    };
    let Some(root) = doc.root() else {
        return Ok(manifest);
    };
    let Some(top) = decoder.mapping(root, Path::Root("manifest"))? else {
        return Ok(manifest);
    };
    if let Some(node) = lookup(doc, &top, "schema_version") {
        manifest.schema_version = decoder.schema_version(node)?;
    }
    if let Some(node) = lookup(doc, &top, "providers") {
        manifest.providers = decoder.list(node, Path::Root("providers"), |item, at| {
            decoder.provider(item, at)
        })?;
    }
    if let Some(node) = lookup(doc, &top, "runtimes") {
        let map = Path::Root("runtimes");
        for (key, value) in decoder
            .mapping(node, map)?
            .unwrap_or_default()
            .iter()
            .copied()
        {
            let name = decoder.string(key, Path::Root("runtimes (key)"))?;
            let runtime = decoder.runtime(value, Path::Field(&map, &name))?;
            manifest.runtimes.push(RawRuntime { name, ..runtime });
        }
    }
    Ok(manifest)
}

/// Find `key` among flattened mapping entries; the first (most direct) wins.
fn lookup(doc: &Document, entries: &[(NodeId, NodeId)], key: &str) -> Option<NodeId> {
    entries.iter().find_map(|&(k, v)| match &doc.node(k).kind {
        NodeKind::Scalar { text, .. } if text == key => Some(v),
        _ => None,
    })
}

/// A mapping's entries, borrowed from the document unless merge keys had to be flattened.
type Entries<'a> = Cow<'a, [(NodeId, NodeId)]>;

struct Decoder<'a> {
    doc: &'a Document,
}

impl<'a> Decoder<'a> {
    fn error(&self, node: NodeId, path: Path<'_>, problem: impl Into<String>) -> ManifestError {
        ManifestError::Decode {
            path: path.to_string(),
            problem: problem.into(),
            position: self.doc.node(node).position,
        }
    }

    fn is_null(&self, node: NodeId) -> bool {
        match &self.doc.node(node).kind {
            NodeKind::Scalar {
                text,
                form,
                core_tag,
            } => yaml::resolve(text, *form, core_tag.as_deref()) == Resolved::Null,
            _ => false,
        }
    }

    fn shape(&self, node: NodeId) -> &'static str {
        match &self.doc.node(node).kind {
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Sequence(_) => "a list",
            NodeKind::Mapping(_) => "a mapping",
        }
    }

    /// A mapping's entries with YAML merge keys (`<<`) flattened in after the direct
    /// entries, so direct keys win. `None` for null. Borrowed when nothing is merged.
    fn mapping(&self, node: NodeId, path: Path<'_>) -> Result<Option<Entries<'a>>, ManifestError> {
        let entries: &'a [(NodeId, NodeId)] = match &self.doc.node(node).kind {
            NodeKind::Mapping(entries) => entries,
            _ if self.is_null(node) => return Ok(None),
            _ => {
                return Err(self.error(
                    node,
                    path,
                    format!("expected a mapping, found {}", self.shape(node)),
                ));
            }
        };
        if !entries.iter().any(|&(key, _)| self.is_merge_key(key)) {
            return Ok(Some(Cow::Borrowed(entries)));
        }
        let mut direct = Vec::with_capacity(entries.len());
        let mut merged = Vec::new();
        for &(key, value) in entries {
            if self.is_merge_key(key) {
                merged.extend(self.merge_source(value, path)?);
            } else {
                direct.push((key, value));
            }
        }
        let mut seen: HashSet<&str> = direct
            .iter()
            .filter_map(|&(k, _)| self.key_text(k))
            .collect();
        direct.extend(
            merged
                .into_iter()
                .filter(|&(k, _)| self.key_text(k).is_none_or(|text| seen.insert(text))),
        );
        Ok(Some(Cow::Owned(direct)))
    }

    fn key_text(&self, key: NodeId) -> Option<&'a str> {
        match &self.doc.node(key).kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    fn is_merge_key(&self, key: NodeId) -> bool {
        matches!(&self.doc.node(key).kind,
            NodeKind::Scalar { text, form: ScalarForm::Plain, core_tag: None } if text == "<<")
    }

    /// The entries a `<<` value contributes: one mapping, or a list of them (earlier wins).
    fn merge_source(
        &self,
        value: NodeId,
        path: Path<'_>,
    ) -> Result<Vec<(NodeId, NodeId)>, ManifestError> {
        let sources: &[NodeId] = match &self.doc.node(value).kind {
            NodeKind::Sequence(items) => items,
            // A scalar is refused below, like any non-mapping source.
            NodeKind::Mapping(_) | NodeKind::Scalar { .. } => std::slice::from_ref(&value),
        };
        let mut out: Vec<(NodeId, NodeId)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for &source in sources {
            if !matches!(self.doc.node(source).kind, NodeKind::Mapping(_)) {
                return Err(self.error(
                    source,
                    path,
                    "merge key `<<` expects a mapping or a list of mappings",
                ));
            }
            for &entry in self.mapping(source, path)?.unwrap_or_default().iter() {
                if self.key_text(entry.0).is_none_or(|text| seen.insert(text)) {
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// A list's items; empty for null.
    fn sequence(&self, node: NodeId, path: Path<'_>) -> Result<&'a [NodeId], ManifestError> {
        match &self.doc.node(node).kind {
            NodeKind::Sequence(items) => Ok(items),
            _ if self.is_null(node) => Ok(&[]),
            _ => Err(self.error(
                node,
                path,
                format!("expected a list, found {}", self.shape(node)),
            )),
        }
    }

    /// Any scalar's literal text; null is the empty string.
    fn string(&self, node: NodeId, path: Path<'_>) -> Result<String, ManifestError> {
        match &self.doc.node(node).kind {
            NodeKind::Scalar { .. } if self.is_null(node) => Ok(String::new()),
            NodeKind::Scalar { text, .. } => Ok(text.clone()),
            _ => Err(self.error(
                node,
                path,
                format!("expected a string, found {}", self.shape(node)),
            )),
        }
    }

    /// A list decoded item by item, each item's path carrying its index; empty for null.
    fn list<T>(
        &self,
        node: NodeId,
        path: Path<'_>,
        mut decode: impl FnMut(NodeId, Path<'_>) -> Result<T, ManifestError>,
    ) -> Result<Vec<T>, ManifestError> {
        self.sequence(node, path)?
            .iter()
            .enumerate()
            .map(|(i, &item)| decode(item, Path::Index(&path, i)))
            .collect()
    }

    fn strings(&self, node: NodeId, path: Path<'_>) -> Result<Vec<String>, ManifestError> {
        self.list(node, path, |item, at| self.string(item, at))
    }

    /// A bool as Go's yaml.v3 decodes one into a typed field: plain `true`/`false` in
    /// their three spellings, and — plain or quoted — YAML 1.1's `y/yes/on`, `n/no/off`.
    fn boolean(&self, node: NodeId, path: Path<'_>) -> Result<bool, ManifestError> {
        if self.is_null(node) {
            return Ok(false);
        }
        if let NodeKind::Scalar {
            text,
            form,
            core_tag,
        } = &self.doc.node(node).kind
        {
            if let Resolved::Bool(value) = yaml::resolve(text, *form, core_tag.as_deref()) {
                return Ok(value);
            }
            match text.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Ok(true),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Ok(false),
                _ => {}
            }
        }
        Err(self.error(node, path, "expected a boolean (true or false)"))
    }

    fn schema_version(&self, node: NodeId) -> Result<SchemaVersion, ManifestError> {
        let path = Path::Root("schema_version");
        let NodeKind::Scalar {
            text,
            form,
            core_tag,
        } = &self.doc.node(node).kind
        else {
            return Err(self.error(
                node,
                path,
                format!("expected an integer, found {}", self.shape(node)),
            ));
        };
        match yaml::resolve(text, *form, core_tag.as_deref()) {
            Resolved::Null => Ok(SchemaVersion::Absent),
            Resolved::Int(v) => Ok(SchemaVersion::Int(v)),
            Resolved::Float => Ok(SchemaVersion::Float(text.clone())),
            Resolved::Bool(_) | Resolved::Str => Err(self.error(
                node,
                path,
                format!("expected an integer, found the string {text:?}"),
            )),
        }
    }

    fn provider(&self, node: NodeId, path: Path<'_>) -> Result<RawProvider, ManifestError> {
        let mut p = RawProvider::default();
        let Some(entries) = self.mapping(node, path)? else {
            return Ok(p);
        };
        for &(key_node, value) in entries.iter() {
            let NodeKind::Scalar { text: key, .. } = &self.doc.node(key_node).kind else {
                continue;
            };
            // Merged entries come after direct ones and never repeat a key (see `mapping`).
            let at = Path::Field(&path, key);
            match key.as_str() {
                "name" => p.name = self.string(value, at)?,
                "display_name" => p.display_name = self.string(value, at)?,
                "vendor_logo" => p.vendor_logo = self.string(value, at)?,
                "protocol" => p.protocol = self.string(value, at)?,
                "auth_mode" => p.auth_mode = self.string(value, at)?,
                "base_url_template" => p.base_url_template = self.string(value, at)?,
                "base_url_anthropic" => p.base_url_anthropic = self.string(value, at)?,
                "auth_token_env" => p.auth_token_env = self.string(value, at)?,
                "model_prefix_match" => p.model_prefix_match = self.string(value, at)?,
                "upstream_vendor" => p.upstream_vendor = self.string(value, at)?,
                "auth_env" => p.auth_env = self.strings(value, at)?,
                "model_aliases" => p.model_aliases = self.strings(value, at)?,
                // Molecule never reads this key; a value of another shape is ignored, not an error.
                "example_models" => p.example_models = self.strings(value, at).unwrap_or_default(),
                "deprecated" => p.deprecated = self.boolean(value, at)?,
                _ => {}
            }
        }
        Ok(p)
    }

    fn runtime(&self, node: NodeId, path: Path<'_>) -> Result<RawRuntime, ManifestError> {
        let mut runtime = RawRuntime::default();
        let Some(entries) = self.mapping(node, path)? else {
            return Ok(runtime);
        };
        // Go's loader never reads a runtime's display_name: a value of another shape is
        // ignored, as Molecule would, rather than refused.
        if let Some(value) = lookup(self.doc, &entries, "display_name") {
            runtime.display_name = self
                .string(value, Path::Field(&path, "display_name"))
                .unwrap_or_default();
        }
        if let Some(value) = lookup(self.doc, &entries, "providers") {
            runtime.providers = self.list(value, Path::Field(&path, "providers"), |item, at| {
                self.provider_ref(item, at)
            })?;
        }
        Ok(runtime)
    }

    fn provider_ref(&self, node: NodeId, path: Path<'_>) -> Result<RawProviderRef, ManifestError> {
        let mut reference = RawProviderRef::default();
        let Some(entries) = self.mapping(node, path)? else {
            return Ok(reference);
        };
        if let Some(value) = lookup(self.doc, &entries, "name") {
            reference.name = self.string(value, Path::Field(&path, "name"))?;
        }
        if let Some(value) = lookup(self.doc, &entries, "models") {
            reference.models_explicit_null = self.is_null(value);
            reference.models = self.strings(value, Path::Field(&path, "models"))?;
        }
        Ok(reference)
    }
}
