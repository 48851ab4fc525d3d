//! Rectangles over the (frame, bin) grid and canonical keys of their unions.
//!
//! The `fft` space is a grid with a single frame, so one code path serves both
//! spaces: parts are boxes `[t0, t1) x [f0, f1)`.

/// A half-open box of cells: frames `t0..t1`, bins `f0..f1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rect {
    pub t0: u32,
    pub t1: u32,
    pub f0: u32,
    pub f1: u32,
}

impl Rect {
    pub fn new(t0: u32, t1: u32, f0: u32, f1: u32) -> Self {
        Self { t0, t1, f0, f1 }
    }
    pub fn frames(&self) -> u32 {
        self.t1 - self.t0
    }
    pub fn bins(&self) -> u32 {
        self.f1 - self.f0
    }
    pub fn cells(&self) -> u64 {
        self.frames() as u64 * self.bins() as u64
    }
}

/// A time strip `[t0, t1)` and its merged frequency intervals.
type Strip = (u32, u32, Vec<(u32, u32)>);

/// A canonical description of a union of disjoint boxes, equal for equal sets.
///
/// The union is cut into maximal time strips over which the frequency
/// cross-section is constant; each strip lists its merged frequency intervals.
/// Flattened as `[t0, t1, n, f0, f1, ..., t0, t1, n, ...]`.
pub fn canonical_key(rects: &[Rect]) -> Vec<u32> {
    let mut edges: Vec<u32> = rects
        .iter()
        .filter(|r| r.cells() > 0)
        .flat_map(|r| [r.t0, r.t1])
        .collect();
    edges.sort_unstable();
    edges.dedup();
    let mut strips: Vec<Strip> = Vec::new();
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mut iv: Vec<(u32, u32)> = rects
            .iter()
            .filter(|r| r.cells() > 0 && r.t0 <= a && r.t1 >= b)
            .map(|r| (r.f0, r.f1))
            .collect();
        if iv.is_empty() {
            continue;
        }
        iv.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(iv.len());
        for (f0, f1) in iv {
            match merged.last_mut() {
                Some(last) if f0 <= last.1 => last.1 = last.1.max(f1),
                _ => merged.push((f0, f1)),
            }
        }
        match strips.last_mut() {
            Some(last) if last.1 == a && last.2 == merged => last.1 = b,
            _ => strips.push((a, b, merged)),
        }
    }
    let mut key = Vec::new();
    for (a, b, iv) in strips {
        key.push(a);
        key.push(b);
        key.push(iv.len() as u32);
        for (f0, f1) in iv {
            key.push(f0);
            key.push(f1);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_have_equal_keys() {
        // [0,4) split two ways in 1-D.
        let a = [Rect::new(0, 1, 0, 2), Rect::new(0, 1, 2, 4)];
        let b = [Rect::new(0, 1, 0, 1), Rect::new(0, 1, 1, 4)];
        assert_eq!(canonical_key(&a), canonical_key(&b));
        // A 2x2 square as two columns or two rows.
        let c = [Rect::new(0, 2, 0, 1), Rect::new(0, 2, 1, 2)];
        let d = [Rect::new(0, 1, 0, 2), Rect::new(1, 2, 0, 2)];
        assert_eq!(canonical_key(&c), canonical_key(&d));
        assert_eq!(canonical_key(&c), vec![0, 2, 1, 0, 2]);
    }

    #[test]
    fn different_sets_differ() {
        let a = [Rect::new(0, 1, 0, 2)];
        let b = [Rect::new(0, 1, 0, 3)];
        assert_ne!(canonical_key(&a), canonical_key(&b));
        let c = [Rect::new(0, 1, 0, 1), Rect::new(0, 1, 2, 3)];
        assert_eq!(canonical_key(&c), vec![0, 1, 2, 0, 1, 2, 3]);
    }
}
