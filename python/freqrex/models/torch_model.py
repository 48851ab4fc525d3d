"""Adapter for PyTorch modules (eager or TorchScript).

torch is imported only when a :class:`TorchModel` is created.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import ModelError, ParameterError
from .callable_model import CallableModel

__all__ = ["TorchModel"]

def _import_torch():
    try:
        import torch
    except Exception as exc:  # ImportError, or a broken CUDA install
        raise ModelError(
            "TorchModel needs PyTorch, which cannot be imported; install it (pip install torch)"
        ) from exc
    return torch


def _resolve_device(torch, device):
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise ParameterError(f"device must be 'auto', 'cpu', 'cuda[:N]' or a torch.device, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ParameterError(f"unknown torch device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {device!r} requested but CUDA is not available")
    return resolved


class TorchModel(CallableModel):
    """Wrap a ``torch.nn.Module`` (or a TorchScript module or file).

    The module is put in evaluation mode (``module.eval()``) and moved to
    `device` -- both change the module you pass in.  Each call converts the
    float32 numpy batch to a tensor on `device`, runs the module under
    ``torch.inference_mode()`` in chunks of at most `batch_size` waveforms,
    and returns float32 numpy scores.

    Parameters
    ----------
    module : torch.nn.Module, torch.jit.ScriptModule, str or os.PathLike
        The network: it must map a float32 tensor ``(batch, samples)`` to
        scores ``(batch, classes)``.  A path loads a TorchScript archive with
        ``torch.jit.load`` (a pickled ``state_dict`` cannot be used: build
        the module and load the weights yourself).
    sample_rate : int or None
        Sample rate (Hz) the network expects (None: not declared; the
        clip's rate is taken on trust).
    class_names : sequence of str or mapping {index: name}, optional
        One name per output column (default ``"0"``, ``"1"``, ...).
    output : {"probabilities", "logits", "sigmoid", "auto"}, default "probabilities"
        What the network returns; logits are softmaxed once, the others
        are returned untouched; ``"auto"`` decides from the first scores
        (see :class:`CallableModel`).
    device : str or torch.device, default "auto"
        ``"auto"``: CUDA if available, else CPU.  ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ...; asking for CUDA without it is a ParameterError.
    batch_size : int, default 64
        Largest batch sent to the network in one call.
    fixed_batch : int, optional
        The only batch size the network accepts (``1``: one waveform per
        call); see :class:`CallableModel`.
    input_samples : int, optional
        Clip length the network prefers (informational).
    window, window_hop : int, optional
        Score longer waveforms as windows of `window` samples every
        `window_hop` samples, averaging the windows' probabilities (see
        :class:`CallableModel`).  None: the whole waveform.
    """

    def __init__(
        self,
        module,
        *,
        sample_rate: Optional[int],
        class_names: Optional[Sequence[str]] = None,
        output: str = "probabilities",
        device: Union[str, "object"] = "auto",
        batch_size: int = 64,
        fixed_batch: Optional[int] = None,
        input_samples: Optional[int] = None,
        window: Optional[int] = None,
        window_hop: Optional[int] = None,
    ) -> None:
        torch = _import_torch()
        self._torch = torch
        self.device = _resolve_device(torch, device)
        #: The TorchScript file the module was loaded from (None for a module given as it is).
        self.source = None
        if isinstance(module, (str, os.PathLike)):
            self.source = os.fspath(module)
            module = self._load_script(torch, module)
        if not isinstance(module, torch.nn.Module):
            raise ParameterError(
                f"module must be a torch.nn.Module or a TorchScript file, got {type(module).__name__}"
            )
        try:
            module = module.to(self.device).eval()
        except Exception as exc:
            raise ModelError(f"cannot move the module to {self.device}: {exc}") from exc
        self.module = module
        super().__init__(
            self._run,
            sample_rate=sample_rate,
            class_names=class_names,
            output=output,
            fixed_batch=fixed_batch,
            max_batch_size=batch_size,
            input_samples=input_samples,
            window=window,
            window_hop=window_hop,
        )
        if self.max_batch_size is None:
            raise ParameterError("batch_size must be a positive integer")

    @staticmethod
    def _load_script(torch, path):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"TorchScript file not found: {path}")
        try:
            with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; still supported
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(path, map_location="cpu")
        except Exception as exc:
            raise ModelError(
                f"{path} is not a TorchScript archive ({exc}); a state_dict needs its "
                "nn.Module: build the module, load the weights, and pass the module"
            ) from exc

    @property
    def batch_size(self) -> int:
        """Largest batch sent to the network in one call."""
        return self.max_batch_size

    def _run(self, waves: np.ndarray):
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32)).to(self.device)
            out = self.module(x)
            logits = getattr(out, "logits", None)  # a transformers-style output object
            if not isinstance(out, torch.Tensor) and isinstance(logits, torch.Tensor):
                out = logits
            if not isinstance(out, torch.Tensor):
                raise ModelError(
                    f"{self._describe()} returned {type(out).__name__}, expected a tensor of shape (batch, classes)"
                )
            return out.detach().float().cpu().numpy()

    def _describe(self) -> str:
        return f"torch module {type(self.module).__name__!r}"

    def __repr__(self) -> str:
        names = "?" if self._class_names is None else len(self._class_names)
        return (
            f"TorchModel({type(self.module).__name__}, sample_rate={self.sample_rate}, classes={names}, "
            f"output={self.output!r}, device='{self.device}')"
        )
