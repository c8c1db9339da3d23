//! The prefix step in one pass: a byte trie over the literals of every matcher that is a
//! literal alternation, plus a first-byte filter for the rest.
//!
//! Running each native matcher in turn costs ~20 ns a matcher on this class of machine,
//! and a runtime may have twenty. Most real matchers are `^(lit|lit…)` or `^(lit|lit…)$`,
//! so their answers for every provider at once come from one walk down the id's bytes;
//! the caller keeps the runtime's native providers. Matchers that are not literal
//! alternations are tried only when they can match an id starting with its first byte.
//! One index serves the whole catalog; sets of providers are bit masks, so a catalog of
//! more than 128 providers gets no index and runs the matchers one by one.

use crate::matcher::Literals;
use crate::registry::Provider;

/// Bit `i` stands for the catalog's provider `i`.
pub(crate) type ProviderMask = u128;

const NO_CHILD: u32 = u32::MAX;

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte; fan-out below the root is small.
    edges: Vec<(u8, u32)>,
    /// Providers with a `^lit` literal ending here: matched once the walk gets here.
    prefix_ends: ProviderMask,
    /// Providers with a `^lit$` literal ending here: matched if the id ends here too.
    whole_ends: ProviderMask,
    /// Providers whose general matcher must be run once the walk gets here.
    candidate_ends: ProviderMask,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct PrefixIndex {
    /// Children of the root, by byte (the root's fan-out is the widest).
    root_children: Box<[u32; 256]>,
    root: Node,
    nodes: Vec<Node>,
    /// By first byte: providers whose matcher must be run (those with no literal prefixes).
    general: Box<[ProviderMask; 256]>,
}

/// What one walk found.
pub(crate) struct PrefixHits {
    /// Providers whose literal matcher matched.
    pub matched: ProviderMask,
    /// Providers whose general matcher still has to be run.
    pub to_run: ProviderMask,
}

impl PrefixIndex {
    /// `None` when the catalog has too many providers for a mask.
    pub(crate) fn build(providers: &[Provider]) -> Option<Self> {
        if providers.len() > ProviderMask::BITS as usize {
            return None;
        }
        let mut index = Self {
            root_children: Box::new([NO_CHILD; 256]),
            root: Node::default(),
            nodes: Vec::new(),
            general: Box::new([0; 256]),
        };
        for (i, provider) in providers.iter().enumerate() {
            let bit: ProviderMask = 1 << i;
            let matcher = &provider.matcher;
            match matcher.literals() {
                Some(Literals::Prefixes(literals)) => {
                    for literal in literals {
                        index.insert(literal).prefix_ends |= bit;
                    }
                }
                Some(Literals::Whole(literals)) => {
                    for literal in literals {
                        index.insert(literal).whole_ends |= bit;
                    }
                }
                Some(Literals::Required(prefixes)) => {
                    for prefix in prefixes {
                        index.insert(prefix).candidate_ends |= bit;
                    }
                }
                None => {
                    for byte in 0..=u8::MAX {
                        if matcher.first_bytes().is_none_or(|set| set.contains(byte)) {
                            index.general[usize::from(byte)] |= bit;
                        }
                    }
                }
            }
        }
        Some(index)
    }

    fn insert(&mut self, literal: &[u8]) -> &mut Node {
        let Some((&first, rest)) = literal.split_first() else {
            return &mut self.root;
        };
        let mut at = self.root_children[usize::from(first)];
        if at == NO_CHILD {
            at = self.push_node();
            self.root_children[usize::from(first)] = at;
        }
        for &byte in rest {
            let node = &self.nodes[at as usize];
            at = match node.edges.binary_search_by_key(&byte, |&(b, _)| b) {
                Ok(found) => node.edges[found].1,
                Err(slot) => {
                    let child = self.push_node();
                    self.nodes[at as usize].edges.insert(slot, (byte, child));
                    child
                }
            };
        }
        &mut self.nodes[at as usize]
    }

    fn push_node(&mut self) -> u32 {
        self.nodes.push(Node::default());
        u32::try_from(self.nodes.len() - 1).unwrap_or(NO_CHILD)
    }

    /// Walk `model` (non-empty) down the trie.
    pub(crate) fn walk(&self, model: &[u8]) -> PrefixHits {
        let mut matched = self.root.prefix_ends;
        let Some((&first, rest)) = model.split_first() else {
            return PrefixHits {
                matched: matched | self.root.whole_ends,
                to_run: self.root.candidate_ends,
            };
        };
        let mut to_run = self.root.candidate_ends | self.general[usize::from(first)];
        let mut at = self.root_children[usize::from(first)];
        let mut remaining = rest;
        while at != NO_CHILD {
            let node = &self.nodes[at as usize];
            matched |= node.prefix_ends;
            to_run |= node.candidate_ends;
            let Some((&byte, tail)) = remaining.split_first() else {
                matched |= node.whole_ends;
                break;
            };
            // Fan-out below the root is one or two edges: a scan beats a binary search.
            at = node
                .edges
                .iter()
                .find(|&&(b, _)| b == byte)
                .map_or(NO_CHILD, |&(_, child)| child);
            remaining = tail;
        }
        PrefixHits { matched, to_run }
    }
}
