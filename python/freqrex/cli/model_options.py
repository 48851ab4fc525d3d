"""The model options every command shares (``explain``, ``flip``, ``evaluate``), and opening the model.

``--model`` takes a built-in name, an ``.onnx`` file, a directory written by
``save_pretrained`` (a Hugging Face audio classifier with its feature
extractor, safetensors weights), a TorchScript file, or ``module:callable``
(a factory the user writes, called with no arguments, returning a model, a
``transformers`` model or pipeline, a ``torch.nn.Module`` or a function).
Model files are code: TorchScript and ``module:callable`` run only with
``--trust-model-code``, and pickles are never loaded.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from pathlib import Path

from ..errors import ModelError, ParameterError
from ..models import DEFAULT_SAMPLE_RATE  # a model file's rate unless --sample-rate says

__all__ = ["add_model_options", "open_model", "open_model_spec", "read_class_names"]

_TORCHSCRIPT = (".pt", ".pth", ".jit", ".ts", ".torchscript")
_PICKLES = (".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".h5")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

MODEL_HELP = (
    "built-in name (see `freqrex models`), .onnx file, save_pretrained directory (Hugging Face audio "
    "classifier with its feature extractor, safetensors weights), TorchScript file (.pt/.pth/.ts), or "
    "module:callable (a factory you write, called with no arguments). Model files are code: TorchScript "
    "and module:callable run only with --trust-model-code, and pickles are never loaded"
)


def add_model_options(p: argparse.ArgumentParser, *, multiple: bool = False) -> None:
    """--model, --sample-rate, --output, --class-names and --trust-model-code.

    ``multiple=True`` (``evaluate``): --model is required and may be repeated.
    """
    if multiple:
        p.add_argument("--model", action="append", required=True, help=MODEL_HELP + "; repeat for several models")
    else:
        p.add_argument("--model", default="MSD_musicnn", help=MODEL_HELP + " (default MSD_musicnn)")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="sample rate of a model that does not declare one (.onnx, TorchScript, module:callable; "
                        f"default {DEFAULT_SAMPLE_RATE}); a Hugging Face or built-in model's own rate is checked "
                        "against it")
    p.add_argument("--output", choices=("logits", "probabilities", "sigmoid", "auto"), default=None,
                   help="what an .onnx/TorchScript/module:callable model outputs (default: probabilities for "
                        ".onnx and TorchScript; from module:callable as freqrex.explain takes the object: a "
                        "function's scores as they are, a torch module auto, told from its first scores: in evaluate from each "
                        "clip's own, so say it to avoid the guess); a built-in or Hugging "
                        "Face model says what its scores are, and a different --output is refused")
    p.add_argument("--class-names", metavar="FILE", default=None,
                   help="class names: a text file with one name per line, or JSON (a list, or {index: name})")
    p.add_argument("--trust-model-code", action="store_true",
                   help="allow model files that run code when loaded or called: TorchScript and module:callable. "
                        "Model files are code; only pass this for files you trust")


def read_class_names(path) -> list:
    """Class names from a text file (one per line) or a JSON list / {index: name} mapping."""
    from ..models.base import class_name_list

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"cannot read --class-names {path}: {exc}") from exc
    if file.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise ParameterError(f"--class-names {path} is not valid JSON: {exc}") from exc
        if not isinstance(names, (list, dict)):
            raise ParameterError(f"--class-names {path} must hold a JSON list or {{index: name}} object")
        return class_name_list(names)
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return class_name_list(names)


def _needs_trust(spec: str, what: str, trusted: bool) -> None:
    if not trusted:
        raise ModelError(
            f"{spec} is {what}, and model files are code: loading or calling it runs whatever it contains. "
            "If you trust it, pass --trust-model-code"
        )


def _factory(spec: str):
    """Call ``module:callable`` (the current directory is importable, as with ``python -m``)."""
    module_name, _, attr = spec.partition(":")
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ModelError(f"--model {spec}: cannot import module {module_name!r}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(os.getcwd())
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"--model {spec}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    from ..models import Model, is_huggingface_model, is_huggingface_pipeline
    from ..models import _is_torch_module

    if isinstance(obj, Model) or is_huggingface_model(obj) or is_huggingface_pipeline(obj) or _is_torch_module(obj):
        return obj  # already a model, not a factory
    if not callable(obj):
        raise ModelError(f"--model {spec}: {attr} is a {type(obj).__name__}, not a factory")
    try:
        return obj()
    except Exception as exc:
        raise ModelError(f"--model {spec}: the factory raised {type(exc).__name__}: {exc}") from exc


def open_model_spec(spec: str, args: argparse.Namespace):
    """One --model value as a freqrex model, with the shared options of ``args``."""
    from ..models import BUILTIN_MODELS, Model, OnnxModel, TorchModel, as_model, load_model

    names = read_class_names(args.class_names) if getattr(args, "class_names", None) else None
    rate = getattr(args, "sample_rate", None)
    output = getattr(args, "output", None)
    trusted = bool(getattr(args, "trust_model_code", False))
    output_used = False  # whether the adapter took --output; otherwise it is checked against the model's own
    lowered = spec.lower()
    suffix = os.path.splitext(spec)[1].lower()
    if lowered in {n.lower() for n in BUILTIN_MODELS}:
        model = load_model(spec)
    elif os.path.isdir(spec) or (suffix == ".safetensors" and os.path.exists(spec)):
        model = load_model(spec, sample_rate=rate, class_names=names)
        names = None
    elif suffix == ".onnx":
        model = OnnxModel(spec, sample_rate=DEFAULT_SAMPLE_RATE if rate is None else rate,
                          output=output or "probabilities", class_names=names)
        names, output_used = None, True
    elif suffix in _TORCHSCRIPT:
        _needs_trust(spec, "a TorchScript file", trusted)
        model = TorchModel(spec, sample_rate=DEFAULT_SAMPLE_RATE if rate is None else rate,
                           output=output or "probabilities", class_names=names)
        names, output_used = None, True
    elif suffix in _PICKLES:
        raise ModelError(
            f"{spec}: freqrex never unpickles model files (pickles run code when loaded); export the model to "
            "ONNX or TorchScript, save it with save_pretrained (safetensors), or write a module:callable factory"
        )
    elif _FACTORY.match(spec) and not os.path.exists(spec):
        _needs_trust(spec, "a module:callable factory (Python code)", trusted)
        obj = _factory(spec)
        if isinstance(obj, Model):
            model = obj
        else:
            # as freqrex.explain(audio, sr, obj) would: the object's own sample_rate and class_names hold
            # and a function's scores are its own. --output says how to read scores (a model that does not
            # say), --sample-rate is a rate for an object that declares none (else it is checked below),
            # --class-names only renames the classes (applied below)
            from ..models import is_huggingface_model, is_huggingface_pipeline

            hugging = is_huggingface_model(obj) or is_huggingface_pipeline(obj)
            given = {}
            if not hugging and output is not None:
                given["output"] = output
                output_used = True
            model = as_model(obj, **given)
            if rate is not None and getattr(model, "sample_rate", None) is None:
                from .._checks import check_sample_rate

                try:  # the rate of a model that declares none; its scores are read as before
                    model.sample_rate = check_sample_rate(rate)
                except AttributeError as exc:
                    raise ParameterError(f"--sample-rate cannot be set on {spec}") from exc
    else:
        model = load_model(spec)  # raises the ModelError that says what is wrong
    if names is not None:
        _apply_names(model, names, spec)
    declared = getattr(model, "sample_rate", None)
    if rate is not None and declared is not None and int(declared) != rate:
        raise ParameterError(f"--sample-rate {rate} but the model {spec} expects {declared} Hz")
    own = getattr(model, "output", None)
    shared = isinstance(getattr(args, "model", None), list) and len(args.model) > 1  # evaluate: for some of them
    if output is not None and not (output_used or shared) and output != "auto" and own is not None and output != own:
        raise ParameterError(
            f"--output {output} but the model {spec} says its scores are {own}: --output is for models that "
            "do not say (.onnx, TorchScript, a module:callable function or torch module); leave it out"
        )
    return model


def _apply_names(model, names: list, spec: str) -> None:
    current = getattr(model, "class_names", None)
    if current is not None and len(current) != len(names):
        raise ParameterError(f"--class-names has {len(names)} names but the model {spec} has {len(current)} classes")
    try:
        model.class_names = names
    except AttributeError as exc:
        raise ParameterError(f"the class names of {spec} cannot be replaced") from exc


def open_model(args: argparse.Namespace):
    """The model named by ``--model`` (explain, flip)."""
    return open_model_spec(args.model, args)
