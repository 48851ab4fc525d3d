"""Typed evaluation records: one frozen :class:`ClipRecord` per (clip, model) line of a JSONL file.

``freqrex evaluate`` writes string-keyed JSON records (:func:`.protocol.evaluate_clip`
and the runner's header fields); this module reads them into frozen dataclasses
and writes them back unchanged:

* :class:`ClipRecord` - the clip, model, status (and error), protocol and
  options, the original :class:`Decision`, the :class:`ExplanationSummary` of
  the ``fft`` (and ``stft``) explanation, the flips, seconds and version;
* :class:`FlipSummary` - one flip (what ``_flip_summary`` writes);
* :class:`SetSummary` - one set of an explanation (size, share, score).

FFT flips are keyed by strategy, then by ``k`` (an ``int``); STFT flips by
strategy.  ``ClipRecord.from_dict(d).to_dict() == d`` for every record of every
version: the keys a record was read with are remembered (a record of an older
version is written back without the fields it lacked); a field absent from an
older record reads as None (an empty dict for flips).  :func:`read_results`
reads a file, refusing a record written by a newer freqrex
(:class:`~freqrex.errors.ResultFileError`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Tuple

import numpy as np
from ..errors import ParameterError, ResultFileError
from .protocol import RECORD_VERSION, STRATEGIES
from .records import _clean, load_records

__all__ = ["ClipRecord", "Decision", "ExplanationSummary", "FlipSummary", "SetSummary", "read_results"]


def _f(v: Any) -> Any:
    """A number as stored, with the ``"inf"``/``"-inf"`` strings of non-finite values made floats again."""
    if isinstance(v, str) and v in ("inf", "-inf", "Infinity", "-Infinity"):
        return float(v)
    return v


def _tuple(v: Any) -> Optional[Tuple[Any, ...]]:
    return None if v is None else tuple(_f(x) for x in v)


def _k(k: Any, what: str, strategy: Any) -> int:
    """A flip map's key: the number of changed bins ``k`` (an integer, stored as a string)."""
    try:
        return int(k)
    except (TypeError, ValueError):
        raise ParameterError(f"{what}[{strategy!r}]: the key {k!r} is not a number of bins k") from None


def _as_dict(v: Any, what: str) -> Dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ParameterError(f"{what} must be a JSON object, got {type(v).__name__}")
    return dict(v)


class _Layout:
    """Shared by the record classes: which attribute is which JSON key, and what to write back.

    ``_KEYS`` maps attributes to JSON keys; ``_OMIT`` lists the keys a record
    made in Python (not read) leaves out when None or empty (``error`` of an
    ``ok`` record, the sections of an error record).  A record read with
    :meth:`from_dict` writes the known keys it was read with (so an older
    record is written back in its own layout), plus any field given a value
    since (:func:`dataclasses.replace`).
    """

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = ()
    _OMIT: ClassVar[FrozenSet[str]] = frozenset()

    @classmethod
    def _known(cls, d: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any], FrozenSet[str]]:
        """The known fields by attribute, the unknown keys, and the known keys present."""
        keys = {k for _, k in cls._KEYS}
        return ({a: d.get(k) for a, k in cls._KEYS}, {k: v for k, v in d.items() if k not in keys},
                frozenset(k for k in d if k in keys))

    def _emit(self, values: Dict[str, Any]) -> Dict[str, Any]:
        read_with: Optional[FrozenSet[str]] = getattr(self, "_read_keys")
        out: Dict[str, Any] = {}
        for _, key in self._KEYS:
            v = values[key]
            empty = v is None or v == {}
            if read_with is not None:  # read: its own keys, and any field set since (dataclasses.replace)
                if key not in read_with and empty:
                    continue
            elif key in self._OMIT and empty:
                continue
            out[key] = v
        for k, v in getattr(self, "extra").items():
            out.setdefault(k, v)
        return _clean(out)


def _read_keys() -> Any:
    return field(default=None, repr=False, compare=False)


@dataclass(frozen=True, repr=False)
class FlipSummary(_Layout):
    """One flip of an evaluation record (FFT flip of ``k`` bins, or STFT flip).

    ``new_class``/``new_name`` are the decision after the change (the original
    class when the flip failed); ``closest_class``/``closest_name`` the class
    that came closest to overtaking it (``closest_margin``: its score minus the
    original class's, > 0 when it did).  The audibility fields are those of
    :class:`freqrex.FlipResult` (``over_threshold_share`` etc.: MPEG-1 model;
    ``art_*``: ART's model).  ``snr_db``, ``db_x`` and ``change`` are None for a
    failed flip; the fields added in later record versions are None in older
    records.  Unknown keys are kept in ``extra`` and written back.
    """

    success: bool
    n_changed: Optional[int] = None
    change: Optional[str] = None
    snr_db: Optional[float] = None
    db_x: Optional[float] = None
    method: Optional[str] = None
    new_class: Optional[int] = None
    new_name: Optional[str] = None
    new_score: Optional[float] = None
    original_class_score: Optional[float] = None
    frequencies_hz: Tuple[float, ...] = ()
    frames: Optional[Tuple[int, ...]] = None
    inaudible: Optional[bool] = None
    margin_db: Optional[float] = None
    scale: Optional[float] = None
    flip_queries: Optional[int] = None
    n_cells: Optional[int] = None
    queries: Optional[int] = None
    seconds: Optional[float] = None
    quietest_frame_snr_db: Optional[float] = None
    over_threshold_share: Optional[float] = None
    max_excess_db: Optional[float] = None
    art_over_threshold_share: Optional[float] = None
    art_max_excess_db: Optional[float] = None
    louder_than_clip_share: Optional[float] = None
    closest_margin: Optional[float] = None
    closest_class: Optional[int] = None
    closest_name: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _read_keys: Optional[FrozenSet[str]] = _read_keys()

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = tuple(
        (n, n) for n in ("success", "n_changed", "change", "snr_db", "db_x", "method", "new_class", "new_name",
                         "new_score", "original_class_score", "frequencies_hz", "frames", "inaudible", "margin_db",
                         "scale", "flip_queries", "n_cells", "queries", "seconds", "quietest_frame_snr_db",
                         "over_threshold_share", "max_excess_db", "art_over_threshold_share", "art_max_excess_db",
                         "louder_than_clip_share", "closest_margin", "closest_class", "closest_name"))
    _LISTS: ClassVar[FrozenSet[str]] = frozenset({"frequencies_hz", "frames"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FlipSummary":
        """A flip from its JSON object (absent fields None)."""
        values, extra, keys = cls._known(_as_dict(d, "a flip"))
        for a in values:
            values[a] = _tuple(values[a]) if a in cls._LISTS else _f(values[a])
        if values["frequencies_hz"] is None:
            values["frequencies_hz"] = ()
        values["success"] = bool(values["success"])
        return cls(**values, extra=extra, _read_keys=keys)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object of this flip (as it was read, or the current layout)."""
        return self._emit({k: getattr(self, a) for a, k in self._KEYS})

    def __repr__(self) -> str:
        if not self.success:
            return f"FlipSummary(failed, n_changed={self.n_changed}, queries={self.queries})"
        snr = "?" if self.snr_db is None else f"{self.snr_db:.1f} dB"
        return (f"FlipSummary(-> {self.new_name or self.new_class!s}, {self.change}, n_changed={self.n_changed}, "
                f"snr={snr}, inaudible={self.inaudible}, queries={self.queries})")


@dataclass(frozen=True)
class SetSummary(_Layout):
    """One set of an explanation: ``size`` (elements), ``fraction`` (of all), the model's ``score``
    on it, ``reason`` when it is absent (size None), and for the ``fft`` sufficient and complete
    sets the kept bins: ``kept_bins``, a packed mask (record version 6 on; :meth:`keep_mask`), or
    in older records ``kept_bands_hz``, frequency ranges (record versions 3-5)."""

    size: Optional[int] = None
    fraction: Optional[float] = None
    score: Optional[float] = None
    reason: Optional[str] = None
    kept_bins: Optional[Mapping[str, Any]] = field(default=None, repr=False)
    kept_bands_hz: Optional[Tuple[Tuple[float, float], ...]] = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _read_keys: Optional[FrozenSet[str]] = _read_keys()

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = tuple(
        (n, n) for n in ("size", "fraction", "score", "reason", "kept_bins", "kept_bands_hz"))
    _OMIT: ClassVar[FrozenSet[str]] = frozenset({"kept_bins", "kept_bands_hz"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SetSummary":
        values, extra, keys = cls._known(_as_dict(d, "a set"))
        bands = values.pop("kept_bands_hz")
        packed = values.pop("kept_bins")
        values = {a: _f(v) for a, v in values.items()}
        return cls(**values, kept_bins=None if packed is None else dict(_as_dict(packed, "kept_bins")),
                   kept_bands_hz=None if bands is None else tuple(tuple(_f(x) for x in b) for b in bands),
                   extra=extra, _read_keys=keys)

    def to_dict(self) -> Dict[str, Any]:
        values = {k: getattr(self, a) for a, k in self._KEYS}
        if self.kept_bins is not None:
            values["kept_bins"] = dict(self.kept_bins)
        return self._emit(values)

    def keep_mask(self, n_bins: Optional[int] = None, bin_hz: Optional[float] = None) -> Optional[np.ndarray]:
        """The set's boolean mask over the spectrum's bins; None when the record has no kept bins.

        ``n_bins`` and ``bin_hz`` (those of the :class:`ExplanationSummary`) are needed only for a
        record of versions 3-5 (``kept_bands_hz``); :meth:`ExplanationSummary.keep_mask` passes them.

        Raises
        ------
        ResultFileError
            A ``kept_bins`` that is not a packed mask.
        """
        from .transfer import keep_mask, unpack_kept_bins

        if self.kept_bins is not None:
            return unpack_kept_bins(self.kept_bins)
        if self.kept_bands_hz is None:
            return None
        if n_bins is None or bin_hz is None:
            raise ParameterError("kept_bands_hz (record versions 3-5): give n_bins and bin_hz")
        n = 2 * (int(n_bins) - 1)
        return keep_mask(self.kept_bands_hz, float(bin_hz), n, float(bin_hz) * n)


@dataclass(frozen=True)
class ExplanationSummary(_Layout):
    """What a record keeps of an explanation: its ``sets`` (name -> :class:`SetSummary`), queries
    and seconds; ``n_bins``, ``bin_hz``, ``search_queries``, ``extraction_queries`` for ``fft``;
    ``shape`` for ``stft``; ``projected_from="fft"`` when the STFT flips used the ``fft``
    explanation (no ``stft`` explanation was run, no sets)."""

    sets: Dict[str, SetSummary] = field(default_factory=dict)
    queries: Optional[int] = None
    seconds: Optional[float] = None
    n_bins: Optional[int] = None
    bin_hz: Optional[float] = None
    search_queries: Optional[int] = None
    extraction_queries: Optional[int] = None
    shape: Optional[Tuple[int, ...]] = None
    projected_from: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _read_keys: Optional[FrozenSet[str]] = _read_keys()

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = tuple(
        (n, n) for n in ("sets", "queries", "seconds", "n_bins", "bin_hz", "search_queries", "extraction_queries",
                         "shape", "projected_from"))
    _OMIT: ClassVar[FrozenSet[str]] = frozenset(k for _, k in _KEYS)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExplanationSummary":
        values, extra, keys = cls._known(_as_dict(d, "an explanation summary"))
        sets = {str(n): SetSummary.from_dict(s) for n, s in _as_dict(values.pop("sets"), "sets").items()}
        shape = values.pop("shape")
        values = {a: _f(v) for a, v in values.items()}
        return cls(sets=sets, shape=None if shape is None else tuple(shape), **values, extra=extra,
                   _read_keys=keys)

    def to_dict(self) -> Dict[str, Any]:
        values = {k: getattr(self, a) for a, k in self._KEYS}
        values["sets"] = {n: s.to_dict() for n, s in self.sets.items()}
        return self._emit(values)

    def keep_mask(self, name: str) -> Optional[np.ndarray]:
        """The boolean mask over the ``fft`` bins of the set ``name`` (``"sufficient"`` or
        ``"complete"``); None when the set is absent or the record kept no bins."""
        s = self.sets.get(name)
        return None if s is None else s.keep_mask(self.n_bins, self.bin_hz)


@dataclass(frozen=True)
class Decision(_Layout):
    """The model's decision on the original clip: ``class_`` (index), ``name``, ``score``, and the
    runner-up's index and score (JSON keys ``class``, ``name``, ``score``, ``runner_up``,
    ``runner_up_score``)."""

    class_: Optional[int] = None
    name: Optional[str] = None
    score: Optional[float] = None
    runner_up: Optional[int] = None
    runner_up_score: Optional[float] = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _read_keys: Optional[FrozenSet[str]] = _read_keys()

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = (
        ("class_", "class"), ("name", "name"), ("score", "score"), ("runner_up", "runner_up"),
        ("runner_up_score", "runner_up_score"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Decision":
        values, extra, keys = cls._known(_as_dict(d, "a decision"))
        return cls(**{a: _f(v) for a, v in values.items()}, extra=extra, _read_keys=keys)

    def to_dict(self) -> Dict[str, Any]:
        return self._emit({k: getattr(self, a) for a, k in self._KEYS})

    @property
    def label(self) -> str:
        """The class name, or ``class <index>`` for a model without names."""
        return str(self.name) if self.name is not None else f"class {self.class_}"


#: The flip maps of a record: (attribute, JSON key, keyed by k).
_FLIP_MAPS = (("fft_flips", True), ("fft_flips_given_explanation", True), ("stft_flips", False),
              ("stft_flips_given_explanation", False))


@dataclass(frozen=True, repr=False)
class ClipRecord(_Layout):
    """One (clip, model) record of ``freqrex evaluate``, typed; frozen.

    Attributes
    ----------
    clip : str
        The clip's short label; ``clip_id`` its unique id (resolved path; None
        before record version 3), ``file`` the path as given.
    model : str
    status : str
        ``"ok"``, or ``"error"`` with the message in ``error`` (an error
        record has no decision, explanations or flips: None and empty dicts).
    protocol : str
        The resume key (:meth:`EvalOptions.key`); ``options`` the protocol as a
        dict (:meth:`EvalOptions.to_dict`; fields of its version).
    version : int
        The record layout's version (:data:`RECORD_VERSION` for new records).
    original : Decision
        The model's decision on the clip.
    fft_explanation, stft_explanation : ExplanationSummary
    fft_flips : dict
        Strategy -> ``k`` (int) -> :class:`FlipSummary`, at the causal
        strategy's total budget; ``fft_flips_given_explanation`` the baselines
        at the flip budget alone (record version 2 on).
    stft_flips, stft_flips_given_explanation : dict
        Strategy -> :class:`FlipSummary`.
    seconds : float
        Wall time of the clip's measurement; ``duration_s`` the audio's length.
    attempts, host, worker
        How the run went (version 3 on); not part of the result.
    extra : dict
        Keys this version of freqrex does not know, kept as they were read and
        written back by :meth:`to_dict` (deliberately preserved, not dropped:
        rewriting a file never loses a field).
    """

    clip: Optional[str] = None
    model: Optional[str] = None
    status: Optional[str] = None
    error: Optional[str] = None
    clip_id: Optional[str] = None
    file: Optional[str] = None
    protocol: Optional[str] = None
    options: Optional[Dict[str, Any]] = None
    version: Optional[int] = RECORD_VERSION
    original: Optional[Decision] = None
    fft_explanation: Optional[ExplanationSummary] = None
    fft_flips: Dict[str, Dict[int, FlipSummary]] = field(default_factory=dict)
    fft_flips_given_explanation: Dict[str, Dict[int, FlipSummary]] = field(default_factory=dict)
    stft_explanation: Optional[ExplanationSummary] = None
    stft_flips: Dict[str, FlipSummary] = field(default_factory=dict)
    stft_flips_given_explanation: Dict[str, FlipSummary] = field(default_factory=dict)
    seconds: Optional[float] = None
    duration_s: Optional[float] = None
    attempts: Optional[int] = None
    host: Optional[str] = None
    worker: Optional[str] = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    _read_keys: Optional[FrozenSet[str]] = _read_keys()

    _KEYS: ClassVar[Tuple[Tuple[str, str], ...]] = tuple(
        (n, n) for n in ("clip", "model", "status", "error", "clip_id", "file", "protocol", "options", "version",
                         "original", "fft_explanation", "fft_flips", "fft_flips_given_explanation",
                         "stft_explanation", "stft_flips", "stft_flips_given_explanation", "seconds", "duration_s",
                         "attempts", "host", "worker"))
    _OMIT: ClassVar[FrozenSet[str]] = frozenset(
        {"error", "clip_id", "original", "fft_explanation", "fft_flips", "fft_flips_given_explanation",
         "stft_explanation", "stft_flips", "stft_flips_given_explanation", "seconds", "attempts", "host", "worker"})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClipRecord":
        """A record from its JSON object (a line of ``freqrex evaluate``'s JSONL), of any version.

        Raises
        ------
        ResultFileError
            The record was written by a newer freqrex (its ``version`` is
            greater than :data:`RECORD_VERSION`).
        ParameterError
            A field has the wrong JSON type.
        """
        d = _as_dict(d, "a record")
        version = d.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > RECORD_VERSION:
            raise ResultFileError(
                f"the record of clip {d.get('clip')!r} (model {d.get('model')!r}) has version {version}, newer "
                f"than this freqrex reads (record version {RECORD_VERSION}): upgrade freqrex to read it")
        values, extra, keys = cls._known(d)
        for a, by_k in _FLIP_MAPS:
            m = _as_dict(values[a], a)
            if by_k:
                values[a] = {str(s): {k: FlipSummary.from_dict(v)
                                      for k, v in sorted(((_k(k, a, s), v) for k, v in _as_dict(per_k, a).items()),
                                                         key=lambda kv: kv[0])}
                             for s, per_k in m.items()}
            else:
                values[a] = {str(s): FlipSummary.from_dict(v) for s, v in m.items()}
        for a in ("fft_explanation", "stft_explanation"):
            values[a] = None if values[a] is None else ExplanationSummary.from_dict(values[a])
        values["original"] = None if values["original"] is None else Decision.from_dict(values["original"])
        values["options"] = None if values["options"] is None else _as_dict(values["options"], "options")
        values["seconds"] = _f(values["seconds"])
        return cls(**values, extra=extra, _read_keys=keys)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object of this record: what :func:`~.records.append_record` writes.

        A record read by :meth:`from_dict` gives back the object it was read
        from (the same keys, values and extra keys).
        """
        values = {k: getattr(self, a) for a, k in self._KEYS}
        for a, by_k in _FLIP_MAPS:
            m = getattr(self, a)
            values[a] = ({s: {str(k): f.to_dict() for k, f in per_k.items()} for s, per_k in m.items()} if by_k
                         else {s: f.to_dict() for s, f in m.items()})
        for a in ("original", "fft_explanation", "stft_explanation"):
            v = getattr(self, a)
            values[a] = None if v is None else v.to_dict()
        return self._emit(values)

    @property
    def ok(self) -> bool:
        """Whether the clip was measured (``status == "ok"``)."""
        return self.status == "ok"

    def flipped(self) -> Dict[str, Optional[int]]:
        """FFT strategy -> the smallest ``k`` that flipped the decision (None: no ``k`` did)."""
        order = {s: i for i, s in enumerate(STRATEGIES)}
        return {s: next((k for k, f in sorted(per_k.items()) if f.success), None)
                for s, per_k in sorted(self.fft_flips.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))}

    def __repr__(self) -> str:
        head = f"ClipRecord({self.clip!r}, model={self.model!r}, status={self.status!r}"
        if not self.ok:
            err = str(self.error or "")
            return f"{head}, error={err[:60] + ('...' if len(err) > 60 else '')!r})"
        dec = "?" if self.original is None else self.original.label
        if self.original is not None and isinstance(self.original.score, (int, float)):
            dec += f" {self.original.score:.2f}"
        fft = [f"{s}@k={k}" for s, k in self.flipped().items() if k is not None]  # smallest k that flipped
        stft = [s for s, f in self.stft_flips.items() if f.success]
        return (f"{head}, decision={dec!r}, fft flips: {' '.join(fft) or 'none'}, "
                f"stft flips: {' '.join(stft) or 'none'})")


def _is_evaluation_record(rec: Mapping[str, Any]) -> bool:
    return "status" in rec and "model" in rec and rec.get("kind") is None


def read_results(path: "os.PathLike[str] | str") -> List[ClipRecord]:
    """Read the records of ``freqrex evaluate`` (a JSONL file) as typed :class:`ClipRecord` objects.

    Records of every version this freqrex has written are read; fields a
    record's version did not have are None (empty dicts for flips).  Transfer
    records (``"kind": "transfer"``, normally in ``<out>.transfer.jsonl``) are
    skipped; a truncated last line (a run killed while writing) is ignored, as
    by a resumed run.  Error records (``status != "ok"``) are included: check
    :attr:`ClipRecord.ok`.

    Parameters
    ----------
    path : str or os.PathLike
        The records file (``--out`` of ``freqrex evaluate``).

    Returns
    -------
    list of ClipRecord
        In file order; ``record.to_dict()`` is the line's JSON object.

    Raises
    ------
    ResultFileError
        The file is missing, a line other than the last is not a JSON object,
        a line is not an evaluation record, or a record was written by a newer
        freqrex (its version is greater than :data:`RECORD_VERSION`).

    Examples
    --------
    >>> from freqrex.evaluation import read_results
    >>> for r in read_results("results.jsonl"):  # doctest: +SKIP
    ...     print(r.clip, r.original.name, r.flipped())
    """
    p = Path(path)
    if not p.is_file():
        raise ResultFileError(f"no evaluation records at {p} (not a file)")
    try:
        dicts = load_records(p)
    except ParameterError as exc:
        raise ResultFileError(str(exc)) from exc
    out: List[ClipRecord] = []
    for i, d in enumerate(dicts, 1):
        if d.get("kind") == "transfer":
            continue
        if not _is_evaluation_record(d):
            raise ResultFileError(f"{p}: record {i} is not a freqrex evaluate record (no status or model)")
        try:
            out.append(ClipRecord.from_dict(d))
        except ResultFileError as exc:
            raise ResultFileError(f"{p}: record {i}: {exc}") from None
        except (ParameterError, TypeError, ValueError, AttributeError) as exc:
            raise ResultFileError(f"{p}: record {i} is malformed: {exc}") from exc
    return out

