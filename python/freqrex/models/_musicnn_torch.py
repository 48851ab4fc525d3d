"""PyTorch port of the four musicnn taggers (used to build and test the shipped ONNX files).

This module imports torch at import time: import it only when torch is wanted
(``scripts/build_musicnn.py`` and the tests do; :mod:`freqrex.models.musicnn`
never does).

The layers follow ``models.py`` of the ``musicnn`` 0.1.0 wheel (Jordi Pons,
Music Technology Group, UPF; ISC licence) exactly, in inference mode: batch
normalisations use their moving statistics with TF's default epsilon 1e-3 and
dropout is the identity.  TensorFlow tensors are NHWC ``(batch, time, freq,
channels)``; here they are NCHW ``(batch, channels, time, freq)`` (or
``(batch, channels, time)`` once the frequency axis is pooled away), and every
concatenation and flattening is done in TF's order so the dense weights apply
unchanged.

Input: log-mel patches ``(batch, 187, 96)`` float32.  Output: ``(batch, 50)``
sigmoid tag probabilities.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._tf_checkpoint import read_checkpoint
from .musicnn import find_checkpoints

__all__ = ["MODELS", "Musicnn", "MusicnnVGG", "build"]

#: The four taggers of the wheel and their architecture.
MODELS = {"MSD_musicnn": "musicnn", "MTT_musicnn": "musicnn", "MSD_vgg": "vgg", "MTT_vgg": "vgg"}

_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization default


def _bn(w: Dict[str, np.ndarray], name: str) -> nn.BatchNorm1d:
    """A frozen batch norm from the checkpoint's ``name/{gamma,beta,moving_*}``."""
    gamma = w[name + "/gamma"]
    bn = nn.BatchNorm1d(gamma.shape[0], eps=_BN_EPS)  # 1d/2d differ only in input checks
    bn.weight.data = torch.from_numpy(gamma)
    bn.bias.data = torch.from_numpy(w[name + "/beta"])
    bn.running_mean.data = torch.from_numpy(w[name + "/moving_mean"])
    bn.running_var.data = torch.from_numpy(w[name + "/moving_variance"])
    return bn


def _bn_nd(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a frozen batch norm over axis 1 of a tensor of any rank."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _conv2d(w: Dict[str, np.ndarray], name: str, padding=(0, 0)) -> nn.Conv2d:
    """A Conv2d from a TF HWIO kernel ``name/kernel`` and ``name/bias`` (zero padding
    ``padding`` on both sides of each axis)."""
    k = w[name + "/kernel"]  # (kh, kw, in, out)
    conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=padding)
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
    conv.bias.data = torch.from_numpy(w[name + "/bias"])
    return conv


def _conv_freqwide(w: Dict[str, np.ndarray], name: str) -> nn.Conv1d:
    """A Conv1d over time from a TF kernel ``(kt, width, 1, out)`` that spans the whole
    second axis (musicnn's mid-end): the TF "frequency" axis becomes the input channels."""
    k = w[name + "/kernel"]
    conv = nn.Conv1d(k.shape[1], k.shape[3], k.shape[0], padding=3)  # musicnn pads 3+3
    conv.weight.data = torch.from_numpy(np.ascontiguousarray(k[:, :, 0, :].transpose(2, 1, 0)))
    conv.bias.data = torch.from_numpy(w[name + "/bias"])
    return conv


def _dense(w: Dict[str, np.ndarray], name: str) -> nn.Linear:
    """A Linear from a TF ``(in, out)`` kernel."""
    k = w[name + "/kernel"]
    lin = nn.Linear(k.shape[0], k.shape[1])
    lin.weight.data = torch.from_numpy(np.ascontiguousarray(k.T))
    lin.bias.data = torch.from_numpy(w[name + "/bias"])
    return lin


class Musicnn(nn.Module):
    """musicnn (``build_musicnn`` in the wheel): musically motivated front end,
    dense-residual mid end, mean/max temporal pooling and a dense back end.

    Parameters
    ----------
    w : dict of str to numpy.ndarray
        Checkpoint variables (from :func:`~freqrex.models._tf_checkpoint.read_checkpoint`).
    """

    def __init__(self, w: Dict[str, np.ndarray]):
        super().__init__()
        self.bn_in = _bn(w, "batch_normalization")
        # front end: two timbral convs (7x38, 7x67, time padded 3+3, valid) and
        # three temporal convs (128x1, 64x1, 32x1, TF "same"), each conv -> relu -> bn
        # -> max over frequency; variables conv2d..conv2d_4 / batch_normalization_1.._5.
        # TF "same" pads an even kernel k by (k/2 - 1, k/2): pad k/2 on both sides
        # and drop the first output frame instead.
        names = ["conv2d"] + [f"conv2d_{i}" for i in range(1, 5)]
        self.front = nn.ModuleList([_conv2d(w, names[0], (3, 0)), _conv2d(w, names[1], (3, 0))])
        self.front.extend(_conv2d(w, n, (k // 2, 0)) for n, k in zip(names[2:], (128, 64, 32)))
        self.front_bn = nn.ModuleList(_bn(w, f"batch_normalization_{i + 1}") for i in range(5))
        # mid end: three 7-tap convs over time, full width (conv2d_5.._7, bn_6.._8)
        self.mid = nn.ModuleList(_conv_freqwide(w, f"conv2d_{i + 5}") for i in range(3))
        self.mid_bn = nn.ModuleList(_bn(w, f"batch_normalization_{i + 6}") for i in range(3))
        # back end
        self.bn_pool = _bn(w, "batch_normalization_9")
        self.dense = _dense(w, "dense")
        self.bn_dense = _bn(w, "batch_normalization_10")
        self.out = _dense(w, "dense_1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map log-mel patches ``(batch, time, 96)`` to sigmoid tags ``(batch, 50)``."""
        x = _bn_nd(self.bn_in, x.unsqueeze(1))  # (B, 1, T, 96)
        feats = []
        for i, (conv, bn) in enumerate(zip(self.front, self.front_bn)):
            y = F.relu(conv(x))  # (B, C, T, F'); temporal convs: T + 1 frames
            y = _bn_nd(bn, y if i < 2 else y[:, :, 1:])
            feats.append(y.amax(dim=3))  # max over all frequencies -> (B, C, T)
        front = torch.cat(feats, dim=1)  # (B, 561, T): f74, f77, s1, s2, s3
        outs, h = [front], front
        for i, (conv, bn) in enumerate(zip(self.mid, self.mid_bn)):
            y = _bn_nd(bn, F.relu(conv(h)))  # (B, 64, T)
            h = y if i == 0 else y + h  # residual from the second layer on
            outs.append(h)
        mid = torch.cat(outs, dim=1)  # (B, 753, T)
        # TF concatenates [max, mean] on a trailing axis then flattens: interleave
        pooled = torch.stack([mid.amax(dim=2), mid.mean(dim=2)], dim=2).flatten(1)
        h = _bn_nd(self.bn_dense, F.relu(self.dense(_bn_nd(self.bn_pool, pooled))))
        return torch.sigmoid(self.out(h))


class MusicnnVGG(nn.Module):
    """The VGG-like baseline (``vgg`` in the wheel, 128 filters): five 3x3 conv ->
    relu -> bn -> max-pool stages and a dense layer on the flattened map.

    Parameters
    ----------
    w : dict of str to numpy.ndarray
        Checkpoint variables.
    """

    _POOLS = ((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))

    def __init__(self, w: Dict[str, np.ndarray]):
        super().__init__()
        self.bn_in = _bn(w, "batch_normalization")
        self.convs = nn.ModuleList(_conv2d(w, f"{i + 1}CNN", (1, 1)) for i in range(5))  # "same"
        self.bns = nn.ModuleList(_bn(w, f"batch_normalization_{i + 1}") for i in range(5))
        self.out = _dense(w, "dense")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map log-mel patches ``(batch, 187, 96)`` to sigmoid tags ``(batch, 50)``."""
        h = _bn_nd(self.bn_in, x.unsqueeze(1))
        for conv, bn, (size, stride) in zip(self.convs, self.bns, self._POOLS):
            h = F.relu(conv(h))
            h = F.max_pool2d(_bn_nd(bn, h), size, stride)  # TF "valid" pooling
        h = h.permute(0, 2, 3, 1).flatten(1)  # TF flattens NHWC: (B, 2*1*128)
        return torch.sigmoid(self.out(h))


def build(name: str, checkpoint_dir: Optional[str] = None) -> nn.Module:
    """Build one musicnn tagger with the wheel's trained weights, in eval mode.

    Parameters
    ----------
    name : {"MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"}
        The tagger.
    checkpoint_dir : str, optional
        Directory holding ``<name>/.index`` and ``<name>/.data-00000-of-00001``
        (the ``musicnn`` package folder of the wheel); default
        :func:`find_checkpoints`.

    Returns
    -------
    torch.nn.Module
        Maps float32 ``(batch, 187, 96)`` log-mel patches to ``(batch, 50)``
        sigmoid probabilities.
    """
    if name not in MODELS:
        raise ValueError(f"unknown musicnn model {name!r}; choose from {sorted(MODELS)}")
    checkpoint_dir = checkpoint_dir or find_checkpoints()
    if checkpoint_dir is None:
        raise FileNotFoundError("musicnn checkpoints not found: pip install --no-deps musicnn "
                                "or set FREQREX_MUSICNN_DIR")
    weights = read_checkpoint(os.path.join(checkpoint_dir, name) + os.sep)
    model = Musicnn(weights) if MODELS[name] == "musicnn" else MusicnnVGG(weights)
    return model.eval().requires_grad_(False)
