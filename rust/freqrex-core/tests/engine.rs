//! End-to-end tests of the engine in pure Rust, with models whose answer is known.

use freqrex_core::{outcome, Engine, ExtractOptions, FrequencySpace, Phase, SearchOptions};
use ndarray::Array1;

const N: usize = 4000; // 1 s at 4 kHz: fft bins 1 Hz apart

fn clip() -> Array1<f32> {
    Array1::from_iter((0..N).map(|i| {
        let t = i as f32 / N as f32;
        let tau = 2.0 * std::f32::consts::PI;
        0.3 * (tau * 500.0 * t).sin()
            + 1.0 * (tau * 1200.0 * t).sin()
            + 0.01 * (((i * 7919) % 97) as f32 / 97.0 - 0.5)
    }))
}

/// Class 1 while the 500 Hz bin keeps at least a quarter of its amplitude.
fn model(wave: &[f32]) -> Vec<f64> {
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, &v) in wave.iter().enumerate() {
        let ph = 2.0 * std::f64::consts::PI * 500.0 * i as f64 / N as f64;
        re += v as f64 * ph.cos();
        im -= v as f64 * ph.sin();
    }
    let amp = (re * re + im * im).sqrt() / (N as f64 / 2.0) / 0.3;
    let p = if amp > 0.25 { 0.9 } else { 0.1 };
    vec![1.0 - p, p]
}

fn run(opts: SearchOptions, batch: usize) -> (Engine, u64) {
    let x = clip();
    let space = FrequencySpace::fft(x.view(), 0.0).unwrap();
    let orig = model(x.as_slice().unwrap());
    let target = outcome(&orig, 1).unwrap();
    assert_eq!(target.top, 1);
    let mut engine = Engine::new(
        opts,
        ExtractOptions::default(),
        1,
        space.n_bins(),
        (0, space.n_bins()),
        1,
        target.score,
    )
    .unwrap();
    let mut calls = 0u64;
    loop {
        let masks = engine.ask(batch).unwrap();
        if masks.is_empty() {
            break;
        }
        let waves = space.synthesize_batch(&masks).unwrap();
        let outs: Vec<_> = waves
            .outer_iter()
            .map(|w| outcome(&model(w.as_slice().unwrap()), 1).unwrap())
            .collect();
        calls += outs.len() as u64;
        engine.tell(&outs).unwrap();
    }
    assert_eq!(engine.phase(), Phase::Done);
    (engine, calls)
}

#[test]
fn finds_the_planted_bin_and_ignores_the_decoy() {
    let opts = SearchOptions {
        iterations: 4,
        budget: 2000,
        ..Default::default()
    };
    let (engine, calls) = run(opts, 64);
    let r = engine.responsibility();
    let best = (0..r.len())
        .max_by(|&a, &b| r[a].total_cmp(&r[b]).then(b.cmp(&a)))
        .unwrap();
    assert_eq!(best, 500);
    assert_eq!(r[1200], 0.0, "the loud decoy gets no responsibility");
    let sets = engine.sets().unwrap();
    assert_eq!(sets.sufficient, Some(1));
    assert_eq!(engine.ranking()[0], 500);
    assert_eq!(
        calls,
        engine.search_stats().queries + engine.extraction_queries()
    );
}

#[test]
fn budget_is_exact_and_results_do_not_depend_on_batch_size() {
    for budget in [0u64, 1, 7, 50] {
        let opts = SearchOptions {
            iterations: 3,
            budget,
            seed: 9,
            ..Default::default()
        };
        let (a, _) = run(opts.clone(), 5);
        let (b, _) = run(opts, 1000);
        assert_eq!(a.search_stats().queries, budget);
        assert_eq!(a.responsibility(), b.responsibility());
        assert_eq!(a.ranking(), b.ranking());
        assert_eq!(a.sets(), b.sets());
    }
}

#[test]
fn protocol_errors_are_values() {
    let x = clip();
    let space = FrequencySpace::fft(x.view(), 0.0).unwrap();
    let mut e = Engine::new(
        SearchOptions::default(),
        ExtractOptions::default(),
        1,
        space.n_bins(),
        (0, 10),
        1,
        0.9,
    )
    .unwrap();
    let m = e.ask(4).unwrap();
    assert!(!m.is_empty());
    assert!(e.ask(4).is_err());
    assert!(e.tell(&[]).is_err());
    assert!(Engine::new(
        SearchOptions::default(),
        ExtractOptions::default(),
        1,
        10,
        (5, 5),
        0,
        0.5
    )
    .is_err());
    let bad = ExtractOptions {
        tol: f64::NAN,
        ..Default::default()
    };
    assert!(Engine::new(SearchOptions::default(), bad, 1, 10, (0, 10), 0, 0.5).is_err());
    assert!(outcome(&[0.1, f64::NAN], 0).is_err());
    assert!(outcome(&[0.1], 3).is_err());
}

/// Three classes: 1 while the 500 Hz bin keeps a quarter of its amplitude;
/// without it class 2 wins when the 1200 Hz decoy is there, else class 0.
fn three_classes(wave: &[f32]) -> Vec<f64> {
    let amp = |f: f64, a: f64| {
        let (mut re, mut im) = (0.0f64, 0.0f64);
        for (i, &v) in wave.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f * i as f64 / N as f64;
            re += v as f64 * ph.cos();
            im -= v as f64 * ph.sin();
        }
        (re * re + im * im).sqrt() / (N as f64 / 2.0) / a
    };
    if amp(500.0, 0.3) > 0.25 {
        vec![0.1, 0.8, 0.1]
    } else if amp(1200.0, 1.0) > 0.25 {
        vec![0.2, 0.1, 0.7]
    } else {
        vec![0.7, 0.2, 0.1]
    }
}

fn drive(
    engine: &mut Engine,
    space: &FrequencySpace,
    f: fn(&[f32]) -> Vec<f64>,
    target: usize,
) -> u64 {
    let mut calls = 0;
    loop {
        let masks = engine.ask(16).unwrap();
        if masks.is_empty() {
            return calls;
        }
        let waves = space.synthesize_batch(&masks).unwrap();
        let outs: Vec<_> = waves
            .outer_iter()
            .map(|w| outcome(&f(w.as_slice().unwrap()), target).unwrap())
            .collect();
        calls += outs.len() as u64;
        engine.tell(&outs).unwrap();
    }
}

#[test]
fn class_maps_point_at_the_evidence_whose_removal_gives_the_class() {
    let x = clip();
    let space = FrequencySpace::fft(x.view(), 0.0).unwrap();
    let opts = SearchOptions {
        iterations: 4,
        budget: 1500,
        ..Default::default()
    };
    let mut e = Engine::new(
        opts,
        ExtractOptions::default(),
        1,
        space.n_bins(),
        (0, space.n_bins()),
        1,
        0.8,
    )
    .unwrap();
    drive(&mut e, &space, three_classes, 1);
    let maps = e.class_responsibility();
    let classes: Vec<usize> = maps.iter().map(|(c, _)| *c).collect();
    assert_eq!(classes.len(), 2);
    assert!(classes.contains(&0) && classes.contains(&2));
    let m = &maps.iter().find(|(c, _)| *c == 2).unwrap().1;
    let peak = m.iter().cloned().fold(0.0f64, f64::max);
    assert!(
        peak > 0.0 && m[500] == peak,
        "the 500 Hz bin is in the peak of class 2's map"
    );
    assert!(m[1200] < peak);
    assert!(e.class_counts().iter().all(|&(c, n)| c != 1 && n > 0));
}

#[test]
fn max_queries_bounds_original_search_and_extraction() {
    let x = clip();
    let space = FrequencySpace::fft(x.view(), 0.0).unwrap();
    for total in [1u64, 2, 5, 30, 90, 400] {
        for batch in [2usize, 16] {
            let opts = SearchOptions {
                iterations: 3,
                budget: 2000,
                ..Default::default()
            };
            let ex = ExtractOptions {
                batch,
                ..Default::default()
            };
            let mut e = Engine::with_limits(
                opts,
                ex,
                1,
                space.n_bins(),
                (0, space.n_bins()),
                1,
                0.9,
                Some(total),
            )
            .unwrap();
            let calls = drive(&mut e, &space, model, 1);
            assert!(calls < total, "{total} {batch}: {calls}");
            assert_eq!(calls, e.search_stats().queries + e.extraction_queries());
            assert!(e.search_budget() <= total.saturating_sub(1));
        }
    }
    assert!(Engine::with_limits(
        SearchOptions::default(),
        ExtractOptions::default(),
        1,
        10,
        (0, 10),
        0,
        0.5,
        Some(0)
    )
    .is_err());
}

#[test]
fn a_given_responsibility_map_skips_the_search_and_ranks_the_extraction() {
    let x = clip();
    let space = FrequencySpace::fft(x.view(), 0.0).unwrap();
    let orig = model(x.as_slice().unwrap());
    let target = outcome(&orig, 1).unwrap();
    let n = space.n_bins();
    let opts = SearchOptions {
        budget: 0,
        ..Default::default()
    };
    let mut engine = Engine::new(
        opts,
        ExtractOptions::default(),
        1,
        n,
        (0, n),
        1,
        target.score,
    )
    .unwrap();
    let mut given = vec![0.0; n];
    given[500] = 1.0;
    given[1200] = 0.5;
    assert!(engine.set_responsibility(vec![0.0; 3]).is_err());
    engine.set_responsibility(given.clone()).unwrap();
    let mut calls = 0;
    loop {
        let masks = engine.ask(8).unwrap();
        if masks.is_empty() {
            break;
        }
        let waves = space.synthesize_batch(&masks).unwrap();
        let outs: Vec<_> = waves
            .outer_iter()
            .map(|w| outcome(&model(w.as_slice().unwrap()), 1).unwrap())
            .collect();
        calls += outs.len();
        engine.tell(&outs).unwrap();
    }
    assert_eq!(engine.search_stats().queries, 0);
    assert!(calls > 0);
    assert_eq!(engine.responsibility(), &given[..]);
    assert_eq!(&engine.ranking()[..2], &[500, 1200]);
    assert_eq!(engine.sets().unwrap().sufficient, Some(1));
    assert!(engine.set_responsibility(given).is_err());
}
