"""ART's black-box attacks as peers of freqrex's flips, at an exact query budget.

:func:`art_flip` runs one untargeted attack of the Adversarial Robustness
Toolbox (``adversarial-robustness-toolbox`` 1.20.1, the ``peers`` extra) on one
clip and reports it the way freqrex reports a flip: success, model queries,
SNR, dB_x and the psychoacoustic margin of the quietest flip found.

How the attacks are run
-----------------------
* The model is any freqrex model: a callable ``(batch, samples) float32 ->
  (batch, classes)`` scores; the decision is the top-1 class.  An untargeted
  flip is a waveform whose top-1 class differs from the original class.
* Every waveform the attack sends to the model goes through one counting
  wrapper.  The budget is exact: when a batch would overrun it, only the
  waveforms that still fit are evaluated, then the attack is stopped (a private
  exception raised from the predict function and caught here).  The count
  includes ART's own bookkeeping calls (each attack first predicts the
  original, Square recomputes its loss), since they reach the model too.
* The wrapper remembers, among all waveforms that flipped the class, the one
  with the highest SNR: that is the result, whether the attack finished, gave
  up or was stopped by the budget.
* SimBA and Square stop at their first flip, often after a handful of queries.
  So that they too use the budget they are compared at, ``escalate_db`` (default
  6 dB): after a run that flipped, the attack is run again from the original
  with its perturbation size set ``escalate_db`` quieter (SimBA's
  ``step_snr_db``, Square's ``snr_db``), as long as runs keep flipping and budget
  is left (a run that fails to flip ends it; ``escalate_db=0`` or a fixed
  ``epsilon``/``eps`` turns this off).  The escalation leaves the refinement's
  ``ceil(log2(1 / refine_tol))`` queries (6) untouched.  HopSkipJump needs no such help: it keeps
  shrinking its perturbation until the budget is spent.
* ``refine=True`` (default): budget still left is spent on a bisection of the
  scale ``a`` of the best perturbation, ``x + a * (x_adv - x)``, ``a`` in
  ``(0, 1]``, which can only raise the SNR.  ``attack_queries`` and
  ``snr_db_attack`` in the result tell what the first ART run alone achieved;
  ``runs`` counts the runs.
* Seeds: the attacks draw from NumPy's global generator (and Square from
  Python's ``random``); both are seeded from ``seed`` for the call and restored
  afterwards, so the same seed gives the same result.

1-D adaptations (ART's attacks are written for images)
-----------------------------------------------------
* **HopSkipJump** (``art.attacks.evasion.HopSkipJump``, L2, untargeted) runs on
  the waveform as it is: ``BlackBoxClassifier(input_shape=(N,), nb_classes,
  clip_values=(-1, 1))``.  ART draws its starting point with an *unseeded*
  ``np.random.RandomState()``, so the starting point is drawn here instead, with
  the same rule (uniform noise in the clip range, up to ``init_size`` tries,
  seeded) and passed as ``x_adv_init``.  ``init_eval``/``max_eval`` are small
  (default 16/64) so that an iteration (a binary search of about
  ``log2(sqrt(N)/0.01)`` queries, ``init_eval * sqrt(t)`` gradient queries, a few
  step-size queries) fits in a few dozen queries even for 480,000 samples.
* **SimBA** (``art.attacks.evasion.SimBA``, untargeted) needs a
  ``NeuralNetworkMixin`` estimator, so the model is wrapped in
  ``BlackBoxClassifierNeuralNetwork`` (the same black box with the mixin ART
  requires).  ART's ``dct`` mode applies a 2-D block IDCT over a square image:
  meaningless (and broken) for a ``(1, 1, N)`` waveform.  The 1-D equivalent used
  here (default ``simba_domain="dct"``): the estimator's input is the orthonormal
  1-D DCT-II of the waveform, shaped ``(1, 1, N)`` (channels first), and ART's
  ``px`` mode with ``order="random"`` perturbs one DCT coefficient at a time by
  ``+-epsilon`` -- one cosine over the whole clip per step, the SimBA-DCT idea in
  1-D.  The predict function inverts the DCT and clips the waveform to
  ``(-1, 1)`` (clip values cannot be stated in the DCT domain).
  ``simba_domain="time"`` runs ``px`` on the samples themselves (one click per
  step, ``clip_values=(-1, 1)``).  ``epsilon`` is set from the clip:
  ``||x|| * 10**(-step_snr_db / 20)`` (default 30 dB per step).  ART's SimBA asks
  for probabilities summing to one: the scores are divided by their sum
  (non-negative scores) or softmaxed (otherwise) -- the top-1 class is unchanged.
  Each step costs two queries (ART always evaluates both signs).
* **Square** (``art.attacks.evasion.SquareAttack``, L-inf by default) needs a 4-D
  ``(batch, channels, height, width)`` input whose height and width both exceed
  its tile size (with height 1 its ``np.random.randint(0, height - tile)``
  fails).  The waveform is laid out as a ``(1, H, W)`` raster,
  ``W = ceil(sqrt(N))``, ``H = ceil(N / W)``, zero-padded at the end; the predict
  function reads the first N samples back (the padding is ignored).  A square
  tile is then ``h`` runs of ``h`` consecutive samples, ``W`` samples apart, and
  ART's initial "vertical stripes" are a +-eps pattern repeating every W samples.
  ``eps`` (the L-inf bound per sample) is set from the clip:
  ``rms(x) * 10**(-snr_db / 20)`` (default 20 dB, so every candidate has an SNR of
  at least 20 dB); ``p_init`` defaults to 0.05 (ART's 0.8 makes tiles as large as
  the raster).  Each iteration sends three waveforms (ART re-predicts the
  current point, its loss, and the candidate's loss).  ``max_iter`` is set to
  ``budget // 3`` so that ART's tile-size schedule spans the budget.  The L2
  variant (``norm=2``) is not usable in ART 1.20.1: its window update computes
  ``delta_new /= norm(delta_new) * sqrt(eps**2 - ...)`` where the Square paper's
  code multiplies by the second factor, so it divides by zero once the
  perturbation reaches its radius (NaN candidates).

Return value (a dict)
---------------------
``success, queries, snr_db, db_x, margin_db, new_class, elapsed_s`` as asked by
issue 9, plus ``attack, budget, original_class, attack_queries, snr_db_attack,
stopped_by_budget, runs`` and (``return_audio=True``) ``adversarial``.  ``snr_db``,
``db_x``, ``margin_db`` and ``new_class`` are None when no flip was found.
"""

from __future__ import annotations

import math
import random
import time
from typing import Optional

import numpy as np

ATTACKS = ("hopskipjump", "simba", "square")

__all__ = ["art_flip", "ATTACKS", "ArtUnavailable"]


class ArtUnavailable(ImportError):
    """ART (``adversarial-robustness-toolbox``) is not installed."""


class _BudgetSpent(Exception):
    """Raised from the predict function when the query budget is spent."""


def _import_art():
    try:
        import art  # noqa: F401
        from art.estimators.classification import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork
        from art.attacks.evasion import HopSkipJump, SimBA, SquareAttack
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ArtUnavailable(
            "ART is not installed: pip install adversarial-robustness-toolbox==1.20.1 "
            "(or pip install '.[peers]')"
        ) from exc
    return BlackBoxClassifier, BlackBoxClassifierNeuralNetwork, HopSkipJump, SimBA, SquareAttack


def _db_x(x: np.ndarray, y: np.ndarray) -> float:
    peak_d = float(np.max(np.abs(y.astype(np.float64) - x)))
    peak_x = float(np.max(np.abs(x)))
    if peak_d == 0:
        return -math.inf
    if peak_x == 0:
        return math.inf
    return 20 * math.log10(peak_d) - 20 * math.log10(peak_x)


class _Counter:
    """The one door to the model: counts waveforms, enforces the budget, keeps the best flip."""

    def __init__(self, model, x: np.ndarray, budget: int, original_class: Optional[int]):
        self.model = model
        self.x = x
        self.x64 = x.astype(np.float64)
        self.signal = float(np.sum(self.x64 ** 2))
        self.budget = int(budget)
        self.queries = 0
        self.original_class = original_class
        self.best: Optional[np.ndarray] = None
        self.best_snr = -math.inf
        self.best_class: Optional[int] = None
        self.flips = 0
        self.n_classes: Optional[int] = None

    @property
    def left(self) -> int:
        return self.budget - self.queries

    def _snr(self, y: np.ndarray) -> float:
        noise = float(np.sum((y.astype(np.float64) - self.x64) ** 2))
        if noise == 0:
            return math.inf
        if self.signal == 0:
            return -math.inf
        return 10 * math.log10(self.signal / noise)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        """Scores of ``waves`` (n, N); raises _BudgetSpent after the last waveform that fits."""
        waves = np.ascontiguousarray(np.clip(waves, -1.0, 1.0), dtype=np.float32)
        n = waves.shape[0]
        take = min(n, self.left)
        if take <= 0:
            raise _BudgetSpent()
        scores = np.asarray(self.model(waves[:take]), dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] != take:
            raise ValueError(f"the model returned scores of shape {scores.shape} for {take} waveforms")
        self.queries += take
        if self.n_classes is None:
            self.n_classes = scores.shape[1]
        top = np.argmax(scores, axis=1)
        if self.original_class is not None:
            flipped = np.flatnonzero(top != self.original_class)
            self.flips += len(flipped)
            for i in flipped:
                snr = self._snr(waves[i])
                if snr > self.best_snr:
                    self.best_snr, self.best, self.best_class = snr, waves[i].copy(), int(top[i])
        if take < n:
            raise _BudgetSpent()
        return scores


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores as rows summing to one (for SimBA), top-1 unchanged."""
    if np.all(scores >= 0):
        total = scores.sum(axis=1, keepdims=True)
        if np.all(total > 0):
            return scores / total
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _declared_classes(model) -> Optional[int]:
    n = getattr(model, "n_classes", None)
    if n is None and getattr(model, "class_names", None) is not None:
        n = len(model.class_names)
    return int(n) if n else None


def _one_hot(cls: int, n: int) -> np.ndarray:
    y = np.zeros((1, n), dtype=np.float32)
    y[0, cls] = 1
    return y


def _run_hopskipjump(counter: _Counter, x: np.ndarray, n_classes: int, rng: np.random.Generator, p: dict):
    BlackBoxClassifier, _, HopSkipJump, _, _ = _import_art()
    n = x.size
    clf = BlackBoxClassifier(lambda b: counter(b.reshape(len(b), n)), input_shape=(n,),
                             nb_classes=n_classes, clip_values=(-1.0, 1.0))
    init_eval = int(p.get("init_eval", 16))
    attack = HopSkipJump(clf, targeted=False, norm=2, max_iter=int(p.get("max_iter", 1000)),
                         max_eval=int(p.get("max_eval", max(64, init_eval))), init_eval=init_eval,
                         init_size=int(p.get("init_size", 20)), batch_size=int(p.get("batch_size", 64)),
                         verbose=False)
    # ART's own starting point comes from an unseeded RandomState: draw it here, seeded.
    init = None
    for _ in range(attack.init_size):
        cand = rng.uniform(-1.0, 1.0, size=n).astype(np.float32)
        if int(np.argmax(counter(cand[None]), axis=1)[0]) != counter.original_class:
            init = cand
            break
    if init is None:
        return  # no random start flips the class: HopSkipJump cannot begin
    attack.generate(x[None], y=_one_hot(counter.original_class, n_classes), x_adv_init=init[None])


def _run_simba(counter: _Counter, x: np.ndarray, n_classes: int, rng: np.random.Generator, p: dict):
    from scipy.fft import dct, idct

    _, BlackBoxNN, _, SimBA, _ = _import_art()
    n = x.size
    domain = p.get("simba_domain", "dct")
    eps = float(p.get("epsilon", 0.0)) or float(np.linalg.norm(x.astype(np.float64))) * 10 ** (
        -float(p.get("step_snr_db", 30.0)) / 20)
    if eps <= 0:
        eps = 1e-3
    if domain == "dct":
        def predict(b):
            w = idct(b.reshape(len(b), n).astype(np.float64), type=2, norm="ortho", axis=1)
            return _as_probabilities(counter(w))
        x_in = dct(x.astype(np.float64), type=2, norm="ortho").astype(np.float32)
        clip = None
    elif domain == "time":
        def predict(b):
            return _as_probabilities(counter(b.reshape(len(b), n)))
        x_in = x
        clip = (-1.0, 1.0)
    else:
        raise ValueError(f"simba_domain must be 'dct' or 'time', got {domain!r}")
    clf = BlackBoxNN(predict, input_shape=(1, 1, n), nb_classes=n_classes, channels_first=True,
                     clip_values=clip)
    max_iter = int(p.get("max_iter", max(1, (counter.left - 1) // 2)))
    attack = SimBA(clf, attack="px", max_iter=max_iter, order="random", epsilon=eps, freq_dim=1,
                   stride=1, targeted=False, batch_size=1, verbose=False)
    attack.generate(x_in.reshape(1, 1, 1, n), y=_one_hot(counter.original_class, n_classes))


def _run_square(counter: _Counter, x: np.ndarray, n_classes: int, rng: np.random.Generator, p: dict):
    _, BlackBoxNN, _, _, SquareAttack = _import_art()
    n = x.size
    width = int(math.ceil(math.sqrt(n)))
    height = int(math.ceil(n / width))
    if height < 6:
        raise ValueError(f"Square needs at least 36 samples, got {n}")
    norm = p.get("norm", np.inf)
    if norm in ("inf", np.inf):
        eps = float(p.get("eps", 0.0)) or float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) * 10 ** (
            -float(p.get("snr_db", 20.0)) / 20)
    else:
        eps = float(p.get("eps", 0.0)) or float(np.linalg.norm(x.astype(np.float64))) * 10 ** (
            -float(p.get("snr_db", 20.0)) / 20)
    eps = max(eps, 1e-6)

    def predict(b):
        flat = b.reshape(len(b), height * width)[:, :n]
        return counter(flat)

    padded = np.zeros(height * width, dtype=np.float32)
    padded[:n] = x
    clf = BlackBoxNN(predict, input_shape=(1, height, width), nb_classes=n_classes, channels_first=True,
                     clip_values=(-1.0, 1.0))
    max_iter = int(p.get("max_iter", max(1, counter.left // 3)))
    attack = SquareAttack(clf, norm=norm, max_iter=max_iter, eps=eps, p_init=float(p.get("p_init", 0.05)),
                          nb_restarts=int(p.get("nb_restarts", 1)), batch_size=1, verbose=False)
    attack.generate(padded.reshape(1, 1, height, width), y=_one_hot(counter.original_class, n_classes))


_RUNNERS = {"hopskipjump": _run_hopskipjump, "simba": _run_simba, "square": _run_square}
# The loudness level each escalation raises, its default, and the option that fixes the size instead.
_LEVELS = {"simba": "step_snr_db", "square": "snr_db"}
_LEVEL_DEFAULTS = {"simba": 30.0, "square": 20.0}
_FIXED = {"simba": "epsilon", "square": "eps"}


def _refine(counter: _Counter, x: np.ndarray, tol: float) -> None:
    """Bisect the scale of the best perturbation with the budget left (only raises the SNR)."""
    if counter.best is None:
        return
    delta = counter.best.astype(np.float64) - x
    lo, hi = 0.0, 1.0
    try:
        while counter.left > 0 and hi - lo > tol:
            mid = 0.5 * (lo + hi)
            before = counter.best_snr
            counter((x + mid * delta)[None])
            if counter.best_snr > before:
                hi = mid
            else:
                lo = mid
    except _BudgetSpent:
        pass


def art_flip(audio, sample_rate, model, *, attack: str, budget: int, seed: int = 0,
             original_class=None, escalate_db: float = 6.0, refine: bool = True,
             refine_tol: float = 1 / 64, return_audio: bool = False, **params) -> dict:
    """Run one ART black-box attack on a clip, within an exact query budget.

    Parameters
    ----------
    audio : array_like
        Mono waveform ``(samples,)`` in [-1, 1] at the model's rate.
    sample_rate : int
        Sample rate (Hz), for the psychoacoustic margin.
    model : callable
        ``model(waves float32 (batch, samples)) -> scores (batch, classes)``.
    attack : {"hopskipjump", "simba", "square"}
        The ART attack (see the module docstring for the 1-D adaptations).
    budget : int
        Waveforms the model may see in all (the original's score included), >= 1.
    seed : int, default 0
        Seeds the attack: the same seed gives the same result.
    original_class : int, optional
        The class to move away from; by default the model's top-1 on the
        original (one query).
    escalate_db : float, default 6.0
        SimBA and Square: after a run that flipped, run again this much quieter
        while runs keep flipping and budget is left (0: one run, ART as shipped).
    refine : bool, default True
        Spend the budget left after the attack on a bisection of the scale of the
        best perturbation (see the module docstring).
    refine_tol : float, default 1/64
        Stop the bisection when the scale interval is narrower.
    return_audio : bool, default False
        Add the best adversarial waveform as ``"adversarial"`` (float32 or None).
    **params
        Attack options: HopSkipJump ``init_eval`` (16), ``max_eval`` (64),
        ``max_iter`` (1000), ``init_size`` (20), ``batch_size`` (64); SimBA
        ``simba_domain`` ("dct"|"time"), ``step_snr_db`` (30) or ``epsilon``,
        ``max_iter``; Square ``norm`` (np.inf; 2 is broken in ART 1.20.1), ``snr_db`` (20) or ``eps``,
        ``p_init`` (0.05), ``max_iter``, ``nb_restarts`` (1).

    Returns
    -------
    dict
        ``success, queries, snr_db, db_x, margin_db, new_class, elapsed_s,
        attack, budget, original_class, attack_queries, snr_db_attack,
        stopped_by_budget, runs`` (and ``adversarial``).
    """
    from freqrex.psychoacoustic import perturbation_margin_db, snr_db

    start = time.perf_counter()
    attack = str(attack).lower()
    if attack not in _RUNNERS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    if int(budget) < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if not 0 < float(refine_tol) < 1:
        raise ValueError(f"refine_tol must be in (0, 1), got {refine_tol}")
    _import_art()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("audio must be a non-empty finite 1-D waveform")
    x = np.clip(x, -1.0, 1.0)
    counter = _Counter(model, x, int(budget), None if original_class is None else int(original_class))
    stopped = False
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    try:
        try:
            if counter.original_class is None:
                counter.original_class = int(np.argmax(counter(x[None]), axis=1)[0])
            n_classes = counter.n_classes or _declared_classes(model)
            if n_classes is None:  # original class given, width unknown: one look at the original
                counter(x[None])
                n_classes = counter.n_classes
            _RUNNERS[attack](counter, x, n_classes, rng, params)
        except _BudgetSpent:
            stopped = True
        attack_queries, snr_attack, runs = counter.queries, counter.best_snr, 1
        level_key = _LEVELS.get(attack)
        if escalate_db and level_key and not stopped and not params.get(_FIXED[attack]):
            level = float(params.get(level_key, _LEVEL_DEFAULTS[attack]))
            # keep what the refinement needs: the last, failing run would otherwise take it all
            reserve = min(counter.left, max(0, int(math.ceil(math.log2(1 / refine_tol)))) if refine else 0)
            counter.budget -= reserve
            try:
                while counter.left > 0 and counter.best is not None:
                    before = counter.flips
                    level += float(escalate_db)
                    runs += 1
                    try:
                        _RUNNERS[attack](counter, x, n_classes, rng, {**params, level_key: level})
                    except _BudgetSpent:
                        stopped = True
                        break
                    if counter.flips == before:  # this level no longer flips
                        break
            finally:
                counter.budget += reserve
        if refine:
            _refine(counter, x.astype(np.float64), float(refine_tol))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    result = dict(success=counter.best is not None, queries=counter.queries, snr_db=None, db_x=None,
                  margin_db=None, new_class=None, elapsed_s=0.0, attack=attack, budget=int(budget),
                  original_class=counter.original_class, attack_queries=attack_queries,
                  snr_db_attack=None if counter.best is None else float(snr_attack),
                  stopped_by_budget=stopped, runs=runs)
    if counter.best is not None:
        y = counter.best
        result["snr_db"] = float(snr_db(x, y))
        result["db_x"] = _db_x(x, y)
        margins, _ = perturbation_margin_db(x, y, sample_rate)
        result["margin_db"] = float(np.min(margins))
        result["new_class"] = counter.best_class
    if return_audio:
        result["adversarial"] = None if counter.best is None else counter.best.copy()
    result["elapsed_s"] = time.perf_counter() - start
    return result


def main(argv=None) -> int:
    """``python -m benches.peers.art_flips [AUDIO] --attack hopskipjump --budget 400``: one JSON line per attack."""
    import argparse
    import json

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("audio", nargs="?", help="audio file (default: freqrex's demo clip)")
    p.add_argument("--model", default="MSD_musicnn", help="freqrex.models.load_model spec (default MSD_musicnn)")
    p.add_argument("--attack", action="append", choices=ATTACKS, help="repeat for several (default: all)")
    p.add_argument("--budget", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--duration", type=float, default=30.0)
    args = p.parse_args(argv)

    from freqrex.io import demo_clip, load_audio
    from freqrex.models import load_model

    model = load_model(args.model)
    rate = int(getattr(model, "sample_rate", 16000))
    if args.audio:
        audio, sr = load_audio(args.audio, sample_rate=rate, duration=args.duration)
    else:
        audio, sr = demo_clip(sample_rate=rate)
        audio = audio[: int(args.duration * sr)]
    for attack in args.attack or ATTACKS:
        r = art_flip(audio, sr, model, attack=attack, budget=args.budget, seed=args.seed)
        if r["new_class"] is not None and hasattr(model, "class_name"):
            r["new_name"] = model.class_name(r["new_class"])
        if hasattr(model, "class_name"):
            r["original_name"] = model.class_name(r["original_class"])
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
