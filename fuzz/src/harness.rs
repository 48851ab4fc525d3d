//! Fuzz harnesses of freqrex-core's public entries, one per cargo-fuzz target.
//!
//! Each harness turns arbitrary bytes into a call of the core (sizes include
//! values up to `u64::MAX`, samples include NaN, infinities and 3e38) and
//! checks what the core promises: it returns `Ok` or an error value, never
//! panics, never allocates beyond its memory limit, and what it returns is
//! well formed. The same functions run as plain `cargo test` over the
//! committed corpus (`fuzz/corpus/<target>/`) and over seeded random inputs
//! (`rust/freqrex-core/tests/fuzz_corpus.rs`), so CI exercises them on the
//! stable toolchain.

use freqrex_core::{
    limits, CutScale, Engine, ExtractOptions, FrequencySpace, Outcome, Phase, Rule, SearchOptions,
};
use ndarray::Array1;

/// Memory the core may plan for in one call while fuzzing (accepted work stays small and fast).
pub const FUZZ_MEMORY_LIMIT: u64 = 64 << 20;
/// Longest clip a harness builds (samples).
pub const MAX_FUZZ_SAMPLES: usize = 4096;
/// Most ask/tell rounds the engine harness runs.
pub const MAX_FUZZ_ROUNDS: usize = 48;

/// Reads values out of the fuzzer's bytes; zeros once they run out.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub fn u8(&mut self) -> u8 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v
    }
    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| (acc << 8) | self.u8() as u64)
    }
    pub fn f64(&mut self) -> f64 {
        f64::from_bits(self.u64())
    }
    /// A size: mostly small, sometimes at the edges, sometimes anything.
    pub fn size(&mut self, small: u64) -> u64 {
        match self.u8() % 8 {
            0 => self.u64(),
            1 => [
                0,
                1,
                2,
                u32::MAX as u64,
                u32::MAX as u64 + 1,
                u64::MAX,
                1 << 40,
            ][self.u8() as usize % 7],
            2 => 1u64 << (self.u8() % 64),
            _ => self.u64() % (small + 1),
        }
    }
    /// A sample: mostly ordinary, sometimes huge or non-finite.
    pub fn sample(&mut self) -> f32 {
        match self.u8() % 16 {
            0 => [
                f32::NAN,
                f32::INFINITY,
                -f32::INFINITY,
                3e38,
                -3e38,
                0.0,
                f32::MIN_POSITIVE,
            ][self.u8() as usize % 7],
            1 => f32::from_bits(self.u64() as u32),
            _ => (self.u8() as f32 - 128.0) / 128.0,
        }
    }
    /// True once in `n` (on uniform bytes).
    pub fn chance(&mut self, n: u8) -> bool {
        self.u8().is_multiple_of(n)
    }
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
}

fn clip(b: &mut Bytes) -> Array1<f32> {
    let n = (b.size(MAX_FUZZ_SAMPLES as u64) as usize).min(MAX_FUZZ_SAMPLES);
    let finite = !b.chance(4);
    Array1::from_iter((0..n).map(|i| {
        if finite {
            ((i as f32) * 0.37).sin() * (b.u8() as f32 / 255.0)
        } else {
            b.sample()
        }
    }))
}

fn space_from(b: &mut Bytes) -> Option<FrequencySpace> {
    let audio = clip(b);
    let mask_value = if b.chance(4) { b.f64() } else { 0.0 };
    let result = if b.chance(2) {
        FrequencySpace::fft(audio.view(), mask_value)
    } else {
        let n_fft = b.size(512) as usize;
        let hop = b.size(256) as usize;
        FrequencySpace::stft(audio.view(), n_fft, hop, mask_value)
    };
    match result {
        Ok(space) => {
            assert!(space.n_frames() >= 1 && space.n_bins() >= 1);
            assert_eq!(space.n_cells(), space.n_frames() * space.n_bins());
            Some(space)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// Space construction: `FrequencySpace::fft` and `::stft` with arbitrary sizes and samples.
pub fn space(data: &[u8]) {
    limits::set_memory_limit(FUZZ_MEMORY_LIMIT);
    let mut b = Bytes::new(data);
    if let Some(space) = space_from(&mut b) {
        // The round trip of the full mask reproduces a finite clip of the right length.
        let full = vec![true; space.n_cells()];
        if let Ok(wave) = space.synthesize(&full) {
            assert_eq!(wave.len(), space.n_samples());
        }
    }
}

/// Synthesis: masks of any length (right or wrong), single and batched.
pub fn synthesis(data: &[u8]) {
    limits::set_memory_limit(FUZZ_MEMORY_LIMIT);
    let mut b = Bytes::new(data);
    let Some(space) = space_from(&mut b) else {
        return;
    };
    let n = space.n_cells();
    let n_masks = (b.u8() % 5) as usize;
    let masks: Vec<Vec<bool>> = (0..n_masks)
        .map(|_| {
            let len = match b.u8() % 6 {
                0 => (b.size(2 * n as u64)) as usize % (4 * n + 2),
                _ => n,
            };
            (0..len).map(|_| !b.chance(3)).collect()
        })
        .collect();
    for m in &masks {
        match space.synthesize(m) {
            Ok(w) => {
                assert_eq!(m.len(), n);
                assert_eq!(w.len(), space.n_samples());
            }
            Err(_) => assert_ne!(m.len(), n, "a mask of the right length was refused"),
        }
    }
    if let Ok(batch) = space.synthesize_batch(&masks) {
        assert_eq!(batch.dim(), (masks.len(), space.n_samples()));
    }
}

/// The engine: `Engine::with_limits` with arbitrary options and sizes, then an
/// ask/tell loop answered by arbitrary (sometimes malformed) outcomes.
pub fn engine(data: &[u8]) {
    limits::set_memory_limit(FUZZ_MEMORY_LIMIT);
    let mut b = Bytes::new(data);
    let n_frames = b.size(16) as usize;
    let n_bins = b.size(600) as usize;
    let b0 = b.size(8) as usize;
    let b1 = if b.chance(4) {
        b.size(600) as usize
    } else {
        n_bins
    };
    let search = SearchOptions {
        n_parts: b.size(8) as u32,
        min_part: b.size(8),
        max_depth: b.size(20) as u32,
        iterations: b.size(6) as u32,
        budget: b.size(300),
        seed: b.u64(),
        cut_scale: if b.chance(2) {
            CutScale::Uniform
        } else {
            CutScale::Log
        },
        rule: [Rule::Minimal, Rule::Rex, Rule::Confidence][b.u8() as usize % 3],
        threshold: if b.chance(3) { Some(b.f64()) } else { None },
        alternatives: b.size(6) as u32,
        class_maps: b.size(6) as u32,
    };
    let extract = ExtractOptions {
        batch: b.size(8) as usize,
        tol: if b.chance(4) { b.f64() } else { 0.01 },
        threshold: search.threshold,
        min_margin: if b.chance(3) { Some(b.f64()) } else { None },
        max_queries: None,
    };
    let n_classes = 1 + (b.u8() % 5) as usize;
    let target = if b.chance(8) {
        b.size(8) as usize
    } else {
        b.u8() as usize % n_classes
    };
    let target_score = if b.chance(8) { b.f64() } else { 0.9 };
    let max_queries = if b.chance(3) { Some(b.size(400)) } else { None };
    let Ok(mut engine) = Engine::with_limits(
        search,
        extract,
        n_frames,
        n_bins,
        (b0, b1),
        target,
        target_score,
        max_queries,
    ) else {
        return;
    };
    let cells = n_frames * n_bins;
    if b.chance(4) {
        let given: Vec<f64> = (0..cells).map(|_| b.u8() as f64 / 7.0).collect();
        let _ = engine.set_responsibility(given);
    } else if b.chance(2) {
        let magnitude: Vec<f64> = (0..cells).map(|_| b.u8() as f64).collect();
        let _ = engine.set_magnitude(magnitude);
    }
    let mut asked = 0u64;
    for _ in 0..MAX_FUZZ_ROUNDS {
        let max = b.size(64) as usize;
        let masks = match engine.ask(max) {
            Ok(m) => m,
            Err(_) => break,
        };
        if masks.is_empty() {
            assert_eq!(engine.phase(), Phase::Done);
            break;
        }
        assert!(masks.len() <= max.max(1));
        assert!(masks.iter().all(|m| m.len() == cells));
        asked += masks.len() as u64;
        if let Some(m) = max_queries {
            assert!(
                asked < m.max(1),
                "the engine asked {asked} queries beyond max_queries {m}"
            );
        }
        // Answer, sometimes with the wrong number of outcomes or malformed scores.
        let n_answers = if b.chance(16) {
            b.size(8) as usize % 80
        } else {
            masks.len()
        };
        let mut outcomes = Vec::with_capacity(n_answers);
        for _ in 0..n_answers {
            let scores: Vec<f64> = if b.chance(32) {
                vec![b.f64(); (b.u8() % 7) as usize]
            } else {
                (0..n_classes).map(|_| b.u8() as f64 / 255.0).collect()
            };
            match engine.outcome(&scores) {
                Ok(o) => outcomes.push(o),
                Err(_) => outcomes.push(Outcome {
                    top: b.u8() as usize,
                    score: b.f64(),
                    margin: b.f64(),
                }),
            }
        }
        if engine.tell(&outcomes).is_err() {
            break;
        }
        if b.remaining() == 0 && b.u8() == 0 {
            // Out of bytes: keep answering "not the target" until done, within the round cap.
            continue;
        }
    }
    let r = engine.responsibility();
    assert!(r.iter().all(|v| v.is_finite()));
    let _ = engine.search_stats();
}
