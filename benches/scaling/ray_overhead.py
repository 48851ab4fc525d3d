"""Per-task overhead of the Ray path against the in-process path, on a near-free model.

    python benches/scaling/ray_overhead.py [--clips 24] [--workers 1]

The same evaluation (tiny budgets, one 1 s clip repeated under different names, a model that
costs microseconds) runs in this process and then on a local Ray instance already started (its
start-up is timed apart), after one warm-up round of each, ``--repeats`` times alternately (medians); the
difference of the wall times divided by the clip jobs is the
overhead of one task (shipping the audio, the actor call, the record back).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class FreeModel:
    """Three classes from three band energies: a few microseconds a call."""

    sample_rate = 8000
    class_names = ["low", "mid", "high"]

    def __call__(self, waves):
        spec = np.abs(np.fft.rfft(np.asarray(waves, dtype=np.float64), axis=1))
        n = spec.shape[1]
        return np.stack([spec[:, : n // 3].sum(1), spec[:, n // 3: 2 * n // 3].sum(1), spec[:, 2 * n // 3:].sum(1)], 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import ray

    from freqrex.evaluation import EvalOptions, evaluate_many
    from freqrex.io import save_wav

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    options = EvalOptions(strategies=("causal",), ks=(1,), equal_total=False, explain_budget=8, explain_iterations=1,
                          extraction_batch=4, flip_budget=2, stft=False)
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    files = []
    for i in range(args.clips):
        files.append(tmp / f"c{i}.wav")
        save_wav(files[-1], (0.1 * rng.standard_normal(8000)).astype(np.float32), 8000, subtype="FLOAT")
    t = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t
    local, on_ray = [], []
    for rep in range(args.repeats + 1):  # the first round warms up both paths and is not counted
        t = time.perf_counter()
        evaluate_many(files, {"free": FreeModel()}, tmp / f"local{rep}.jsonl", options=options)
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        evaluate_many(files, {"free": FreeModel()}, tmp / f"ray{rep}.jsonl", options=options, workers=args.workers)
        on_ray.append(time.perf_counter() - t)
    ray.shutdown()
    local, on_ray = float(np.median(local[1:])), float(np.median(on_ray[1:]))
    queries = sum(json.loads(line)["fft_explanation"]["queries"] for line in open(tmp / "local1.jsonl"))
    print(json.dumps({
        "clips": args.clips, "workers": args.workers, "queries_per_clip": queries / args.clips,
        "repeats": args.repeats, "in_process_s": round(local, 3), "ray_s": round(on_ray, 3),
        "ray_start_s": round(startup, 2),
        "in_process_per_clip_ms": round(1000 * local / args.clips, 1),
        "ray_per_clip_ms": round(1000 * on_ray / args.clips, 1),
        "overhead_per_task_ms": round(1000 * (on_ray - local) / args.clips, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
