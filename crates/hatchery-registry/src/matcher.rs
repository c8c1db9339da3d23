//! Model-id matchers: RE2 dialect parity checks, compilation, and a literal prefilter.
//!
//! Molecule compiles `model_prefix_match` with Go's RE2-based `regexp`; hatchery uses the
//! `regex` crate. The two agree on most syntax, so a pattern is accepted only when it is
//! valid RE2 *and* means the same thing to both (spec §9, S6). Everything else is refused
//! at load time rather than silently matching differently.

use regex::Regex;
use regex_syntax::ast::{self, Ast, Visitor};
use regex_syntax::hir::Look;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// Go's regexp refuses repetition counts above this.
const RE2_MAX_REPEAT: u32 = 1000;

/// A compiled `model_prefix_match`.
#[derive(Debug, Clone)]
pub struct Matcher {
    regex: Regex,
    /// When the pattern is anchored at the start and every match begins with one of these
    /// literals, an id starting with none of them cannot match: the regex is skipped.
    required_prefixes: Option<Vec<Box<[u8]>>>,
}

impl Matcher {
    /// Check the dialect and compile. The error says what is refused and why.
    pub fn compile(pattern: &str) -> Result<Self, String> {
        let ast = ast::parse::Parser::new()
            .parse(pattern)
            .map_err(|e| format!("not valid RE2: {}", e.kind()))?;
        ast::visit(&ast, DialectCheck { pattern })?;
        let hir = regex_syntax::hir::translate::Translator::new()
            .translate(pattern, &ast)
            .map_err(|e| format!("not valid RE2: {}", e.kind()))?;
        let regex = Regex::new(pattern).map_err(|e| format!("does not compile: {e}"))?;
        Ok(Self {
            regex,
            required_prefixes: required_prefixes(&hir),
        })
    }

    /// Unanchored search, as Go's `MatchString`.
    #[must_use]
    pub fn is_match(&self, model: &str) -> bool {
        if let Some(prefixes) = &self.required_prefixes
            && !prefixes.iter().any(|p| model.as_bytes().starts_with(p))
        {
            return false;
        }
        self.regex.is_match(model)
    }

    /// The same search without the prefilter: what a naive matcher does.
    #[must_use]
    pub fn is_match_unfiltered(&self, model: &str) -> bool {
        self.regex.is_match(model)
    }

    /// The literal prefixes every match starts with, when the pattern guarantees some.
    #[cfg(test)]
    pub fn required_prefixes(&self) -> Option<Vec<String>> {
        self.required_prefixes.as_ref().map(|ps| {
            ps.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
    }
}

fn required_prefixes(hir: &regex_syntax::hir::Hir) -> Option<Vec<Box<[u8]>>> {
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let literals = extractor.extract(hir).literals()?.to_vec();
    if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(literals.into_iter().map(|l| l.as_bytes().into()).collect())
}

/// Refuses the constructs whose meaning differs between RE2 and the `regex` crate, and
/// the Rust-only syntax RE2 would reject.
struct DialectCheck<'p> {
    pattern: &'p str,
}

impl Visitor for DialectCheck<'_> {
    type Output = ();
    type Err = String;

    fn finish(self) -> Result<(), String> {
        Ok(())
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), String> {
        match node {
            Ast::ClassPerl(class) => Err(format!(
                "`{}`: Perl classes (\\d \\w \\s) are ASCII in RE2 but Unicode here; write the class out, e.g. [0-9]",
                self.snippet(&class.span)
            )),
            Ast::Assertion(assertion) => check_assertion(assertion, self.snippet(&assertion.span)),
            Ast::Literal(literal) => check_literal(literal, self.snippet(&literal.span)),
            Ast::Flags(flags) => check_flags(&flags.flags),
            Ast::Group(group) => match &group.kind {
                ast::GroupKind::NonCapturing(flags) => check_flags(flags),
                _ => Ok(()),
            },
            Ast::Repetition(rep) => self.check_repetition(rep),
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ast::ClassSetItem) -> Result<(), String> {
        match item {
            ast::ClassSetItem::Bracketed(nested) => Err(format!(
                "`{}`: a bracket inside a class is a nested class here but a literal `[` in RE2; escape it as \\[",
                self.snippet(&nested.span)
            )),
            ast::ClassSetItem::Perl(class) => Err(format!(
                "`{}`: Perl classes (\\d \\w \\s) are ASCII in RE2 but Unicode here; write the class out, e.g. [0-9]",
                self.snippet(&class.span)
            )),
            ast::ClassSetItem::Literal(literal) => {
                check_literal(literal, self.snippet(&literal.span))
            }
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(&mut self, op: &ast::ClassSetBinaryOp) -> Result<(), String> {
        Err(format!(
            "`{}`: class set operators (&&, --, ~~) are literal characters in RE2; spell the set out",
            self.snippet(&op.span)
        ))
    }
}

impl DialectCheck<'_> {
    fn snippet(&self, span: &ast::Span) -> &str {
        self.pattern
            .get(span.start.offset..span.end.offset)
            .unwrap_or(self.pattern)
    }

    fn check_repetition(&self, rep: &ast::Repetition) -> Result<(), String> {
        if matches!(*rep.ast, Ast::Repetition(_)) {
            return Err(format!(
                "`{}`: a repetition of a repetition (possessive or nested quantifier) is invalid in RE2; use a group",
                self.snippet(&rep.span)
            ));
        }
        if let ast::RepetitionKind::Range(range) = &rep.op.kind {
            let (ast::RepetitionRange::Exactly(n)
            | ast::RepetitionRange::AtLeast(n)
            | ast::RepetitionRange::Bounded(_, n)) = *range;
            if n > RE2_MAX_REPEAT {
                return Err(format!(
                    "`{}`: repetition count {n} exceeds RE2's limit of {RE2_MAX_REPEAT}",
                    self.snippet(&rep.op.span)
                ));
            }
        }
        Ok(())
    }
}

fn check_assertion(assertion: &ast::Assertion, snippet: &str) -> Result<(), String> {
    use ast::AssertionKind::{EndLine, EndText, StartLine, StartText};
    match assertion.kind {
        StartLine | EndLine | StartText | EndText => Ok(()),
        _ => Err(format!(
            "`{snippet}`: word boundaries are ASCII in RE2 but Unicode here (and `\\<`, `\\>`, `\\b{{…}}` are not RE2)"
        )),
    }
}

fn check_literal(literal: &ast::Literal, snippet: &str) -> Result<(), String> {
    match &literal.kind {
        ast::LiteralKind::HexFixed(
            ast::HexLiteralKind::UnicodeShort | ast::HexLiteralKind::UnicodeLong,
        )
        | ast::LiteralKind::HexBrace(
            ast::HexLiteralKind::UnicodeShort | ast::HexLiteralKind::UnicodeLong,
        ) => Err(format!(
            "`{snippet}`: \\u and \\U escapes are not RE2; use \\x{{…}}"
        )),
        ast::LiteralKind::Octal => Err(format!(
            "`{snippet}`: octal escapes are not accepted; use \\x{{…}}"
        )),
        _ => Ok(()),
    }
}

fn check_flags(flags: &ast::Flags) -> Result<(), String> {
    for item in &flags.items {
        if let ast::FlagsItemKind::Flag(flag) = &item.kind {
            match flag {
                ast::Flag::CaseInsensitive
                | ast::Flag::MultiLine
                | ast::Flag::DotMatchesNewLine
                | ast::Flag::SwapGreed => {}
                other => {
                    return Err(format!(
                        "flag {other:?} is not RE2; RE2 knows only i, m, s and U"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_constructs_that_differ_between_dialects() {
        for pattern in [
            r"^\d+",
            r"^\w",
            r"\bgpt",
            r"^[\s]",
            "^[a-z&&b]",
            "^[a-z--b]",
            "^[a~~b]",
            "^[a[bc]]",
            r"\u0041",
            "(?x)a b",
            "(?u)a",
            "(?R)a",
            "a*+",
            "a++",
            "a{1001}",
            r"\Qa.b\E",
            "(?=a)",
            "(?!a)",
            r"(a)\1",
            r"\<gpt",
        ] {
            assert!(
                Matcher::compile(pattern).is_err(),
                "{pattern} should be refused"
            );
        }
    }

    #[test]
    fn accepts_the_common_subset() {
        for pattern in [
            "^claude-",
            "(?i)^minimax",
            "^(gpt-|o[0-9]|chatgpt-)",
            "^[a-zA-Z0-9_.-]+/",
            r"^gpt-5\.5$",
            "a{2,1000}",
            r"\x41\x{42}\pL\p{Greek}",
            "(?i:abc)",
            "(?P<v>x)(?<w>y)",
            "(a*)*",
        ] {
            assert!(Matcher::compile(pattern).is_ok(), "{pattern} should load");
        }
    }

    #[test]
    fn prefilter_never_changes_the_answer() {
        let m = Matcher::compile("^(claude-|anthropic/)").unwrap();
        assert!(m.required_prefixes().is_some());
        for id in [
            "claude-opus-4",
            "anthropic/x",
            "xclaude-",
            "",
            "claude",
            "openai/claude-",
        ] {
            assert_eq!(m.is_match(id), m.is_match_unfiltered(id), "{id}");
        }
        let unanchored = Matcher::compile("kimi").unwrap();
        assert!(unanchored.required_prefixes().is_none());
        assert!(unanchored.is_match("moonshot/kimi-k2"));
        let multiline = Matcher::compile("(?m)^kimi").unwrap();
        assert!(multiline.required_prefixes().is_none());
        assert!(multiline.is_match("x\nkimi"));
    }
}
