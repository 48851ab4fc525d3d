"""Checks of user input: audio, sample rates and model outputs."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .errors import ModelError, ParameterError


def check_audio(audio: Any) -> np.ndarray:
    """Return the clip as a contiguous float32 1-D array or raise ParameterError.

    int16, int32 and uint8 PCM samples are scaled to [-1, 1) as soundfile
    does (divided by 2**15, 2**31; uint8 offset by 128 and divided by 2**7);
    other integer dtypes are refused.
    """
    try:
        x = np.asarray(audio)
    except Exception as exc:  # pragma: no cover - exotic array-likes
        raise ParameterError(f"audio cannot be read as an array: {exc}") from exc
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ParameterError(f"audio must be a real numeric array, got dtype {x.dtype}")
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ParameterError(
            f"audio must be a mono 1-D array of samples, got shape {x.shape}; mix channels down first "
            "(freqrex.io.load_audio does)"
        )
    if x.size < 2:
        raise ParameterError("audio is empty (fewer than 2 samples)")
    x = _pcm_to_float(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ParameterError("audio contains NaN or infinite samples")
    return x


#: Integer PCM dtypes and what soundfile divides them by (uint8 is offset by 128 first).
_PCM_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.uint8): 128.0}


def _pcm_to_float(x: np.ndarray) -> np.ndarray:
    """Integer PCM samples scaled to [-1, 1) as soundfile reads them; other integer dtypes refused."""
    if not np.issubdtype(x.dtype, np.integer):
        return x
    scale = _PCM_SCALE.get(x.dtype)
    if scale is None:
        raise ParameterError(
            f"audio of dtype {x.dtype} has no PCM scale: pass floats in [-1, 1], or int16, int32 or uint8 "
            "PCM samples (scaled as soundfile does)"
        )
    y = x.astype(np.float64)
    if x.dtype == np.uint8:
        y -= 128.0
    return y / scale


def check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if float(sample_rate) != int(sample_rate) or int(sample_rate) <= 0:
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def call_model(model: Callable[[np.ndarray], Any], waves: np.ndarray, n_classes: Optional[int] = None) -> np.ndarray:
    """Call ``model`` on a (batch, samples) float32 batch and validate its scores.

    Returns float64 scores of shape (batch, classes). Any exception from the model,
    a wrong shape or non-finite scores raise :class:`ModelError` (chained).
    """
    try:
        out = model(waves)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"the model raised {type(exc).__name__}: {exc}") from exc
    try:
        if hasattr(out, "detach"):  # a torch tensor from a plain callable
            out = out.detach().cpu().numpy()
        scores = np.asarray(out, dtype=np.float64)
    except Exception as exc:
        raise ModelError(f"the model returned {type(out).__name__}, not an array of scores") from exc
    b = waves.shape[0]
    if scores.ndim != 2 or scores.shape[0] != b:
        raise ModelError(
            f"the model must return scores of shape (batch, classes) = ({b}, C); got shape {scores.shape}"
        )
    if scores.shape[1] < 1:
        raise ModelError("the model returned zero classes")
    if n_classes is not None and scores.shape[1] != n_classes:
        raise ModelError(f"the model returned {scores.shape[1]} classes, earlier {n_classes}")
    if not np.all(np.isfinite(scores)):
        raise ModelError("the model returned NaN or infinite scores")
    return np.ascontiguousarray(scores)
