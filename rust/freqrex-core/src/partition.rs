//! Random splitting of a box into contiguous children.

use crate::geometry::Rect;
use crate::rng::SplitMix64;

/// How cut points are spread over a frequency interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutScale {
    /// Uniform over bin index.
    Uniform,
    /// Uniform over `ln(1 + bin)`: finer cuts at low frequencies, as a
    /// log-frequency axis would place them.
    Log,
}

/// Distinct sorted cut points strictly inside `(lo, hi)`, at most `n_cuts` of them.
///
/// When the interval has no more interior points than cuts wanted, every
/// interior point is a cut. Otherwise cuts are drawn one by one and duplicates
/// redrawn (at most `32 * n_cuts` draws), so children are never empty.
pub fn cut_points(
    rng: &mut SplitMix64,
    lo: u32,
    hi: u32,
    n_cuts: u32,
    scale: CutScale,
) -> Vec<u32> {
    if hi <= lo + 1 || n_cuts == 0 {
        return Vec::new();
    }
    let interior = hi - lo - 1;
    if interior <= n_cuts {
        return (lo + 1..hi).collect();
    }
    let mut cuts: Vec<u32> = Vec::with_capacity(n_cuts as usize);
    let mut draws = 0u32;
    while (cuts.len() as u32) < n_cuts && draws < 32 * n_cuts {
        draws += 1;
        let c = match scale {
            CutScale::Uniform => lo + 1 + rng.below(interior as u64) as u32,
            CutScale::Log => {
                let a = (1.0 + lo as f64).ln();
                let b = (1.0 + hi as f64).ln();
                let v = (a + rng.uniform() * (b - a)).exp() - 1.0;
                let c = (v + 0.5).floor();
                let c = if c.is_finite() {
                    c as i64
                } else {
                    lo as i64 + 1
                };
                c.clamp(lo as i64 + 1, hi as i64 - 1) as u32
            }
        };
        if !cuts.contains(&c) {
            cuts.push(c);
        }
    }
    cuts.sort_unstable();
    cuts
}

fn intervals(lo: u32, hi: u32, cuts: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut a = lo;
    for &c in cuts {
        out.push((a, c));
        a = c;
    }
    out.push((a, hi));
    out
}

/// Split `rect` into about `n_parts` non-empty contiguous children.
///
/// A box one frame tall (always so in the `fft` space) is cut along frequency.
/// A box one bin wide is cut along time. Otherwise `n_parts = a * b` with `a`
/// the largest divisor of `n_parts` not above its square root: `a` parts in
/// time and `b` in frequency (2 x 2 for the default 4); when `n_parts` is prime
/// the longer axis (in cells; frequency on ties) takes all the cuts.
/// Time cuts are always uniform; frequency cuts follow `scale`.
/// Children are listed time-major, then by frequency. Random draws: time cuts
/// first, then frequency cuts.
pub fn split(rng: &mut SplitMix64, rect: &Rect, n_parts: u32, scale: CutScale) -> Vec<Rect> {
    let (nt, nf) = (rect.frames(), rect.bins());
    let (parts_t, parts_f) = if nt <= 1 {
        (1, n_parts)
    } else if nf <= 1 {
        (n_parts, 1)
    } else {
        let mut a = 1;
        let mut d = 1;
        while d * d <= n_parts {
            if n_parts.is_multiple_of(d) {
                a = d;
            }
            d += 1;
        }
        if a == 1 {
            if nt > nf {
                (n_parts, 1)
            } else {
                (1, n_parts)
            }
        } else {
            (a, n_parts / a)
        }
    };
    let tc = cut_points(rng, rect.t0, rect.t1, parts_t - 1, CutScale::Uniform);
    let fc = cut_points(rng, rect.f0, rect.f1, parts_f - 1, scale);
    let ti = intervals(rect.t0, rect.t1, &tc);
    let fi = intervals(rect.f0, rect.f1, &fc);
    let mut out = Vec::with_capacity(ti.len() * fi.len());
    for &(t0, t1) in &ti {
        for &(f0, f1) in &fi {
            out.push(Rect::new(t0, t1, f0, f1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_tile_the_parent() {
        let mut rng = SplitMix64::new(3);
        for scale in [CutScale::Uniform, CutScale::Log] {
            for w in 1..40u32 {
                let r = Rect::new(0, 1, 5, 5 + w);
                let ch = split(&mut rng, &r, 4, scale);
                assert_eq!(ch.len() as u32, w.min(4));
                assert_eq!(ch.iter().map(|c| c.cells()).sum::<u64>(), w as u64);
                assert!(ch.iter().all(|c| c.cells() > 0));
                for p in ch.windows(2) {
                    assert_eq!(p[0].f1, p[1].f0);
                }
            }
        }
    }

    #[test]
    fn two_d_split_is_two_by_two() {
        let mut rng = SplitMix64::new(1);
        let r = Rect::new(0, 10, 0, 20);
        let ch = split(&mut rng, &r, 4, CutScale::Uniform);
        assert_eq!(ch.len(), 4);
        assert_eq!(ch.iter().map(|c| c.cells()).sum::<u64>(), 200);
        let r = Rect::new(0, 10, 3, 4);
        let ch = split(&mut rng, &r, 4, CutScale::Uniform);
        assert_eq!(ch.len(), 4);
        assert!(ch.iter().all(|c| c.bins() == 1));
    }
}
