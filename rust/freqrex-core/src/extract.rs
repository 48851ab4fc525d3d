//! Extraction of the sufficient, sufficient-and-necessary and complete sets
//! from a responsibility ranking, as an ask/tell state machine.
//!
//! Each set is a prefix of the ranking. Its length is found by a batched
//! bracket search: `batch` candidate lengths spread over the current bracket
//! are evaluated together, the bracket shrinks to the gap before the first
//! candidate that satisfies the predicate, and so on down to one element.
//! This finds the shortest prefix exactly whenever the predicate is monotone
//! in the prefix length, and otherwise the first that the coarse-to-fine grid
//! meets.

use std::collections::HashMap;

use crate::error::{param, CoreError, Result};
use crate::search::Outcome;

/// Which mutant of a prefix of length `n` is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Keep the prefix alone (plus the background outside the search region).
    Keep(usize),
    /// Remove the prefix from the original.
    Remove(usize),
}

/// The three sets, found by prefix length, with a reason when absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sets {
    pub sufficient: Option<usize>,
    pub sufficient_necessary: Option<usize>,
    pub complete: Option<usize>,
    pub sufficient_reason: Option<String>,
    pub sufficient_necessary_reason: Option<String>,
    pub complete_reason: Option<String>,
    /// Target score of the kept-alone mutant of each found set.
    pub sufficient_score: Option<f64>,
    pub sufficient_necessary_score: Option<f64>,
    pub complete_score: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Sufficient,
    SufficientNecessary,
    Complete,
    Done,
}

/// Options of the extraction.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Candidate prefix lengths evaluated per bracket step.
    pub batch: usize,
    /// Complete set: the target score must be within `tol` of the original.
    pub tol: f64,
    /// As in the search: a kept mutant passes with at least `threshold * score`.
    pub threshold: Option<f64>,
}

impl ExtractOptions {
    pub fn validate(&self) -> Result<()> {
        if self.batch < 2 {
            return param("the extraction batch must be at least 2");
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return param(format!(
                "tol must be a finite non-negative number, got {}",
                self.tol
            ));
        }
        Ok(())
    }
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            batch: 16,
            tol: 0.01,
            threshold: None,
        }
    }
}

/// Candidate prefix lengths for the bracket `[lo, hi]` (both inclusive).
pub fn candidates(lo: usize, hi: usize, batch: usize) -> Vec<usize> {
    let m = hi - lo + 1;
    if m <= batch {
        return (lo..=hi).collect();
    }
    (0..batch)
        .map(|j| lo - 1 + ((j + 1) * m).div_ceil(batch))
        .collect()
}

/// The extraction state machine over a ranking of `n` cells.
pub struct Extraction {
    opts: ExtractOptions,
    n: usize,
    target: usize,
    target_score: f64,
    stage: Stage,
    lo: usize,
    hi: usize,
    cands: Vec<usize>,
    known: HashMap<Probe, Outcome>,
    in_flight: Vec<Probe>,
    queries: u64,
    sets: Sets,
}

impl Extraction {
    pub fn new(opts: ExtractOptions, n: usize, target: usize, target_score: f64) -> Result<Self> {
        if opts.batch < 2 {
            return param("the extraction batch must be at least 2");
        }
        if !(opts.tol.is_finite() && opts.tol >= 0.0) {
            return param(format!(
                "tol must be a finite non-negative number, got {}",
                opts.tol
            ));
        }
        if n == 0 {
            return param("nothing to extract from: the search region is empty");
        }
        let mut known = HashMap::new();
        // Keeping everything is the original clip.
        known.insert(
            Probe::Keep(n),
            Outcome {
                top: target,
                score: target_score,
            },
        );
        let mut e = Self {
            opts,
            n,
            target,
            target_score,
            stage: Stage::Sufficient,
            lo: 1,
            hi: n,
            cands: Vec::new(),
            known,
            in_flight: Vec::new(),
            queries: 0,
            sets: Sets::default(),
        };
        e.cands = candidates(1, n, e.opts.batch);
        Ok(e)
    }

    pub fn queries(&self) -> u64 {
        self.queries
    }
    pub fn sets(&self) -> &Sets {
        &self.sets
    }
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Done
    }

    fn probes_of(&self, c: usize) -> Vec<Probe> {
        match self.stage {
            Stage::SufficientNecessary => vec![Probe::Keep(c), Probe::Remove(c)],
            _ => vec![Probe::Keep(c)],
        }
    }

    fn keeps(&self, o: &Outcome) -> bool {
        o.top == self.target
            && self
                .opts
                .threshold
                .is_none_or(|t| o.score >= t * self.target_score)
    }

    fn holds(&self, c: usize) -> bool {
        let keep = self.known[&Probe::Keep(c)];
        match self.stage {
            Stage::Sufficient => self.keeps(&keep),
            Stage::SufficientNecessary => {
                self.keeps(&keep) && self.known[&Probe::Remove(c)].top != self.target
            }
            Stage::Complete => {
                keep.top == self.target && (keep.score - self.target_score).abs() <= self.opts.tol
            }
            Stage::Done => false,
        }
    }

    /// The probes still unknown for the current candidates, at most `max`.
    pub fn ask(&mut self, max: usize) -> Result<Vec<Probe>> {
        if !self.in_flight.is_empty() {
            return Err(CoreError::Protocol("ask() called before tell()".into()));
        }
        if max == 0 {
            return param("batch size must be at least 1");
        }
        loop {
            if self.stage == Stage::Done {
                return Ok(Vec::new());
            }
            let mut want = Vec::new();
            for &c in &self.cands {
                for p in self.probes_of(c) {
                    if !self.known.contains_key(&p) && !want.contains(&p) {
                        want.push(p);
                    }
                }
            }
            if want.is_empty() {
                self.step();
                continue;
            }
            want.truncate(max);
            self.in_flight = want.clone();
            return Ok(want);
        }
    }

    pub fn tell(&mut self, outcomes: &[Outcome]) -> Result<()> {
        if outcomes.len() != self.in_flight.len() {
            return Err(CoreError::Protocol(format!(
                "tell() got {} outcomes for a batch of {}",
                outcomes.len(),
                self.in_flight.len()
            )));
        }
        for (p, o) in self.in_flight.drain(..).zip(outcomes) {
            self.known.insert(p, *o);
            self.queries += 1;
        }
        Ok(())
    }

    /// All candidates known: shrink the bracket or settle the stage.
    fn step(&mut self) {
        let first = self.cands.iter().position(|&c| self.holds(c));
        let m = self.hi - self.lo + 1;
        let found = match first {
            None => Some(None),
            Some(j) if m <= self.opts.batch => Some(Some(self.cands[j])),
            Some(j) => {
                let lo = if j == 0 {
                    self.lo
                } else {
                    self.cands[j - 1] + 1
                };
                let hi = self.cands[j];
                if lo == hi {
                    Some(Some(hi))
                } else {
                    self.lo = lo;
                    self.hi = hi;
                    self.cands = candidates(lo, hi, self.opts.batch);
                    None
                }
            }
        };
        if let Some(result) = found {
            self.settle(result);
        }
    }

    fn settle(&mut self, result: Option<usize>) {
        let n = self.n;
        let whole = |r: Option<usize>| r.filter(|&c| c < n);
        match self.stage {
            Stage::Sufficient => {
                self.sets.sufficient = whole(result);
                match self.sets.sufficient {
                    Some(c) => {
                        self.sets.sufficient_score = Some(self.known[&Probe::Keep(c)].score);
                        self.begin(Stage::SufficientNecessary, c);
                    }
                    None => {
                        let why = "no proper subset of the ranked cells keeps the class: the whole clip is needed";
                        self.sets.sufficient_reason = Some(why.into());
                        self.sets.sufficient_necessary_reason = Some(why.into());
                        self.sets.complete_reason = Some(why.into());
                        self.stage = Stage::Done;
                    }
                }
            }
            Stage::SufficientNecessary => {
                self.sets.sufficient_necessary = whole(result);
                match self.sets.sufficient_necessary {
                    Some(c) => {
                        self.sets.sufficient_necessary_score =
                            Some(self.known[&Probe::Keep(c)].score);
                        self.begin(Stage::Complete, c);
                    }
                    None => {
                        self.sets.sufficient_necessary_reason = Some(
                            if result.is_some() {
                                "only removing every ranked cell changes the class"
                            } else {
                                "removing the ranked cells never changes the class"
                            }
                            .into(),
                        );
                        let from = self.sets.sufficient.unwrap_or(1);
                        self.begin(Stage::Complete, from);
                    }
                }
            }
            Stage::Complete => {
                self.sets.complete = whole(result);
                match self.sets.complete {
                    Some(c) => self.sets.complete_score = Some(self.known[&Probe::Keep(c)].score),
                    None => {
                        self.sets.complete_reason = Some(format!(
                            "only the whole clip restores the original score within tol = {}",
                            self.opts.tol
                        ))
                    }
                }
                self.stage = Stage::Done;
            }
            Stage::Done => {}
        }
    }

    fn begin(&mut self, stage: Stage, lo: usize) {
        self.stage = stage;
        self.lo = lo;
        self.hi = self.n;
        self.cands = candidates(lo, self.n, self.opts.batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_distinct_and_end_at_hi() {
        for (lo, hi, b) in [(1, 100, 16), (5, 20, 16), (1, 17, 16), (3, 1000, 7)] {
            let c = candidates(lo, hi, b);
            assert_eq!(*c.last().unwrap(), hi);
            assert!(c[0] >= lo);
            assert!(c.windows(2).all(|w| w[0] < w[1]));
        }
    }

    /// Drive an extraction against a synthetic predicate: the class holds when
    /// the prefix reaches `need`, and removing at least `crit` flips it.
    #[test]
    fn finds_exact_thresholds() {
        let (n, need, crit, full) = (10_000usize, 137usize, 900usize, 4321usize);
        let mut e = Extraction::new(ExtractOptions::default(), n, 0, 0.9).unwrap();
        while let Ok(batch) = e.ask(40) {
            if batch.is_empty() {
                break;
            }
            let outs: Vec<Outcome> = batch
                .iter()
                .map(|p| match *p {
                    Probe::Keep(c) => Outcome {
                        top: if c >= need { 0 } else { 1 },
                        score: if c >= full { 0.9 } else { 0.5 },
                    },
                    Probe::Remove(c) => Outcome {
                        top: if c >= crit { 1 } else { 0 },
                        score: 0.0,
                    },
                })
                .collect();
            e.tell(&outs).unwrap();
        }
        let s = e.sets();
        assert_eq!(s.sufficient, Some(need));
        assert_eq!(s.sufficient_necessary, Some(crit));
        assert_eq!(s.complete, Some(full));
    }
}
