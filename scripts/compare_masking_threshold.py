"""freqrex's masking threshold against ART 1.20.1's (the independent check), on real clips.

Usage::

    python scripts/compare_masking_threshold.py [--segment 2.5] [--clips 24] [--flip-budget 30] [--json OUT]
    python scripts/compare_masking_threshold.py --corpus /tmp/freqrex-corpus/order.txt --clips 20 --flip-budget 0 \\
        --json docs/results/masking-threshold-agreement-corpus.json   # one 2.5 s segment of 20 corpus clips

Clips: the built-in demo clip (30 s) and the musicnn test fixtures
(tests/data/musicnn_clip_*.flac, 10 s each), cut into segments of
``--segment`` seconds (24 segments of 2.5 s by default).  For each segment:

1. ART's threshold, by ART's own ``PsychoacousticMasker(2048, 512, 16000)``
   (its framing: librosa STFT, ``center=False``; its PSD normalised to 96 dB at
   the clip's maximum), and freqrex's (:func:`freqrex.psychoacoustic.masking_threshold`,
   centred frames; ART's frame j is freqrex's frame j + 2).  Both are put on one
   absolute scale (dB of ``|X / n_fft|^2``, each minus its own normalisation
   offset) and compared cell by cell: median, 5th and 95th percentile of
   ``freqrex - ART`` (positive: freqrex allows a louder change), and the share
   of cells where freqrex's is higher.
2. Where the difference comes from: the normalised PSDs on common frames
   (framing, normalisation), and ART's model with two of its choices changed:
   masker decimation by the maskers' own Bark (ART compares the Bark of the
   maskers' ordinals), and the spreading limited to -3..+8 Bark as freqrex does;
   and freqrex's model without its noise maskers (ART, after Qin et al., has none).
3. Masked STFT flips (a synthetic model that reads the energy above 2 kHz, 30
   queries): the share of cells over ART's threshold and the largest excess,
   measured with ART's threshold and librosa's STFT as in docs/audibility.md,
   for the search bounded by freqrex's threshold only (the bound before this
   change, reproduced by patching) and for the shipped bound (the lower of the
   two thresholds, 3 dB safety).

Prints a markdown table; ``--json`` writes the numbers.  Needs
adversarial-robustness-toolbox and librosa (the test extra).  About 20 s a
2.5 s segment on one core (ART loops over maskers in Python).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def corpus_segments(order: Path, seconds: float, limit: int, offset: float):
    """One segment of every clip of a corpus (``order.txt`` of scripts/make_corpus.py), from ``offset`` s."""
    from freqrex.io import load_audio

    out = []
    for line in order.read_text().split():
        if len(out) >= limit:
            break
        x, sr = load_audio(line, sample_rate=16000)
        a, n = int(offset * sr), int(seconds * sr)
        if x.size >= a + n:
            out.append((f"{Path(line).stem}@{offset:g}s", np.asarray(x[a:a + n], dtype=np.float32)))
    return out, 16000


def segments(seconds: float, limit: int):
    from freqrex.io import load_audio

    files = [ROOT / "python/freqrex/data/demo.flac"] + sorted((ROOT / "tests/data").glob("musicnn_clip_*.flac"))
    out = []
    for f in files:
        x, sr = load_audio(f, sample_rate=16000)
        n = int(seconds * sr)
        for i in range(x.size // n):
            out.append((f"{f.stem}@{i * seconds:g}s", np.asarray(x[i * n : (i + 1) * n], dtype=np.float32)))
    # alternate sources so that a smaller --clips still mixes them
    demo = [s for s in out if s[0].startswith("demo")]
    rest = [s for s in out if not s[0].startswith("demo")]
    mixed = [s for pair in zip(demo, rest) for s in pair] + demo[len(rest):] + rest[len(demo):]
    return mixed[:limit], 16000


class HighBand:
    """'bright' once the energy above 2 kHz in the middle half of the clip drops 3% below the original's."""

    class_names = ["dull", "bright"]
    sample_rate = 16000

    def __init__(self, reference):
        self.ref = self.energy(np.asarray(reference)[None])[0]

    def energy(self, waves):
        w = np.asarray(waves, dtype=np.float64)
        seg = w[:, w.shape[1] // 4 : 3 * w.shape[1] // 4]
        spec = np.fft.rfft(seg * np.hanning(seg.shape[1]), axis=1)
        f = np.fft.rfftfreq(seg.shape[1], 1 / 16000)
        return (np.abs(spec[:, f > 2000]) ** 2).sum(1)

    def __call__(self, waves):
        z = np.clip(300 * (self.energy(waves) / self.ref - 0.97), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], 1)


def art_excess(art_thr, psd_max, original, perturbed):
    """ART's check (docs/audibility.md): the change's PSD minus ART's threshold, per cell."""
    import librosa

    d = np.asarray(perturbed, dtype=np.float32) - np.asarray(original, dtype=np.float32)
    spec = librosa.stft(d, n_fft=2048, hop_length=512, window="hann", center=False)
    with np.errstate(divide="ignore"):
        psd = 96.0 - psd_max + 20 * np.log10(np.abs(math.sqrt(8.0 / 3.0) * spec) / 2048)
    return psd - art_thr


def masked_flip(x, sr, *, old_bound: bool, budget: int):
    import freqrex
    from freqrex.manipulation import perturbation

    saved = (perturbation.SpectralClip.limit_db, perturbation.SpectralClip.frame_margins)
    if old_bound:  # the search as it was: freqrex's threshold only, checked on freqrex's frames only
        def limit_db(self):
            return self.mask.threshold_db

        def frame_margins(self, delta):
            from freqrex import _stft, psychoacoustic as pa

            spec = _stft.stft(np.asarray(delta, dtype=np.float64), self.n_fft, self.hop)
            psd, _ = pa.power_spectrum_db(spec, self.n_fft, reference=self.mask.offset_db)
            return np.where(np.abs(spec) > 0, self.mask.threshold_db - psd, np.inf).min(axis=1)

        perturbation.SpectralClip.limit_db, perturbation.SpectralClip.frame_margins = limit_db, frame_margins
    try:
        return freqrex.flip(x, sr, HighBand(x), space="stft", strategy="magnitude", budget=budget)
    finally:
        perturbation.SpectralClip.limit_db, perturbation.SpectralClip.frame_margins = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment", type=float, default=2.5, help="seconds per clip (default 2.5)")
    ap.add_argument("--clips", type=int, default=24, help="number of clips (default 24)")
    ap.add_argument("--flip-budget", type=int, default=30, help="queries per masked flip (0: no flips)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="order.txt of a corpus (scripts/make_corpus.py): one segment of each of its first "
                         "--clips clips, from --offset s, instead of the demo clip and the fixtures")
    ap.add_argument("--offset", type=float, default=10.0, help="start of the corpus segments (s)")
    args = ap.parse_args()

    from art.attacks.evasion.imperceptible_asr.imperceptible_asr import PsychoacousticMasker

    from freqrex import psychoacoustic as pa
    from freqrex.signal import art_masking_threshold

    clips, sr = (corpus_segments(args.corpus, args.segment, args.clips, args.offset) if args.corpus
                 else segments(args.segment, args.clips))
    g_db = 20 * math.log10(math.sqrt(8.0 / 3.0))
    pooled = {"ours_vs_art": [], "bybin_vs_art": [], "ours_vs_bybin": [], "ours_vs_bybin_limited": [],
              "tonal_vs_art": [], "tonal_vs_bybin_limited": []}
    rows, flips = [], []
    psd_err = 0.0
    start = time.time()
    for name, x in clips:
        art_thr, psd_max = PsychoacousticMasker(2048, 512, sr).calculate_threshold_and_psd_maximum(x)
        art_thr = art_thr.T  # frames first
        art_abs = art_thr - (96.0 - float(psd_max) + g_db)  # dB of |X / n_fft|^2
        ours = pa.masking_threshold(x, sr)
        j0 = 2
        n = art_thr.shape[0]
        ours_abs = ours.threshold_db[j0 : j0 + n] - ours.offset_db
        # framing and normalisation: the normalised PSDs on common frames
        art_psd = 20 * np.log10(np.maximum(np.abs(np.fft.rfft(
            np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), 2048)[::512][:n]
            * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)), axis=1)) / 2048, 1e-300))
        psd_err = max(psd_err, float(np.max(np.abs((ours.psd_db[j0 : j0 + n] - ours.offset_db)
                                                   - np.maximum(art_psd, -200 - ours.offset_db)))))
        bybin = art_masking_threshold(x, sr, _by_bin=True)
        limited = art_masking_threshold(x, sr, _by_bin=True, _spread_limits=(-3.0, 8.0))
        off = 96.0 - bybin.psd_max_db + g_db
        tonal = pa.masking_threshold(x, sr, _noise_maskers=False)
        tonal_abs = tonal.threshold_db[j0 : j0 + n] - tonal.offset_db
        variants = {
            "ours_vs_art": ours_abs - art_abs,
            "bybin_vs_art": (bybin.threshold_db - off) - art_abs,
            "ours_vs_bybin": ours_abs - (bybin.threshold_db - off),
            "ours_vs_bybin_limited": ours_abs - (limited.threshold_db - off),
            "tonal_vs_art": tonal_abs - art_abs,
            "tonal_vs_bybin_limited": tonal_abs - (limited.threshold_db - off),
        }
        for key, diff in variants.items():
            pooled[key].append(diff[np.isfinite(diff)])
        d = variants["ours_vs_art"][np.isfinite(variants["ours_vs_art"])]
        rows.append({"clip": name, "median_db": float(np.median(d)), "p95_db": float(np.percentile(d, 95)),
                     "share_ours_higher": float(np.mean(d > 0))})
        if args.flip_budget > 0:
            rec = {"clip": name}
            for label, old in (("old_bound", True), ("shipped", False)):
                r = masked_flip(x, sr, old_bound=old, budget=args.flip_budget)
                ex = art_excess(art_thr.T, psd_max, x, r.audio)
                rec[label] = {"success": bool(r.success), "snr_db": r.snr_db,
                              "art_over_share": float(np.mean(ex > 0)), "art_max_excess_db": float(np.max(ex)),
                              "labelled_inaudible": bool(r.inaudible)}
            flips.append(rec)
        print(f"{name}: median {rows[-1]['median_db']:+.1f} dB, p95 {rows[-1]['p95_db']:+.1f} dB "
              f"({time.time() - start:.0f} s)", flush=True)

    def stats(key):
        v = np.concatenate(pooled[key])
        return {"median_db": float(np.median(v)), "p5_db": float(np.percentile(v, 5)),
                "p95_db": float(np.percentile(v, 95)), "share_first_higher": float(np.mean(v > 0)), "cells": int(v.size)}

    summary = {key: stats(key) for key in pooled}
    summary["psd_max_abs_difference_db"] = psd_err
    summary["clips"] = len(clips)
    summary["segment_s"] = args.segment
    summary["source"] = f"corpus {args.corpus}, from {args.offset:g} s" if args.corpus else "demo clip and fixtures"
    print()
    print(f"{len(clips)} clips of {args.segment:g} s; normalised PSDs on common frames differ by at most "
          f"{psd_err:.2g} dB")
    print("| comparison (per cell, dB) | median | 5th pct | 95th pct | share > 0 |")
    print("|---|---|---|---|---|")
    labels = {"ours_vs_art": "freqrex - ART", "bybin_vs_art": "ART, decimation by masker Bark - ART",
              "ours_vs_bybin": "freqrex - (ART, decimation by masker Bark)",
              "ours_vs_bybin_limited": "freqrex - (ART, by masker Bark, spreading -3..8 Bark)",
              "tonal_vs_art": "(freqrex without noise maskers) - ART",
              "tonal_vs_bybin_limited": "(freqrex without noise maskers) - (ART, by masker Bark, spreading -3..8)"}
    for key, s in summary.items():
        if key in labels:
            print(f"| {labels[key]} | {s['median_db']:+.1f} | {s['p5_db']:+.1f} | {s['p95_db']:+.1f} | "
                  f"{100 * s['share_first_higher']:.1f}% |")
    if flips:
        print()
        print("| masked STFT flips (magnitude strategy) | flips | labelled inaudible | median share of cells over ART | "
              "median largest excess over ART |")
        print("|---|---|---|---|---|")
        for label in ("old_bound", "shipped"):
            vals = [f[label] for f in flips]
            print(f"| {label} | {sum(v['success'] for v in vals)}/{len(vals)} | "
                  f"{sum(v['labelled_inaudible'] for v in vals)}/{len(vals)} | "
                  f"{100 * float(np.median([v['art_over_share'] for v in vals])):.2f}% | "
                  f"{float(np.median([v['art_max_excess_db'] for v in vals])):+.1f} dB |")
        summary["flips"] = flips
    summary["per_clip"] = rows
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
