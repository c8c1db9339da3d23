//! Model-id matchers: RE2 dialect parity checks, compilation, and a literal prefilter.
//!
//! Molecule compiles `model_prefix_match` with Go's RE2-based `regexp`; hatchery uses the
//! `regex` crate. The two agree on most syntax, so a pattern is accepted only when it is
//! valid RE2 *and* means the same thing to both (spec §9, S6). Everything else is refused
//! at load time rather than silently matching differently.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use regex_automata::nfa::thompson::pikevm::PikeVM;
use regex_automata::nfa::thompson::{self, NFA};
use regex_syntax::ast::{self, Ast, Visitor};
use regex_syntax::hir::literal::{ExtractKind, Extractor, Seq};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Go's regexp refuses repetition counts above this.
const RE2_MAX_REPEAT: u32 = 1000;

/// The `regex` crate's default size limit; a pattern whose NFA fits will also compile.
const NFA_SIZE_LIMIT: usize = 10 * (1 << 20);

/// Most literal prefixes worth checking one by one before running a general regex.
const MAX_REQUIRED_PREFIXES: usize = 32;

/// A compiled `model_prefix_match`.
///
/// Building a full `Regex` costs tens of microseconds per pattern, which would dominate
/// loading a catalog. Most matchers are anchored literal alternations (`^(claude-|anthropic:)`),
/// so those are answered by comparing literals; the rest build their regex on first use.
/// Either way the pattern is fully validated at load: parsed, translated, and (for the
/// general case) compiled to an NFA within the regex crate's size limit.
#[derive(Debug, Clone)]
pub struct Matcher {
    strategy: Strategy,
    /// Bytes a matching id can start with; `None` when a match can start anywhere.
    first_bytes: Option<ByteSet>,
    /// The pattern's full regex, for the general strategy and as the reference semantics.
    regex: LazyRegex,
}

#[derive(Debug, Clone)]
enum Strategy {
    /// `^(a|b)`: the id starts with one of these literals.
    StartsWith(Vec<Box<[u8]>>),
    /// `^(a|b)$`: the id is one of these literals.
    OneOf(Vec<Box<[u8]>>),
    /// Anything else: run the regex, unless the id lacks every literal prefix a match
    /// must start with (when the pattern has a small such set).
    General(Option<Vec<Box<[u8]>>>),
}

/// A literal-alternation matcher's literals.
pub(crate) enum Literals<'m> {
    /// `^(a|b)`: matches ids starting with one of them.
    Prefixes(&'m [Box<[u8]>]),
    /// `^(a|b)$`: matches ids equal to one of them.
    Whole(&'m [Box<[u8]>]),
    /// A general pattern whose matches all start with one of these: the regex decides,
    /// but only for ids with such a prefix.
    Required(&'m [Box<[u8]>]),
}

/// 256-bit set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1 << (byte & 63);
    }

    /// Whether `byte` is in the set.
    #[must_use]
    pub fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1 << (byte & 63)) != 0
    }
}

impl Matcher {
    /// Check the dialect and compile. The error says what is refused and why.
    pub fn compile(pattern: &str) -> Result<Self, String> {
        // Octal escapes (`\141`) are RE2; the dialect check refuses `\1`…`\7` alone,
        // which RE2 reads as (unsupported) backreferences.
        let ast = ast::parse::ParserBuilder::new()
            .octal(true)
            .build()
            .parse(pattern)
            .map_err(|e| format!("not valid RE2: {}", e.kind()))?;
        ast::visit(
            &ast,
            DialectCheck {
                pattern,
                repeat_budgets: Vec::new(),
            },
        )?;
        let hir = regex_syntax::hir::translate::TranslatorBuilder::new()
            .build()
            .translate(pattern, &ast)
            .map_err(|e| format!("not valid RE2: {}", e.kind()))?;
        // Every match of a pattern anchored at `^` starts with one of these literals (when
        // the set is finite); one extraction serves all three uses below.
        let prefixes = hir
            .properties()
            .look_set_prefix()
            .contains(Look::Start)
            .then(|| Extractor::new().kind(ExtractKind::Prefix).extract(&hir));
        // Literal alternations are small by construction: no size limit to check.
        let (strategy, fallback) = if let Some(strategy) = literal_strategy(&hir, prefixes.as_ref())
        {
            (strategy, None)
        } else {
            let nfa = NFA::compiler()
                .configure(thompson::Config::new().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
                .build_from_hir(&hir)
                .map_err(|e| format!("does not compile: {e}"))?;
            let vm = PikeVM::new_from_nfa(nfa).map_err(|e| format!("does not compile: {e}"))?;
            (
                Strategy::General(required_prefixes(prefixes.as_ref())),
                Some(vm),
            )
        };
        Ok(Self {
            strategy,
            first_bytes: first_bytes(&hir, prefixes.as_ref()),
            regex: LazyRegex::new(pattern, fallback),
        })
    }

    /// Unanchored search, as Go's `MatchString`.
    #[must_use]
    pub fn is_match(&self, model: &str) -> bool {
        let bytes = model.as_bytes();
        if let Some(set) = &self.first_bytes
            && !bytes.first().is_some_and(|&b| set.contains(b))
        {
            return false;
        }
        match &self.strategy {
            Strategy::StartsWith(literals) => literals.iter().any(|l| bytes.starts_with(l)),
            Strategy::OneOf(literals) => literals.iter().any(|l| **l == *bytes),
            Strategy::General(Some(prefixes)) if !prefixes.iter().any(|p| bytes.starts_with(p)) => {
                false
            }
            Strategy::General(_) => self.regex.is_match(model).unwrap_or(false),
        }
    }

    /// The regex alone, with no literal shortcut or prefilter: the reference semantics,
    /// and the naive baseline of the benchmarks.
    #[must_use]
    pub fn is_match_unfiltered(&self, model: &str) -> bool {
        self.regex
            .is_match(model)
            .unwrap_or_else(|| self.is_match(model))
    }

    /// The literals that decide this matcher, when it is a literal alternation.
    pub(crate) fn literals(&self) -> Option<Literals<'_>> {
        match &self.strategy {
            Strategy::StartsWith(literals) => Some(Literals::Prefixes(literals)),
            Strategy::OneOf(literals) => Some(Literals::Whole(literals)),
            Strategy::General(Some(prefixes)) => Some(Literals::Required(prefixes)),
            Strategy::General(None) => None,
        }
    }

    /// Bytes a matching id can start with, when the pattern restricts them.
    #[must_use]
    pub fn first_bytes(&self) -> Option<&ByteSet> {
        self.first_bytes.as_ref()
    }
}

/// The full regex, built on first use. Should building fail (it cannot once the NFA
/// was built within the same size limit, but nothing here may panic or match wrongly),
/// the `PikeVM` built at load over the same NFA answers instead. Literal strategies carry
/// no `PikeVM`; for them `None` means "ask the literals".
#[derive(Debug)]
struct LazyRegex {
    pattern: Box<str>,
    fallback: Option<PikeVM>,
    built: OnceLock<Option<Regex>>,
}

impl Clone for LazyRegex {
    fn clone(&self) -> Self {
        Self::new(&self.pattern, self.fallback.clone())
    }
}

impl LazyRegex {
    fn new(pattern: &str, fallback: Option<PikeVM>) -> Self {
        Self {
            pattern: pattern.into(),
            fallback,
            built: OnceLock::new(),
        }
    }

    fn is_match(&self, haystack: &str) -> Option<bool> {
        let build = || RegexBuilder::new(&self.pattern).octal(true).build().ok();
        match self.built.get_or_init(build) {
            Some(regex) => Some(regex.is_match(haystack)),
            None => self
                .fallback
                .as_ref()
                .map(|vm| vm.is_match(&mut vm.create_cache(), haystack)),
        }
    }
}

/// Anchored, assertion-free literal alternations can be answered without a regex:
/// with `^` only, a match is "starts with one of the literals"; with `^…$`, "is one of them".
fn literal_strategy(hir: &Hir, prefixes: Option<&Seq>) -> Option<Strategy> {
    // Literal extraction reads every assertion as "matches the empty string", so the
    // shortcut holds only when `^` (and `$`) stand at the edges and nowhere else:
    // `^a^b` or `^a$b$` must go to the regex.
    let HirKind::Concat(parts) = hir.kind() else {
        return None;
    };
    let is_look = |h: &Hir, look| matches!(h.kind(), HirKind::Look(l) if *l == look);
    let (anchored_at_end, body) = match parts.as_slice() {
        [start, body @ .., end] if is_look(start, Look::Start) && is_look(end, Look::End) => {
            (true, body)
        }
        [start, body @ ..] if is_look(start, Look::Start) => (false, body),
        _ => return None,
    };
    if body.iter().any(|h| !h.properties().look_set().is_empty()) {
        return None;
    }
    let literals = exact_literals(prefixes?)?;
    Some(if anchored_at_end {
        Strategy::OneOf(literals)
    } else {
        Strategy::StartsWith(literals)
    })
}

fn exact_literals(seq: &Seq) -> Option<Vec<Box<[u8]>>> {
    let literals = seq.literals()?;
    if literals.is_empty()
        || !literals
            .iter()
            .all(regex_syntax::hir::literal::Literal::is_exact)
    {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().into()).collect())
}

/// For an anchored pattern, the small finite set of literals every match starts with.
fn required_prefixes(prefixes: Option<&Seq>) -> Option<Vec<Box<[u8]>>> {
    let literals = prefixes?.literals()?;
    let usable = !literals.is_empty()
        && literals.len() <= MAX_REQUIRED_PREFIXES
        && literals.iter().all(|l| !l.as_bytes().is_empty());
    usable.then(|| literals.iter().map(|l| l.as_bytes().into()).collect())
}

fn first_bytes(hir: &Hir, prefixes: Option<&Seq>) -> Option<ByteSet> {
    let prefixes = prefixes?;
    let narrowed;
    // A finite prefix set gives the first bytes directly; an infinite one (say, a
    // case-insensitive word) may still be finite when cut to its first byte.
    let literals = if let Some(literals) = prefixes.literals() {
        literals
    } else {
        narrowed = Extractor::new()
            .kind(ExtractKind::Prefix)
            .limit_literal_len(1)
            .extract(hir);
        narrowed.literals()?
    };
    let mut set = ByteSet([0; 4]);
    for literal in literals {
        set.insert(*literal.as_bytes().first()?);
    }
    (!literals.is_empty()).then_some(set)
}

/// Refuses the constructs whose meaning differs between RE2 and the `regex` crate, and
/// the Rust-only syntax RE2 would reject.
struct DialectCheck<'p> {
    pattern: &'p str,
    /// For each enclosing counted repetition, how large a count its body may still use:
    /// RE2 bounds the product of nested counts by 1000.
    repeat_budgets: Vec<u32>,
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
            Ast::Repetition(rep) => self.check_repetition(rep),
            Ast::ClassUnicode(class) => check_unicode_class(class, self.snippet(&class.span)),
            Ast::Group(group) => match &group.kind {
                ast::GroupKind::NonCapturing(flags) => check_flags(flags),
                ast::GroupKind::CaptureName { name, .. } => check_capture_name(&name.name),
                ast::GroupKind::CaptureIndex(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn visit_post(&mut self, node: &Ast) -> Result<(), String> {
        if let Ast::Repetition(rep) = node
            && matches!(rep.op.kind, ast::RepetitionKind::Range(_))
        {
            self.repeat_budgets.pop();
        }
        Ok(())
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
            ast::ClassSetItem::Unicode(class) => {
                check_unicode_class(class, self.snippet(&class.span))
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

    fn check_repetition(&mut self, rep: &ast::Repetition) -> Result<(), String> {
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
            let budget = self
                .repeat_budgets
                .last()
                .copied()
                .unwrap_or(RE2_MAX_REPEAT);
            if n > budget {
                return Err(format!(
                    "`{}`: repetition count {n} exceeds RE2's limit of {RE2_MAX_REPEAT} (nested counts multiply)",
                    self.snippet(&rep.op.span)
                ));
            }
            self.repeat_budgets
                .push(budget.checked_div(n).unwrap_or(budget));
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
        // RE2 reads a lone `\1`…`\7` as a backreference, which it does not support.
        ast::LiteralKind::Octal if snippet.len() == 2 && snippet != "\\0" => Err(format!(
            "`{snippet}`: backreferences are not supported by RE2"
        )),
        _ => Ok(()),
    }
}

/// Go's capture names are ASCII letters, digits and underscores.
fn check_capture_name(name: &str) -> Result<(), String> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "capture name {name:?} is not RE2; use ASCII letters, digits and `_`"
        ))
    }
}

/// `\p{…}` names RE2 knows: `Any`, the general categories and the scripts of Unicode 15
/// (Go's tables), spelled exactly. The `regex` crate also takes binary properties
/// (`Alphabetic`, `Emoji`), `name=value` forms and loose spellings; RE2 refuses them.
fn check_unicode_class(class: &ast::ClassUnicode, snippet: &str) -> Result<(), String> {
    let name = match &class.kind {
        ast::ClassUnicodeKind::OneLetter(letter) => {
            return if "CLMNPSZ".contains(*letter) {
                Ok(())
            } else {
                Err(format!("`{snippet}`: RE2 has no one-letter class {letter}"))
            };
        }
        ast::ClassUnicodeKind::Named(name) => name.strip_prefix('^').unwrap_or(name),
        ast::ClassUnicodeKind::NamedValue { .. } => {
            return Err(format!(
                "`{snippet}`: RE2 has no `name=value` Unicode classes"
            ));
        }
    };
    if name == "Any" || RE2_CATEGORIES.contains(&name) || RE2_SCRIPTS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "`{snippet}`: RE2 knows no Unicode class {name:?} (it takes general categories and scripts, spelled exactly)"
        ))
    }
}

const RE2_CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

/// Unicode 15 script names, as Go's `unicode.Scripts` spells them.
const RE2_SCRIPTS: &[&str] = &[
    "Adlam",
    "Ahom",
    "Anatolian_Hieroglyphs",
    "Arabic",
    "Armenian",
    "Avestan",
    "Balinese",
    "Bamum",
    "Bassa_Vah",
    "Batak",
    "Bengali",
    "Bhaiksuki",
    "Bopomofo",
    "Brahmi",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Carian",
    "Caucasian_Albanian",
    "Chakma",
    "Cham",
    "Cherokee",
    "Chorasmian",
    "Common",
    "Coptic",
    "Cuneiform",
    "Cypriot",
    "Cypro_Minoan",
    "Cyrillic",
    "Deseret",
    "Devanagari",
    "Dives_Akuru",
    "Dogra",
    "Duployan",
    "Egyptian_Hieroglyphs",
    "Elbasan",
    "Elymaic",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Gothic",
    "Grantha",
    "Greek",
    "Gujarati",
    "Gunjala_Gondi",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanifi_Rohingya",
    "Hanunoo",
    "Hatran",
    "Hebrew",
    "Hiragana",
    "Imperial_Aramaic",
    "Inherited",
    "Inscriptional_Pahlavi",
    "Inscriptional_Parthian",
    "Javanese",
    "Kaithi",
    "Kannada",
    "Katakana",
    "Kawi",
    "Kayah_Li",
    "Kharoshthi",
    "Khitan_Small_Script",
    "Khmer",
    "Khojki",
    "Khudawadi",
    "Lao",
    "Latin",
    "Lepcha",
    "Limbu",
    "Linear_A",
    "Linear_B",
    "Lisu",
    "Lycian",
    "Lydian",
    "Mahajani",
    "Makasar",
    "Malayalam",
    "Mandaic",
    "Manichaean",
    "Marchen",
    "Masaram_Gondi",
    "Medefaidrin",
    "Meetei_Mayek",
    "Mende_Kikakui",
    "Meroitic_Cursive",
    "Meroitic_Hieroglyphs",
    "Miao",
    "Modi",
    "Mongolian",
    "Mro",
    "Multani",
    "Myanmar",
    "Nabataean",
    "Nag_Mundari",
    "Nandinagari",
    "New_Tai_Lue",
    "Newa",
    "Nko",
    "Nushu",
    "Nyiakeng_Puachue_Hmong",
    "Ogham",
    "Ol_Chiki",
    "Old_Hungarian",
    "Old_Italic",
    "Old_North_Arabian",
    "Old_Permic",
    "Old_Persian",
    "Old_Sogdian",
    "Old_South_Arabian",
    "Old_Turkic",
    "Old_Uyghur",
    "Oriya",
    "Osage",
    "Osmanya",
    "Pahawh_Hmong",
    "Palmyrene",
    "Pau_Cin_Hau",
    "Phags_Pa",
    "Phoenician",
    "Psalter_Pahlavi",
    "Rejang",
    "Runic",
    "Samaritan",
    "Saurashtra",
    "Sharada",
    "Shavian",
    "Siddham",
    "SignWriting",
    "Sinhala",
    "Sogdian",
    "Sora_Sompeng",
    "Soyombo",
    "Sundanese",
    "Syloti_Nagri",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tai_Le",
    "Tai_Tham",
    "Tai_Viet",
    "Takri",
    "Tamil",
    "Tangsa",
    "Tangut",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Tirhuta",
    "Toto",
    "Ugaritic",
    "Vai",
    "Vithkuqi",
    "Wancho",
    "Warang_Citi",
    "Yezidi",
    "Yi",
    "Zanabazar_Square",
];

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
            r"^\1",
            r"^(?:a{32}){32}",
            r"^(a{2}){501}",
            r"^\p{Alphabetic}",
            r"^\p{Emoji}",
            r"^\p{sc=Greek}",
            r"^\p{greek}",
            r"^(?P<a.b>x)",
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
            r"^\141\0",
            r"^\p{Greek}\pL\p{Lu}\p{Any}\P{Han}",
            r"^(?:a{10}){100}",
            "^(?P<model_1>x)",
        ] {
            assert!(Matcher::compile(pattern).is_ok(), "{pattern} should load");
        }
    }

    #[test]
    fn literal_shortcuts_agree_with_the_regex() {
        let cases = [
            (
                "^(claude-|anthropic/)",
                &[
                    "claude-opus-4",
                    "anthropic/x",
                    "xclaude-",
                    "",
                    "claude",
                    "openai/claude-",
                ][..],
            ),
            (
                "^(sonnet|opus)$",
                &["sonnet", "sonnet-4", "opus", "xopus", ""][..],
            ),
            (
                "(?i)^(glm-|zai:)",
                &["GLM-4.6", "gLm-", "zai:x", "ZAI:", "glm", "xglm-"][..],
            ),
            ("^o[1-9]", &["o1", "o9-mini", "o0", "oo1"][..]),
            ("^a|b", &["a", "b", "xb", "x"][..]),
            ("^(a|)", &["", "x", "a"][..]),
            ("kimi", &["moonshot/kimi-k2", "kim"][..]),
            ("(?m)^kimi", &["x\nkimi", "kimi", "xkimi"][..]),
            ("^gpt-5$|^o3", &["gpt-5", "gpt-5x", "o3-mini"][..]),
            ("^a^b", &["ab", "abc", "a"][..]),
            ("^a$b$", &["ab", "a"][..]),
            ("^(?:a|b^c)", &["bcx", "a", "b"][..]),
            (r"^\141b", &["ab", "abc", "b"][..]),
        ];
        for (pattern, ids) in cases {
            let m = Matcher::compile(pattern).unwrap();
            for id in ids {
                assert_eq!(
                    m.is_match(id),
                    m.is_match_unfiltered(id),
                    "{pattern} on {id:?}"
                );
            }
        }
    }

    #[test]
    fn anchored_literal_patterns_take_the_literal_path() {
        let m = Matcher::compile("^(claude-|anthropic/)").unwrap();
        assert!(matches!(m.strategy, Strategy::StartsWith(_)));
        let m = Matcher::compile("^(sonnet|opus)$").unwrap();
        assert!(matches!(m.strategy, Strategy::OneOf(_)));
        assert!(matches!(
            Matcher::compile("kimi").unwrap().strategy,
            Strategy::General(None)
        ));
        assert!(matches!(
            Matcher::compile("(?m)^kimi").unwrap().strategy,
            Strategy::General(None)
        ));
        assert!(matches!(
            Matcher::compile("^a.*b$").unwrap().strategy,
            Strategy::General(Some(_))
        ));
        let first = Matcher::compile("(?i)^minimax").unwrap();
        let set = first.first_bytes().unwrap();
        assert!(set.contains(b'm') && set.contains(b'M') && !set.contains(b'x'));
        assert!(Matcher::compile("^a|b").unwrap().first_bytes().is_none());
    }
}
