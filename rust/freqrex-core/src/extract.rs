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
//!
//! The sets are nested prefixes, so each search starts where the previous one
//! ended (sufficient-and-necessary at the sufficient prefix, by the removal
//! probe alone and one keep probe to confirm; complete at the
//! sufficient-and-necessary prefix). Where the ranking has plateaus (whole
//! parts share one responsibility) their ends are the first candidates. An
//! optional allowance bounds the queries.

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
    /// Sufficient and necessary, first by the removal probe alone (from the
    /// sufficient prefix on, where keeping already passes when the predicate
    /// is monotone)...
    NecessaryRemove,
    /// ...then one keep probe at the prefix found...
    NecessaryVerify,
    /// ...and only if that fails, both probes for every candidate.
    NecessaryBoth,
    Complete,
    Done,
}

/// Options of the extraction.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Candidate prefix lengths per bracket step (the last one is the
    /// bracket's end, already known: `batch - 1` new probes per step).
    pub batch: usize,
    /// Complete set: the target score must be within `tol` of the original.
    pub tol: f64,
    /// As in the search: a kept mutant passes with at least `threshold * score`.
    pub threshold: Option<f64>,
    /// A kept prefix passes only when the target leads the best other class by at least this
    /// (the sufficient and sufficient-and-necessary sets); None: being top-1 is enough.
    pub min_margin: Option<f64>,
    /// Model queries the extraction may spend; when they run out the current
    /// set is the shortest prefix known to satisfy it (if any) and the later
    /// sets are absent.
    pub max_queries: Option<u64>,
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
        if let Some(m) = self.min_margin {
            if !m.is_finite() {
                return param(format!("min_margin must be finite, got {m}"));
            }
        }
        Ok(())
    }
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            batch: 2,
            tol: 0.01,
            threshold: None,
            min_margin: None,
            max_queries: None,
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

/// Candidates for `[lo, hi]` that put the ends of the ranking's plateaus
/// (prefix lengths after which the responsibility changes; sorted) first:
/// when some lie inside `[lo, hi)`, up to `batch - 1` of them spread evenly,
/// then `hi`; otherwise [`candidates`].
pub fn plateau_candidates(lo: usize, hi: usize, batch: usize, ends: &[usize]) -> Vec<usize> {
    if hi - lo < batch {
        return (lo..=hi).collect();
    }
    let a = ends.partition_point(|&e| e < lo);
    let b = ends.partition_point(|&e| e < hi);
    let inner = &ends[a..b];
    if inner.is_empty() {
        return candidates(lo, hi, batch);
    }
    let k = batch - 1;
    let mut out: Vec<usize> = if inner.len() <= k {
        inner.to_vec()
    } else {
        (0..k)
            .map(|j| inner[((j + 1) * inner.len()).div_ceil(k + 1) - 1])
            .collect()
    };
    out.push(hi);
    out
}

/// Candidates of the first step of the complete set's search (at least): a
/// coarse scan before the bisection, since its predicate (the score back
/// within `tol` of the original) is not monotone in the prefix length: the
/// score can overshoot.
pub const FIRST_STEP: usize = 8;

/// Bracket steps needed to narrow `n` prefix lengths to one with `batch`
/// candidates per step: the smallest `s` with `batch^s >= n`.
pub fn steps(n: usize, batch: usize) -> u64 {
    let (mut s, mut w) = (0u64, 1usize);
    while w < n {
        w = w.saturating_mul(batch.max(2));
        s += 1;
    }
    s
}

/// The queries an extraction over `n` cells is expected to need at most when
/// its predicates are monotone (three bracket searches, plateau ends first,
/// and one verification): the reserve the search leaves under a total budget.
pub fn reserve(n: usize, batch: usize) -> u64 {
    let b = batch.max(2);
    // Saturating: a batch near usize::MAX must not overflow (found by the fuzz corpus).
    3u64.saturating_mul(b as u64 - 1)
        .saturating_mul(steps(n, b) + 1)
        .saturating_add(FIRST_STEP.saturating_sub(b) as u64 + 1)
}

const OUT_OF_BUDGET: &str = "the query budget ran out before this set was found";

/// The extraction state machine over a ranking of `n` cells.
pub struct Extraction {
    opts: ExtractOptions,
    n: usize,
    target: usize,
    target_score: f64,
    stage: Stage,
    lo: usize,
    hi: usize,
    /// Whether `hi` is a candidate known to satisfy the stage's predicate.
    hi_holds: bool,
    cands: Vec<usize>,
    /// Candidates before this index have every probe known (asked and told):
    /// `ask` starts there, so asking a wide step in small batches stays linear.
    scan: usize,
    ends: Vec<usize>,
    known: HashMap<Probe, Outcome>,
    in_flight: Vec<Probe>,
    queries: u64,
    truncated: bool,
    sets: Sets,
}

impl Extraction {
    pub fn new(opts: ExtractOptions, n: usize, target: usize, target_score: f64) -> Result<Self> {
        Self::with_plateaus(opts, n, target, target_score, Vec::new())
    }

    /// As [`Extraction::new`], with the ranking's plateau ends (sorted prefix
    /// lengths in `1..n`) tried first as candidates.
    pub fn with_plateaus(
        opts: ExtractOptions,
        n: usize,
        target: usize,
        target_score: f64,
        ends: Vec<usize>,
    ) -> Result<Self> {
        opts.validate()?;
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
                margin: f64::INFINITY, // the original clip: kept by definition
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
            hi_holds: false,
            cands: Vec::new(),
            scan: 0,
            ends: ends.into_iter().filter(|&e| e >= 1 && e < n).collect(),
            known,
            in_flight: Vec::new(),
            queries: 0,
            truncated: false,
            sets: Sets::default(),
        };
        e.ends.sort_unstable();
        e.ends.dedup();
        e.cands = e.first(1, n);
        e.scan = 0;
        Ok(e)
    }

    /// Record an outcome already known (from the search), at no query.
    pub fn know(&mut self, p: Probe, o: Outcome) {
        self.known.entry(p).or_insert(o);
    }

    pub fn queries(&self) -> u64 {
        self.queries
    }
    /// Whether the query allowance ran out before every set was settled.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
    pub fn sets(&self) -> &Sets {
        &self.sets
    }
    pub fn is_finished(&self) -> bool {
        self.stage == Stage::Done
    }

    fn make(&self, lo: usize, hi: usize) -> Vec<usize> {
        plateau_candidates(lo, hi, self.opts.batch, &self.ends)
    }

    fn first(&self, lo: usize, hi: usize) -> Vec<usize> {
        let wide = if self.stage == Stage::Complete {
            self.opts.batch.max(FIRST_STEP)
        } else {
            self.opts.batch
        };
        plateau_candidates(lo, hi, wide, &self.ends)
    }

    fn probes_of(&self, c: usize) -> Vec<Probe> {
        match self.stage {
            Stage::NecessaryRemove => vec![Probe::Remove(c)],
            Stage::NecessaryBoth => vec![Probe::Keep(c), Probe::Remove(c)],
            _ => vec![Probe::Keep(c)],
        }
    }

    fn keeps(&self, o: &Outcome) -> bool {
        Self::passes_keep(&self.opts, self.target, self.target_score, o)
    }

    /// A kept prefix passes: the target stays top-1 (with `threshold` of its score and
    /// `min_margin` over the best other class, when set).
    fn passes_keep(opts: &ExtractOptions, target: usize, target_score: f64, o: &Outcome) -> bool {
        o.top == target
            && opts.threshold.is_none_or(|t| o.score >= t * target_score)
            && opts.min_margin.is_none_or(|m| o.margin >= m)
    }

    fn removes(&self, c: usize) -> bool {
        self.known[&Probe::Remove(c)].top != self.target
    }

    fn holds(&self, c: usize) -> bool {
        match self.stage {
            Stage::Sufficient | Stage::NecessaryVerify => self.keeps(&self.known[&Probe::Keep(c)]),
            Stage::NecessaryRemove => self.removes(c),
            Stage::NecessaryBoth => self.keeps(&self.known[&Probe::Keep(c)]) && self.removes(c),
            Stage::Complete => {
                let keep = self.known[&Probe::Keep(c)];
                keep.top == self.target && (keep.score - self.target_score).abs() <= self.opts.tol
            }
            Stage::Done => false,
        }
    }

    fn remaining(&self) -> Option<u64> {
        self.opts
            .max_queries
            .map(|m| m.saturating_sub(self.queries))
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
            // At most `room` probes, deduplicated in linear time (a wide batch
            // has as many candidates as the bracket: no quadratic scan).
            let room = self
                .remaining()
                .map_or(max, |r| max.min(usize::try_from(r).unwrap_or(usize::MAX)));
            while self.scan < self.cands.len()
                && self
                    .probes_of(self.cands[self.scan])
                    .iter()
                    .all(|p| self.known.contains_key(p))
            {
                self.scan += 1;
            }
            let mut want = Vec::new();
            let mut seen = std::collections::HashSet::new();
            'fill: for &c in &self.cands[self.scan..] {
                for p in self.probes_of(c) {
                    if !self.known.contains_key(&p) && seen.insert(p) {
                        want.push(p);
                        if want.len() > room {
                            break 'fill;
                        }
                    }
                }
            }
            if want.is_empty() {
                self.step();
                continue;
            }
            if room == 0 {
                self.exhaust();
                continue;
            }
            want.truncate(room);
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
        if self.stage == Stage::NecessaryVerify {
            let c = self.lo;
            if self.holds(c) {
                self.settle(Some(c));
            } else {
                // Not monotone: look further, with both probes.
                self.begin(Stage::NecessaryBoth, c + 1);
            }
            return;
        }
        let Some(j) = self.cands.iter().position(|&c| self.holds(c)) else {
            return self.settle(None);
        };
        let c = self.cands[j];
        let lo = if j == 0 {
            self.lo
        } else {
            self.cands[j - 1] + 1
        };
        if lo == c {
            return self.settle(Some(c));
        }
        self.lo = lo;
        self.hi = c;
        self.hi_holds = true;
        self.cands = self.make(lo, c);
        self.scan = 0;
    }

    /// Whether every probe the current stage needs for `c` is known and passes (never asks).
    fn known_to_hold(&self, c: usize) -> bool {
        let keeps = || {
            self.known
                .get(&Probe::Keep(c))
                .is_some_and(|o| self.keeps(o))
        };
        let removes = || {
            self.known
                .get(&Probe::Remove(c))
                .is_some_and(|o| o.top != self.target)
        };
        match self.stage {
            Stage::Sufficient => keeps(),
            // a sufficient-and-necessary prefix must be known to pass both ways
            Stage::NecessaryRemove | Stage::NecessaryVerify | Stage::NecessaryBoth => {
                keeps() && removes()
            }
            Stage::Complete => self.restores(c),
            Stage::Done => false,
        }
    }

    /// Whether keeping the prefix `c` is known to restore the target's score within `tol`.
    fn restores(&self, c: usize) -> bool {
        self.known.get(&Probe::Keep(c)).is_some_and(|o| {
            o.top == self.target && (o.score - self.target_score).abs() <= self.opts.tol
        })
    }

    /// The shortest prefix in `lo..n` for which `test` holds on what is known.
    fn shortest_known(&self, lo: usize, test: impl Fn(usize) -> bool) -> Option<usize> {
        self.known
            .keys()
            .map(|p| match *p {
                Probe::Keep(c) | Probe::Remove(c) => c,
            })
            .filter(|&c| c >= lo && c < self.n && test(c))
            .min()
    }

    /// The allowance is spent: keep the shortest prefix from the bracket's start on that is known to
    /// hold (asked in this step or an earlier one, or known before), give up the rest.
    fn exhaust(&mut self) {
        self.truncated = true;
        let best = self.shortest_known(self.lo, |c| self.known_to_hold(c));
        // a sufficient-and-necessary set known: a kept prefix from it on already known to restore
        // the score is the complete set
        let complete = match self.stage {
            Stage::NecessaryRemove | Stage::NecessaryVerify | Stage::NecessaryBoth => {
                best.and_then(|sn| self.shortest_known(sn, |c| self.restores(c)))
            }
            _ => None,
        };
        let why = || Some(OUT_OF_BUDGET.to_string());
        let s = &mut self.sets;
        match self.stage {
            Stage::Sufficient => {
                s.sufficient = best;
                s.sufficient_score = best.map(|c| self.known[&Probe::Keep(c)].score);
                if best.is_none() {
                    s.sufficient_reason = why();
                }
                s.sufficient_necessary_reason = why();
                s.complete_reason = why();
            }
            Stage::NecessaryRemove | Stage::NecessaryVerify | Stage::NecessaryBoth => {
                let ok = best; // known to pass both ways
                s.sufficient_necessary = ok;
                s.sufficient_necessary_score = ok.map(|c| self.known[&Probe::Keep(c)].score);
                if ok.is_none() {
                    s.sufficient_necessary_reason = why();
                }
                s.complete = complete;
                s.complete_score = complete.map(|c| self.known[&Probe::Keep(c)].score);
                if complete.is_none() {
                    s.complete_reason = why();
                }
            }
            Stage::Complete => {
                s.complete = best;
                s.complete_score = best.map(|c| self.known[&Probe::Keep(c)].score);
                if best.is_none() {
                    s.complete_reason = why();
                }
            }
            Stage::Done => {}
        }
        self.stage = Stage::Done;
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
                        self.begin(Stage::NecessaryRemove, c);
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
            Stage::NecessaryRemove if whole(result).is_some() => {
                let c = result.expect("checked");
                self.stage = Stage::NecessaryVerify;
                self.lo = c;
                self.hi = c;
                self.hi_holds = false;
                self.cands = vec![c];
                self.scan = 0;
            }
            Stage::NecessaryRemove | Stage::NecessaryVerify | Stage::NecessaryBoth => {
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
        self.hi_holds = false;
        self.cands = self.first(lo, self.n);
        self.scan = 0;
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

    /// Answer an extraction until it is done: `keep(c)` is the outcome of keeping the prefix of
    /// length `c`; removing at least `crit` elements makes class 1 the top-1.
    /// Returns the probes asked, in order.
    fn drive(
        e: &mut Extraction,
        batch: usize,
        crit: usize,
        keep: impl Fn(usize) -> Outcome,
    ) -> Vec<Probe> {
        let mut asked = Vec::new();
        while let Ok(probes) = e.ask(batch) {
            if probes.is_empty() {
                break;
            }
            asked.extend(probes.iter().copied());
            let outs: Vec<Outcome> = probes
                .iter()
                .map(|p| match *p {
                    Probe::Keep(c) => keep(c),
                    Probe::Remove(c) => Outcome {
                        top: if c >= crit { 1 } else { 0 },
                        score: 0.0,
                        margin: 0.0,
                    },
                })
                .collect();
            e.tell(&outs).unwrap();
        }
        asked
    }

    /// Drive an extraction against a synthetic predicate: the class holds when
    /// the prefix reaches `need`, and removing at least `crit` flips it.
    #[test]
    fn finds_exact_thresholds() {
        let (n, need, crit, full) = (10_000usize, 137usize, 900usize, 4321usize);
        let mut e = Extraction::new(ExtractOptions::default(), n, 0, 0.9).unwrap();
        drive(&mut e, 40, crit, |c| Outcome {
            top: if c >= need { 0 } else { 1 },
            score: if c >= full { 0.9 } else { 0.5 },
            margin: 0.0,
        });
        let s = e.sets();
        assert_eq!(s.sufficient, Some(need));
        assert_eq!(s.sufficient_necessary, Some(crit));
        assert_eq!(s.complete, Some(full));
    }

    /// With `min_margin`, a kept prefix passes only once the target leads by that much: the
    /// sufficient set grows from where the class is first kept to where its margin is reached.
    #[test]
    fn min_margin_moves_the_sufficient_set_to_the_margin() {
        let (n, need, crit) = (10_000usize, 137usize, 900usize);
        let margin_at = |c: usize| (c as f64 - need as f64) / 1000.0; // 0 at `need`, 0.05 at need + 50
        for (min_margin, want) in [
            (None, need),
            (Some(0.05), need + 50),
            (Some(0.5), need + 500),
        ] {
            let opts = ExtractOptions {
                min_margin,
                ..Default::default()
            };
            let mut e = Extraction::new(opts, n, 0, 0.9).unwrap();
            drive(&mut e, 16, crit, |c| Outcome {
                top: if c >= need { 0 } else { 1 },
                score: 0.5,
                margin: margin_at(c),
            });
            let s = e.sets();
            assert_eq!(s.sufficient, Some(want), "min_margin {min_margin:?}");
            assert_eq!(s.sufficient_necessary, Some(want.max(crit)));
        }
        let bad = ExtractOptions {
            min_margin: Some(f64::NAN),
            ..Default::default()
        };
        assert!(Extraction::new(bad, n, 0, 0.9).is_err());
    }

    #[test]
    fn plateau_ends_come_first() {
        let ends = [10usize, 20, 30, 40, 50];
        assert_eq!(plateau_candidates(1, 100, 2, &ends), vec![30, 100]);
        assert_eq!(plateau_candidates(1, 100, 4, &ends), vec![20, 30, 40, 100]);
        assert_eq!(plateau_candidates(31, 40, 2, &ends), candidates(31, 40, 2));
        assert_eq!(plateau_candidates(1, 2, 4, &ends), vec![1, 2]);
    }

    #[test]
    fn an_allowance_is_never_exceeded_and_keeps_what_is_known() {
        let (n, need) = (10_000usize, 137usize);
        let mut full = None;
        for allowance in [u64::MAX, 0, 1, 5, 13, 20, 40, 1000] {
            let opts = ExtractOptions {
                max_queries: Some(allowance),
                ..Default::default()
            };
            let mut e = Extraction::new(opts, n, 0, 0.9).unwrap();
            drive(&mut e, 3, 900, |c| Outcome {
                top: if c >= need { 0 } else { 1 },
                score: 0.5,
                margin: 0.0,
            });
            assert!(e.queries() <= allowance);
            if let Some(c) = e.sets().sufficient {
                assert!(c >= need);
            }
            let full = *full.get_or_insert(e.queries());
            assert_eq!(e.truncated(), allowance < full, "{allowance} of {full}");
        }
    }

    /// When the allowance runs out, a prefix already asked and known to hold is the set (it used
    /// to be dropped unless a whole step of candidates was known): whenever an asked `keep`
    /// passes, there is a sufficient set, and once the sufficient-and-necessary set is known, a
    /// `keep` already asked that restores the score makes the complete set.
    #[test]
    fn a_truncated_extraction_keeps_what_it_asked() {
        let (n, need, crit, full) = (51usize, 3usize, 10usize, 10usize);
        for allowance in 1..40u64 {
            for batch in [2usize, 4] {
                let opts = ExtractOptions {
                    max_queries: Some(allowance),
                    batch,
                    ..Default::default()
                };
                let mut e = Extraction::new(opts, n, 0, 0.9).unwrap();
                let asked = drive(&mut e, 1, crit, |c| Outcome {
                    top: if c >= need { 0 } else { 1 },
                    score: if c >= full { 0.9 } else { 0.5 },
                    margin: 0.0,
                });
                let s = e.sets();
                let kept = |c: usize| asked.contains(&Probe::Keep(c));
                let case = format!("allowance {allowance}, batch {batch}: {s:?}, asked {asked:?}");
                if (need..n).any(kept) {
                    assert!(s.sufficient.is_some_and(|c| c >= need), "{case}");
                }
                if let Some(sn) = s.sufficient_necessary {
                    assert!(sn >= crit, "{case}");
                    if (sn.max(full)..n).any(kept) {
                        assert!(s.complete.is_some_and(|c| c >= full), "{case}");
                    }
                }
            }
        }
    }
}
