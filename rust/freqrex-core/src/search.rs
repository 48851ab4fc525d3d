//! Responsibility by iterative random partition refinement (ReX, corrected).
//!
//! Iterations are independent random partition refinements. They advance in
//! lock-step rounds: every round gathers the mutants of all active iterations,
//! so that the model sees large batches. Identical masks are queried once.
//! Responsibility contributions are applied in the fixed order
//! (round, iteration, mutant, child), so the result does not depend on the
//! batch size or the number of threads.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::error::{param, Result};
use crate::geometry::{canonical_key, Rect};
use crate::partition::{split, CutScale};
use crate::rng::SplitMix64;

/// How a passing combination of `k` parts shares responsibility among them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Default: each part of a *minimal* passing combination of `k` parts (no
    /// proper subset of it passes, the empty one included) gets `1 / k`: the
    /// parts that are critical in it, as actual causality defines
    /// responsibility. Parts that merely ride along get nothing.
    Minimal,
    /// ReX's rule: each part of *every* passing combination of `k` parts gets
    /// `1 / k` (irrelevant parts that ride along with a cause get credit too).
    Rex,
    /// As `Minimal`, weighted by confidence: `score / k`, with `score` the
    /// mutant's probability of the target class.
    Confidence,
}

/// Bytes one iteration's state takes before it grows (for the memory estimate).
pub const ITERATION_BYTES: usize = std::mem::size_of::<Iteration>() + 64;
/// Bytes one proposed mutant takes (its record, canonical key and slots), for the estimate.
pub const MUTANT_BYTES: usize = std::mem::size_of::<Mutant>() + 128;

/// Options of the search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub n_parts: u32,
    pub min_part: u64,
    pub max_depth: u32,
    pub iterations: u32,
    pub budget: u64,
    pub seed: u64,
    pub cut_scale: CutScale,
    pub rule: Rule,
    /// A mutant passes when its top class is the target and, if set, its
    /// target score is at least `threshold * original_score`.
    pub threshold: Option<f64>,
    /// Minimal passing combinations not chosen as the next job are queued (at
    /// most this many per iteration) and refined once the current job is
    /// exhausted, so that disjunctive evidence (either of two bands) is
    /// refined too instead of keeping a coarse credit.
    pub alternatives: u32,
    /// Per-class maps kept: at most this many classes other than the target,
    /// the ones the search's mutants land on most often (ties to the lower
    /// class index). They cost no query.
    pub class_maps: u32,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            n_parts: 4,
            min_part: 2,
            max_depth: 16,
            iterations: 20,
            budget: 2000,
            seed: 0,
            cut_scale: CutScale::Uniform,
            rule: Rule::Minimal,
            threshold: None,
            alternatives: 4,
            class_maps: 5,
        }
    }
}

impl SearchOptions {
    pub fn validate(&self) -> Result<()> {
        if !(2..=8).contains(&self.n_parts) {
            return param(format!("n_parts must be in 2..=8, got {}", self.n_parts));
        }
        if self.min_part < 2 {
            return param(format!(
                "min_part must be at least 2, got {}",
                self.min_part
            ));
        }
        if self.max_depth < 1 {
            return param("max_depth must be at least 1");
        }
        if self.iterations < 1 {
            return param("iterations must be at least 1");
        }
        if let Some(t) = self.threshold {
            if !(t.is_finite() && t > 0.0 && t <= 1.0) {
                return param(format!("threshold must be in (0, 1], got {t}"));
            }
        }
        Ok(())
    }
}

/// The model's answer for one mutant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    /// Top-1 class.
    pub top: usize,
    /// Score of the target class.
    pub score: f64,
    /// The target's score minus the best other class's (negative when another class is top-1).
    pub margin: f64,
}

#[derive(Clone, Copy, Debug)]
struct Part {
    rect: Rect,
    depth: u32,
}

struct Split {
    job_index: usize,
    parent: Rect,
    children: Vec<Part>,
}

struct Mutant {
    split: usize,
    subset: u32,
    kept: u64,
    id: Option<usize>,
}

struct Iteration {
    rng: SplitMix64,
    job: Vec<Part>,
    splits: Vec<Split>,
    mutants: Vec<Mutant>,
    /// Credited parts of this iteration: the finest tested part of each
    /// credited cell and its share. Disjoint boxes, in insertion order.
    leaves: Vec<(Rect, f64)>,
    /// The same for every other class the mutants land on: finest tested
    /// parts whose removal (with the rest of the job kept) makes that class
    /// the top-1, credited by the same rule over removal sets.
    class_leaves: BTreeMap<usize, Vec<(Rect, f64)>>,
    /// Jobs of passing combinations to refine later, and how many were queued.
    alternatives: VecDeque<Vec<Part>>,
    queued: u32,
    active: bool,
}

impl Iteration {
    /// The kept parts of mutant `mi`: the job with the split part replaced by
    /// the mutant's children.
    fn job_of(&self, mi: usize) -> Vec<Part> {
        let m = &self.mutants[mi];
        let sp = &self.splits[m.split];
        let mut job = Vec::with_capacity(self.job.len() + sp.children.len());
        for (k, p) in self.job.iter().enumerate() {
            if k == sp.job_index {
                for (b, ch) in sp.children.iter().enumerate() {
                    if m.subset >> b & 1 == 1 {
                        job.push(*ch);
                    }
                }
            } else {
                job.push(*p);
            }
        }
        job
    }
}

/// Whether box `outer` contains box `inner`.
fn contains(outer: &Rect, inner: &Rect) -> bool {
    inner.t0 >= outer.t0 && inner.t1 <= outer.t1 && inner.f0 >= outer.f0 && inner.f1 <= outer.f1
}

/// `outer` minus `inner` (inside it) as at most four boxes: the frames before
/// and after, then the bins below and above within the inner frames.
fn subtract(outer: &Rect, inner: &Rect) -> Vec<Rect> {
    let mut out = Vec::with_capacity(4);
    if outer.t0 < inner.t0 {
        out.push(Rect::new(outer.t0, inner.t0, outer.f0, outer.f1));
    }
    if inner.t1 < outer.t1 {
        out.push(Rect::new(inner.t1, outer.t1, outer.f0, outer.f1));
    }
    if outer.f0 < inner.f0 {
        out.push(Rect::new(inner.t0, inner.t1, outer.f0, inner.f0));
    }
    if inner.f1 < outer.f1 {
        out.push(Rect::new(inner.t0, inner.t1, inner.f1, outer.f1));
    }
    out
}

/// A mask waiting for the model: its id and the kept boxes of the search region.
pub struct Pending {
    pub id: usize,
    pub rects: Vec<Rect>,
}

/// Counters of a finished or running search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub queries: u64,
    pub rounds: u32,
    pub mutants: u64,
    pub duplicates: u64,
    pub passing: u64,
    pub budget_exhausted: bool,
}

/// The responsibility search as an ask/tell state machine.
pub struct Search {
    opts: SearchOptions,
    n_bins: usize,
    target: usize,
    target_score: f64,
    iterations: Vec<Iteration>,
    ids: HashMap<Vec<u32>, usize>,
    outcomes: Vec<Option<Outcome>>,
    queue: VecDeque<Pending>,
    in_flight: Vec<usize>,
    n_frames: usize,
    stats: SearchStats,
    finished: bool,
    /// Whether the first round was built (at the first `ask`).
    started: bool,
}

impl Search {
    /// A search over `region` (the cells that may be masked) of a grid of
    /// `(n_frames, n_bins)`, for the model's original decision `target` with
    /// score `target_score`.
    pub fn new(
        opts: SearchOptions,
        n_frames: usize,
        n_bins: usize,
        region: Rect,
        target: usize,
        target_score: f64,
    ) -> Result<Self> {
        opts.validate()?;
        if region.cells() == 0 || region.t1 as usize > n_frames || region.f1 as usize > n_bins {
            return param("the search region is empty or outside the space");
        }
        if !target_score.is_finite() {
            return param("the original score must be finite");
        }
        let iterations = (0..opts.iterations)
            .map(|i| Iteration {
                rng: SplitMix64::for_iteration(opts.seed, i as u64),
                job: vec![Part {
                    rect: region,
                    depth: 0,
                }],
                splits: Vec::new(),
                mutants: Vec::new(),
                leaves: Vec::new(),
                class_leaves: BTreeMap::new(),
                alternatives: VecDeque::new(),
                queued: 0,
                active: true,
            })
            .collect();
        let s = Self {
            opts,
            n_bins,
            target,
            target_score,
            iterations,
            ids: HashMap::new(),
            outcomes: Vec::new(),
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            n_frames,
            stats: SearchStats::default(),
            finished: false,
            started: false,
        };
        // the first round is built at the first ask: an engine given a responsibility map never asks
        // the search, and builds nothing
        Ok(s)
    }

    pub fn stats(&self) -> SearchStats {
        self.stats
    }
    pub fn is_finished(&self) -> bool {
        self.finished
    }
    pub fn active_iterations(&self) -> usize {
        self.iterations.iter().filter(|it| it.active).count()
    }

    /// Responsibility per cell (frame-major), averaged over iterations.
    ///
    /// Within one iteration a cell's responsibility is the share of the finest
    /// part containing it whose split was fully evaluated: refining a part
    /// replaces its credit by its children's, so cells that only shared a
    /// coarse part with a cause end at zero. Iterations are summed in order.
    pub fn responsibility(&self) -> Vec<f64> {
        self.average(self.iterations.iter().map(|it| it.leaves.as_slice()))
    }

    fn average<'a>(&self, leaves: impl Iterator<Item = &'a [(Rect, f64)]>) -> Vec<f64> {
        let mut total = vec![0.0f64; self.n_frames * self.n_bins];
        for list in leaves {
            for (r, v) in list {
                for t in r.t0..r.t1 {
                    let row = t as usize * self.n_bins;
                    for x in &mut total[row + r.f0 as usize..row + r.f1 as usize] {
                        *x += v;
                    }
                }
            }
        }
        let n = self.opts.iterations as f64;
        total.iter().map(|v| v / n).collect()
    }

    /// How many of the queried mutants landed on each class other than the
    /// target (ascending class), so far.
    pub fn class_counts(&self) -> Vec<(usize, u64)> {
        let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
        for o in self.outcomes.iter().flatten() {
            if o.top != self.target {
                *counts.entry(o.top).or_insert(0) += 1;
            }
        }
        counts.into_iter().collect()
    }

    /// The classes whose maps are kept: the `class_maps` most often landed
    /// on (ties to the lower class index), in that order.
    pub fn map_classes(&self) -> Vec<usize> {
        let mut counts = self.class_counts();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts
            .into_iter()
            .take(self.opts.class_maps as usize)
            .map(|(c, _)| c)
            .collect()
    }

    /// Per-class responsibility maps (frame-major, averaged over iterations)
    /// of [`Search::map_classes`], in that order. A class's map credits the
    /// parts whose removal makes it the top-1 class: each part of a minimal
    /// set of `k` removed parts (no proper subset of it does) gets `1 / k`
    /// (every such set with rule `Rex`), finest tested part first, exactly as
    /// the target's map.
    pub fn class_responsibility(&self) -> Vec<(usize, Vec<f64>)> {
        self.map_classes()
            .into_iter()
            .map(|c| {
                let map = self.average(
                    self.iterations
                        .iter()
                        .map(|it| it.class_leaves.get(&c).map_or(&[][..], |v| v.as_slice())),
                );
                (c, map)
            })
            .collect()
    }

    /// The outcome of an already evaluated mask of kept boxes, if any.
    pub fn known_outcome(&self, rects: &[Rect]) -> Option<Outcome> {
        self.ids
            .get(&canonical_key(rects))
            .and_then(|&id| self.outcomes[id])
    }

    fn passes(&self, o: &Outcome) -> bool {
        o.top == self.target
            && self
                .opts
                .threshold
                .is_none_or(|t| o.score >= t * self.target_score)
    }

    fn splittable(&self, p: &Part) -> bool {
        p.rect.cells() >= self.opts.min_part.max(2) && p.depth < self.opts.max_depth
    }

    /// Build the next round's mutants for every active iteration, registering
    /// new masks in order until the budget is spent.
    fn generate(&mut self) {
        let mut any = false;
        for i in 0..self.iterations.len() {
            if !self.iterations[i].active {
                continue;
            }
            loop {
                let (splits, mutants) = self.propose(i);
                let it = &mut self.iterations[i];
                if mutants.is_empty() {
                    if let Some(alt) = it.alternatives.pop_front() {
                        it.job = alt;
                        continue;
                    }
                    it.active = false;
                } else {
                    any = true;
                }
                it.splits = splits;
                it.mutants = mutants;
                break;
            }
        }
        if !any {
            self.finished = true;
        }
    }

    /// Split every splittable part of iteration `i`'s job and register the mutants.
    fn propose(&mut self, i: usize) -> (Vec<Split>, Vec<Mutant>) {
        let mut splits = Vec::new();
        let mut mutants = Vec::new();
        let job = self.iterations[i].job.clone();
        for (j, part) in job.iter().enumerate() {
            if !self.splittable(part) {
                continue;
            }
            let it = &mut self.iterations[i];
            let children: Vec<Part> = split(
                &mut it.rng,
                &part.rect,
                self.opts.n_parts,
                self.opts.cut_scale,
            )
            .into_iter()
            .map(|rect| Part {
                rect,
                depth: part.depth + 1,
            })
            .collect();
            if children.len() < 2 {
                continue;
            }
            let c = children.len() as u32;
            let others: Vec<Rect> = job
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != j)
                .map(|(_, p)| p.rect)
                .collect();
            let others_cells: u64 = others.iter().map(|r| r.cells()).sum();
            for subset in 0..(1u32 << c) - 1 {
                let mut rects = others.clone();
                let mut kept = others_cells;
                for (b, ch) in children.iter().enumerate() {
                    if subset >> b & 1 == 1 {
                        rects.push(ch.rect);
                        kept += ch.rect.cells();
                    }
                }
                let id = self.register(rects);
                mutants.push(Mutant {
                    split: splits.len(),
                    subset,
                    kept,
                    id,
                });
            }
            splits.push(Split {
                job_index: j,
                parent: part.rect,
                children,
            });
        }
        (splits, mutants)
    }

    fn register(&mut self, rects: Vec<Rect>) -> Option<usize> {
        self.stats.mutants += 1;
        let key = canonical_key(&rects);
        if let Some(&id) = self.ids.get(&key) {
            self.stats.duplicates += 1;
            return Some(id);
        }
        if self.stats.queries >= self.opts.budget {
            self.stats.budget_exhausted = true;
            return None;
        }
        let id = self.outcomes.len();
        self.outcomes.push(None);
        self.ids.insert(key, id);
        self.stats.queries += 1;
        self.queue.push_back(Pending { id, rects });
        Some(id)
    }

    /// Credit the finished round and choose each iteration's next job.
    fn process_round(&mut self) {
        self.stats.rounds += 1;
        for i in 0..self.iterations.len() {
            if !self.iterations[i].active {
                continue;
            }
            let it = &self.iterations[i];
            let n_splits = it.splits.len();
            // Passing subsets of each split, and whether every mutant of it was evaluated.
            let mut passing: Vec<Vec<u32>> = vec![Vec::new(); n_splits];
            let mut complete = vec![true; n_splits];
            let mut best: Option<(u64, usize)> = None;
            for (mi, m) in it.mutants.iter().enumerate() {
                match m.id.and_then(|id| self.outcomes[id]) {
                    None => complete[m.split] = false,
                    Some(o) if self.passes(&o) => {
                        passing[m.split].push(m.subset);
                        if best.is_none_or(|(kept, _)| m.kept < kept) {
                            best = Some((m.kept, mi));
                        }
                    }
                    Some(_) => {}
                }
            }
            // Credit of every child of every split, in mutant order.
            let mut credit: Vec<Vec<f64>> = it
                .splits
                .iter()
                .map(|sp| vec![0.0; sp.children.len()])
                .collect();
            for m in &it.mutants {
                let Some(o) = m.id.and_then(|id| self.outcomes[id]) else {
                    continue;
                };
                if m.subset == 0 || !self.passes(&o) {
                    continue;
                }
                let minimal = !passing[m.split]
                    .iter()
                    .any(|&t| t != m.subset && t & m.subset == t);
                let k = m.subset.count_ones() as f64;
                let share = match self.opts.rule {
                    Rule::Rex => 1.0 / k,
                    Rule::Minimal if minimal => 1.0 / k,
                    Rule::Confidence if minimal => o.score / k,
                    _ => continue,
                };
                for (b, c) in credit[m.split].iter_mut().enumerate() {
                    if m.subset >> b & 1 == 1 {
                        *c += share;
                    }
                }
            }
            self.stats.passing += passing.iter().map(|p| p.len() as u64).sum::<u64>();
            // Per class other than the target: the removal sets (children not
            // kept) of the mutants landing on it, per split, in mutant order.
            let mut landed: Vec<BTreeMap<usize, Vec<u32>>> = vec![BTreeMap::new(); n_splits];
            for m in &it.mutants {
                let Some(o) = m.id.and_then(|id| self.outcomes[id]) else {
                    continue;
                };
                if o.top != self.target {
                    let full = (1u32 << it.splits[m.split].children.len()) - 1;
                    landed[m.split]
                        .entry(o.top)
                        .or_default()
                        .push(full & !m.subset);
                }
            }
            let rex = self.opts.rule == Rule::Rex;
            // (split, class) -> credit of every child.
            let mut class_credit: Vec<BTreeMap<usize, Vec<f64>>> = vec![BTreeMap::new(); n_splits];
            for (s, by_class) in landed.iter().enumerate() {
                if !complete[s] {
                    continue;
                }
                for (&c, removals) in by_class {
                    let mut cr = vec![0.0; it.splits[s].children.len()];
                    for &r in removals {
                        let minimal = !removals.iter().any(|&t| t != r && t & r == t);
                        if !(rex || minimal) {
                            continue;
                        }
                        let share = 1.0 / r.count_ones() as f64;
                        for (b, x) in cr.iter_mut().enumerate() {
                            if r >> b & 1 == 1 {
                                *x += share;
                            }
                        }
                    }
                    class_credit[s].insert(c, cr);
                }
            }
            // The other minimal passing combinations, to refine later.
            let alternatives: Vec<usize> = it
                .mutants
                .iter()
                .enumerate()
                .filter(|&(mi, m)| {
                    Some(mi) != best.map(|b| b.1)
                        && m.subset != 0
                        && m.id
                            .and_then(|id| self.outcomes[id])
                            .is_some_and(|o| self.passes(&o))
                        && !passing[m.split]
                            .iter()
                            .any(|&t| t != m.subset && t & m.subset == t)
                })
                .map(|(mi, _)| mi)
                .collect();
            let it = &mut self.iterations[i];
            for (s, sp) in it.splits.iter().enumerate() {
                // An unfinished split (budget) teaches nothing; a split none of whose
                // proper subsets passes needs all its children: the part keeps its credit.
                if !complete[s] || passing[s].is_empty() {
                    continue;
                }
                let p = sp.parent;
                it.leaves.retain(|(r, _)| {
                    !(r.t0 >= p.t0 && r.t1 <= p.t1 && r.f0 >= p.f0 && r.f1 <= p.f1)
                });
                for (ch, &c) in sp.children.iter().zip(&credit[s]) {
                    if c > 0.0 {
                        it.leaves.push((ch.rect, c));
                    }
                }
            }
            for (s, sp) in it.splits.iter().enumerate() {
                // A class no mutant of the split lands on keeps the parent's credit.
                let p = sp.parent;
                for (&c, cr) in &class_credit[s] {
                    let leaves = it.class_leaves.entry(c).or_default();
                    // Parts inside the parent give way to its children; a coarser
                    // credited part around it keeps its credit outside the parent only.
                    let old = std::mem::take(leaves);
                    for (r, v) in old {
                        if contains(&p, &r) {
                            continue;
                        }
                        if contains(&r, &p) {
                            leaves.extend(subtract(&r, &p).into_iter().map(|q| (q, v)));
                        } else {
                            leaves.push((r, v));
                        }
                    }
                    for (ch, &v) in sp.children.iter().zip(cr) {
                        if v > 0.0 {
                            leaves.push((ch.rect, v));
                        }
                    }
                }
            }
            for &mi in &alternatives {
                if it.queued >= self.opts.alternatives {
                    break;
                }
                let alt = it.job_of(mi);
                it.alternatives.push_back(alt);
                it.queued += 1;
            }
            match best {
                Some((kept, mi)) if kept > 0 => it.job = it.job_of(mi),
                _ => match it.alternatives.pop_front() {
                    Some(alt) => it.job = alt,
                    None => it.active = false,
                },
            }
            it.splits.clear();
            it.mutants.clear();
        }
        if self.stats.budget_exhausted {
            for it in &mut self.iterations {
                it.active = false;
            }
            self.finished = true;
        } else {
            self.generate();
        }
    }

    /// Up to `max` masks for the model, advancing rounds as needed. Empty when
    /// the search is finished.
    pub fn ask(&mut self, max: usize) -> Result<Vec<Pending>> {
        if !self.in_flight.is_empty() {
            return Err(crate::error::CoreError::Protocol(
                "ask() called before tell() answered the previous batch".into(),
            ));
        }
        if max == 0 {
            return param("batch size must be at least 1");
        }
        if !self.started {
            self.started = true;
            self.generate();
        }
        while self.queue.is_empty() && !self.finished {
            self.process_round();
        }
        let n = max.min(self.queue.len());
        let batch: Vec<Pending> = self.queue.drain(..n).collect();
        self.in_flight = batch.iter().map(|p| p.id).collect();
        Ok(batch)
    }

    /// The model's outcomes for the last batch, in order.
    pub fn tell(&mut self, outcomes: &[Outcome]) -> Result<()> {
        if outcomes.len() != self.in_flight.len() {
            return Err(crate::error::CoreError::Protocol(format!(
                "tell() got {} outcomes for a batch of {}",
                outcomes.len(),
                self.in_flight.len()
            )));
        }
        for (&id, o) in self.in_flight.iter().zip(outcomes) {
            self.outcomes[id] = Some(*o);
        }
        self.in_flight.clear();
        Ok(())
    }
}
