"""Silero VAD as a two-class clip classifier: ``["non-speech", "speech"]``.

Silero VAD (MIT licence, https://github.com/snakers4/silero-vad) is a small
recurrent speech detector.  Its weights are not shipped with freqrex: they come
from the ``silero-vad`` package (``pip install --no-deps silero-vad``; the
package itself declares torch, which is not needed here), whose
``silero_vad/data/silero_vad.onnx`` is run with onnxruntime alone.

How a clip is scored (the same computation as the package's
``OnnxWrapper.audio_forward``, checked bit for bit against it):

* 16 kHz mono; the clip is zero-padded to a whole number of 512-sample chunks;
* each chunk is prefixed with the last 64 samples of the previous chunk (zeros
  before the first one), so the network sees ``(batch, 576)`` per step, with
  ``sr = 16000`` and the recurrent ``state`` ``(2, batch, 128)`` (zeros at the
  start) carried from chunk to chunk;
* the clip's speech probability is the mean of the per-chunk probabilities,
  and the scores are ``[1 - p, p]``.

The ONNX graph takes any batch, so clips are scored together (the chunk loop
runs once for a whole batch); a batch gives exactly the same scores as clips
one by one.  Importing this module imports neither onnxruntime nor silero_vad;
the package is located without being imported (importing it imports torch).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional, Sequence

import numpy as np

from .._checks import check_int
from ..errors import ModelError, ParameterError
from .base import Model, as_wave_batch as _as_waves, onnx_session

__all__ = ["SileroVAD", "silero_vad", "find_model_file", "SAMPLE_RATE", "CHUNK", "CONTEXT"]

SAMPLE_RATE = 16000
#: Samples per network step at 16 kHz (the package refuses any other size).
CHUNK = 512
#: Samples of the previous chunk prepended to each chunk (the package's ``context_size``).
CONTEXT = 64
STATE_SIZE = 128
MODEL_FILE = "silero_vad.onnx"


def find_model_file() -> Optional[str]:
    """Path of ``silero_vad.onnx`` in the installed ``silero-vad`` package, or None.

    Found with :func:`importlib.util.find_spec`, without importing the package.
    """
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "data", MODEL_FILE)
        if os.path.isfile(path):
            return path
    return None



class SileroVAD(Model):
    """Silero VAD: waves -> clip-level ``[non-speech, speech]`` probabilities.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``silero_vad.onnx`` file; by default the one in the installed
        ``silero-vad`` package.
    providers : sequence, optional
        onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    batch_size : int, default 64
        Clips scored together in one pass of the chunk loop.
    n_threads : int or None, default 1
        onnxruntime intra-op threads; None leaves onnxruntime's choice.  Each
        step is a tiny graph on ``(batch, 576)``, so one thread is the fastest
        here (0.09 s per 30 s clip at batch 8 against 0.19 s with onnxruntime's
        default, on a busy 2-core machine).

    Attributes
    ----------
    name : str
        ``"silero_vad"`` (with the path when one is given): what
        ``freqrex.evaluate`` keeps its records under.
    sample_rate : int
        16000.
    class_names : list of str
        ``["non-speech", "speech"]``.
    output : str
        ``"probabilities"`` (the two scores sum to one).
    input_samples : None
        Any length (zero-padded to whole 512-sample chunks).

    Raises
    ------
    ModelError
        silero-vad is not installed and no path is given, the file is missing,
        or onnxruntime cannot load it.
    ParameterError
        ``batch_size`` < 1.
    """

    sample_rate = SAMPLE_RATE
    class_names = ["non-speech", "speech"]
    output = "probabilities"
    input_samples = None

    def __init__(self, path=None, *, providers: Optional[Sequence] = None, batch_size: int = 64,
                 n_threads: Optional[int] = 1):
        batch_size = check_int(batch_size, "batch_size", 1)
        self.batch_size = int(batch_size)
        # what records are kept under (batch size and threads change no score)
        self.name = "silero_vad" if path is None else f"silero_vad (path={os.fspath(path)})"
        if path is None:
            path = find_model_file()
            if path is None:
                raise ModelError(
                    "silero_vad needs the silero-vad package for its weights: "
                    "pip install --no-deps silero-vad (or pass path= to a silero_vad.onnx file)"
                )
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"silero VAD model file not found: {path}")
        self.path = path
        self.session = onnx_session(path, providers=providers, n_threads=n_threads, what="the silero VAD model")
        names = {i.name for i in self.session.get_inputs()}
        if not {"input", "state", "sr"} <= names:
            raise ModelError(f"{path} is not a silero VAD model with inputs input/state/sr (has {sorted(names)})")
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def __repr__(self) -> str:
        return f"SileroVAD({self.path!r}, batch_size={self.batch_size})"

    def chunk_probabilities(self, waves) -> np.ndarray:
        """Speech probability of each 512-sample chunk.

        Parameters
        ----------
        waves : array_like
            float ``(batch, samples)`` (or ``(samples,)``), 16 kHz mono.

        Returns
        -------
        numpy.ndarray
            float32 ``(batch, ceil(samples / 512))``.
        """
        x = _as_waves(waves)
        out = [self._chunks(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out)

    def _chunks(self, x: np.ndarray) -> np.ndarray:
        batch, n = x.shape
        n_chunks = -(-n // CHUNK)
        # frames[b, i] = [last CONTEXT samples of chunk i-1 (zeros for i = 0), chunk i]
        padded = np.zeros((batch, CONTEXT + n_chunks * CHUNK), dtype=np.float32)
        padded[:, CONTEXT:CONTEXT + n] = x
        state = np.zeros((2, batch, STATE_SIZE), dtype=np.float32)
        probs = np.empty((batch, n_chunks), dtype=np.float32)
        run = self.session.run
        for i in range(n_chunks):
            frame = padded[:, i * CHUNK:i * CHUNK + CONTEXT + CHUNK]
            out, state = run(None, {"input": frame, "state": state, "sr": self._sr})
            probs[:, i] = out[:, 0]
        return probs

    def __call__(self, waves) -> np.ndarray:
        """Clip-level scores: ``[1 - p, p]`` with p the mean chunk speech probability.

        Parameters
        ----------
        waves : array_like
            float ``(batch, samples)`` (or ``(samples,)``), 16 kHz mono.

        Returns
        -------
        numpy.ndarray
            float32 ``(batch, 2)``.
        """
        try:
            p = self.chunk_probabilities(waves).astype(np.float64).mean(axis=1)
        except ParameterError:
            raise
        except Exception as exc:  # onnxruntime failures
            raise ModelError(f"silero VAD failed: {exc}") from exc
        if not np.isfinite(p).all():
            raise ModelError("silero VAD returned non-finite scores")
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)


def silero_vad(path=None, **kwargs) -> SileroVAD:
    """Load Silero VAD (see :class:`SileroVAD`); ``load_model("silero_vad")`` calls this."""
    return SileroVAD(path, **kwargs)
