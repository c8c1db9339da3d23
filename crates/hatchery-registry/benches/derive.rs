//! Derivation and load benchmarks over the built-in catalog, each beside a naive
//! baseline measured in the same run (these machines are noisy; ratios are what count).
//!
//! Run: `cargo bench -p hatchery-registry --bench derive`

use std::hint::black_box;

/// The allocator the `hatchery` binary ships with, so figures match what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use hatchery_registry::{BUILTIN_MANIFEST, DeriveOutcome, Registry};

/// The naive way: scan runtimes by name, scan every reference's model list, then run
/// every native provider's regex. Same answers, no indexes, no prefilter.
fn naive_derive<'r>(registry: &'r Registry, runtime: &str, model: &str) -> Option<&'r str> {
    let model = model.trim();
    if model.is_empty() {
        return None;
    }
    let runtime = registry.runtimes().iter().find(|r| r.name == runtime)?;
    if let Some(reference) = runtime
        .refs
        .iter()
        .find(|r| r.models.iter().any(|m| m == model))
    {
        return Some(&reference.name);
    }
    let mut matched = runtime.refs.iter().filter(|r| {
        registry
            .provider(&r.name)
            .is_ok_and(|p| p.matches_without_prefilter(model))
    });
    match (matched.next(), matched.next()) {
        (Some(only), None) => Some(&only.name),
        _ => None,
    }
}

/// Inputs: (label, runtime, model, expected provider or None).
const CASES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "hit_exact",
        "claude-code",
        "moonshot/kimi-k2.6",
        Some("platform"),
    ),
    ("hit_prefix", "hermes", "deepseek-chat", Some("deepseek")),
    ("miss", "claude-code", "llama-3.3-70b-instruct", None),
    ("unknown_runtime", "no-such-runtime", "gpt-5.5", None),
];

fn derive_benches(c: &mut Criterion) {
    let registry = Registry::builtin();
    for &(label, runtime, model, expected) in CASES {
        // Both implementations must agree before either is timed.
        let derived = match registry.derive(runtime, model) {
            DeriveOutcome::Derived(d) => Some(d.provider.name.as_str()),
            _ => None,
        };
        assert_eq!(derived, expected, "{label}");
        assert_eq!(
            naive_derive(registry, runtime, model),
            expected,
            "{label} (naive)"
        );

        let mut group = c.benchmark_group(format!("derive/{label}"));
        group.bench_function("hatchery", |b| {
            b.iter(|| registry.derive(black_box(runtime), black_box(model)));
        });
        group.bench_function("naive", |b| {
            b.iter(|| naive_derive(registry, black_box(runtime), black_box(model)));
        });
        group.finish();
    }
}

/// Every (runtime, model) pair of the catalog that derives: menu ids and example models.
fn catalog_hits(registry: &Registry) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for runtime in registry.runtimes() {
        let menu = registry
            .models_for_runtime(&runtime.name)
            .unwrap_or_default();
        let examples = runtime
            .refs
            .iter()
            .filter_map(|r| registry.provider(&r.name).ok())
            .flat_map(|p| p.example_models.iter().map(String::as_str));
        for model in menu.into_iter().chain(examples) {
            pairs.push((runtime.name.clone(), model.to_owned()));
        }
    }
    pairs
}

/// Per-derive cost over every hit of the catalog, so no single lucky case decides.
fn hit_mix_benches(c: &mut Criterion) {
    let registry = Registry::builtin();
    let pairs = catalog_hits(registry);
    for (runtime, model) in &pairs {
        let fast = match registry.derive(runtime, model) {
            DeriveOutcome::Derived(d) => Some(d.provider.name.as_str()),
            _ => None,
        };
        assert!(fast.is_some(), "{runtime} {model}");
        assert_eq!(
            fast,
            naive_derive(registry, runtime, model),
            "{runtime} {model}"
        );
    }
    let mut group = c.benchmark_group(format!("derive/hit_mix_{}_pairs", pairs.len()));
    group.throughput(criterion::Throughput::Elements(pairs.len() as u64));
    group.bench_function("hatchery", |b| {
        b.iter(|| {
            for (runtime, model) in &pairs {
                black_box(registry.derive(black_box(runtime), black_box(model)));
            }
        });
    });
    group.bench_function("naive", |b| {
        b.iter(|| {
            for (runtime, model) in &pairs {
                black_box(naive_derive(registry, black_box(runtime), black_box(model)));
            }
        });
    });
    group.finish();
}

fn load_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.bench_function("builtin_catalog", |b| {
        b.iter(|| Registry::from_bytes(black_box(BUILTIN_MANIFEST)));
    });
    // Baseline: only tokenizing the same bytes with the YAML parser hatchery builds on.
    let text = std::str::from_utf8(BUILTIN_MANIFEST).unwrap_or_default();
    group.bench_function("yaml_events_only", |b| {
        b.iter(|| {
            saphyr_parser::Parser::new_from_str(black_box(text))
                .flatten()
                .count()
        });
    });
    group.finish();
}

criterion_group!(benches, derive_benches, hit_mix_benches, load_benches);
criterion_main!(benches);
