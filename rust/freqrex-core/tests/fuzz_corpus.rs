//! The cargo-fuzz harnesses (`fuzz/src/harness.rs`) as plain tests on the
//! stable toolchain: every input of the committed corpus (`fuzz/corpus/<target>/`)
//! and 100 seeded random inputs per target, so CI runs a smoke test
//! of each fuzz target in a few seconds. A failure here is a panic, an
//! allocation beyond the memory limit or a broken promise of the core.

#[path = "../../../fuzz/src/harness.rs"]
mod harness;

use std::path::PathBuf;

use freqrex_core::rng::SplitMix64;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn random_inputs(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let len = rng.below(600) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        })
        .collect()
}

/// Seeded random inputs per target: 100, or `FREQREX_FUZZ_RANDOM` for a longer
/// sweep in debug mode (which, unlike the release fuzz build, traps integer overflow).
fn random_count() -> usize {
    std::env::var("FREQREX_FUZZ_RANDOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn run(target: &str, f: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        !inputs.is_empty(),
        "the committed corpus of {target} is missing"
    );
    for data in inputs
        .iter()
        .chain(random_inputs(target.len() as u64, random_count()).iter())
    {
        f(data);
    }
}

#[test]
fn fuzz_space_corpus() {
    run("space", harness::space);
}

#[test]
fn fuzz_synthesis_corpus() {
    run("synthesis", harness::synthesis);
}

#[test]
fn fuzz_engine_corpus() {
    run("engine", harness::engine);
}

#[test]
fn huge_sizes_are_errors_with_an_estimate() {
    use freqrex_core::{Engine, ExtractOptions, FrequencySpace, SearchOptions};
    let audio = ndarray::Array1::from_iter((0..480_000).map(|i| (i as f32 * 0.01).sin()));
    // hop_length 1 on 30 s at 16 kHz: 480,001 frames of 1025 bins.
    let e = FrequencySpace::stft(audio.view(), 2048, 1, 0.0)
        .err()
        .unwrap();
    assert!(e.to_string().contains("GiB"), "{e}");
    let e = FrequencySpace::stft(audio.view(), usize::MAX / 2, 1, 0.0).err();
    assert!(e.is_some());
    let opts = SearchOptions {
        iterations: u32::MAX,
        ..Default::default()
    };
    let e = Engine::with_limits(
        opts,
        ExtractOptions::default(),
        1,
        1000,
        (0, 1000),
        0,
        0.9,
        None,
    );
    assert!(e.err().unwrap().to_string().contains("memory"));
    let e = Engine::new(
        SearchOptions::default(),
        ExtractOptions::default(),
        usize::MAX,
        usize::MAX,
        (0, 1),
        0,
        0.9,
    );
    assert!(e.is_err());
}

/// Found by the `engine` target (a libFuzzer timeout): a wide extraction batch
/// gave as many candidates as the bracket (200,000 here), deduplicated by a
/// quadratic scan on every ask, and rescanned from the start on every ask.
#[test]
fn wide_extraction_batch_asks_only_what_fits() {
    use freqrex_core::{Engine, ExtractOptions, Outcome, Phase, SearchOptions};
    let n = 200_000;
    let search = SearchOptions {
        budget: 0,
        iterations: 1,
        ..Default::default()
    };
    let extract = ExtractOptions {
        batch: 1 << 40,
        ..Default::default()
    };
    let mut e = Engine::with_limits(search, extract, 1, n, (0, n), 0, 0.9, None).unwrap();
    for _ in 0..20 {
        let masks = e.ask(4).unwrap();
        assert!(!masks.is_empty() && masks.len() <= 4);
        assert_eq!(e.phase(), Phase::Extract);
        let outcomes = vec![
            Outcome {
                top: 0,
                score: 0.9,
                margin: 0.5,
            };
            masks.len()
        ];
        e.tell(&outcomes).unwrap();
    }
}
