"""Eight 10 s clips for docs/scaling.md: 10 s pieces (starting 5 s apart) of the demo clip and the musicnn test clips.

    python benches/scaling/make_clips.py /tmp/scaling-clips
"""

import sys
from pathlib import Path

import numpy as np

from freqrex.io import demo_clip, load_audio, save_wav

SR = 16000
SECONDS = 10


def main(out: str) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    sources = [demo_clip(sample_rate=SR)[0]]
    for p in sorted(Path(__file__).resolve().parents[2].glob("tests/data/musicnn_clip_*.flac")):
        sources.append(load_audio(p, sample_rate=SR)[0])
    pieces = []
    for x in sources:
        for start in range(0, x.size - SECONDS * SR + 1, SECONDS * SR // 2):  # 5 s apart (they overlap)
            pieces.append(x[start:start + SECONDS * SR])
    if len(pieces) < 8:
        raise SystemExit(f"only {len(pieces)} pieces of {SECONDS} s")
    for i, x in enumerate(pieces[:8]):
        save_wav(folder / f"clip{i}.wav", np.asarray(x, dtype=np.float32), SR)
    print(f"wrote 8 clips of {SECONDS} s to {folder}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/scaling-clips")
