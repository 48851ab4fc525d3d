//! One explanation as an ask/tell loop: the responsibility search, then the
//! extraction of the sets. The caller resynthesises each mask and asks the
//! model; the engine never calls the model itself.

use crate::error::{param, CoreError, Result};
use crate::extract::{ExtractOptions, Extraction, Probe, Sets};
use crate::geometry::Rect;
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
    let mut cells = region_cells(region, n_bins);
    cells.sort_by(|&a, &b| {
        responsibility[b as usize]
            .total_cmp(&responsibility[a as usize])
            .then(a.cmp(&b))
    });
    cells
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
        if n_frames * n_bins > u32::MAX as usize {
            return param("the frequency space has more than 2^32 cells");
        }
        let (b0, b1) = band;
        if b0 >= b1 || b1 > n_bins {
            return param(format!(
                "the frequency band selects no bins (bins {b0}..{b1} of {n_bins}); check fmin/fmax"
            ));
        }
        extract_opts.validate()?;
        let region = Rect::new(0, n_frames as u32, b0 as u32, b1 as u32);
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
            phase: Phase::Search,
        })
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

    /// The next masks for the model (at most `max`); empty when done.
    pub fn ask(&mut self, max: usize) -> Result<Vec<Vec<bool>>> {
        loop {
            match self.phase {
                Phase::Search => {
                    let batch = self.search.ask(max)?;
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
                    self.responsibility = self.search.responsibility();
                    self.ranking = rank(&self.responsibility, &self.region, self.n_bins);
                    self.extraction = Some(Extraction::new(
                        self.extract_opts.clone(),
                        self.ranking.len(),
                        self.target,
                        self.target_score,
                    )?);
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
    Ok(Outcome {
        top,
        score: scores[target],
    })
}
