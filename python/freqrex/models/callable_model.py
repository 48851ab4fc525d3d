"""Adapter for any Python callable that scores a batch of waveforms."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from .._checks import check_int, tensor_to_numpy
from ..errors import FreqrexError, ModelError, ParameterError
from ._windows import check_window, mean_over_windows, split_windows
from .base import Model, class_name_list

__all__ = ["CallableModel", "softmax"]

_OUTPUT_KINDS = ("logits", "probabilities", "sigmoid", "auto")
# Scores declared as probabilities may stray this far outside [0, 1] (float
# rounding) before they are rejected as probably being logits.
_PROB_TOLERANCE = 1e-4


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along `axis` (computed in float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _positive_int(value, name: str, *, allow_none: bool = True) -> Optional[int]:
    if value is None and allow_none:
        return None
    return check_int(value, name, 1)


def _to_numpy(out) -> np.ndarray:
    """A model's output (numpy, list, torch/tf tensor, ...) as float64."""
    return np.asarray(tensor_to_numpy(out), dtype=np.float64)


def _guess_output(scores: np.ndarray) -> str:
    """What a model's first scores look like: probabilities, sigmoid tags or logits."""
    lo, hi = float(scores.min()), float(scores.max())
    if lo < -_PROB_TOLERANCE or hi > 1 + _PROB_TOLERANCE:
        return "logits"
    if np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities"
    return "sigmoid"


class CallableModel(Model):
    """Wrap a callable ``f(waves) -> scores`` as a freqrex model.

    The callable receives float32 numpy arrays of shape ``(batch, samples)``
    and must return something convertible to a finite float array of shape
    ``(batch, classes)`` (numpy arrays, nested lists and CPU or GPU torch
    tensors all work).  A 1-D result is rejected even for a batch of one:
    return ``(1, classes)``.

    Parameters
    ----------
    fn : callable
        The model.
    sample_rate : int or None
        Sample rate (Hz) the model expects.  None: not declared (freqrex then
        takes the clip's rate on trust, and cannot resample for you).
    class_names : sequence of str or mapping {index: name}, optional
        One name per output column (a mapping such as a Hugging Face
        ``config.id2label`` is read in index order).  By default ``"0"``, ``"1"``, ... are
        used, discovered from the first call (reading :attr:`class_names`
        before any call probes the model once with a silent waveform of
        `input_samples` samples, or one second).
    output : {"probabilities", "logits", "sigmoid"}, default "probabilities"
        What `fn` returns.  ``"logits"`` are turned into probabilities with
        one softmax over the classes; ``"probabilities"`` (already
        normalised) and ``"sigmoid"`` (independent per-tag scores) are
        returned untouched.  Probabilities and sigmoid scores outside
        [0, 1] (beyond 1e-4 of rounding, which is clipped) raise
        :class:`~freqrex.errors.ModelError`: they are probably logits.
        ``"auto"`` decides from the first scores and then keeps the kind:
        rows in [0, 1] that sum to 1 are probabilities, other scores in
        [0, 1] sigmoid tags, anything else logits (:attr:`output` then
        tells which; the silent probe that finds :attr:`class_names` decides
        nothing).  :func:`freqrex.evaluation.evaluate` lets every clip decide
        anew (:meth:`reset_output_guess`), so a record does not depend on
        the clips before it.  A quiet clip's logits can lie in [0, 1]: for
        runs over many clips say what the model outputs.
    fixed_batch : int, optional
        The batch size `fn` only accepts.  ``1`` calls it one waveform at a
        time (shape ``(1, samples)``); a larger value sends chunks of
        exactly that size, zero-padding the last chunk with silent rows
        whose scores are dropped.  None: any batch size.
    max_batch_size : int, optional
        Split larger batches into calls of at most this many waveforms
        (ignored when `fixed_batch` is set).  None: one call per batch.
    input_samples : int, optional
        Clip length the model prefers, for callers that prepare audio
        (the adapter does not crop or pad).
    window : int, optional
        The longest waveform, in samples, the model should see at once.  A
        longer waveform is cut into windows of `window` samples starting
        every `window_hop` samples (the last one ends with the waveform, so
        no sample is left out); the model scores each window and the
        waveform's score is the mean of its windows' probabilities (logits
        are softmaxed per window first).  None: the whole waveform.
    window_hop : int, optional
        Samples between window starts (default `window`: no overlap but for
        the last window).

    Raises
    ------
    ParameterError
        On bad options (at construction) or a bad input batch.

    Notes
    -----
    Every failure of the model itself is raised as
    :class:`~freqrex.errors.ModelError`, with the original exception (if
    any) chained as ``__cause__``: an exception inside `fn`, an output that
    is not numeric, has the wrong shape, the wrong number of classes or
    NaN/infinite values.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        sample_rate: Optional[int],
        class_names: Optional[Sequence[str]] = None,
        output: str = "probabilities",
        fixed_batch: Optional[int] = None,
        max_batch_size: Optional[int] = None,
        input_samples: Optional[int] = None,
        window: Optional[int] = None,
        window_hop: Optional[int] = None,
    ) -> None:
        if not callable(fn):
            raise ParameterError(f"the model must be callable, got {type(fn).__name__}")
        if output not in _OUTPUT_KINDS:
            raise ParameterError(f"output must be one of {_OUTPUT_KINDS}, got {output!r}")
        self._fn = fn
        self.sample_rate = _positive_int(sample_rate, "sample_rate")
        self.output = output
        self.fixed_batch = _positive_int(fixed_batch, "fixed_batch")
        self.max_batch_size = _positive_int(max_batch_size, "max_batch_size")
        self.input_samples = _positive_int(input_samples, "input_samples")
        self.window, self.window_hop = check_window(window, window_hop)
        self._class_names: Optional[list] = class_name_list(class_names)

    # -- class names -----------------------------------------------------
    @property
    def class_names(self) -> list:
        """Names of the output classes (probes the model once if unknown)."""
        if self._class_names is None:
            n = self.input_samples or self.sample_rate or 16000
            kind = self.output
            self(np.zeros((1, n), dtype=np.float32))
            self.output = kind  # silence tells how many classes, not what the scores are ("auto" stays)
        return self._class_names

    @class_names.setter
    def class_names(self, names) -> None:
        self._class_names = class_name_list(names)

    # -- calling -----------------------------------------------------------
    def _forward(self, waves: np.ndarray):
        """Call the wrapped model on one chunk (subclasses override)."""
        return self._fn(waves)

    def _chunk_size(self, batch: int) -> int:
        if self.fixed_batch is not None:
            return self.fixed_batch
        if self.max_batch_size is not None:
            return min(self.max_batch_size, batch)
        return batch

    def _call_chunk(self, chunk: np.ndarray) -> np.ndarray:
        n = chunk.shape[0]
        if self.fixed_batch is not None and n < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - n, chunk.shape[1]), dtype=np.float32)
            chunk = np.concatenate([chunk, pad])
        expected = chunk.shape[0]
        try:
            raw = self._forward(chunk)
        except FreqrexError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{self._describe()} raised {type(exc).__name__} on a batch of shape {chunk.shape}: {exc}"
            ) from exc
        try:
            scores = _to_numpy(raw)
        except Exception as exc:
            raise ModelError(
                f"{self._describe()} returned {type(raw).__name__}, which is not convertible to a float array"
            ) from exc
        if scores.ndim != 2:
            raise ModelError(
                f"{self._describe()} returned scores of shape {scores.shape} for a batch of "
                f"{expected}; expected (batch, classes) = ({expected}, n_classes)"
            )
        if scores.shape[0] != expected:
            raise ModelError(
                f"{self._describe()} returned {scores.shape[0]} rows of scores for a batch of {expected}"
            )
        return scores[:n]

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Score a batch of waveforms.

        Parameters
        ----------
        waves : array_like, shape (batch, samples)
            Float waveforms at :attr:`sample_rate`.

        Returns
        -------
        numpy.ndarray of float32, shape (batch, classes)
            Probabilities (softmaxed logits) or sigmoid scores.
        """
        waves = np.asarray(waves, dtype=np.float32)
        if waves.ndim != 2:
            raise ParameterError(f"waves must have shape (batch, samples), got {waves.shape}")
        if waves.shape[1] == 0:
            raise ParameterError("waves must hold at least one sample per waveform")
        batch = waves.shape[0]
        if batch == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        if self.window is not None and waves.shape[1] > self.window:
            windows, n_windows = split_windows(waves, self.window, self.window_hop)
            scores = self._score(windows)
            return mean_over_windows(scores, batch, n_windows).astype(np.float32)
        return self._score(waves)

    def _score(self, waves: np.ndarray) -> np.ndarray:
        batch = waves.shape[0]
        size = self._chunk_size(batch)
        parts = [self._call_chunk(waves[i : i + size]) for i in range(0, batch, size)]
        widths = {p.shape[1] for p in parts}
        if len(widths) != 1:
            raise ModelError(f"{self._describe()} returned different numbers of classes: {sorted(widths)}")
        scores = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self._finish(scores)

    def _finish(self, scores: np.ndarray) -> np.ndarray:
        n_classes = scores.shape[1]
        if n_classes == 0:
            raise ModelError(f"{self._describe()} returned zero classes")
        if self._class_names is None:
            self._class_names = [str(i) for i in range(n_classes)]
        elif n_classes != len(self._class_names):
            raise ModelError(
                f"{self._describe()} returned {n_classes} scores per waveform but "
                f"{len(self._class_names)} class names are set"
            )
        if not np.isfinite(scores).all():
            bad = int(np.size(scores) - np.count_nonzero(np.isfinite(scores)))
            raise ModelError(f"{self._describe()} returned {bad} NaN or infinite score(s)")
        if self.output == "auto":
            self.output = self._guess = _guess_output(scores)
            self._guessed = True
        if self.output == "logits":
            scores = softmax(scores, axis=1)
        else:
            lo, hi = float(scores.min()), float(scores.max())
            if lo < -_PROB_TOLERANCE or hi > 1 + _PROB_TOLERANCE:
                told = ("took its first scores, all in [0, 1], for " if getattr(self, "_guessed", False)
                        else "was declared to output ")
                raise ModelError(
                    f"{self._describe()} {told}{self.output} but returned scores in "
                    f"[{lo:.4g}, {hi:.4g}], outside [0, 1]; pass output='logits' (--output logits) if these "
                    "are logits"
                )
            scores = np.clip(scores, 0.0, 1.0)
        return scores.astype(np.float32)

    @property
    def configured_output(self) -> str:
        """The ``output`` this model was given: ``"auto"`` while :attr:`output` holds what
        ``"auto"`` guessed from the scores, else :attr:`output`."""
        if getattr(self, "_guessed", False) and self.output == getattr(self, "_guess", None):
            return "auto"
        return self.output

    def reset_output_guess(self) -> None:
        """Forget what ``output="auto"`` guessed, so that the next scores decide again (nothing
        for a model whose output is declared).  :func:`freqrex.evaluation.evaluate` calls it before
        each clip: a clip's record never depends on the clips scored before it."""
        if self.configured_output == "auto":
            self.output = "auto"
            self._guessed = False

    def _describe(self) -> str:
        name = getattr(self._fn, "__name__", None) or type(self._fn).__name__
        return f"model {name!r}"

    def __repr__(self) -> str:
        names = "?" if self._class_names is None else len(self._class_names)
        return (
            f"{type(self).__name__}({self._describe()[6:]}, sample_rate={self.sample_rate}, "
            f"classes={names}, output={self.output!r})"
        )
