//! Strict YAML reading: one document, unique keys, bounded nesting and alias expansion.
//!
//! The event stream of `saphyr-parser` is folded into a small arena of nodes. Aliases
//! become shared references to the anchored node, so expansion is never performed: the
//! size each alias *would* expand to is known from the arena and counted against a budget.
//! Every limit applies to the whole document, including keys the manifest ignores.
//!
//! The provider manifest keeps this reader rather than serde-saphyr (which reads hatchery's
//! own YAML: `hatchery_core::yaml`) because the spec's rules are Go yaml.v3's: keys compare
//! by kind and literal text (`1` and `'1'` collide, `1` and `0x1` do not; serde-saphyr
//! compares resolved values, the other way round), and aliases are budgeted without being
//! expanded (serde-saphyr replays them); the manifest decoder then applies Go's per-field
//! coercions (spec §2) to this arena's nodes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Limits that bound the time and memory spent on one document.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes that all aliases together may stand for.
    pub max_alias_nodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 64,
            max_alias_nodes: 100_000,
        }
    }
}

/// Where in the input a node or a problem is (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl Position {
    fn from_span(span: &Span) -> Self {
        Self {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a document was refused before any field was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// The input is larger than [`Limits::max_bytes`].
    #[error("input is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The input is not UTF-8.
    #[error("input is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The YAML syntax is broken.
    #[error("{message} at {position}")]
    Syntax {
        /// The parser's description.
        message: String,
        /// Where it stopped.
        position: Position,
    },
    /// A second document follows the first.
    #[error("a second YAML document starts at {position}; exactly one is allowed")]
    MultipleDocuments {
        /// Where the second document starts.
        position: Position,
    },
    /// A mapping repeats a key.
    #[error("duplicate key `{}` at {position}", key.escape_debug())]
    DuplicateKey {
        /// The repeated key's text.
        key: String,
        /// Where the repetition is.
        position: Position,
    },
    /// Nesting goes deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {limit} levels at {position}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
        /// Where the limit was crossed.
        position: Position,
    },
    /// Aliases stand for more nodes than [`Limits::max_alias_nodes`].
    #[error("aliases expand to more than {limit} nodes (at {position}); refusing an alias bomb")]
    AliasBudget {
        /// The limit in force.
        limit: u64,
        /// The alias that crossed the limit.
        position: Position,
    },
    /// An alias points into the node that carries its own anchor.
    #[error("alias at {position} refers to a node that contains it")]
    RecursiveAlias {
        /// Where the alias is.
        position: Position,
    },
}

/// Index of a node in its [`Document`].
pub type NodeId = usize;

/// How a scalar was written, which decides how it resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarForm {
    /// Plain (unquoted): resolves to null, bool, int, float or string.
    Plain,
    /// Quoted or block: always a string.
    Quoted,
}

/// One node of the arena.
#[derive(Debug)]
pub enum NodeKind {
    /// A scalar with its literal text.
    Scalar {
        /// The scalar's text as written (after YAML unescaping).
        text: String,
        /// Plain or quoted.
        form: ScalarForm,
        /// Suffix of a core-schema tag (`str`, `int`, …), when one was given.
        core_tag: Option<String>,
    },
    /// A sequence of nodes.
    Sequence(Vec<NodeId>),
    /// A mapping, entries in document order.
    Mapping(Vec<(NodeId, NodeId)>),
}

/// A node and where it starts.
#[derive(Debug)]
pub struct Node {
    /// What the node is.
    pub kind: NodeKind,
    /// Where it starts.
    pub position: Position,
    /// How many nodes it stands for once every alias inside is expanded.
    expanded_size: u64,
}

/// A parsed document. `root` is `None` for an empty stream.
#[derive(Debug)]
pub struct Document {
    nodes: Vec<Node>,
    root: Option<NodeId>,
}

impl Document {
    /// The root node, if the input held a document at all.
    #[must_use]
    pub fn root(&self) -> Option<NodeId> {
        self.root
    }

    /// The node behind an id.
    #[must_use]
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }
}

/// A collection being built while its events arrive.
struct OpenCollection {
    anchor: usize,
    position: Position,
    kind: OpenKind,
}

enum OpenKind {
    Sequence(Vec<NodeId>),
    Mapping {
        entries: Vec<(NodeId, NodeId)>,
        pending_key: Option<NodeId>,
        seen_keys: KeySet,
    },
}

/// The keys of one mapping, for duplicate detection. Two keys are the same key when they
/// are the same kind of node with the same literal text, as in Go's yaml.v3: `1` and `'1'`
/// collide, `1` and `0x1` do not, and two sequence or mapping keys always collide. Small
/// mappings (nearly all) compare in place; past [`KeySet::SMALL`] keys a hash set keeps a
/// mapping with many keys linear.
#[derive(Default)]
struct KeySet {
    small: Vec<NodeId>,
    large: Option<HashSet<(u8, String)>>,
}

impl KeySet {
    const SMALL: usize = 16;

    /// `false` when the key was already present.
    fn insert(&mut self, id: NodeId, nodes: &[Node]) -> bool {
        let identity = key_identity(&nodes[id]);
        if let Some(large) = &mut self.large {
            return large.insert((identity.0, identity.1.to_owned()));
        }
        if self
            .small
            .iter()
            .any(|&other| key_identity(&nodes[other]) == identity)
        {
            return false;
        }
        self.small.push(id);
        if self.small.len() > Self::SMALL {
            let identities = self.small.drain(..).map(|other| {
                let (kind, text) = key_identity(&nodes[other]);
                (kind, text.to_owned())
            });
            self.large = Some(identities.collect());
        }
        true
    }
}

/// A key's kind and literal text (empty for collections).
fn key_identity(node: &Node) -> (u8, &str) {
    match &node.kind {
        NodeKind::Scalar { text, .. } => (0, text),
        NodeKind::Sequence(_) => (1, ""),
        NodeKind::Mapping(_) => (2, ""),
    }
}

/// Parse `input` as exactly one strict YAML document.
pub fn parse(input: &[u8], limits: Limits) -> Result<Document, YamlError> {
    if input.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            size: input.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| YamlError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Builder::new(limits, text.len()).run(text)
}

struct Builder {
    limits: Limits,
    nodes: Vec<Node>,
    stack: Vec<OpenCollection>,
    /// Anchors whose node is complete.
    anchors: HashMap<usize, NodeId>,
    alias_nodes: u64,
    documents: usize,
    root: Option<NodeId>,
}

impl Builder {
    fn new(limits: Limits, input_len: usize) -> Self {
        Self {
            limits,
            // Real manifests hold about one node per 16 bytes; this avoids most regrowth.
            nodes: Vec::with_capacity(input_len / 16),
            stack: Vec::new(),
            anchors: HashMap::new(),
            alias_nodes: 0,
            documents: 0,
            root: None,
        }
    }

    fn run(mut self, text: &str) -> Result<Document, YamlError> {
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| {
                let position = Position {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                };
                // The scanner has its own, earlier guard for flow nesting; same failure.
                if e.info().contains("recursion limit") {
                    YamlError::TooDeep {
                        limit: self.limits.max_depth,
                        position,
                    }
                } else {
                    YamlError::Syntax {
                        message: e.info().to_owned(),
                        position,
                    }
                }
            })?;
            let position = Position::from_span(&span);
            match event {
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(YamlError::MultipleDocuments { position });
                    }
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let form = match style {
                        ScalarStyle::Plain => ScalarForm::Plain,
                        _ => ScalarForm::Quoted,
                    };
                    let core_tag = tag
                        .filter(|t| t.is_yaml_core_schema())
                        .map(|t| t.suffix.clone());
                    let kind = NodeKind::Scalar {
                        text: value.into_owned(),
                        form,
                        core_tag,
                    };
                    let id = self.push_node(kind, position, 1);
                    self.finish_node(id, anchor, position)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(anchor, position, OpenKind::Sequence(Vec::new()))?;
                }
                Event::MappingStart(anchor, _) => {
                    let kind = OpenKind::Mapping {
                        entries: Vec::new(),
                        pending_key: None,
                        seen_keys: KeySet::default(),
                    };
                    self.open(anchor, position, kind)?;
                }
                Event::SequenceEnd | Event::MappingEnd => self.close()?,
                Event::Alias(anchor) => self.alias(anchor, position)?,
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(Document {
            nodes: self.nodes,
            root: self.root,
        })
    }

    fn push_node(&mut self, kind: NodeKind, position: Position, expanded_size: u64) -> NodeId {
        self.nodes.push(Node {
            kind,
            position,
            expanded_size,
        });
        self.nodes.len() - 1
    }

    fn open(&mut self, anchor: usize, position: Position, kind: OpenKind) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError::TooDeep {
                limit: self.limits.max_depth,
                position,
            });
        }
        self.stack.push(OpenCollection {
            anchor,
            position,
            kind,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let Some(open) = self.stack.pop() else {
            return Ok(());
        };
        let (kind, size) = match open.kind {
            OpenKind::Sequence(items) => {
                let size = self.expanded_size_of(items.iter().copied());
                (NodeKind::Sequence(items), size)
            }
            OpenKind::Mapping { entries, .. } => {
                let size = self.expanded_size_of(entries.iter().flat_map(|&(k, v)| [k, v]));
                (NodeKind::Mapping(entries), size)
            }
        };
        let id = self.push_node(kind, open.position, size);
        self.finish_node(id, open.anchor, open.position)
    }

    /// One for the collection itself plus what each child stands for.
    fn expanded_size_of(&self, children: impl Iterator<Item = NodeId>) -> u64 {
        children.fold(1u64, |acc, c| {
            acc.saturating_add(self.nodes[c].expanded_size)
        })
    }

    fn alias(&mut self, anchor: usize, position: Position) -> Result<(), YamlError> {
        let Some(&target) = self.anchors.get(&anchor) else {
            // The parser resolved the name, so the anchor is open: the alias sits inside it.
            return Err(YamlError::RecursiveAlias { position });
        };
        self.alias_nodes = self
            .alias_nodes
            .saturating_add(self.nodes[target].expanded_size);
        if self.alias_nodes > self.limits.max_alias_nodes {
            return Err(YamlError::AliasBudget {
                limit: self.limits.max_alias_nodes,
                position,
            });
        }
        self.attach(target, position)
    }

    fn finish_node(
        &mut self,
        id: NodeId,
        anchor: usize,
        position: Position,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        self.attach(id, position)
    }

    /// Hang a finished node on the collection being built, or make it the root.
    fn attach(&mut self, id: NodeId, position: Position) -> Result<(), YamlError> {
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(id);
            return Ok(());
        };
        match &mut parent.kind {
            OpenKind::Sequence(items) => items.push(id),
            OpenKind::Mapping {
                entries,
                pending_key,
                seen_keys,
            } => match pending_key.take() {
                None => {
                    if !seen_keys.insert(id, &self.nodes) {
                        let key = match &self.nodes[id].kind {
                            NodeKind::Scalar { text, .. } => text.clone(),
                            NodeKind::Sequence(_) => "(a sequence)".to_owned(),
                            NodeKind::Mapping(_) => "(a mapping)".to_owned(),
                        };
                        return Err(YamlError::DuplicateKey { key, position });
                    }
                    *pending_key = Some(id);
                }
                Some(key) => entries.push((key, id)),
            },
        }
        Ok(())
    }
}

/// The core-schema type a scalar resolves to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolved {
    /// `~`, `null`, empty.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer in decimal, hex (`0x`), octal (`0o`, leading `0`) or binary (`0b`).
    Int(i128),
    /// A floating-point number, `.inf` or `.nan`.
    Float,
    /// Anything else.
    Str,
}

/// Resolve a scalar the way Go's yaml.v3 does for untyped values.
#[must_use]
pub fn resolve(text: &str, form: ScalarForm, core_tag: Option<&str>) -> Resolved {
    match core_tag {
        Some("str") => return Resolved::Str,
        Some("null") => return Resolved::Null,
        _ => {}
    }
    if form == ScalarForm::Quoted && core_tag.is_none() {
        return Resolved::Str;
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Resolved::Int(i);
    }
    if is_float(text) {
        return Resolved::Float;
    }
    Resolved::Str
}

fn parse_int(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b") {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok && (fraction.is_some() || exponent.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Document, YamlError> {
        parse(s.as_bytes(), Limits::default())
    }

    #[test]
    fn duplicate_keys_are_refused_even_under_ignored_keys() {
        let err = parse_str("a:\n  ignored:\n    x: 1\n    x: 2\n").unwrap_err();
        assert!(
            matches!(err, YamlError::DuplicateKey { ref key, .. } if key == "x"),
            "{err}"
        );
    }

    #[test]
    fn keys_compare_by_kind_and_literal_text_as_in_go() {
        let dup = |doc: &str| matches!(parse_str(doc), Err(YamlError::DuplicateKey { .. }));
        assert!(dup("1: a\n'1': b\n"));
        assert!(dup("true: a\n\"true\": b\n"));
        assert!(!dup("1: a\n0x1: b\n"));
        assert!(parse_str("? [a]\n: 1\nk: 2\n").is_ok());
        assert!(dup("? [a]\n: 1\n? [b]\n: 2\n"));
    }

    #[test]
    fn duplicates_are_found_in_large_mappings_too() {
        let mut doc: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        assert!(parse_str(&doc).is_ok());
        doc.push_str("k3: again\n");
        assert!(
            matches!(parse_str(&doc), Err(YamlError::DuplicateKey { ref key, .. }) if key == "k3")
        );
        let ints: String = (0..40).map(|i| format!("{i}: x\n")).collect::<String>() + "'31': dup\n";
        assert!(matches!(
            parse_str(&ints),
            Err(YamlError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn second_document_is_refused() {
        let err = parse_str("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(matches!(err, YamlError::MultipleDocuments { .. }), "{err}");
    }

    #[test]
    fn depth_limit_counts_collections() {
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(parse_str(&ok).is_ok());
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(matches!(parse_str(&deep), Err(YamlError::TooDeep { .. })));
    }

    #[test]
    fn alias_budget_counts_expanded_size_without_expanding() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        assert!(matches!(
            parse_str(&doc),
            Err(YamlError::AliasBudget { .. })
        ));
        assert!(parse_str("a: &x [1, 2]\nb: *x\nc: *x\n").is_ok());
    }

    #[test]
    fn resolution_follows_the_core_schema() {
        use ScalarForm::{Plain, Quoted};
        assert_eq!(resolve("1", Plain, None), Resolved::Int(1));
        assert_eq!(resolve("0x1F", Plain, None), Resolved::Int(31));
        assert_eq!(resolve("010", Plain, None), Resolved::Int(8));
        assert_eq!(resolve("-3", Plain, None), Resolved::Int(-3));
        assert_eq!(resolve("1", Quoted, None), Resolved::Str);
        assert_eq!(resolve("1", Plain, Some("str")), Resolved::Str);
        assert_eq!(resolve("1.5", Plain, None), Resolved::Float);
        assert_eq!(resolve("1e3", Plain, None), Resolved::Float);
        assert_eq!(resolve(".inf", Plain, None), Resolved::Float);
        assert_eq!(resolve("1.2.3", Plain, None), Resolved::Str);
        assert_eq!(resolve("~", Plain, None), Resolved::Null);
        assert_eq!(resolve("", Plain, None), Resolved::Null);
        assert_eq!(resolve("True", Plain, None), Resolved::Bool(true));
        assert_eq!(resolve("yes", Plain, None), Resolved::Str);
    }
}
