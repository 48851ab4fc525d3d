"""The model protocol every freqrex adapter follows.

A *model* is any callable mapping a float32 batch of waveforms of shape
``(batch, samples)`` at the model's sample rate to scores of shape
``(batch, classes)``.  Adapters add what freqrex needs to know about it.
"""

from __future__ import annotations

from typing import Literal, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import ParameterError

OutputKind = Literal["logits", "probabilities", "sigmoid"]


def class_name_list(names: Union[Sequence, Mapping, None]) -> Optional[list]:
    """Class names as a list in class-index order, or None.

    Parameters
    ----------
    names : sequence of str, mapping {index: name} or None
        A sequence is taken in order.  A mapping (a Hugging Face
        ``config.id2label``, or one read from JSON with string keys) must map
        the indices ``0 .. n-1`` exactly once each; its names are returned in
        index order.

    Raises
    ------
    ParameterError
        One string instead of names, an empty collection, or a mapping whose
        keys are not the integers ``0 .. n-1``.
    """
    if names is None:
        return None
    if isinstance(names, (str, bytes)):
        raise ParameterError("class_names must be a sequence of names or a {index: name} mapping, not one string")
    if isinstance(names, Mapping):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"class_names mapping keys must be class indices, got {sorted(names)[:5]}") from exc
        if len(by_index) != len(names) or sorted(by_index) != list(range(len(by_index))):
            raise ParameterError(
                f"class_names mapping must have the keys 0 .. {len(names) - 1}, got {sorted(by_index)[:8]}"
            )
        out = [by_index[i] for i in range(len(by_index))]
    else:
        try:
            out = [str(c) for c in names]
        except TypeError:
            raise ParameterError(
                f"class_names must be a sequence of names or a {{index: name}} mapping, got {type(names).__name__}"
            ) from None
    if not out:
        raise ParameterError("class_names must not be empty")
    return out


class Model:
    """Base class of freqrex model adapters.

    Attributes
    ----------
    sample_rate : int
        Sample rate (Hz) of the waveforms the model expects.
    class_names : list of str
        Name of each output class (or tag).
    output : {"logits", "probabilities", "sigmoid"}
        What the wrapped network outputs.  Adapters return probabilities:
        logits are softmaxed once, probabilities and sigmoid tags are
        returned as they are (multi-label: the decision is the top tag).
    input_samples : int or None
        Clip length the model prefers (None: any length).
    """

    sample_rate: int
    class_names: list
    output: OutputKind = "probabilities"
    input_samples: Optional[int] = None

    def __call__(self, waves: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_name(self, index: int) -> str:
        names: Optional[Sequence[str]] = self.class_names
        return str(names[index]) if names is not None and 0 <= index < len(names) else str(index)


class FunctionModel(Model):
    """A plain function ``f(waves) -> scores`` seen as a :class:`Model`, its scores untouched.

    What :func:`freqrex.models.as_model` makes of a callable given without
    options: calls go straight to the function (its scores' argmax is the
    decision; freqrex validates their shape and values), its ``sample_rate``
    attribute (if any) is the model's, and its ``class_names`` (a sequence,
    or a ``{index: name}`` mapping such as ``config.id2label``) are read in
    index order.  Other attributes are the function's.
    """

    def __init__(self, fn) -> None:
        self.fn = fn
        from .._checks import model_sample_rate

        self.sample_rate = model_sample_rate(fn)  # a ModelError for a rate that is not a positive integer
        self._names = class_name_list(getattr(fn, "class_names", None))

    @property
    def class_names(self) -> Optional[list]:  # type: ignore[override]
        return self._names

    @class_names.setter
    def class_names(self, names) -> None:
        self._names = class_name_list(names)

    def __call__(self, waves: np.ndarray):
        return self.fn(waves)

    def __getattr__(self, name: str):
        if name == "fn":  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.fn, name)

    def __repr__(self) -> str:
        return f"FunctionModel({self.fn!r})"


def as_wave_batch(waves) -> np.ndarray:
    """Validate a wave batch: float32 ``(batch, samples)``, finite, non-empty (1-D: batch of 1)."""
    x = np.asarray(waves, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ParameterError(f"waves must have shape (batch, samples), got {np.shape(waves)}")
    if not np.isfinite(x).all():
        raise ParameterError("waves contain NaN or inf")
    return x


def check_threads(n_threads, name: str = "n_threads") -> None:
    """A thread count is None (the library's default) or an integer in [1, MAX_N_THREADS] (the core's
    bound, :data:`freqrex.options.MAX_N_THREADS`), else :class:`ParameterError`."""
    from ..options import MAX_N_THREADS

    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer))
                                  or n_threads < 1):
        raise ParameterError(f"{name} must be a positive integer, got {n_threads!r}")
    if n_threads is not None and n_threads > MAX_N_THREADS:
        raise ParameterError(f"{name} must be at most {MAX_N_THREADS}, got {n_threads!r}")


def onnx_session(path: str, *, providers=None, n_threads=None, what: str = "model"):
    """An onnxruntime session for ``path`` (``n_threads`` intra-op threads, one inter-op thread
    when given); any failure to load is a :class:`ModelError` naming ``what``."""
    from ..errors import ModelError

    check_threads(n_threads)

    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = int(n_threads)
            options.inter_op_num_threads = 1
        return ort.InferenceSession(path, sess_options=options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:
        raise ModelError(f"cannot load {what} {path}: {exc}") from exc


def limit_threads(model, n_threads: int) -> None:
    """Hold a model's ONNX Runtime sessions (attributes up to two objects deep, rebuilt with
    ``n_threads`` intra-op threads and one inter-op thread) and torch to ``n_threads`` threads.

    What ``--threads-per-worker`` does to every model of a run; a session built from bytes or a
    path is rebuilt with its providers, anything else is left as it is.
    """
    import sys

    check_threads(n_threads)
    if "torch" in sys.modules:
        try:
            sys.modules["torch"].set_num_threads(n_threads)
        except Exception:  # noqa: BLE001 - torch refuses a change after its pool started
            pass
    if "onnxruntime" not in sys.modules:
        return
    ort = sys.modules["onnxruntime"]
    seen = set()

    def visit(obj, depth: int) -> None:
        if depth > 2 or id(obj) in seen or not hasattr(obj, "__dict__"):
            return
        seen.add(id(obj))
        for attr, value in list(vars(obj).items()):
            if isinstance(value, ort.InferenceSession):
                source = getattr(value, "_model_path", None) or getattr(value, "_model_bytes", None)
                if source is None:
                    continue
                options = ort.SessionOptions()
                options.intra_op_num_threads = n_threads
                options.inter_op_num_threads = 1
                setattr(obj, attr, ort.InferenceSession(source, sess_options=options,
                                                        providers=value.get_providers()))
            elif not isinstance(value, (str, bytes, int, float, list, dict, tuple)):
                visit(value, depth + 1)

    visit(model, 0)
