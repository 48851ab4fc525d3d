"""``freqrex models``: list the built-in models."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import add_common


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="list the built-in models", description="List the built-in models and their classes.")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..models import OTHER_MODELS
    from ..models.musicnn import DATA_DIR, NAMES, SAMPLE_RATE

    with open(os.path.join(DATA_DIR, "musicnn_tags.json")) as fh:
        tags = json.load(fh)
    about = {
        "MSD": "musicnn tagger trained on the Million Song Dataset (50 Last.fm tags)",
        "MTT": "musicnn tagger trained on MagnaTagATune (50 tags)",
    }
    rows = [
        {
            "name": name,
            "description": about[name[:3]] + (", VGG-like architecture" if "vgg" in name else ", musically motivated CNN"),
            "sample_rate": SAMPLE_RATE,
            "output": "sigmoid",
            "classes": tags[name],
        }
        for name in NAMES
    ]
    rows += [{"name": name, **info} for name, info in OTHER_MODELS.items()]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for r in rows:
        default = " (default)" if r["name"] == "MSD_musicnn" else ""
        print(f"{r['name']}{default}: {r['description']}; {len(r['classes'])} classes at {r['sample_rate']} Hz")
        print("    " + ", ".join(r["classes"]))
    return 0
