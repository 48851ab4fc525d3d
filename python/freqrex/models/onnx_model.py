"""Adapter for ONNX models run with onnxruntime.

onnxruntime is imported only when an :class:`OnnxModel` is created.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import ModelError, ParameterError
from .base import class_name_list
from .callable_model import CallableModel

__all__ = ["OnnxModel"]

_FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


def _import_ort():
    try:
        import onnxruntime
    except Exception as exc:
        raise ModelError("OnnxModel needs onnxruntime (pip install onnxruntime)") from exc
    return onnxruntime


def _resolve_providers(ort, providers) -> list:
    available = ort.get_available_providers()
    if providers is None or providers == "cpu":
        return [_CPU]
    if providers in ("cuda", "auto"):
        if _CUDA in available:
            return [_CUDA, _CPU]
        if providers == "cuda":
            warnings.warn(
                "CUDAExecutionProvider is not available in this onnxruntime build "
                "(install onnxruntime-gpu); running on the CPU",
                RuntimeWarning,
                stacklevel=4,
            )
        return [_CPU]
    if isinstance(providers, str):
        raise ParameterError(
            f"providers must be 'cpu', 'cuda', 'auto' or a list of onnxruntime providers, got {providers!r}"
        )
    providers = list(providers)
    if not providers:
        raise ParameterError("providers must not be empty")
    return providers


def _static(dim) -> Optional[int]:
    """A fixed dimension as an int, None for a symbolic or unknown one."""
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


class OnnxModel(CallableModel):
    """Run an ONNX classifier with onnxruntime.

    The input is found from the file: the model's only input (or
    `input_name`) must be a float tensor of rank 2 ``(batch, samples)``,
    rank 3 ``(batch, 1, samples)`` or rank 1 ``(samples,)`` (one waveform,
    no batch axis; its output may then be ``(classes,)``).  Its dimensions
    decide how the model is called:

    - a fixed batch dimension of 1 (or rank 1): one waveform per call; any
      other fixed batch size N: chunks of exactly N, the last one padded
      with silence (see :class:`CallableModel`, ``fixed_batch``);
    - a fixed sample dimension L: :attr:`input_samples` is L.  A shorter
      waveform is zero-padded at the end.  A longer one is, by default
      (`fit_policy` ``"windows"``), scored as windows of L samples every
      `window_hop` samples (the last window ends with the waveform) whose
      probabilities are averaged, so that every sample counts; ``"center"``
      keeps only its middle L samples and ``"start"`` its first L (with
      :func:`freqrex.io.fit_length`): the rest then cannot matter to the
      model or to an explanation.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        Path of an ``.onnx`` file, or the serialised model itself.
    sample_rate : int or None
        Sample rate (Hz) the model expects (None: not declared).
    class_names : sequence of str or mapping {index: name}, optional
        One name per output column (default ``"0"``, ``"1"``, ...).
    output : {"probabilities", "logits", "sigmoid"}, default "probabilities"
        What the model returns; logits are softmaxed once, the others are
        returned untouched (see :class:`CallableModel`).
    providers : {"cpu", "cuda", "auto"} or list, optional
        Execution providers.  None or ``"cpu"``: CPUExecutionProvider.
        ``"cuda"``: CUDA then CPU when the onnxruntime build has CUDA
        (otherwise a RuntimeWarning and CPU); ``"auto"``: the same without
        the warning.  A list is passed to onnxruntime as it is.
    input_name, output_name : str, optional
        Which input to feed and which output to read (default: the only
        input, the first output).
    batch_size : int, default 64
        Largest batch per call when the batch dimension is dynamic.
    fit_policy : {"windows", "center", "start"}, default "windows"
        How a fixed sample dimension sees longer waveforms (see above).
    window_hop : int, optional
        Samples between window starts with ``fit_policy="windows"``
        (default L: no overlap but for the last window).
    session_options : onnxruntime.SessionOptions, optional
        Passed to the ``InferenceSession``.

    Raises
    ------
    ModelError
        The file is missing, is not a valid ONNX model, or has no usable
        float waveform input.
    """

    def __init__(
        self,
        model: Union[str, "os.PathLike[str]", bytes],
        *,
        sample_rate: Optional[int],
        class_names: Optional[Sequence[str]] = None,
        output: str = "probabilities",
        providers=None,
        input_name: Optional[str] = None,
        output_name: Optional[str] = None,
        batch_size: int = 64,
        fit_policy: str = "windows",
        window_hop: Optional[int] = None,
        session_options=None,
    ) -> None:
        if fit_policy not in ("windows", "center", "start"):
            raise ParameterError(f"fit_policy must be 'windows', 'center' or 'start', got {fit_policy!r}")
        ort = _import_ort()
        self.providers = _resolve_providers(ort, providers)
        self.source = "<bytes>" if isinstance(model, (bytes, bytearray)) else self._check_path(model)
        payload = bytes(model) if isinstance(model, (bytes, bytearray)) else self.source
        try:
            self.session = ort.InferenceSession(payload, sess_options=session_options, providers=self.providers)
        except Exception as exc:
            raise ModelError(f"{self.source} is not a valid ONNX model onnxruntime can load: {exc}") from exc
        self.fit_policy = fit_policy

        inp = self._pick(self.session.get_inputs(), input_name, "input")
        out = self._pick(self.session.get_outputs(), output_name, "output", first=True)
        self.input_name, self.output_name = inp.name, out.name
        if inp.type not in _FLOAT_TYPES:
            raise ModelError(f"{self.source}: input {inp.name!r} has type {inp.type}, expected a float tensor")
        self._input_dtype = _FLOAT_TYPES[inp.type]
        shape = list(inp.shape or [])
        self._rank = len(shape)
        if self._rank not in (1, 2, 3) or (self._rank == 3 and _static(shape[1]) not in (1, None)):
            raise ModelError(
                f"{self.source}: input {inp.name!r} has shape {shape}; expected (batch, samples), "
                "(batch, 1, samples) or (samples,)"
            )
        fixed_batch = 1 if self._rank == 1 else _static(shape[0])
        input_samples = _static(shape[-1])
        n_out = _static(out.shape[-1]) if out.shape else None
        if class_names is None and n_out is not None:
            class_names = [str(i) for i in range(n_out)]
        elif class_names is not None and n_out is not None and len(class_name_list(class_names)) != n_out:
            raise ParameterError(
                f"{len(class_name_list(class_names))} class names given but {self.source} has {n_out} "
                f"outputs (output {out.name!r} of shape {list(out.shape)})"
            )

        super().__init__(
            self._run,
            sample_rate=sample_rate,
            class_names=class_names,
            output=output,
            fixed_batch=fixed_batch,
            max_batch_size=batch_size,
            input_samples=input_samples,
            window=input_samples if fit_policy == "windows" else None,
            window_hop=window_hop if fit_policy == "windows" and input_samples is not None else None,
        )

    def _check_path(self, model) -> str:
        try:
            path = os.fspath(model)
        except TypeError as exc:
            raise ParameterError(
                f"model must be a path or bytes of an ONNX model, got {type(model).__name__}"
            ) from exc
        if not os.path.isfile(path):
            raise ModelError(f"ONNX model file not found: {path}")
        return path

    def _pick(self, items, name, what, first=False):
        if name is not None:
            for item in items:
                if item.name == name:
                    return item
            raise ModelError(f"{self.source} has no {what} named {name!r}; it has {[i.name for i in items]}")
        if not items:
            raise ModelError(f"{self.source} has no {what}s")
        if len(items) > 1 and not first:
            raise ModelError(
                f"{self.source} has {len(items)} {what}s {[i.name for i in items]}; "
                f"pick the waveform one with {what}_name= (the others cannot be fed)"
            )
        return items[0]

    def _run(self, waves: np.ndarray) -> np.ndarray:
        if self.input_samples is not None and waves.shape[1] != self.input_samples:
            from ..io import fit_length

            policy = "start" if self.fit_policy == "windows" else self.fit_policy  # windows only pad here
            waves = fit_length(waves, self.input_samples, policy=policy)
        x = waves.astype(self._input_dtype, copy=False)
        if self._rank == 1:
            x = x[0]
        elif self._rank == 3:
            x = x[:, None, :]
        result = self.session.run([self.output_name], {self.input_name: x})[0]
        result = np.asarray(result)
        if self._rank == 1 and result.ndim == 1:
            result = result[None, :]  # a model without a batch axis scores one waveform
        return result

    def _describe(self) -> str:
        return f"ONNX model {os.path.basename(self.source)!r}"

    def __repr__(self) -> str:
        names = "?" if self._class_names is None else len(self._class_names)
        return (
            f"OnnxModel({self.source!r}, sample_rate={self.sample_rate}, classes={names}, "
            f"output={self.output!r}, providers={self.providers})"
        )
