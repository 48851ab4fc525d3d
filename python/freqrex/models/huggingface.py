"""Adapter for Hugging Face ``transformers`` audio classifiers.

transformers and torch are imported only when a :class:`HuggingFaceModel` is
created (``pip install "freqrex[hf]"``).  Nothing is ever downloaded: a model
is a model object, a local ``save_pretrained`` directory (read with
``local_files_only=True`` and safetensors weights only) or a pipeline.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from .._checks import check_int
from ..errors import ModelError, ParameterError
from .callable_model import CallableModel
from .torch_model import _import_torch, _resolve_device

__all__ = ["HuggingFaceModel", "is_huggingface_model", "is_huggingface_pipeline"]

# Kaldi filterbank framing of AST's feature extractor: 25 ms frames every 10 ms.
_AST_FRAME_S, _AST_SHIFT_S = 0.025, 0.010


def _import_transformers():
    try:
        import transformers
    except Exception as exc:
        raise ModelError(
            "HuggingFaceModel needs transformers and torch, which cannot be imported; "
            "install them (pip install 'freqrex[hf]')"
        ) from exc
    return transformers


def _transformers_class(name: str):
    import sys

    module = sys.modules.get("transformers")  # a transformers object exists only once it is imported
    return None if module is None else getattr(module, name, None)


def is_huggingface_model(obj) -> bool:
    """True for a ``transformers`` PyTorch model (``PreTrainedModel``)."""
    cls = _transformers_class("PreTrainedModel")
    return cls is not None and isinstance(obj, cls)


def is_huggingface_pipeline(obj) -> bool:
    """True for a ``transformers`` pipeline."""
    cls = _transformers_class("Pipeline")
    return cls is not None and isinstance(obj, cls)


def _load_directory(path: str):
    """(model, feature extractor) of a local ``save_pretrained`` directory; never a download."""
    if not os.path.isdir(path):
        raise ModelError(f"{path} is not a directory saved with save_pretrained (freqrex never downloads models)")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelError(f"{path} has no config.json: it is not a directory saved with save_pretrained")
    if not any(name.endswith(".safetensors") for name in os.listdir(path)):
        raise ModelError(
            f"{path} holds no .safetensors weights; freqrex never unpickles weights (pytorch_model.bin): "
            "load the model in Python yourself and save it again with save_pretrained (safetensors is the default)"
        )
    transformers = _import_transformers()
    try:
        model = transformers.AutoModelForAudioClassification.from_pretrained(
            path, local_files_only=True, use_safetensors=True
        )
    except Exception as exc:
        raise ModelError(f"{path}: transformers cannot load an audio classifier from it: {exc}") from exc
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path}: no feature extractor (preprocessor_config.json); save it beside the model with "
            f"feature_extractor.save_pretrained({path!r}): {exc}"
        ) from exc
    return model, extractor


def _extractor_of(model):
    """The feature extractor saved beside a model loaded from a local directory, if any."""
    source = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(model, "name_or_path", None)
    if source and os.path.isfile(os.path.join(str(source), "preprocessor_config.json")):
        transformers = _import_transformers()
        try:
            return transformers.AutoFeatureExtractor.from_pretrained(str(source), local_files_only=True)
        except Exception:  # fall through to the error that names what to pass
            return None
    return None


def extractor_window(extractor, sample_rate: int) -> Optional[int]:
    """The longest input, in samples, the feature extractor keeps (None: any length).

    AST's extractor pads or truncates its Kaldi filterbank to ``max_length``
    frames of 25 ms every 10 ms, so it keeps ``25 ms + (max_length - 1) *
    10 ms`` of audio (10.255 s for 1024 frames); Whisper- and CLAP-style
    extractors keep ``n_samples`` / ``nb_max_samples``.
    """
    if type(extractor).__name__ == "ASTFeatureExtractor" and getattr(extractor, "max_length", None):
        frame = int(round(_AST_FRAME_S * sample_rate))
        shift = int(round(_AST_SHIFT_S * sample_rate))
        return frame + (int(extractor.max_length) - 1) * shift
    return _fixed_length(extractor)


def _fixed_length(extractor) -> Optional[int]:
    """The input length, in samples, of an extractor that pads or cuts every input to it (Whisper's
    ``n_samples``, CLAP's ``nb_max_samples``), else None."""
    for name in ("n_samples", "nb_max_samples"):
        value = getattr(extractor, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


class HuggingFaceModel(CallableModel):
    """A ``transformers`` audio classifier, with its feature extractor.

    Each call sends the batch of waveforms through the feature extractor
    (``return_tensors="pt"``), runs the model under ``torch.inference_mode``
    on `device` and softmaxes its ``.logits`` once.  The sample rate comes
    from the feature extractor and the class names from ``config.id2label``
    (in class-index order).

    Models shorter than the clip are windowed, never cropped: AST's extractor
    keeps only about 10.24 s (``max_length`` frames), so by default a longer
    waveform is cut into windows of that length (see
    :func:`extractor_window`) that start every `window_hop` samples, the last
    one ending with the waveform; the model scores every window and the
    waveform's score is the mean of the windows' probabilities.  Models that
    take any length (wav2vec2, HuBERT) see the whole clip unless `window` is
    given.

    Parameters
    ----------
    model : transformers model, pipeline, str or os.PathLike
        A ``PreTrainedModel`` for audio classification (with
        `feature_extractor`), an ``audio-classification`` pipeline (its
        model and feature extractor are used), or the path of a local
        directory written by ``save_pretrained`` that holds the model's
        config, safetensors weights and ``preprocessor_config.json``
        (loaded with ``local_files_only=True``: never a download, never a
        pickle).
    feature_extractor : transformers feature extractor, optional
        Required with a model object, unless the model was loaded from a
        local directory that also holds its extractor.
    sample_rate : int, optional
        Checked against the extractor's ``sampling_rate`` (default: taken
        from it).
    class_names : sequence of str or mapping {index: name}, optional
        Override ``config.id2label``.
    device : str or torch.device, default "auto"
        ``"auto"``: CUDA when available, else the CPU; ``"cpu"``, ``"cuda:0"``...
        The model is moved there.
    batch_size : int, default 16
        Most waveforms (windows) per forward pass.
    window : int, "auto" or None, default "auto"
        Window length in samples.  ``"auto"``: what the extractor keeps
        (AST: ``max_length`` frames), None for extractors that keep any
        length; None: the whole waveform in one pass.
    window_hop : int, optional
        Samples between window starts (default: `window`, no overlap but for
        the last window; ``window // 2`` halves the seams' weight at twice
        the cost).

    Raises
    ------
    ModelError
        transformers is missing, the directory is not a usable
        ``save_pretrained`` directory, or no feature extractor is known.
    ParameterError
        Bad options, or a sample rate other than the extractor's.
    """

    def __init__(
        self,
        model,
        feature_extractor=None,
        *,
        sample_rate: Optional[int] = None,
        class_names: Optional[Sequence[str]] = None,
        device: Union[str, "object"] = "auto",
        batch_size: int = 16,
        window: Union[int, str, None] = "auto",
        window_hop: Optional[int] = None,
    ) -> None:
        torch = _import_torch()
        self._torch = torch
        self.source = None
        if isinstance(model, (str, os.PathLike)):
            self.source = os.fspath(model)
            model, loaded = _load_directory(self.source)
            feature_extractor = feature_extractor or loaded
        elif is_huggingface_pipeline(model):
            feature_extractor = feature_extractor or getattr(model, "feature_extractor", None)
            model = model.model
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
            raise ModelError(
                f"HuggingFaceModel needs a transformers PyTorch model, a pipeline or a save_pretrained "
                f"directory, got {type(model).__name__}; wrap other torch modules with TorchModel"
            )
        if feature_extractor is None:
            feature_extractor = _extractor_of(model)
        if feature_extractor is None or not callable(feature_extractor):
            raise ModelError(
                f"{type(model).__name__} needs its feature extractor: HuggingFaceModel(model, feature_extractor) "
                "with AutoFeatureExtractor.from_pretrained(<the model's directory>), or pass the "
                "audio-classification pipeline"
            )
        rate = getattr(feature_extractor, "sampling_rate", None)
        if rate is None and sample_rate is None:
            raise ParameterError(f"{type(feature_extractor).__name__} has no sampling_rate: pass sample_rate=")
        if rate is not None and sample_rate is not None and int(sample_rate) != int(rate):
            raise ParameterError(
                f"the feature extractor expects {rate} Hz audio, not {sample_rate} Hz; "
                "resample the clip (freqrex.io.load_audio(path, sample_rate=...) does)"
            )
        rate = int(rate if rate is not None else sample_rate)
        if class_names is None:
            labels = getattr(model.config, "id2label", None)
            n_labels = getattr(model.config, "num_labels", None)
            if labels and (n_labels is None or len(labels) == n_labels):
                class_names = labels
        self.device = _resolve_device(torch, device)
        try:
            self.module = model.to(self.device).eval()
        except Exception as exc:
            raise ModelError(f"cannot move the model to {self.device}: {exc}") from exc
        self.feature_extractor = feature_extractor
        # an extractor with a fixed input length (Whisper's 30 s, CLAP's) pads to it by its own default
        # (Whisper's model refuses anything else); the others pad a batch to its longest waveform
        self._padding = {} if _fixed_length(feature_extractor) else {"padding": True}
        if isinstance(window, str):
            if window != "auto":
                raise ParameterError(f"window must be a number of samples, 'auto' or None, got {window!r}")
            window = extractor_window(feature_extractor, rate)
            window_hop = window_hop if window is not None else None
        elif window is not None:
            window = check_int(window, "window", 1)  # named as the caller named it
        batch_size = check_int(batch_size, "batch_size", 1)
        self._multi_label = getattr(getattr(model, "config", None), "problem_type", None) == "multi_label_classification"
        super().__init__(
            self._run,
            sample_rate=rate,
            class_names=class_names,
            # a multi-label classifier's logits are independent sigmoids (as transformers' loss reads them):
            # _run returns its sigmoid scores; a single-label one's logits get a softmax
            output="sigmoid" if self._multi_label else "logits",
            max_batch_size=batch_size,
            input_samples=window,
            window=window,
            window_hop=window_hop,
        )
        if self.max_batch_size is None:
            raise ParameterError("batch_size must be a positive integer")

    @property
    def batch_size(self) -> int:
        """Most waveforms (windows) per forward pass."""
        return self.max_batch_size

    def _run(self, waves: np.ndarray):
        torch = self._torch
        features = self.feature_extractor(
            list(waves), sampling_rate=self.sample_rate, return_tensors="pt", **self._padding
        )
        dtype = getattr(self.module, "dtype", None)
        inputs = {}
        for key, value in features.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, dtype=dtype if value.is_floating_point() and dtype else None)
            inputs[key] = value
        with torch.inference_mode():
            out = self.module(**inputs)
        logits = getattr(out, "logits", out)
        if not isinstance(logits, torch.Tensor):
            raise ModelError(f"{self._describe()} returned {type(out).__name__} without .logits")
        if self._multi_label:
            logits = torch.sigmoid(logits.float())
        return logits.detach().float().cpu().numpy()

    def _describe(self) -> str:
        return f"Hugging Face model {type(self.module).__name__!r}"

    def __repr__(self) -> str:
        from ._windows import describe

        names = "?" if self._class_names is None else len(self._class_names)
        return (
            f"HuggingFaceModel({type(self.module).__name__}, sample_rate={self.sample_rate}, classes={names}, "
            f"device='{self.device}', {describe(self.window, self.window_hop, self.sample_rate)})"
        )
