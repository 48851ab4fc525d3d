//! Thin PyO3 glue: `freqrex._core`. All the work is in `freqrex-core`; this
//! layer converts arrays, maps errors onto freqrex's Python exceptions and
//! releases the GIL around heavy work. It never calls Python from rayon threads.

use std::sync::Arc;

use freqrex_core as core;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::{ThreadPool, ThreadPoolBuilder};

fn to_py(py: Python<'_>, e: core::CoreError) -> PyErr {
    let name = match e {
        core::CoreError::Parameter(_) | core::CoreError::Audio(_) => "ParameterError",
        core::CoreError::Scores(_) => "ModelError",
        core::CoreError::Protocol(_) => "FreqrexError",
    };
    let msg = match &e {
        core::CoreError::Parameter(m)
        | core::CoreError::Audio(m)
        | core::CoreError::Scores(m)
        | core::CoreError::Protocol(m) => m.clone(),
    };
    freqrex_error(py, name, msg)
}

/// One of freqrex's exceptions (`freqrex.errors.<name>`), or RuntimeError if
/// that module cannot be imported.
fn freqrex_error(py: Python<'_>, name: &str, msg: String) -> PyErr {
    match py
        .import("freqrex.errors")
        .and_then(|m| m.getattr(name))
        .and_then(|cls| cls.call1((msg.clone(),)))
    {
        Ok(obj) => PyErr::from_value(obj),
        Err(_) => PyRuntimeError::new_err(msg),
    }
}

/// The last line at the FFI seam: a panic in `f` (a bug; the core returns
/// errors for everything a caller can cause) becomes `freqrex.errors.FreqrexError`,
/// never a `PanicException` (a BaseException) or an abort.
fn guard<T>(py: Python<'_>, what: &str, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(freqrex_error(
                py,
                "FreqrexError",
                format!("internal error in {what}: {msg} (a bug in freqrex: please report it)"),
            ))
        }
    }
}

/// Most threads a pool may have.
const MAX_THREADS: usize = 1024;

fn make_pool(py: Python<'_>, n_threads: Option<usize>) -> PyResult<Option<Arc<ThreadPool>>> {
    match n_threads {
        None | Some(0) => Ok(None),
        Some(n) if n > MAX_THREADS => Err(freqrex_error(
            py,
            "ParameterError",
            format!("n_threads must be at most {MAX_THREADS}, got {n}"),
        )),
        Some(n) => ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(|p| Some(Arc::new(p)))
            .map_err(|e| {
                freqrex_error(
                    py,
                    "ParameterError",
                    format!("cannot start {n} threads (n_threads): {e}"),
                )
            }),
    }
}

fn run<T: Send>(pool: &Option<Arc<ThreadPool>>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// A clip decomposed into its frequency space (`fft` or `stft`).
#[pyclass(module = "freqrex._core", frozen)]
struct FrequencySpace {
    inner: Arc<core::FrequencySpace>,
    pool: Option<Arc<ThreadPool>>,
}

#[pymethods]
impl FrequencySpace {
    #[new]
    #[pyo3(signature = (audio, *, space = "fft", n_fft = 2048, hop_length = 512, mask_value = 0.0, n_threads = None))]
    fn new(
        py: Python<'_>,
        audio: PyReadonlyArray1<'_, f32>,
        space: &str,
        n_fft: usize,
        hop_length: usize,
        mask_value: f64,
        n_threads: Option<usize>,
    ) -> PyResult<Self> {
        guard(py, "FrequencySpace()", move || {
            let pool = make_pool(py, n_threads)?;
            let audio = audio.as_array().to_owned();
            let kind = space.to_string();
            let inner = py
                .detach(|| {
                    run(&pool, || match kind.as_str() {
                        "fft" => core::FrequencySpace::fft(audio.view(), mask_value),
                        "stft" => {
                            core::FrequencySpace::stft(audio.view(), n_fft, hop_length, mask_value)
                        }
                        other => Err(core::CoreError::Parameter(format!(
                            "space must be 'fft' or 'stft', got {other:?}"
                        ))),
                    })
                })
                .map_err(|e| to_py(py, e))?;
            Ok(Self {
                inner: Arc::new(inner),
                pool,
            })
        })
    }

    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.kind() {
            core::SpaceKind::Fft => "fft",
            core::SpaceKind::Stft => "stft",
        }
    }
    #[getter]
    fn n_samples(&self) -> usize {
        self.inner.n_samples()
    }
    #[getter]
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    #[getter]
    fn n_bins(&self) -> usize {
        self.inner.n_bins()
    }
    #[getter]
    fn n_fft(&self) -> usize {
        self.inner.n_fft()
    }
    #[getter]
    fn hop_length(&self) -> usize {
        self.inner.hop_length()
    }
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.inner.n_frames(), self.inner.n_bins())
    }

    /// Complex coefficients, shape (n_frames, n_bins).
    fn coefficients<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<numpy::Complex64>> {
        self.inner.coefficients().into_pyarray(py)
    }

    /// Resynthesise a batch of boolean masks of shape (batch, n_frames, n_bins)
    /// into float32 waveforms of shape (batch, n_samples).
    fn synthesize<'py>(
        &self,
        py: Python<'py>,
        masks: PyReadonlyArray3<'py, bool>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        guard(py, "FrequencySpace.synthesize", move || {
            let m = masks.as_array();
            let (b, t, f) = m.dim();
            if (t, f) != (self.inner.n_frames(), self.inner.n_bins()) {
                return Err(to_py(
                    py,
                    core::CoreError::Parameter(format!(
                        "masks have shape (batch, {t}, {f}); the space is ({}, {})",
                        self.inner.n_frames(),
                        self.inner.n_bins()
                    )),
                ));
            }
            let rows: Vec<Vec<bool>> = (0..b)
                .map(|i| {
                    m.index_axis(numpy::ndarray::Axis(0), i)
                        .iter()
                        .copied()
                        .collect()
                })
                .collect();
            let inner = self.inner.clone();
            let out = py
                .detach(|| run(&self.pool, || inner.synthesize_batch(&rows)))
                .map_err(|e| to_py(py, e))?;
            Ok(out.into_pyarray(py))
        })
    }
}

fn parse_cuts(s: &str) -> core::Result<core::CutScale> {
    match s {
        "uniform" => Ok(core::CutScale::Uniform),
        "log" => Ok(core::CutScale::Log),
        o => Err(core::CoreError::Parameter(format!(
            "cuts must be 'uniform' or 'log', got {o:?}"
        ))),
    }
}

fn parse_rule(s: &str) -> core::Result<core::Rule> {
    match s {
        "minimal" => Ok(core::Rule::Minimal),
        "rex" => Ok(core::Rule::Rex),
        "confidence" => Ok(core::Rule::Confidence),
        o => Err(core::CoreError::Parameter(format!(
            "rule must be 'minimal', 'rex' or 'confidence', got {o:?}"
        ))),
    }
}

/// The options of an `Engine`, parsed once from the attributes of a Python
/// object (`freqrex.options.EngineOptions`, a frozen dataclass built in one
/// place by the explainer). A missing attribute or a value of the wrong type
/// or size is a `freqrex.errors.ParameterError`; the bounds are the core's.
#[derive(FromPyObject)]
struct EngineOptions {
    band: (usize, usize),
    n_parts: u32,
    min_part: u64,
    max_depth: u32,
    iterations: u32,
    budget: u64,
    seed: u64,
    cuts: String,
    rule: String,
    threshold: Option<f64>,
    min_margin: Option<f64>,
    extraction_batch: usize,
    tol: f64,
    alternatives: u32,
    class_maps: u32,
    max_queries: Option<u64>,
}

impl EngineOptions {
    /// Read the options from `obj`, any failure as a ParameterError.
    fn parse(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        obj.extract::<EngineOptions>().map_err(|e| {
            let mut detail = e.value(py).to_string();
            if let Some(cause) = e.cause(py) {
                detail = format!("{detail} ({})", cause.value(py));
            }
            freqrex_error(
                py,
                "ParameterError",
                format!("bad engine options: {detail}"),
            )
        })
    }

    /// The core's search and extraction options.
    fn to_core(&self) -> core::Result<(core::SearchOptions, core::ExtractOptions)> {
        let search = core::SearchOptions {
            n_parts: self.n_parts,
            min_part: self.min_part,
            max_depth: self.max_depth,
            iterations: self.iterations,
            budget: self.budget,
            seed: self.seed,
            cut_scale: parse_cuts(&self.cuts)?,
            rule: parse_rule(&self.rule)?,
            threshold: self.threshold,
            alternatives: self.alternatives,
            class_maps: self.class_maps,
        };
        let extract = core::ExtractOptions {
            batch: self.extraction_batch,
            tol: self.tol,
            threshold: self.threshold,
            min_margin: self.min_margin,
            max_queries: None,
        };
        Ok((search, extract))
    }
}

/// One explanation as an ask/tell loop over a `FrequencySpace`.
#[pyclass(module = "freqrex._core")]
struct Engine {
    inner: core::Engine,
    space: Arc<core::FrequencySpace>,
    pool: Option<Arc<ThreadPool>>,
}

#[pymethods]
impl Engine {
    /// `Engine(space, target, target_score, options, *, magnitude=None,
    /// responsibility=None)`: `options` is a `freqrex.options.EngineOptions`
    /// (any object with its attributes), read once here.
    #[new]
    #[pyo3(signature = (space, target, target_score, options, *, magnitude = None, responsibility = None))]
    fn new(
        py: Python<'_>,
        space: &FrequencySpace,
        target: usize,
        target_score: f64,
        options: &Bound<'_, PyAny>,
        magnitude: Option<PyReadonlyArray2<'_, f64>>,
        responsibility: Option<PyReadonlyArray2<'_, f64>>,
    ) -> PyResult<Self> {
        guard(py, "Engine()", move || {
            let options = EngineOptions::parse(py, options)?;
            let responsibility: Option<Vec<f64>> =
                responsibility.map(|r| r.as_array().iter().copied().collect());
            let magnitude: Vec<f64> = match magnitude {
                Some(m) => m.as_array().iter().copied().collect(),
                None => space
                    .inner
                    .coefficients()
                    .iter()
                    .map(|c| c.norm())
                    .collect(),
            };
            let build = || -> core::Result<core::Engine> {
                let (search, extract) = options.to_core()?;
                let mut engine = core::Engine::with_limits(
                    search,
                    extract,
                    space.inner.n_frames(),
                    space.inner.n_bins(),
                    options.band,
                    target,
                    target_score,
                    options.max_queries,
                )?;
                engine.set_magnitude(magnitude)?;
                if let Some(r) = responsibility {
                    engine.set_responsibility(r)?;
                }
                Ok(engine)
            };
            let inner = build().map_err(|e| to_py(py, e))?;
            Ok(Self {
                inner,
                space: space.inner.clone(),
                pool: space.pool.clone(),
            })
        })
    }

    /// The next batch of mutant waveforms (float32, (batch, n_samples)), or
    /// None when the explanation is complete.
    fn ask<'py>(
        &mut self,
        py: Python<'py>,
        batch_size: usize,
    ) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        guard(py, "Engine.ask", move || {
            let engine = &mut self.inner;
            let space = &self.space;
            let pool = &self.pool;
            // A batch whose masks and waveforms would not fit half the memory
            // limit is asked in smaller batches (the caller takes what it gets).
            let per_mutant = (space.n_cells() as u64)
                .saturating_add((space.n_samples() as u64).saturating_mul(12))
                .max(1);
            let fit = (core::limits::memory_limit() / 2 / per_mutant).max(1);
            let batch_size = batch_size.min(usize::try_from(fit).unwrap_or(usize::MAX));
            let out: core::Result<Option<Array2<f32>>> = py.detach(|| {
                run(pool, || {
                    // before any mask is drawn: a batch that cannot be made leaves the engine as it was
                    space.check_synthesis(batch_size)?;
                    let masks = engine.ask(batch_size)?;
                    if masks.is_empty() {
                        return Ok(None);
                    }
                    space.synthesize_batch(&masks).map(Some)
                })
            });
            Ok(out.map_err(|e| to_py(py, e))?.map(|a| a.into_pyarray(py)))
        })
    }

    /// The model's scores (batch, classes) for the last batch asked.
    fn tell(&mut self, py: Python<'_>, scores: PyReadonlyArray2<'_, f64>) -> PyResult<()> {
        guard(py, "Engine.tell", move || {
            let s = scores.as_array();
            let outcomes: core::Result<Vec<core::Outcome>> = s
                .outer_iter()
                .map(|row| {
                    self.inner
                        .outcome(&row.iter().copied().collect::<Vec<f64>>())
                })
                .collect();
            let outcomes = outcomes.map_err(|e| to_py(py, e))?;
            self.inner.tell(&outcomes).map_err(|e| to_py(py, e))
        })
    }

    #[getter]
    fn phase(&self) -> &'static str {
        match self.inner.phase() {
            core::Phase::Search => "search",
            core::Phase::Extract => "extract",
            core::Phase::Done => "done",
        }
    }

    #[getter]
    fn active_iterations(&self) -> usize {
        self.inner.active_iterations()
    }

    /// Counters: search queries, extraction queries, rounds, mutants, duplicates, passing.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "Engine.stats", move || {
            let s = self.inner.search_stats();
            let d = PyDict::new(py);
            d.set_item("search_queries", s.queries)?;
            d.set_item("extraction_queries", self.inner.extraction_queries())?;
            d.set_item("rounds", s.rounds)?;
            d.set_item("mutants", s.mutants)?;
            d.set_item("duplicates", s.duplicates)?;
            d.set_item("passing", s.passing)?;
            d.set_item("budget_exhausted", s.budget_exhausted)?;
            d.set_item("search_budget", self.inner.search_budget())?;
            d.set_item("extraction_truncated", self.inner.extraction_truncated())?;
            Ok(d)
        })
    }

    /// Per-class responsibility maps {class: (n_frames, n_bins)} of the
    /// classes most often landed on other than the target; valid after the search.
    fn class_responsibility<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "Engine.class_responsibility", move || {
            let d = PyDict::new(py);
            let shape = (self.space.n_frames(), self.space.n_bins());
            for (c, map) in self.inner.class_responsibility() {
                let a = Array2::from_shape_vec(shape, map.clone())
                    .map_err(|e| freqrex_error(py, "FreqrexError", e.to_string()))?;
                d.set_item(*c, a.into_pyarray(py))?;
            }
            Ok(d)
        })
    }

    /// Queried search mutants per class other than the target {class: count}.
    fn class_counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (c, n) in self.inner.class_counts() {
            d.set_item(c, n)?;
        }
        Ok(d)
    }

    /// Responsibility (n_frames, n_bins), float64; valid after the search.
    fn responsibility<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        guard(py, "Engine.responsibility", move || {
            let r = self.inner.responsibility();
            let shape = (self.space.n_frames(), self.space.n_bins());
            if r.len() != shape.0 * shape.1 {
                return Err(freqrex_error(
                    py,
                    "FreqrexError",
                    "the responsibility is known once the search is finished (ask and tell until then)".into(),
                ));
            }
            Ok(Array2::from_shape_vec(shape, r.to_vec())
                .map_err(|e| freqrex_error(py, "FreqrexError", e.to_string()))?
                .into_pyarray(py))
        })
    }

    /// Searchable cells ranked by responsibility (flat frame-major indices).
    fn ranking<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_iter(py, self.inner.ranking().iter().map(|&i| i as i64))
    }

    /// The extracted sets as prefix lengths of the ranking, with reasons when absent.
    fn sets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(py, "Engine.sets", move || {
            let d = PyDict::new(py);
            if let Some(s) = self.inner.sets() {
                d.set_item("sufficient", s.sufficient)?;
                d.set_item("sufficient_necessary", s.sufficient_necessary)?;
                d.set_item("complete", s.complete)?;
                d.set_item("sufficient_reason", s.sufficient_reason.clone())?;
                d.set_item(
                    "sufficient_necessary_reason",
                    s.sufficient_necessary_reason.clone(),
                )?;
                d.set_item("complete_reason", s.complete_reason.clone())?;
                d.set_item("sufficient_score", s.sufficient_score)?;
                d.set_item("sufficient_necessary_score", s.sufficient_necessary_score)?;
                d.set_item("complete_score", s.complete_score)?;
            }
            Ok(d)
        })
    }
}

/// The bound (bytes) on the memory one call of the core may plan for; sizes
/// beyond it are a ParameterError with the estimate. Returns the previous bound.
#[pyfunction]
#[pyo3(signature = (n_bytes = None))]
fn memory_limit(n_bytes: Option<u64>) -> u64 {
    let old = core::limits::memory_limit();
    if let Some(b) = n_bytes {
        core::limits::set_memory_limit(b);
    }
    old
}

/// Panics inside the seam's guard: tests check that a panic reaches Python as
/// `freqrex.errors.FreqrexError`, never as a `PanicException`.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    guard(py, "_panic_for_test", || panic!("a deliberate panic"))
}

/// The SplitMix64 stream of a seed, exposed so tests can check the Python copy.
#[pyfunction]
fn splitmix64(py: Python<'_>, seed: u64, n: usize) -> PyResult<Vec<u64>> {
    if n > 1 << 24 {
        return Err(freqrex_error(
            py,
            "ParameterError",
            format!("at most 2^24 numbers at once, asked for {n}"),
        ));
    }
    let mut r = core::rng::SplitMix64::new(seed);
    Ok((0..n).map(|_| r.next_u64()).collect())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FrequencySpace>()?;
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(splitmix64, m)?)?;
    m.add_function(wrap_pyfunction!(memory_limit, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
