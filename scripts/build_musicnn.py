"""Regenerate freqrex's shipped musicnn ONNX taggers from the ``musicnn`` PyPI wheel.

Steps: fetch ``musicnn==0.1.0`` (``pip download --no-deps``, or ``--wheel``),
read its TF1 checkpoints with :mod:`freqrex.models._tf_checkpoint`, build the
PyTorch port (:mod:`freqrex.models._musicnn_torch`), export each tagger to
ONNX (opset 17; input ``patches`` float32 ``(batch, 187, 96)`` log-mel,
output ``tags`` float32 ``(batch, 50)`` sigmoid probabilities, dynamic batch
axis), check torch against onnxruntime, and write into
``python/freqrex/models/data/``:

- ``<NAME>.onnx`` for all four taggers if together under 25 MB, else
  ``MSD_musicnn.onnx`` only;
- ``musicnn_tags.json``: the 50 tag names of each shipped model;
- ``LICENSE-musicnn.txt``: the wheel's ISC notice.

Needs torch, onnx and onnxruntime (no TensorFlow)::

    python scripts/build_musicnn.py [--wheel musicnn-0.1.0-py3-none-any.whl]
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from freqrex.models import _musicnn_torch as mt  # noqa: E402  (imports torch)

OUT = os.path.join(ROOT, "python", "freqrex", "models", "data")
ALL = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
MAX_TOTAL_BYTES = 25 * 1024 * 1024
OPSET = 17


def fetch_wheel(dest: str) -> str:
    """Download the musicnn 0.1.0 wheel (no dependencies) into ``dest``; return its path."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", dest,
                    "musicnn==0.1.0"], check=True)
    return glob.glob(os.path.join(dest, "musicnn-*.whl"))[0]


def read_labels(config_py: str) -> dict:
    """Read ``MSD_LABELS`` and ``MTT_LABELS`` from the wheel's configuration.py without running it."""
    labels = {}
    for node in ast.parse(open(config_py).read()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("MSD_LABELS", "MTT_LABELS"):
            labels[node.targets[0].id[:3]] = ast.literal_eval(node.value)
    return labels


def export(model, path: str, name: str) -> None:
    """Export one torch tagger to ONNX with a dynamic batch axis and provenance metadata."""
    import onnx
    import torch

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy (TorchScript) exporter:
    warnings.filterwarnings("ignore", message="Constant folding")  # needs no onnxscript
    torch.onnx.export(model, (torch.zeros(2, 187, 96),), path, dynamo=False, opset_version=OPSET,
                      input_names=["patches"], output_names=["tags"], do_constant_folding=True,
                      dynamic_axes={"patches": {0: "batch"}, "tags": {0: "batch"}})
    proto = onnx.load(path)
    proto.doc_string = (f"musicnn {name} (musicnn 0.1.0 by Jordi Pons, MTG-UPF, ISC licence), "
                        "ported to PyTorch by freqrex. Input: log10(10000*mel+1) patches "
                        "(batch, 187, 96), 16 kHz, n_fft 512, hop 256. Output: 50 sigmoid tags.")
    for key, value in {"source": "musicnn==0.1.0", "model": name, "licence": "ISC"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


def check_parity(model, path: str, seed: int = 0) -> float:
    """Max |torch - onnxruntime| over random log-mel-like batches of sizes 1 and 7."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    err = 0.0
    for batch in (1, 7):
        x = (rng.gamma(1.5, 0.8, size=(batch, 187, 96))).astype(np.float32)  # log-mel-like range
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"patches": x})[0]
        assert got.shape == (batch, 50), got.shape
        err = max(err, float(np.abs(ref - got).max()))
    return err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", help="path of musicnn-0.1.0-py3-none-any.whl (default: pip download)")
    parser.add_argument("--out", default=OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(os.path.join(tmp, "wheel"))
        pkg = os.path.join(tmp, "wheel", "musicnn")
        labels = read_labels(os.path.join(pkg, "configuration.py"))
        licence = open(glob.glob(os.path.join(tmp, "wheel", "musicnn-*.dist-info", "LICENSE*"))[0]).read()

        sizes = {}
        for name in ALL:
            model = mt.build(name, pkg)
            path = os.path.join(args.out, name + ".onnx")
            export(model, path, name)
            err = check_parity(model, path)
            if err > 1e-5:
                raise SystemExit(f"{name}: torch vs onnxruntime differ by {err:.2e}")
            sizes[name] = os.path.getsize(path)
            print(f"{name}: {sizes[name] / 1e6:.2f} MB, torch vs onnxruntime max |diff| {err:.2e}")

    shipped = ALL if sum(sizes.values()) <= MAX_TOTAL_BYTES else ["MSD_musicnn"]
    for name in set(ALL) - set(shipped):
        os.remove(os.path.join(args.out, name + ".onnx"))
    with open(os.path.join(args.out, "musicnn_tags.json"), "w") as fh:
        json.dump({name: labels[name[:3]] for name in shipped}, fh, indent=1)
        fh.write("\n")
    with open(os.path.join(args.out, "LICENSE-musicnn.txt"), "w") as fh:
        fh.write("musicnn_tags.json and " + ", ".join(n + ".onnx" for n in shipped) + "\n"
                 "are derived from the musicnn 0.1.0 package (https://github.com/jordipons/musicnn):\n"
                 "their weights were converted from its TensorFlow checkpoints and the tag\n"
                 "names copied from its configuration.py. The musicnn licence (ISC) follows.\n\n"
                 + licence.strip() + "\n")
    print("shipped:", ", ".join(shipped), f"({sum(sizes[n] for n in shipped) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
