"""Checks of user input: numbers and choices, audio, sample rates and model outputs."""

from __future__ import annotations

import math
import numbers
import threading
import warnings
from typing import Any, Callable, Optional, Tuple

import numpy as np

from .errors import FreqrexWarning, ModelError, ParameterError

#: Largest sample rate accepted (Hz).
MAX_SAMPLE_RATE = 1_536_000
#: Largest |sample| accepted: audio is expected in [-1, 1]; far beyond that the
#: masked mutants overflow float32.
MAX_ABS_SAMPLE = 1e6
#: A clip whose samples all lie within this of their mean is silent (or constant).
SILENCE = 1e-7


def check_int(value: Any, name: str, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: no upper bound), or a ParameterError
    naming ``name``; bools are refused, NumPy integers taken."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ParameterError(f"{name} must be {bound}, got {value}")
    return value


def check_real(value: Any, name: str) -> float:
    """``value`` as a finite float, or a ParameterError (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_choice(value: Any, name: str, allowed: Tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else a ParameterError."""
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


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
    peak = float(np.max(np.abs(x)))
    if peak > MAX_ABS_SAMPLE:
        raise ParameterError(
            f"audio peaks at {peak:.3g}, beyond the {MAX_ABS_SAMPLE:g} freqrex accepts; audio is expected "
            "in [-1, 1] (scale integer PCM by its full scale)"
        )
    if float(np.max(np.abs(x - x.mean(dtype=np.float64)))) <= SILENCE:
        raise ParameterError(
            f"silent clip: every sample lies within {SILENCE:g} of the clip's mean (silence, a constant, or "
            "audio about -140 dBFS), there is nothing in its frequency space to explain or change"
        )
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


def model_sample_rate(model: Any) -> Optional[int]:
    """The sample rate a model declares (its ``sample_rate`` attribute), or None; a declared rate
    that is not a positive integer number of Hz is a :class:`ModelError`, not a crash later."""
    rate = getattr(model, "sample_rate", None)
    if rate is None:
        return None
    try:
        return check_sample_rate(rate)
    except ParameterError:
        raise ModelError(f"the model declares sample_rate={rate!r}, not a positive integer number of Hz") from None


def check_clip_rate(model: Any, sample_rate: int) -> None:
    """A ParameterError when the model declares a sample rate other than the clip's (a model file's
    assumed rate says so, and how to give its own)."""
    model_rate = model_sample_rate(model)
    if model_rate is None or model_rate == sample_rate:
        return
    if getattr(model, "rate_assumed", False):
        raise ParameterError(
            f"the model file declares no sample rate and is taken as {model_rate} Hz, but the clip is "
            f"{sample_rate} Hz: give the model's rate (sample_rate=..., --sample-rate) or resample the clip")
    raise ParameterError(f"the model expects {model_rate} Hz audio but the clip is {sample_rate} Hz; resample it "
                         "(freqrex.io.load_audio(path, sample_rate=...) does)")


def check_sample_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if isinstance(sample_rate, float) and not (np.isfinite(sample_rate) and sample_rate.is_integer()):
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if int(sample_rate) <= 0:
        raise ParameterError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if int(sample_rate) > MAX_SAMPLE_RATE:
        raise ParameterError(f"sample_rate must be at most {MAX_SAMPLE_RATE} Hz, got {sample_rate!r}")
    return int(sample_rate)


def tensor_to_numpy(out: Any) -> Any:
    """A torch tensor (on any device, with or without grad) as a NumPy array, floating types as float64
    (bfloat16 has no NumPy dtype; float64 is kept whole); a TensorFlow or JAX array through its
    ``.numpy()``; anything else as it is."""
    if hasattr(out, "detach") and hasattr(out, "cpu"):
        out = out.detach().cpu()
        if getattr(out, "is_floating_point", lambda: False)():
            out = out.double()
        return out.numpy()
    if hasattr(out, "numpy") and not isinstance(out, np.ndarray):
        return out.numpy()
    return out


def _class_names(model: Any) -> Optional[list]:
    """The class names a model declares, as a list (None when it declares none, or none that can be read)."""
    try:
        names = getattr(model, "class_names", None)
        return None if names is None or isinstance(names, (str, bytes)) else list(names)
    except Exception:  # noqa: BLE001 - a model's odd attribute is not ours to fail on
        return None


def _call(model: Callable[[np.ndarray], Any], waves: np.ndarray, timeout: Optional[float]) -> Any:
    """``model(waves)``, in a watched thread when a timeout is set."""
    if timeout is None:
        return model(waves)
    box: dict = {}

    def target() -> None:
        try:
            box["out"] = model(waves)
        except BaseException as exc:  # handed to the caller's thread
            box["exc"] = exc

    worker = threading.Thread(target=target, name="freqrex-model-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ModelError(
            f"the model did not answer a batch of {waves.shape[0]} clip(s) within model_timeout={timeout:g} s "
            "(the call is abandoned; raise model_timeout or lower batch_size)"
        )
    if "exc" in box:
        raise box["exc"]
    return box.get("out")


def call_model(
    model: Callable[[np.ndarray], Any],
    waves: np.ndarray,
    n_classes: Optional[int] = None,
    *,
    timeout: Optional[float] = None,
    original: bool = False,
) -> np.ndarray:
    """Call ``model`` on a (batch, samples) float32 batch and validate its scores.

    The model gets a copy of ``waves`` (a model that edits its input in place
    cannot change the caller's audio). Returns float64 scores of shape
    (batch, classes). Any exception from the model, a call longer than
    ``timeout`` seconds, a wrong shape, non-real (complex, string, object) or
    non-finite scores raise :class:`ModelError` (chained). With ``original``
    (the call on the clip to explain) every class tied is a ModelError (there is
    no decision) and a tie for the top class a :class:`FreqrexWarning`.
    """
    try:
        out = _call(model, np.array(waves, dtype=np.float32, copy=True), timeout)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"the model raised {type(exc).__name__}: {exc}") from exc
    try:
        raw = np.asarray(tensor_to_numpy(out))
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"scores of dtype {raw.dtype}")
        scores = raw.astype(np.float64)
    except Exception as exc:
        raise ModelError(
            f"the model returned {type(out).__name__} ({exc}), not an array of real-valued scores"
        ) from exc
    b = waves.shape[0]
    if scores.ndim != 2 or scores.shape[0] != b:
        raise ModelError(
            f"the model must return scores of shape (batch, classes) = ({b}, C); got shape {scores.shape}"
        )
    if scores.shape[1] < 1:
        raise ModelError("the model returned zero classes")
    if n_classes is not None and scores.shape[1] != n_classes:
        raise ModelError(f"the model returned {scores.shape[1]} classes, earlier {n_classes}")
    names = _class_names(model) if original else None  # once per run, not on every batch
    if names is not None and len(names) != scores.shape[1]:
        raise ModelError(f"the model returned {scores.shape[1]} scores per waveform but {len(names)} class names "
                         "are set: a name for each class, in index order")
    if not np.all(np.isfinite(scores)):
        raise ModelError("the model returned NaN or infinite scores")
    if original and scores.shape[1] >= 2:
        row = scores[0]
        if np.all(row == row[0]):
            raise ModelError(
                f"the model gives every one of its {row.size} classes the same score ({row[0]:g}) on the "
                "clip: there is no decision to explain"
            )
        top = np.sort(row)[::-1]
        if top[0] == top[1]:
            warnings.warn(
                f"the model's top score ({top[0]:g}) is tied between classes "
                f"{np.flatnonzero(row == top[0]).tolist()}; the lowest index is taken as the decision",
                FreqrexWarning,
                stacklevel=3,
            )
    return np.ascontiguousarray(scores)
