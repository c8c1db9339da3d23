//! Strict YAML for hatchery's own documents — org templates, a workspace template's
//! `config.yaml`, the agent's generated `config.yaml` — read by `serde-saphyr` straight
//! into their types, with an explicit budget: one document, no duplicate key (also under
//! keys the reader ignores), bounded nesting, node count and alias expansion.
//!
//! Scalars resolve as the registry's reader resolves them (YAML 1.2's core schema as Go's
//! yaml.v3 reads it): `yes` is a string, `010` is octal, `1_000` and `.inf` stay text,
//! `<<` is an ordinary key. A string field takes a plain scalar's text (`model: 1.10` is
//! `"1.10"`). The provider manifest keeps its own reader, `hatchery_registry::yaml`
//! (its module comment says why).

use serde::de::DeserializeOwned;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{DuplicateKeyPolicy, MergeKeyPolicy, NonFiniteFloatPolicy};

/// Largest document read, in bytes.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Deepest nesting of sequences and mappings (the root mapping is level 1).
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, sequences, mappings) one document may hold.
pub const MAX_NODES: usize = 250_000;
/// Most parser events that all aliases together may replay: a billion laughs stops here.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// Why a document was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not strict YAML: too large, broken syntax, a second document, a duplicate key, too
    /// deep, too many nodes, aliases beyond the budget.
    #[error("{0}")]
    Document(String),
    /// Strict YAML of the wrong shape: an unknown or missing field, a wrong type; the
    /// message starts with the path (`workspaces[0].children[1]: …`).
    #[error("{0}")]
    Shape(String),
}

/// The reading options: the budget and the strict policies above.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_documents: 1,
            // The replay budget bounds the work; a template may alias one anchor often.
            enforce_alias_anchor_ratio: false,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::AsOrdinary,
        strict_booleans: true,
        legacy_octal_numbers: true,
        underscored_numbers_as_strings: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
    }
}

/// Read one strict YAML document as a `T`. An empty document reads as null, so a caller
/// that must tell "empty" apart asks for an `Option`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, YamlError> {
    if bytes.len() > MAX_BYTES {
        return Err(YamlError::Document(format!(
            "input is {} bytes, more than the limit of {MAX_BYTES} bytes",
            bytes.len()
        )));
    }
    let mut path = None;
    serde_saphyr::with_deserializer_from_slice_with_options(bytes, options(), |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| describe(&e, path.as_deref()))
}

/// One line naming what is wrong, where, and under which path.
fn describe(error: &serde_saphyr::Error, path: Option<&str>) -> YamlError {
    use serde_saphyr::Error as E;
    let at = error.location().map_or_else(String::new, |l| {
        format!(" at line {}, column {}", l.line(), l.column())
    });
    let mut inner = error;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = inner {
        inner = error;
    }
    let document = |message: String| YamlError::Document(format!("{message}{at}"));
    match inner {
        E::DuplicateMappingKey { key, .. } => document(match key {
            Some(key) => format!("duplicate key `{}`", key.escape_debug()),
            None => "duplicate key".to_owned(),
        }),
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => document(format!("nesting deeper than {MAX_DEPTH} levels")),
        E::Budget {
            breach: BudgetBreach::Nodes { .. },
            ..
        } => document(format!("more than {MAX_NODES} nodes")),
        E::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        }
        | E::MultipleDocuments { .. } => {
            document("a second YAML document starts here; exactly one is allowed".to_owned())
        }
        E::AliasReplayLimitExceeded {
            max_total_replayed_events,
            ..
        } => document(format!(
            "aliases expand to more than {max_total_replayed_events} events; refusing an alias bomb"
        )),
        E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => {
            document("aliases expand beyond the budget; refusing an alias bomb".to_owned())
        }
        E::SerdeUnknownField {
            field, expected, ..
        } => shape(path, &format!("{}{at}", suggest(field, expected))),
        E::Budget { .. }
        | E::ExternalMessage { .. }
        | E::Eof { .. }
        | E::IOError { .. }
        | E::IndentationError { .. }
        | E::ContainerEndMismatch { .. }
        | E::UnknownAnchor { .. }
        | E::RecursiveReferencesRequireWeakTypes { .. }
        | E::UnsupportedTag { .. } => document(plain(inner, &at)),
        _ => shape(path, &format!("{}{at}", plain(inner, &at))),
    }
}

/// The library's user-facing message on one line, without a source snippet and without
/// the location `at`, which the caller appends.
fn plain(error: &serde_saphyr::Error, at: &str) -> String {
    let options = serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let message = error.render_with_options(options);
    message
        .strip_suffix(at)
        .unwrap_or(&message)
        .replace('\n', " ")
}

/// `path: message`, the path without the "unknown" segment serde puts on a key it failed.
fn shape(path: Option<&str>, message: &str) -> YamlError {
    let path = path
        .map(|p| p.trim_end_matches('?').trim_end_matches('.'))
        .filter(|p| !p.is_empty());
    YamlError::Shape(match path {
        Some(path) => format!("{path}: {message}"),
        None => message.to_owned(),
    })
}

/// "unknown field `modle`, did you mean `model`?" when an expected field is within two
/// edits of the unknown one.
#[must_use]
pub fn suggest(unknown: &str, expected: &[&str]) -> String {
    let closest = expected
        .iter()
        .map(|candidate| (strsim::levenshtein(unknown, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    match closest {
        Some((_, candidate)) => format!("unknown field `{unknown}`, did you mean `{candidate}`?"),
        None => format!("unknown field `{unknown}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Json = serde_json::Value;

    #[test]
    fn scalars_resolve_as_the_registry_reader_resolves_them() {
        let value: Json =
            from_slice(b"[yes, 010, 0x1F, 1_000, .inf, 1.5, ~, '1', <<, true]\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!(["yes", 8, 31, "1_000", ".inf", 1.5, null, "1", "<<", true])
        );
        assert_eq!(from_slice::<Option<Json>>(b"").unwrap(), None);
        assert_eq!(from_slice::<Option<Json>>(b"# nothing\n").unwrap(), None);
    }

    #[test]
    fn errors_are_one_line_with_their_place() {
        let error = from_slice::<Json>(b"a: [unclosed\n").unwrap_err();
        assert!(matches!(error, YamlError::Document(_)), "{error:?}");
        let text = error.to_string();
        assert!(!text.contains('\n') && text.contains("line 1"), "{text}");

        let second = from_slice::<Json>(b"a: 1\n---\nb: 2\n").unwrap_err();
        assert!(
            second.to_string().contains("second YAML document"),
            "{second}"
        );

        let too_large = vec![b' '; MAX_BYTES + 1];
        assert!(from_slice::<Json>(&too_large).is_err());
    }

    #[test]
    fn suggestions_stay_close() {
        assert_eq!(
            suggest("modle", &["name", "model"]),
            "unknown field `modle`, did you mean `model`?"
        );
        assert_eq!(
            suggest("flavour", &["name", "model"]),
            "unknown field `flavour`"
        );
        assert_eq!(suggest("x", &[]), "unknown field `x`");
    }
}
