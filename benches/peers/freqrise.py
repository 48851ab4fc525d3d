"""FreqRISE (Brüsch et al., arXiv 2406.13584), re-implemented from the paper's description.

RISE (Petsiuk et al. 2018) moved to the frequency domain: draw random smooth
masks over the real FFT of the whole clip, multiply the complex spectrum by
each, resynthesise with the inverse FFT, score the target class, and credit
every bin with the score of the masks that kept it:

    saliency[k] = sum_i m_i[k] * f_target(irfft(X * m_i)) / (N * p)

A mask is a low-resolution grid of ``cells`` Bernoulli(p) values, upsampled
to the bins by linear interpolation after a random sub-cell shift (RISE's
"random shift" of an upsampled grid, in 1-D). The cells are uniform over bin
index (``spacing="linear"``, as in the paper) or, as an option for music,
uniform over log-frequency (``spacing="log"``).

Cost: exactly ``n_masks`` model queries, plus one to find the target when it
is not given. Masks are generated and reduced batch by batch, so memory stays
at ``batch_size`` spectra whatever ``n_masks`` is.

This is a bench peer (``benches/peers``), not part of the freqrex package.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

__all__ = ["freqrise_saliency", "freqrise_masks", "cell_coordinates"]


def cell_coordinates(n_bins: int, cells: int, spacing: str = "linear", f0_bins: float = 10.0) -> np.ndarray:
    """Position of every bin on the low-resolution grid, in cell units in ``[0, cells]``.

    ``linear``: proportional to the bin index. ``log``: proportional to
    ``log(1 + k / f0_bins)``: linear below about ``f0_bins`` bins, logarithmic
    above (a shape parameter, not a cut-off; 10 bins is 0.33 Hz in a 30 s clip).
    """
    k = np.arange(n_bins, dtype=np.float64)
    if spacing == "linear":
        u = k / max(n_bins - 1, 1)
    elif spacing == "log":
        u = np.log1p(k / f0_bins) / np.log1p(max(n_bins - 1, 1) / f0_bins)
    else:
        raise ValueError(f"spacing must be 'linear' or 'log', got {spacing!r}")
    return u * cells


def freqrise_masks(rng: np.random.Generator, n: int, coords: np.ndarray, cells: int, p: float) -> np.ndarray:
    """``n`` smooth masks over the bins: shifted, linearly interpolated Bernoulli(p) grids.

    Returns float32 ``(n, n_bins)`` in ``[0, 1]``.
    """
    out = np.empty((n, coords.size), dtype=np.float32)
    for i in range(n):  # draws per mask, in mask order: the masks do not depend on the batch size
        g = (rng.random(cells + 2) < p).astype(np.float32)
        pos = coords + rng.random()  # in [0, cells + 1)
        lo = np.floor(pos).astype(np.int64)
        frac = (pos - lo).astype(np.float32)
        out[i] = g[lo] * (1.0 - frac) + g[lo + 1] * frac
    return out


def _scores(model: Callable, waves: np.ndarray) -> np.ndarray:
    s = np.asarray(model(waves), dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != waves.shape[0]:
        raise ValueError(f"the model returned shape {s.shape} for {waves.shape[0]} waves")
    return s


def freqrise_saliency(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    n_masks: int,
    p: float = 0.5,
    cells: int = 64,
    spacing: str = "linear",
    seed: int = 0,
    batch_size: int = 16,
    target: Optional[int] = None,
    return_info: bool = False,
) -> Any:
    """FreqRISE saliency of every rFFT bin of the clip for the model's decision.

    Parameters
    ----------
    audio : array_like
        1-D waveform.
    sample_rate : int
        Its rate (checked against ``model.sample_rate`` when the model has one).
    model : callable
        float32 ``(batch, samples)`` -> scores ``(batch, classes)``.
    n_masks : int
        Random masks, i.e. model queries (exactly).
    p : float
        Probability that a grid cell is kept.
    cells : int
        Resolution of the random grid (cells over the spectrum).
    spacing : {"linear", "log"}
        Cells uniform over bin index (the paper) or over log-frequency.
    seed : int
        Seed of the mask generator (same seed, same saliency).
    batch_size : int
        Masks per model call.
    target : int, optional
        Class to explain; default the model's top-1 class (one more query).
    return_info : bool
        Also return ``{"queries", "target", "score"}``.

    Returns
    -------
    numpy.ndarray
        float64 ``(len(audio) // 2 + 1,)`` saliency (``, info`` with ``return_info``).
    """
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError("audio must be a finite 1-D waveform of at least 2 samples")
    rate = getattr(model, "sample_rate", None)
    if rate is not None and int(rate) != int(sample_rate):
        raise ValueError(f"the model expects {rate} Hz audio, the clip is {sample_rate} Hz")
    if int(n_masks) < 1:
        raise ValueError(f"n_masks must be >= 1, got {n_masks}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if int(cells) < 1 or int(batch_size) < 1:
        raise ValueError("cells and batch_size must be >= 1")
    n_masks, cells, batch_size = int(n_masks), int(cells), int(batch_size)
    n = x.size
    queries = 0
    score = None
    if target is None:
        s0 = _scores(model, x[None, :])
        target = int(np.argmax(s0[0]))
        score = float(s0[0, target])
        queries += 1
    target = int(target)
    spec = np.fft.rfft(x.astype(np.float64)).astype(np.complex64)
    coords = cell_coordinates(spec.size, cells, spacing)
    rng = np.random.default_rng(seed)
    saliency = np.zeros(spec.size, dtype=np.float64)
    done = 0
    while done < n_masks:
        k = min(batch_size, n_masks - done)
        masks = freqrise_masks(rng, k, coords, cells, p)
        waves = np.fft.irfft(spec[None, :] * masks, n=n, axis=1).astype(np.float32)
        s = _scores(model, waves)[:, target]
        queries += k
        saliency += s.astype(np.float64) @ masks.astype(np.float64)
        done += k
    saliency /= n_masks * p
    if return_info:
        return saliency, {"queries": queries, "target": target, "score": score}
    return saliency


def ranking(saliency: np.ndarray) -> np.ndarray:
    """Bins by saliency, descending; ties to the lower index."""
    s = np.asarray(saliency, dtype=np.float64)
    return np.lexsort((np.arange(s.size), -s)).astype(np.int64)


def explain_ranking(audio, sample_rate, model, *, queries: int, target: Optional[int] = None,
                    seed: int = 0, **kw) -> Tuple[np.ndarray, int]:
    """Ranking from ``queries`` model queries in all (the target query included when not given)."""
    n_masks = queries - (1 if target is None else 0)
    sal, info = freqrise_saliency(audio, sample_rate, model, n_masks=n_masks, target=target, seed=seed,
                                  return_info=True, **kw)
    return ranking(sal), info["queries"]
