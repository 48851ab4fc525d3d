"""Evaluation: how often do a few frequencies flip a real classifier?

For every clip and model, :func:`evaluate_clip` measures what the paper
reports (Kelly & Chockler 2026: one frequency out of ~240,000 flips the label
58% of the time, five frequencies 78%, practically inaudible STFT changes
62%):

* the sizes of the three sets of an ``fft`` explanation;
* flip success with ``k = 1..5`` changed FFT bins for freqrex's causal ranking
  and for the two baselines (random bins, largest-magnitude bins), each with
  the same query budget (:func:`freqrex.flip`);
* the STFT flip (a few cells, scaled under the masking threshold), for the
  causal ranking of an ``stft`` explanation and the baselines;
* SNRs, queries and seconds.

:func:`evaluate` runs this over many clips and appends one JSON record per
(clip, model) to a JSONL file.  Each record is one complete line written with
a single ``write`` followed by ``flush`` and ``fsync``; on start, a truncated
last line (a run killed mid-write) is cut off, and clips already recorded for
the same model and protocol are skipped, so an interrupted run continues where
it stopped and loses no finished record.  :func:`summarize` and
:func:`summary_markdown` turn the records into the results table, with the
paper's numbers beside ours.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ._atomic import write_text
from .errors import AudioFileError, ParameterError
from .manipulation import STRATEGIES, flip

__all__ = [
    "EvalOptions",
    "PAPER",
    "AUDIO_SUFFIXES",
    "evaluate",
    "evaluate_clip",
    "evaluate_many",
    "find_audio",
    "load_records",
    "summarize",
    "summary_markdown",
    "write_summary",
]

#: The paper's manipulation results (Kelly & Chockler 2026, 8 models, GTZAN and a sung-emotion set).
PAPER = {"k1": 0.58, "k5": 0.78, "stft": 0.62}

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")

#: Version of the record layout; part of the protocol key.
RECORD_VERSION = 1

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalOptions:
    """The protocol of an evaluation (every field is part of the resume key).

    Attributes
    ----------
    explain_budget, explain_iterations : int
        Search budget and iterations of the ``fft`` explanation.
    cuts : {"log", "uniform"}
        Cut spacing of the explanations.
    extraction_batch : int
        Candidate prefixes per extraction step.
    tol : float
        Tolerance of the complete set.
    ks : tuple of int
        Sizes of the FFT flips (default 1..5).
    strategies : tuple of str
        ``causal`` (freqrex) and the baselines ``random`` and ``magnitude``.
    flip_budget : int
        Query budget of every FFT flip (each k and strategy alike).
    change : str
        Change tried (``auto``: removal, then gain).
    max_gain_db : float
        Gain of the ``gain`` change.
    stft : bool
        Whether to run the STFT flip (needs an ``stft`` explanation).
    stft_explain_budget, stft_explain_iterations : int
        Budget and iterations of the ``stft`` explanation.  A budget of 0
        skips it: the causal STFT flip then ranks cells by the ``fft``
        explanation projected onto the STFT bins (then by magnitude).
    stft_k : int
        Cells changed by the STFT flip.
    stft_flip_budget : int
        Query budget of every STFT flip.
    n_fft, hop_length : int
        STFT geometry.
    seed : int
    duration : float
        Seconds analysed from the start of each file.
    """

    explain_budget: int = 200
    explain_iterations: int = 4
    cuts: str = "log"
    extraction_batch: int = 16
    tol: float = 0.01
    ks: Tuple[int, ...] = (1, 2, 3, 4, 5)
    strategies: Tuple[str, ...] = STRATEGIES
    flip_budget: int = 32
    change: str = "auto"
    max_gain_db: float = 20.0
    stft: bool = True
    stft_explain_budget: int = 200
    stft_explain_iterations: int = 4
    stft_k: int = 5
    stft_flip_budget: int = 32
    n_fft: int = 2048
    hop_length: int = 512
    seed: int = 0
    duration: float = 30.0

    def __post_init__(self) -> None:
        def pos_int(name: str, low: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ParameterError(f"{name} must be an integer >= {low}, got {v!r}")
            object.__setattr__(self, name, int(v))

        for name in ("explain_budget", "explain_iterations", "flip_budget",
                     "stft_explain_iterations", "stft_k", "stft_flip_budget", "n_fft", "hop_length"):
            pos_int(name)
        pos_int("stft_explain_budget", 0)
        pos_int("extraction_batch", 2)
        pos_int("seed", 0)
        ks = tuple(self.ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
            raise ParameterError(f"ks must be integers >= 1, got {self.ks!r}")
        object.__setattr__(self, "ks", tuple(sorted(set(int(k) for k in ks))))
        strategies = tuple(self.strategies)
        bad = [s for s in strategies if s not in STRATEGIES]
        if bad or not strategies:
            raise ParameterError(f"strategies must be among {', '.join(STRATEGIES)}, got {self.strategies!r}")
        object.__setattr__(self, "strategies", tuple(s for s in STRATEGIES if s in strategies))
        if self.cuts not in ("log", "uniform"):
            raise ParameterError(f"cuts must be 'log' or 'uniform', got {self.cuts!r}")
        for name in ("tol", "max_gain_db", "duration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise ParameterError(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.duration <= 0:
            raise ParameterError(f"duration must be > 0 s, got {self.duration}")

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ks"] = list(self.ks)
        d["strategies"] = list(self.strategies)
        return d

    def key(self, model_name: str) -> str:
        """The resume key: a hash of the protocol and the model."""
        blob = json.dumps({"v": RECORD_VERSION, "model": model_name, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- JSON helpers


def _clean(v: Any) -> Any:
    """JSON-safe values: non-finite floats become strings ("inf", "-inf") or None (NaN)."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    return v


def _num(v: Any) -> Optional[float]:
    """A record value back to a float (``"inf"`` strings included); None when absent."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return float(v)


# --------------------------------------------------------------------------- files


def find_audio(paths: Iterable[os.PathLike]) -> List[Path]:
    """Audio files named directly, or found (recursively, sorted) in the directories named."""
    out: List[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
                              and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)))
        elif p.is_file():
            out.append(p)
        else:
            raise AudioFileError(f"no such file or directory: {p}")
    seen = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def load_records(path: os.PathLike, *, repair: bool = False) -> List[Dict[str, Any]]:
    """The records of a JSONL file; a truncated or unreadable last line is ignored.

    With ``repair=True`` such a last line is also cut off the file (atomically:
    the good lines are written to a temporary file that replaces it), so that
    appending continues on a clean line.  A malformed line elsewhere raises
    :class:`ParameterError` (the file is not ours, or was damaged otherwise).
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if not data:
        return []
    parts = data.split(b"\n")
    records: List[Dict[str, Any]] = []
    damaged_tail = False
    for i, line in enumerate(parts):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if all(not rest.strip() for rest in parts[i + 1 :]):
                damaged_tail = True  # the last line, cut short by a killed run
                break
            raise ParameterError(f"{p}: line {i + 1} is not a JSON record") from None
        if not isinstance(rec, dict):
            raise ParameterError(f"{p}: line {i + 1} is not a JSON object")
        records.append(rec)
    if repair and (damaged_tail or not data.endswith(b"\n")):
        _rewrite(p, records)
    return records


def _rewrite(path: Path, records: List[Dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in records))


def append_record(path: os.PathLike, record: Dict[str, Any]) -> None:
    """Append one record as one complete line: a single write, then flush and fsync."""
    line = (json.dumps(_clean(record), sort_keys=True) + "\n").encode()
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- one clip


def _sets_of(e: Any) -> Dict[str, Any]:
    out = {}
    total = int(e.responsibility.size)
    for name in ("sufficient", "sufficient_necessary", "complete"):
        size = e.size(name)
        out[name] = {
            "size": size,
            "fraction": None if size is None else size / total,
            "score": e.set_scores.get(name),
            "reason": None if size is not None else e.reasons.get(name),
        }
    return out


def _flip_summary(r: Any) -> Dict[str, Any]:
    return {
        "success": bool(r.success),
        "n_changed": r.n_changed,
        "change": r.change if r.success else None,
        "snr_db": r.snr_db if r.success else None,
        "new_class": r.new_class,
        "new_name": r.new_name,
        "new_score": r.new_score,
        "original_class_score": r.original_class_score,
        "frequencies_hz": [float(f) for f in r.frequencies_hz] if r.success else [],
        "frames": None if r.frames is None or not r.success else [int(t) for t in r.frames],
        "inaudible": r.inaudible,
        "margin_db": r.margin_db,
        "scale": r.scale,
        "flip_queries": r.flip_queries,
        "queries": r.queries,
        "seconds": r.elapsed,
    }


def evaluate_clip(
    audio: np.ndarray,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    options: EvalOptions = EvalOptions(),
    *,
    progress: Optional[ProgressCallback] = None,
) -> Dict[str, Any]:
    """Measure one clip: set sizes, FFT flips for every k and strategy, STFT flips."""
    from .explainer import explain

    o = options
    t_clip = time.perf_counter()
    rec: Dict[str, Any] = {}
    t0 = time.perf_counter()
    e = explain(audio, sample_rate, model, space="fft", seed=o.seed, budget=o.explain_budget,
                iterations=o.explain_iterations, cuts=o.cuts, extraction_batch=o.extraction_batch,
                tol=o.tol, progress=progress)
    scores = np.asarray(e.original_scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    rec["original"] = {
        "class": e.target,
        "name": e.target_name,
        "score": e.score,
        "runner_up": int(order[1]) if order.size > 1 else None,
        "runner_up_score": float(scores[order[1]]) if order.size > 1 else None,
    }
    rec["fft_explanation"] = {
        "n_bins": int(e.responsibility.size),
        "sets": _sets_of(e),
        "queries": e.queries,
        "search_queries": e.search_queries,
        "extraction_queries": e.extraction_queries,
        "seconds": time.perf_counter() - t0,
    }
    flips: Dict[str, Dict[str, Any]] = {}
    cache: Dict = {}
    for strategy in o.strategies:
        flips[strategy] = {}
        for k in o.ks:
            r = flip(audio, sample_rate, model, k=k, space="fft", explanation=e, budget=o.flip_budget,
                     seed=o.seed, change=o.change, max_gain_db=o.max_gain_db, strategy=strategy,
                     progress=progress, _cache=cache)
            flips[strategy][str(k)] = _flip_summary(r)
    rec["fft_flips"] = flips
    del cache
    if o.stft and o.stft_explain_budget == 0:
        es = e  # the fft explanation, projected onto the STFT bins by flip()
        rec["stft_explanation"] = {"projected_from": "fft", "queries": 0, "seconds": 0.0}
    elif o.stft:
        t0 = time.perf_counter()
        es = explain(audio, sample_rate, model, space="stft", seed=o.seed, budget=o.stft_explain_budget,
                     iterations=o.stft_explain_iterations, cuts=o.cuts, extraction_batch=o.extraction_batch,
                     tol=o.tol, n_fft=o.n_fft, hop_length=o.hop_length, progress=progress)
        rec["stft_explanation"] = {
            "shape": list(es.responsibility.shape),
            "sets": _sets_of(es),
            "queries": es.queries,
            "seconds": time.perf_counter() - t0,
        }
    if o.stft:
        cache = {}
        stft_flips = {}
        for strategy in o.strategies:
            r = flip(audio, sample_rate, model, k=o.stft_k, space="stft", explanation=es,
                     budget=o.stft_flip_budget, seed=o.seed, change=o.change, max_gain_db=o.max_gain_db,
                     strategy=strategy, n_fft=o.n_fft, hop_length=o.hop_length, progress=progress,
                     _cache=cache)
            stft_flips[strategy] = _flip_summary(r)
        rec["stft_flips"] = stft_flips
    rec["seconds"] = time.perf_counter() - t_clip
    return rec


# --------------------------------------------------------------------------- many clips


def evaluate(
    files: Sequence[os.PathLike],
    model: Any,
    out: os.PathLike,
    *,
    options: EvalOptions = EvalOptions(),
    model_name: Optional[str] = None,
    limit: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    on_record: Optional[Callable[[Dict[str, Any], int, int], None]] = None,
    on_start: Optional[Callable[[Path, int, int], Any]] = None,
) -> List[Dict[str, Any]]:
    """Evaluate ``model`` on ``files``, appending one record per clip to ``out`` (JSONL).

    Clips already recorded in ``out`` for the same model and protocol are
    skipped (resume).  ``limit`` caps the clips considered (the first ``limit``
    of ``files``, in order).  Returns the records of this model and protocol,
    old and new, in file order.

    ``on_start(path, index, total)`` is called before each clip evaluated (it
    may return a progress callback for that clip), ``on_record(record, index,
    total)`` after each record is written.
    """
    name = model_name or (model if isinstance(model, str) else getattr(model, "name", type(model).__name__))
    results = evaluate_many(
        files, {str(name): model}, out, options=options, limit=limit, progress=progress,
        on_record=None if on_record is None else (lambda rec, i, n, _m: on_record(rec, i, n)),
        on_start=None if on_start is None else (lambda path, i, n, _m: on_start(path, i, n)),
    )
    return results[str(name)]


def evaluate_many(
    files: Sequence[os.PathLike],
    models: Dict[str, Any],
    out: os.PathLike,
    *,
    options: EvalOptions = EvalOptions(),
    limit: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    on_record: Optional[Callable[[Dict[str, Any], int, int, str], None]] = None,
    on_start: Optional[Callable[[Path, int, int, str], Any]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Evaluate several models, clip by clip (every model on clip 1, then on clip 2, ...).

    ``models`` maps a name (recorded as ``model``) to a model or a model
    specification for :func:`freqrex.models.load_model`.  Interleaving keeps
    the models' clip counts level when a long run is stopped early; a stopped
    run resumes where it stopped.  Returns each model's records in file order.
    """
    from .io import load_audio
    from .models import load_model

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(f"limit must be a positive integer, got {limit!r}")
    if not models:
        raise ParameterError("no model to evaluate")
    loaded = {name: (load_model(m) if isinstance(m, (str, os.PathLike)) else m) for name, m in models.items()}
    files = [Path(f) for f in files][: limit if limit is not None else None]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = {name: options.key(name) for name in loaded}
    done: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for rec in load_records(out, repair=True):
        name = rec.get("model")
        if name in keys and rec.get("protocol") == keys[name]:
            done[(name, rec.get("clip"))] = rec
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in loaded}
    total = len(files)
    stems = [f.stem for f in files]
    audio_cache: Dict[int, Tuple[np.ndarray, int]] = {}
    for i, path in enumerate(files, 1):
        clip_id = path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
        audio_cache.clear()
        for name, m in loaded.items():
            if (name, clip_id) in done:
                results[name].append(done[(name, clip_id)])
                continue
            rate = int(getattr(m, "sample_rate", None) or 16000)
            cb = on_start(path, i, total, name) if on_start is not None else None
            rec: Dict[str, Any] = {
                "clip": clip_id,
                "file": str(path),
                "model": name,
                "protocol": keys[name],
                "options": options.to_dict(),
                "version": RECORD_VERSION,
            }
            try:
                if rate not in audio_cache:
                    audio_cache[rate] = load_audio(path, sample_rate=rate, duration=options.duration)
                audio, sr = audio_cache[rate]
                rec["duration_s"] = audio.size / sr
                rec.update(evaluate_clip(audio, sr, m, options, progress=cb or progress))
                rec["status"] = "ok"
            except (AudioFileError, ParameterError) as exc:
                rec["status"] = "error"
                rec["error"] = f"{type(exc).__name__}: {exc}"
            append_record(out, rec)
            rec = json.loads(json.dumps(_clean(rec)))
            results[name].append(rec)
            if on_record is not None:
                on_record(rec, i, total, name)
    return results


# --------------------------------------------------------------------------- summary


def _rate(values: List[bool]) -> Optional[float]:
    return None if not values else sum(values) / len(values)


def _median(values: List[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return None if not vals else float(statistics.median(vals))


def summarize(records: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Success rates per model and strategy (and over all models), set sizes, SNRs, cost.

    Records with ``status != "ok"`` are counted as errors and left out of
    the rates.
    """
    by_model: Dict[str, List[Dict[str, Any]]] = {}
    errors: Dict[str, int] = {}
    for rec in records:
        model = rec.get("model", "?")
        if rec.get("status") != "ok":
            errors[model] = errors.get(model, 0) + 1
            continue
        by_model.setdefault(model, []).append(rec)
    groups = dict(by_model)
    if len(by_model) > 1:
        groups["all models"] = [r for rs in by_model.values() for r in rs]
    out: Dict[str, Any] = {"paper": PAPER, "models": {}, "errors": errors}
    for model, recs in groups.items():
        ks = sorted({int(k) for r in recs for s in r.get("fft_flips", {}).values() for k in s})
        strategies = [s for s in STRATEGIES if any(s in r.get("fft_flips", {}) for r in recs)]
        m: Dict[str, Any] = {"clips": len(recs), "strategies": {}}
        for s in strategies:
            row: Dict[str, Any] = {"k": {}, "snr_db_median": {}, "queries_median": {}}
            for k in ks:
                vals = [r["fft_flips"][s][str(k)] for r in recs if str(k) in r.get("fft_flips", {}).get(s, {})]
                row["k"][str(k)] = _rate([v["success"] for v in vals])
                row["snr_db_median"][str(k)] = _median([_num(v["snr_db"]) for v in vals if v["success"]])
                row["queries_median"][str(k)] = _median([float(v["flip_queries"]) for v in vals])
                row.setdefault("removal_only", {})[str(k)] = _rate(
                    [bool(v["success"] and v["change"] == "remove") for v in vals])
            st = [r["stft_flips"][s] for r in recs if s in r.get("stft_flips", {})]
            row["stft"] = _rate([v["success"] for v in st])
            row["stft_inaudible"] = _rate([bool(v["success"] and v.get("inaudible")) for v in st])
            row["stft_snr_db_median"] = _median([_num(v["snr_db"]) for v in st if v["success"]])
            row["stft_margin_db_median"] = _median([_num(v["margin_db"]) for v in st if v["success"]])
            row["stft_clips"] = len(st)
            m["strategies"][s] = row
        sizes = {}
        for name in ("sufficient", "sufficient_necessary", "complete"):
            vals = [r["fft_explanation"]["sets"][name] for r in recs]
            present = [v for v in vals if v["size"] is not None]
            sizes[name] = {
                "present": len(present),
                "size_median": _median([float(v["size"]) for v in present]),
                "fraction_median": _median([float(v["fraction"]) for v in present]),
            }
        m["fft_sets"] = sizes
        m["n_bins_median"] = _median([float(r["fft_explanation"]["n_bins"]) for r in recs])
        m["explain_queries_median"] = _median([float(r["fft_explanation"]["queries"]) for r in recs])
        m["stft_explain_queries_median"] = _median(
            [float(r["stft_explanation"]["queries"]) for r in recs if "stft_explanation" in r])
        m["seconds_median"] = _median([float(r["seconds"]) for r in recs])
        m["seconds_total"] = float(sum(float(r["seconds"]) for r in recs))
        m["runner_up_gap_median"] = _median(
            [float(r["original"]["score"] - r["original"]["runner_up_score"]) for r in recs
             if r["original"].get("runner_up_score") is not None])
        opts = [r.get("options") for r in recs]
        m["options"] = opts[0] if opts and all(o == opts[0] for o in opts) else "mixed"
        out["models"][model] = m
    return out


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _db(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.1f}"


LABELS = {"causal": "freqrex (causal ranking)", "random": "random bins", "magnitude": "largest magnitude"}


def summary_markdown(summary: Dict[str, Any]) -> str:
    """The results table (Markdown), laid out like the paper's, its numbers beside ours."""
    models = summary["models"]
    ks = sorted({int(k) for m in models.values() for s in m["strategies"].values() for k in s["k"]}) or [1, 2, 3, 4, 5]
    lines = []
    head = ["model", "clips", "method"] + [f"{k} freq." for k in ks] + ["STFT flip", "STFT inaudible flip"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["--:"] * (len(ks) + 2)) + "|")
    paper = summary.get("paper", PAPER)
    prow = ["**paper** (8 models, GTZAN + sung emotion)", "–", "ReX, causal"]
    prow += [_pct(paper["k1"]) if k == 1 else _pct(paper["k5"]) if k == 5 else "–" for k in ks]
    prow += ["–", _pct(paper["stft"])]
    lines.append("| " + " | ".join(prow) + " |")
    for model, m in models.items():
        for s, row in m["strategies"].items():
            name = f"**{model}**" if model == "all models" else model
            cells = [name, str(m["clips"]), LABELS.get(s, s)]
            cells += [_pct(row["k"].get(str(k))) for k in ks]
            cells += [_pct(row["stft"]), _pct(row["stft_inaudible"])]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Flip rate: share of clips whose top-1 class changed. \"k freq.\": at most k whole-clip FFT bins "
                 "changed (removal or a +{g} dB gain). STFT: a few STFT cells, the change scaled under the "
                 "MPEG-1 masking threshold; \"inaudible\": every frame under the threshold.".format(
                     g=_fmt_gain(models)))
    lines.append("")
    # SNR and cost
    lines.append("| model | method | " + " | ".join(f"median SNR k={k} (dB)" for k in ks)
                 + " | STFT median SNR (dB) | STFT median margin (dB) | removal-only k=1 | removal-only k=5 |")
    lines.append("|---|---|" + "|".join(["--:"] * (len(ks) + 4)) + "|")
    for model, m in models.items():
        for s, row in m["strategies"].items():
            cells = [model, LABELS.get(s, s)] + [_db(row["snr_db_median"].get(str(k))) for k in ks]
            cells += [_db(row["stft_snr_db_median"]), _db(row["stft_margin_db_median"]),
                      _pct(row.get("removal_only", {}).get("1")), _pct(row.get("removal_only", {}).get("5"))]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| model | clips | FFT bins | sufficient (median bins, share) | sufficient & necessary | complete "
                 "| explanation queries (fft / stft) | top-1 vs runner-up gap | seconds per clip |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for model, m in models.items():
        def cell(name: str) -> str:
            v = m["fft_sets"][name]
            if v["size_median"] is None:
                return f"absent ({m['clips']})"
            miss = m["clips"] - v["present"]
            extra = f", absent in {miss}" if miss else ""
            return f"{v['size_median']:.0f} ({100 * v['fraction_median']:.1f}%{extra})"

        cells = [model, str(m["clips"]), _db(m["n_bins_median"]).replace(".0", ""), cell("sufficient"),
                 cell("sufficient_necessary"), cell("complete"),
                 f"{_db(m['explain_queries_median'])} / "
                 + ("fft's, projected" if m["stft_explain_queries_median"] == 0 else _db(m["stft_explain_queries_median"])),
                 "–" if m["runner_up_gap_median"] is None else f"{m['runner_up_gap_median']:.3f}",
                 _db(m["seconds_median"])]
        lines.append("| " + " | ".join(cells) + " |")
    if summary.get("errors"):
        lines.append("")
        lines.append("Clips that could not be evaluated: " + ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()))
    return "\n".join(lines) + "\n"


def _fmt_gain(models: Dict[str, Any]) -> str:
    for m in models.values():
        o = m.get("options")
        if isinstance(o, dict):
            return f"{o.get('max_gain_db', 20):g}"
    return "20"


def write_summary(records: Iterable[Dict[str, Any]], markdown: Optional[os.PathLike] = None,
                  json_path: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Summarise records and write the Markdown table and/or the JSON summary (atomically)."""
    summary = summarize(records)
    for path, text in ((markdown, summary_markdown(summary) if markdown else None),
                       (json_path, json.dumps(_clean(summary), indent=2) + "\n" if json_path else None)):
        if path is None:
            continue
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_text(p, text)
    return summary
