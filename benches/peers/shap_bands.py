"""SHAP over frequency bands: shap's KernelExplainer with log-spaced rFFT bands on/off.

The clip's real FFT is cut into ``n_bands`` contiguous bands: ``[0, fmin_hz)``
(default 30 Hz), then log-spaced in frequency up to Nyquist. A coalition ``z`` in {0,1}^M keeps
the bands with ``z = 1`` (complex coefficients kept, the others zeroed) and is
resynthesised with the inverse FFT; the value is the target class's score.
The background is "all bands off" (silence), the explained point "all on".
Kernel SHAP estimates each band's Shapley value from ``nsamples`` coalitions;
each bin gets its band's value divided by the band's width (the band's
attribution spread evenly over its bins), so a ranking of bins puts the bins
of the bands worth most per bin first.

Query count: every row the explainer sends to the model is counted through a
wrapper. KernelExplainer evaluates the background (1 row) when built, then the
explained point (1 row) and ``nsamples`` coalitions, so ``nsamples = queries -
2`` (``- 1`` more when the target must be found) gives exactly ``queries``.
The count is checked, not assumed.

Needs ``pip install shap`` (a bench dependency, not a freqrex one).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as np

__all__ = ["band_edges", "shap_band_saliency", "explain_ranking"]


def band_edges(n_bins: int, n_bands: int, first_bin: int = 1) -> np.ndarray:
    """``n_bands + 1`` increasing edges over ``[0, n_bins]``: ``[0, first_bin)`` then log-spaced bands.

    Edges that would round onto each other are pushed apart, so every band
    holds at least one bin (fewer bands only if ``n_bins < n_bands``).
    """
    n_bands = min(int(n_bands), int(n_bins))
    if first_bin <= 1:
        inner = np.geomspace(1, n_bins, n_bands + 1)[1:-1]
    else:  # band 0 is [0, first_bin); the others log-spaced from first_bin
        inner = np.geomspace(min(first_bin, n_bins - 1), n_bins, n_bands)[:-1]
    edges = [0]
    for e in np.round(inner).astype(np.int64):
        edges.append(max(int(e), edges[-1] + 1))
    edges.append(n_bins)
    edges = np.asarray(edges, dtype=np.int64)
    # the forced minimum widths may push the tail past n_bins: pull back from the end
    for i in range(len(edges) - 2, 0, -1):
        edges[i] = min(edges[i], edges[i + 1] - 1)
    return edges


class _Counter:
    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]):
        self.fn = fn
        self.rows = 0
        self.calls = 0

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z)
        self.rows += z.shape[0]
        self.calls += 1
        return self.fn(z)


def shap_band_saliency(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    queries: int,
    n_bands: int = 32,
    fmin_hz: float = 30.0,
    seed: int = 0,
    batch_size: int = 16,
    target: Optional[int] = None,
    return_info: bool = False,
) -> Any:
    """Per-bin Kernel SHAP saliency of log-spaced bands, in exactly ``queries`` model queries.

    Returns float64 ``(len(audio) // 2 + 1,)`` (``, info`` with
    ``{"queries", "target", "band_values", "edges", "nsamples"}`` when
    ``return_info``).
    """
    import shap  # bench dependency

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    rate = getattr(model, "sample_rate", None)
    if rate is not None and int(rate) != int(sample_rate):
        raise ValueError(f"the model expects {rate} Hz audio, the clip is {sample_rate} Hz")
    n = x.size
    spec = np.fft.rfft(x.astype(np.float64)).astype(np.complex64)
    edges = band_edges(spec.size, n_bands, first_bin=int(round(fmin_hz * n / sample_rate)))
    m = len(edges) - 1
    band_of_bin = np.repeat(np.arange(m), np.diff(edges))
    spent = 0
    if target is None:
        s0 = np.asarray(model(x[None, :]), dtype=np.float64)
        target = int(np.argmax(s0[0]))
        spent += 1
    target = int(target)
    nsamples = int(queries) - spent - 2
    if nsamples < 2 * m + 2:
        raise ValueError(f"{queries} queries are too few for Kernel SHAP over {m} bands "
                         f"(needs at least {2 * m + 4 + spent})")

    def value(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        out = np.empty(z.shape[0], dtype=np.float64)
        for i in range(0, z.shape[0], batch_size):
            zz = z[i:i + batch_size]
            masks = zz[:, band_of_bin]
            waves = np.fft.irfft(spec[None, :] * masks, n=n, axis=1).astype(np.float32)
            out[i:i + batch_size] = np.asarray(model(waves), dtype=np.float64)[:, target]
        return out

    counter = _Counter(value)
    np.random.seed(seed)  # KernelExplainer samples coalitions with numpy's global generator
    explainer = shap.KernelExplainer(counter, np.zeros((1, m)), link="identity")
    phi = explainer.shap_values(np.ones((1, m)), nsamples=nsamples, silent=True, l1_reg=False)
    phi = np.asarray(phi, dtype=np.float64).reshape(-1)[:m]
    spent += counter.rows
    saliency = (phi / np.diff(edges))[band_of_bin]
    if return_info:
        return saliency, {"queries": spent, "target": target, "band_values": phi.tolist(),
                          "edges": edges.tolist(), "nsamples": nsamples, "model_calls": counter.calls}
    return saliency


def explain_ranking(audio, sample_rate, model, *, queries: int, target: Optional[int] = None,
                    seed: int = 0, **kw) -> Tuple[np.ndarray, int]:
    """Bins by SHAP band saliency (descending, ties to the lower index) and the queries spent."""
    sal, info = shap_band_saliency(audio, sample_rate, model, queries=queries, target=target, seed=seed,
                                   return_info=True, **kw)
    return np.lexsort((np.arange(sal.size), -sal)).astype(np.int64), info["queries"]
