"""rex-xai 0.4.1 ``--script`` for explaining MSD_musicnn on a 30 s clip in ``--mode spectral``.

Runs inside rex-xai's own virtual environment (it pins numpy 1.26.4 and needs
torch), not in freqrex's: ``benches/peers/rex_xai_peer.py`` drives it.

The data ReX sees is the magnitude of the clip's real FFT, ``(1, 1, 240001)``;
a ReX mutant zeroes some of those magnitudes (mask value 0), and the
prediction function puts the clip's own phases back, inverts the FFT and runs
the model: a masked bin is removed from the audio, exactly as a freqrex
mutant removes it. ReX decides on the top-1 class and its score.

The model is freqrex's own musicnn port (ONNX on onnxruntime), imported from
the checkout's ``python/`` directory without importing the Rust core (it
imports under numpy 1.26). Every call is counted (calls = ``prediction_function``
invocations, rows = waveforms scored, and rows by the ReX function that asked:
``causal_explanation`` is the search, ``predict_target`` the original, the
others the extraction) and written as JSON to ``$REX_PEER_STATS`` at exit.
Past ``$REX_PEER_DEADLINE`` (epoch seconds) the next model call ends the run
(``SystemExit``), so a run that is too long still reports its counts.

Environment: ``REX_PEER_REPO`` (the freqrex checkout), ``REX_PEER_MODEL``
(default ``MSD_musicnn``), ``REX_PEER_STATS`` (stats file).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

import numpy as np
import soundfile as sf
import torch as tt

REPO = os.environ.get("REX_PEER_REPO", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.join(REPO, "python"))

from freqrex.models.musicnn import musicnn  # noqa: E402  (numpy + onnxruntime only)

from rex_xai.input.input_data import Data  # noqa: E402
from rex_xai.responsibility.prediction import Prediction  # noqa: E402

SAMPLE_RATE = 16000
N_SAMPLES = 30 * SAMPLE_RATE
N_BINS = N_SAMPLES // 2 + 1
model_shape = [1, 1, N_BINS]

MODEL = musicnn(os.environ.get("REX_PEER_MODEL", "MSD_musicnn"))
STATE = {"phase": None, "calls": 0, "rows": 0, "model_seconds": 0.0, "start": time.time(),
         "target": None, "target_score": None}


def _dump():
    path = os.environ.get("REX_PEER_STATS")
    if path:
        out = {k: v for k, v in STATE.items() if k != "phase"}
        out["seconds"] = time.time() - STATE["start"]
        with open(path, "w") as fh:
            json.dump(out, fh)


atexit.register(_dump)


def load_clip(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = np.gcd(sr, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, sr // g).astype(np.float32)
    x = x[:N_SAMPLES]
    if x.size < N_SAMPLES:
        x = np.pad(x, (0, N_SAMPLES - x.size))
    return x


def preprocess(path, shape, device, mode="spectral"):
    x = load_clip(path)
    spec = np.fft.rfft(x.astype(np.float64))
    STATE["phase"] = np.exp(1j * np.angle(spec)).astype(np.complex64)
    mag = np.abs(spec).astype(np.float32)
    data = Data(mag, shape, device, mode="spectral")
    data.data = tt.from_numpy(mag).reshape(1, 1, -1).to(device)
    return data


def _scores(mutants) -> np.ndarray:
    m = mutants.detach().cpu().numpy() if isinstance(mutants, tt.Tensor) else np.asarray(mutants)
    m = m.reshape(-1, N_BINS).astype(np.float32)
    waves = np.fft.irfft(m * STATE["phase"][None, :], n=N_SAMPLES, axis=1).astype(np.float32)
    deadline = float(os.environ.get("REX_PEER_DEADLINE", "inf"))
    if time.time() > deadline:  # stop a run that is too long, keeping the counts (atexit)
        STATE["stopped"] = "deadline"
        raise SystemExit(3)
    t = time.perf_counter()
    s = MODEL(waves)
    STATE["model_seconds"] += time.perf_counter() - t
    STATE["calls"] += 1
    STATE["rows"] += waves.shape[0]
    return s


def prediction_function(mutants, target=None, raw=False, binary_threshold=None):
    # which part of ReX asks: causal_explanation (the search), predict_target (the original),
    # the Explanation methods (extraction), Evaluation (analysis)
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name.startswith("<"):  # list comprehensions
        frame = frame.f_back
    caller = frame.f_code.co_name if frame is not None else "?"
    by = STATE.setdefault("rows_by_caller", {})
    rows = int(np.prod(mutants.shape[:-1])) if hasattr(mutants, "shape") else 1
    by[caller] = by.get(caller, 0) + rows
    s = _scores(mutants)
    if raw:
        return tt.from_numpy(s)
    preds = []
    for row in s:
        c = int(np.argmax(row))
        p = Prediction(c, float(row[c]))
        if target is not None:
            p.target = target
            p.target_confidence = float(row[target.classification])
        preds.append(p)
    if STATE["target"] is None:  # the first call is ReX's prediction of the original
        STATE["target"] = preds[0].classification
        STATE["target_score"] = preds[0].confidence
    return preds
