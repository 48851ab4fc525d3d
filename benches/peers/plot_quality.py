"""Plot of the faithfulness records of ``explanation_quality.py``: per model family and curve, how
much better freqrex's ranking is than each method, clip by clip.

One row per records file (model family), one column per curve (zero / noise masking, deletion /
insertion). Each method is a box of the per-clip AUC difference, signed so that **right of zero
means freqrex is better** (deletion: method minus freqrex; insertion: freqrex minus method); the
dots are the clips, the label says on how many clips freqrex wins.

    python benches/peers/plot_quality.py docs/results/explanation-quality-key.jsonl \\
        docs/results/explanation-quality-musicnn.jsonl --out docs/explanation-quality.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Sequence

import numpy as np

CURVES = (("zero", "deletion"), ("zero", "insertion"), ("noise", "deletion"), ("noise", "insertion"))
PEERS = ("magnitude", "shap_bands", "rex", "freqrise", "occlusion", "freqrex_effects", "random")


def load(path: str) -> List[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def advantages(records: Sequence[dict], method: str, operator: str, curve: str) -> np.ndarray:
    """Per clip: how much better freqrex's AUC is than ``method``'s (positive: freqrex better)."""
    key = f"{operator}_{curve}_auc"
    out = []
    for r in records:
        mine, theirs = r["methods"]["freqrex"].get(key), r["methods"].get(method, {}).get(key)
        if mine is None or theirs is None:
            continue
        out.append(theirs - mine if curve == "deletion" else mine - theirs)
    return np.asarray(out, dtype=np.float64)


def plot(files: Sequence[str], out: str) -> Dict[str, Dict[str, List[int]]]:
    """Draw the figure into ``out``; returns {model: {method: [wins per curve]}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(files), len(CURVES), figsize=(4.2 * len(CURVES), 0.55 * len(PEERS) * len(files) + 1.2),
                             squeeze=False)
    wins: Dict[str, Dict[str, List[int]]] = {}
    for row, path in enumerate(files):
        records = load(path)
        model = records[0]["model"] if records else path
        wins[model] = {}
        for col, (operator, curve) in enumerate(CURVES):
            ax = axes[row][col]
            data, labels = [], []
            for method in PEERS:
                adv = advantages(records, method, operator, curve)
                won = int((adv > 0).sum())
                wins[model].setdefault(method, []).append(won)
                data.append(adv)
                labels.append(f"{won}/{adv.size}")
            pos = np.arange(len(PEERS))[::-1]
            try:  # matplotlib >= 3.10
                ax.boxplot(data, positions=pos, orientation="horizontal", widths=0.6, showfliers=False)
            except TypeError:
                ax.boxplot(data, positions=pos, vert=False, widths=0.6, showfliers=False)
            for p, adv in zip(pos, data):
                jitter = np.random.default_rng(p).uniform(-0.15, 0.15, adv.size)
                ax.scatter(adv, p + jitter, s=9, alpha=0.6, color="tab:blue")
            ax.axvline(0.0, color="grey", lw=0.8)
            ax.set_yticks(pos)
            ax.set_yticklabels(PEERS if col == 0 else [], fontsize=8)
            for p, label in zip(pos, labels):  # clips where freqrex wins, at the right edge
                ax.text(1.0, p, f" {label}", transform=ax.get_yaxis_transform(), fontsize=7, va="center")
            ax.set_title(f"{model} ({len(records)} clips): {operator} {curve}", fontsize=9)
            ax.tick_params(axis="x", labelsize=8)
            if row == len(files) - 1:
                ax.set_xlabel("AUC advantage of freqrex (right: freqrex better)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return wins


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("records", nargs="+", help="explanation_quality.py JSONL files, one per model family")
    ap.add_argument("--out", default="docs/explanation-quality.png")
    args = ap.parse_args(argv)
    for model, per in plot(args.records, args.out).items():
        print(model, {m: w for m, w in per.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
