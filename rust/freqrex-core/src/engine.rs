//! One explanation as an ask/tell loop: the responsibility search, then the
//! extraction of the sets. The caller resynthesises each mask and asks the
//! model; the engine never calls the model itself.

use crate::error::{param, CoreError, Result};
use crate::extract::{reserve, ExtractOptions, Extraction, Probe, Sets};
use crate::geometry::Rect;
use crate::limits;
use crate::search::{Outcome, Search, SearchOptions, SearchStats};

/// Where an explanation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Search,
    Extract,
    Done,
}

/// The whole explanation of one clip.
pub struct Engine {
    n_frames: usize,
    n_bins: usize,
    region: Rect,
    target: usize,
    target_score: f64,
    extract_opts: ExtractOptions,
    search: Search,
    extraction: Option<Extraction>,
    responsibility: Vec<f64>,
    ranking: Vec<u32>,
    /// Tie-break of the ranking inside a plateau of responsibility: larger first.
    magnitude: Option<Vec<f64>>,
    /// The whole explanation's query bound (the original included), if any.
    max_queries: Option<u64>,
    search_budget: u64,
    class_maps: Vec<(usize, Vec<f64>)>,
    /// A responsibility map computed elsewhere: the search is skipped and
    /// the extraction ranks by it.
    given: Option<Vec<f64>>,
    phase: Phase,
}

/// Cells of `region`, frame-major flat indices.
fn region_cells(region: &Rect, n_bins: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(region.cells() as usize);
    for t in region.t0..region.t1 {
        for f in region.f0..region.f1 {
            out.push((t as usize * n_bins + f as usize) as u32);
        }
    }
    out
}

/// Cells of `region` by responsibility, descending; ties go to the lower index.
pub fn rank(responsibility: &[f64], region: &Rect, n_bins: usize) -> Vec<u32> {
    rank_by(responsibility, None, region, n_bins)
}

/// Cells of `region` by responsibility, descending; ties between credited
/// cells (responsibility > 0) by `magnitude` (the original coefficient's),
/// descending; then by the lower index. Uncredited cells stay in index order:
/// ordering them by loudness would make "all but the quietest uncredited
/// bins" a sufficient set of any model that needs the whole clip.
pub fn rank_by(
    responsibility: &[f64],
    magnitude: Option<&[f64]>,
    region: &Rect,
    n_bins: usize,
) -> Vec<u32> {
    let mut cells = region_cells(region, n_bins);
    cells.sort_by(|&a, &b| {
        let (a_, b_) = (a as usize, b as usize);
        responsibility[b_]
            .total_cmp(&responsibility[a_])
            .then_with(|| match magnitude {
                // Credited cells only: uncredited ones keep the index order.
                Some(m) if responsibility[a_] > 0.0 => m[b_].total_cmp(&m[a_]),
                _ => std::cmp::Ordering::Equal,
            })
            .then(a.cmp(&b))
    });
    cells
}

/// Prefix lengths of `ranking` after which the responsibility changes (the
/// ends of its plateaus), ascending, below `ranking.len()`.
pub fn plateau_ends(responsibility: &[f64], ranking: &[u32]) -> Vec<usize> {
    (1..ranking.len())
        .filter(|&i| responsibility[ranking[i - 1] as usize] != responsibility[ranking[i] as usize])
        .collect()
}

/// How a total bound of `max_queries` model queries (the original clip
/// included) is split: the search gets at most `budget` and at most what is
/// left after the original and a reserve for the extraction (its expected
/// cost for `n` ranked cells, [`reserve`], but never more than half of what is
/// left); the extraction gets everything the search leaves.
pub fn search_share(max_queries: u64, budget: u64, n: usize, batch: usize) -> u64 {
    let avail = max_queries.saturating_sub(1);
    let keep = reserve(n, batch).min(avail / 2);
    budget.min(avail - keep)
}

impl Engine {
    /// `band` is the half-open bin range searched; bins outside it are always kept.
    pub fn new(
        search_opts: SearchOptions,
        extract_opts: ExtractOptions,
        n_frames: usize,
        n_bins: usize,
        band: (usize, usize),
        target: usize,
        target_score: f64,
    ) -> Result<Self> {
        if n_frames == 0 || n_bins == 0 {
            return param("the frequency space is empty");
        }
        if n_frames
            .checked_mul(n_bins)
            .is_none_or(|c| c > u32::MAX as usize)
        {
            return param("the frequency space has more than 2^32 cells");
        }
        let (b0, b1) = band;
        if b0 >= b1 || b1 > n_bins {
            return param(format!(
                "the frequency band selects no bins (bins {b0}..{b1} of {n_bins}); check fmin/fmax"
            ));
        }
        Self::with_limits(
            search_opts,
            extract_opts,
            n_frames,
            n_bins,
            band,
            target,
            target_score,
            None,
        )
    }

    /// As [`Engine::new`], with a bound on the whole explanation's model
    /// queries, the original clip's included (see [`search_share`]).
    #[allow(clippy::too_many_arguments)]
    pub fn with_limits(
        mut search_opts: SearchOptions,
        extract_opts: ExtractOptions,
        n_frames: usize,
        n_bins: usize,
        band: (usize, usize),
        target: usize,
        target_score: f64,
        max_queries: Option<u64>,
    ) -> Result<Self> {
        if n_frames == 0 || n_bins == 0 {
            return param("the frequency space is empty");
        }
        let cells = match n_frames.checked_mul(n_bins) {
            Some(c) if c <= u32::MAX as usize => c,
            _ => return param("the frequency space has more than 2^32 cells"),
        };
        let (b0, b1) = band;
        if b0 >= b1 || b1 > n_bins {
            return param(format!(
                "the frequency band selects no bins (bins {b0}..{b1} of {n_bins}); check fmin/fmax"
            ));
        }
        extract_opts.validate()?;
        search_opts.validate()?;
        // Per cell: the responsibility, the magnitudes, the ranking, a mask, and
        // one map per kept class (at most one per queried mutant); per iteration
        // its state and its first round of mutants.
        let maps = (search_opts.class_maps as u64).min(search_opts.budget.saturating_add(1));
        limits::check(
            &format!(
                "an explanation over {cells} cells with {} iterations",
                search_opts.iterations
            ),
            limits::total(&[
                limits::bytes(cells, 8 * 3 + 4 + 1),
                limits::bytes(cells, 8).and_then(|v| v.checked_mul(maps)),
                limits::bytes(
                    search_opts.iterations as usize,
                    crate::search::ITERATION_BYTES,
                ),
                // Every iteration proposes its first split's 2^n_parts subsets at once.
                limits::bytes(
                    search_opts.iterations as usize,
                    crate::search::MUTANT_BYTES << search_opts.n_parts,
                ),
            ]),
        )?;
        if max_queries == Some(0) {
            return param("max_queries must be at least 1 (the original clip is one query)");
        }
        let region = Rect::new(0, n_frames as u32, b0 as u32, b1 as u32);
        if let Some(m) = max_queries {
            search_opts.budget = search_share(
                m,
                search_opts.budget,
                region.cells() as usize,
                extract_opts.batch,
            );
        }
        let search_budget = search_opts.budget;
        let search = Search::new(search_opts, n_frames, n_bins, region, target, target_score)?;
        Ok(Self {
            n_frames,
            n_bins,
            region,
            target,
            target_score,
            extract_opts,
            search,
            extraction: None,
            responsibility: Vec::new(),
            ranking: Vec::new(),
            magnitude: None,
            max_queries,
            search_budget,
            class_maps: Vec::new(),
            given: None,
            phase: Phase::Search,
        })
    }

    /// Break ties of the ranking by these magnitudes (one per cell,
    /// frame-major; larger first). Call before the search ends.
    pub fn set_magnitude(&mut self, magnitude: Vec<f64>) -> Result<()> {
        if magnitude.len() != self.n_frames * self.n_bins {
            return param(format!(
                "magnitude has {} values for {} cells",
                magnitude.len(),
                self.n_frames * self.n_bins
            ));
        }
        if magnitude.iter().any(|v| !v.is_finite()) {
            return param("magnitude must be finite");
        }
        self.magnitude = Some(magnitude);
        Ok(())
    }

    /// Rank by this responsibility map (one finite value per cell,
    /// frame-major) instead of running the search: the engine goes straight
    /// to the extraction. Call before the first `ask`.
    pub fn set_responsibility(&mut self, responsibility: Vec<f64>) -> Result<()> {
        if responsibility.len() != self.n_frames * self.n_bins {
            return param(format!(
                "responsibility has {} values for {} cells",
                responsibility.len(),
                self.n_frames * self.n_bins
            ));
        }
        if responsibility.iter().any(|v| !v.is_finite()) {
            return param("responsibility must be finite");
        }
        if self.phase != Phase::Search || self.search.stats().queries > 0 {
            return Err(CoreError::Protocol(
                "a responsibility map must be given before the search starts".into(),
            ));
        }
        self.given = Some(responsibility);
        Ok(())
    }

    /// The search's query budget after the split of `max_queries`.
    pub fn search_budget(&self) -> u64 {
        self.search_budget
    }
    /// Whether the extraction ran out of queries before settling every set.
    pub fn extraction_truncated(&self) -> bool {
        self.extraction.as_ref().is_some_and(|e| e.truncated())
    }
    /// Per-class maps (see `Search::class_responsibility`), valid after the search.
    pub fn class_responsibility(&self) -> &[(usize, Vec<f64>)] {
        &self.class_maps
    }
    /// Queried search mutants per class other than the target.
    pub fn class_counts(&self) -> Vec<(usize, u64)> {
        self.search.class_counts()
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn search_stats(&self) -> SearchStats {
        self.search.stats()
    }
    pub fn extraction_queries(&self) -> u64 {
        self.extraction.as_ref().map_or(0, |e| e.queries())
    }
    pub fn active_iterations(&self) -> usize {
        self.search.active_iterations()
    }
    pub fn region(&self) -> Rect {
        self.region
    }
    /// Final responsibility (valid once the search is over).
    pub fn responsibility(&self) -> &[f64] {
        &self.responsibility
    }
    pub fn ranking(&self) -> &[u32] {
        &self.ranking
    }
    pub fn sets(&self) -> Option<&Sets> {
        self.extraction.as_ref().map(|e| e.sets())
    }

    fn dense(&self, kept: impl FnOnce(&mut [bool])) -> Vec<bool> {
        let mut m = vec![true; self.n_frames * self.n_bins];
        kept(&mut m);
        m
    }

    fn clear_region(&self, m: &mut [bool]) {
        let r = self.region;
        for t in r.t0..r.t1 {
            let row = t as usize * self.n_bins;
            m[row + r.f0 as usize..row + r.f1 as usize].fill(false);
        }
    }

    /// Mask of a prefix probe of the ranking.
    pub fn probe_mask(&self, p: Probe) -> Result<Vec<bool>> {
        let c = match p {
            Probe::Keep(c) | Probe::Remove(c) => c,
        };
        if self.ranking.is_empty() || c > self.ranking.len() {
            return param("prefix longer than the ranking");
        }
        Ok(self.dense(|m| match p {
            Probe::Keep(_) => {
                self.clear_region(m);
                for &i in &self.ranking[..c] {
                    m[i as usize] = true;
                }
            }
            Probe::Remove(_) => {
                for &i in &self.ranking[..c] {
                    m[i as usize] = false;
                }
            }
        }))
    }

    /// The next masks for the model (at most `max`, and at most as many as fit
    /// the memory limit); empty when done.
    pub fn ask(&mut self, max: usize) -> Result<Vec<Vec<bool>>> {
        let cells = (self.n_frames * self.n_bins).max(1) as u64;
        let fit = (limits::memory_limit() / cells).clamp(1, usize::MAX as u64) as usize;
        let max = max.min(fit);
        loop {
            match self.phase {
                Phase::Search => {
                    let batch = if self.given.is_some() {
                        Vec::new()
                    } else {
                        self.search.ask(max)?
                    };
                    if !batch.is_empty() {
                        return Ok(batch
                            .into_iter()
                            .map(|p| {
                                self.dense(|m| {
                                    self.clear_region(m);
                                    for r in &p.rects {
                                        for t in r.t0..r.t1 {
                                            let row = t as usize * self.n_bins;
                                            m[row + r.f0 as usize..row + r.f1 as usize].fill(true);
                                        }
                                    }
                                })
                            })
                            .collect());
                    }
                    if let Some(given) = self.given.take() {
                        self.responsibility = given;
                    } else {
                        self.responsibility = self.search.responsibility();
                        self.class_maps = self.search.class_responsibility();
                    }
                    self.ranking = rank_by(
                        &self.responsibility,
                        self.magnitude.as_deref(),
                        &self.region,
                        self.n_bins,
                    );
                    let mut opts = self.extract_opts.clone();
                    if let Some(m) = self.max_queries {
                        let left = m.saturating_sub(1 + self.search.stats().queries);
                        opts.max_queries = Some(opts.max_queries.map_or(left, |q| q.min(left)));
                    }
                    let mut ex = Extraction::with_plateaus(
                        opts,
                        self.ranking.len(),
                        self.target,
                        self.target_score,
                        plateau_ends(&self.responsibility, &self.ranking),
                    )?;
                    // Removing every ranked cell is the search's first mutant.
                    if let Some(o) = self.search.known_outcome(&[]) {
                        ex.know(Probe::Remove(self.ranking.len()), o);
                    }
                    self.extraction = Some(ex);
                    self.phase = Phase::Extract;
                }
                Phase::Extract => {
                    let ex = self
                        .extraction
                        .as_mut()
                        .expect("set when entering the phase");
                    let probes = ex.ask(max)?;
                    if probes.is_empty() {
                        self.phase = Phase::Done;
                        continue;
                    }
                    return probes.into_iter().map(|p| self.probe_mask(p)).collect();
                }
                Phase::Done => return Ok(Vec::new()),
            }
        }
    }

    /// Outcomes of the last batch asked for, in order.
    pub fn tell(&mut self, outcomes: &[Outcome]) -> Result<()> {
        match self.phase {
            Phase::Search => self.search.tell(outcomes),
            Phase::Extract => self
                .extraction
                .as_mut()
                .expect("set when entering the phase")
                .tell(outcomes),
            Phase::Done => Err(CoreError::Protocol("the explanation is finished".into())),
        }
    }

    /// Turn a row of scores into an outcome for this engine's target.
    pub fn outcome(&self, scores: &[f64]) -> Result<Outcome> {
        outcome(scores, self.target)
    }
}

/// Top-1 class (ties to the lower index) and the target's score of a score row.
pub fn outcome(scores: &[f64], target: usize) -> Result<Outcome> {
    if scores.len() <= target {
        return Err(CoreError::Scores(format!(
            "a score row has {} classes but the target class is {target}",
            scores.len()
        )));
    }
    if scores.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::Scores(
            "scores contain NaN or infinite values".into(),
        ));
    }
    let mut top = 0;
    for (i, &v) in scores.iter().enumerate() {
        if v > scores[top] {
            top = i;
        }
    }
    let best_other = scores
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != target)
        .map(|(_, &v)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    Ok(Outcome {
        top,
        score: scores[target],
        margin: scores[target] - best_other,
    })
}
