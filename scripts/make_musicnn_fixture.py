"""Make the musicnn fidelity fixture by running the ORIGINAL TensorFlow musicnn.

Writes, under ``tests/data/``:

``musicnn_clip_{0,1,2}.flac``
    Three 10 s, 16 kHz mono, 16-bit excerpts of real music (only with
    ``--make-clips``, or when missing): generated tracks of the MIT-licensed
    PyPI package ``immich-memories-music`` (48 kHz Opus), decoded with
    soundfile, averaged to mono and resampled with
    ``scipy.signal.resample_poly(x, 1, 3)``.
``musicnn_reference.npz``
    For each clip ``i``: ``patches_i``, the original front end's log-mel
    patches ``(n, 187, 96)`` (``musicnn.extractor.batch_data``), and for each
    model ``M``: ``taggram_M_i`` (per-patch sigmoid tags ``(n, 50)``, from
    ``musicnn.extractor.extractor``) and ``tags_M_i`` (clip tags, their mean
    over patches, as ``musicnn.tagger.top_tags`` does).  Also ``versions``.
``tiny_ckpt/model.*``
    A tiny TF1 checkpoint (a few variables of several dtypes) saved by
    ``tf.compat.v1.train.Saver``, for the checkpoint reader's unit test.

Environment (a separate venv).  The original needs TF1-style layers, which TF
2.16+ (Keras 3) no longer has, and the librosa defaults of its time (2019,
librosa 0.7): ``reflect`` padding of the centred STFT, which librosa 0.9
changed to zeros.  librosa 0.7 needs a numba too old for Python 3.11, so
0.8.1 (the last release with the 0.7 defaults) is used, with the numpy
aliases it still calls (``np.complex`` etc., removed in numpy 1.24) restored
as the builtins they always were::

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" "librosa==0.8.1" soundfile scipy
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfvenv/bin/python scripts/make_musicnn_fixture.py [--make-clips]

numpy < 2 matters: musicnn computes ``np.log10(10000 * mel.astype(np.float16) + 1)``
and numpy 1.x promotes ``10000 * float16`` to float32 (numpy 2 keeps float16
and overflows).  The wheel's ``extractor`` swallows checkpoint-restore
errors; this script makes them fatal.  No part of the wheel is modified.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

# numpy aliases removed in 1.24 that librosa 0.8 still uses (they were the builtins)
for _alias, _builtin in dict(complex=complex, float=float, int=int, bool=bool, object=object).items():
    if _alias not in np.__dict__:
        setattr(np, _alias, _builtin)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
MODELS = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
# (track in immich-memories-music, start second); 10 s each
CLIPS = [("energetic/energetic_acoustic_1.opus", 10.0),
         ("calm/calm_electronic_s411.opus", 15.0),
         ("happy/happy_electronic_1.opus", 5.0)]
CLIP_SECONDS = 10.0


def make_clips() -> None:
    """Write ``tests/data/musicnn_clip_*.flac`` from the immich-memories-music wheel."""
    import soundfile as sf
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        "immich-memories-music==0.1.0"], check=True)
        with zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0]) as whl:
            whl.extractall(tmp)
        for i, (track, start) in enumerate(CLIPS):
            path = os.path.join(tmp, "immich_memories_music", "tracks", track)
            x, sr = sf.read(path, dtype="float64", always_2d=True)
            assert sr == 48000, sr
            x = x.mean(axis=1)[int(start * sr):int((start + CLIP_SECONDS) * sr)]
            y = resample_poly(x, 1, 3)
            y *= min(1.0, 0.99 / np.abs(y).max())
            sf.write(os.path.join(DATA, f"musicnn_clip_{i}.flac"), y, 16000, subtype="PCM_16")
            print("wrote clip", i, track, len(y) / 16000, "s")


def make_tiny_checkpoint() -> None:
    """Save a small TF1 checkpoint with known values for the reader's unit test."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    with tf.compat.v1.variable_scope("scope/inner"):
        tf.compat.v1.get_variable("kernel", initializer=np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8)
    tf.compat.v1.get_variable("bias", initializer=np.array([-1.5, 0.0, 2.25], dtype=np.float64))
    tf.compat.v1.get_variable("step", initializer=np.int64(-(2**40)), dtype=tf.int64)
    tf.compat.v1.get_variable("counts", initializer=np.arange(6, dtype=np.int32).reshape(3, 1, 2))
    tf.compat.v1.get_variable("half", initializer=np.array([0.5, -2.0], dtype=np.float16))
    os.makedirs(os.path.join(DATA, "tiny_ckpt"), exist_ok=True)
    with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(sess, os.path.join(DATA, "tiny_ckpt", "model"),
                                        write_meta_graph=False, write_state=False)
    print("wrote tiny_ckpt")


def run_original() -> None:
    """Run musicnn's own extractor on every clip and model; save the reference npz."""
    import librosa
    import tensorflow as tf
    from musicnn import extractor as ex

    # the wheel's extractor wraps Saver.restore in a bare try/except: make failures fatal
    failures = []
    saver_cls = tf.compat.v1.train.Saver

    class CheckedSaver(saver_cls):
        def restore(self, sess, save_path):
            try:
                return super().restore(sess, save_path)
            except Exception as exc:  # pragma: no cover - surfaced below
                failures.append(repr(exc))
                raise

    tf.compat.v1.train.Saver = CheckedSaver
    out = {"versions": np.array([f"tensorflow {tf.__version__}", f"librosa {librosa.__version__}",
                                 f"numpy {np.__version__}", "musicnn 0.1.0"])}
    for i in range(len(CLIPS)):
        path = os.path.join(DATA, f"musicnn_clip_{i}.flac")
        patches, _ = ex.batch_data(path, 187, 187)
        out[f"patches_{i}"] = patches.astype(np.float32)
        for name in MODELS:
            taggram, labels = ex.extractor(path, model=name, input_length=3, extract_features=False)
            if failures:
                raise RuntimeError(f"{name}: checkpoint restore failed: {failures}")
            out[f"taggram_{name}_{i}"] = taggram.astype(np.float32)
            out[f"tags_{name}_{i}"] = taggram.mean(axis=0).astype(np.float32)
            top = np.argsort(-taggram.mean(axis=0))[:3]
            print(f"clip {i} {name}: {taggram.shape[0]} patches, top {[labels[t] for t in top]}")
    np.savez_compressed(os.path.join(DATA, "musicnn_reference.npz"), **out)
    print("wrote musicnn_reference.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--make-clips", action="store_true", help="(re)make the FLAC clips")
    args = parser.parse_args()
    os.makedirs(DATA, exist_ok=True)
    if args.make_clips or not os.path.exists(os.path.join(DATA, "musicnn_clip_0.flac")):
        make_clips()
    make_tiny_checkpoint()
    run_original()


if __name__ == "__main__":
    main()
