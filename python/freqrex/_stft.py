"""The freqrex STFT convention in NumPy, in one place.

Periodic Hann window; centred frames (``n_fft // 2`` zeros before the clip);
``1 + n_samples // hop_length`` frames; zeros after the clip up to
``(n_frames - 1) * hop_length + n_fft`` samples; frame ``t`` is
``rfft(w * padded[t * hop : t * hop + n_fft])``. Weighted overlap-add divided
by the overlap-added squared window inverts it exactly. The Rust core
(``space.rs``) implements the same convention.
"""

from __future__ import annotations

import numpy as np


def hann(n: int) -> np.ndarray:
    """The periodic Hann window ``0.5 - 0.5 cos(2 pi k / n)``."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def padded_length(n_frames: int, n_fft: int, hop_length: int) -> int:
    return (n_frames - 1) * hop_length + n_fft


def stft(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Complex STFT ``(n_frames, n_fft // 2 + 1)`` of a float 1-D array (no checks)."""
    n_frames = 1 + x.size // hop_length
    half = n_fft // 2
    padded = np.zeros(padded_length(n_frames, n_fft, hop_length))
    padded[half : half + x.size] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    return np.fft.rfft(frames * hann(n_fft), axis=-1)


def overlap_add(frames: np.ndarray, hop_length: int) -> np.ndarray:
    """Sum time-domain frames ``(n_frames, n_fft)`` placed every ``hop_length`` samples."""
    n_frames, n_fft = frames.shape
    out = np.zeros(padded_length(n_frames, n_fft, hop_length))
    for t, frame in enumerate(frames):
        out[t * hop_length : t * hop_length + n_fft] += frame
    return out


def window_sum(n_frames: int, n_fft: int, hop_length: int) -> np.ndarray:
    """The overlap-added squared window, the divisor of the inverse."""
    return overlap_add(np.broadcast_to(hann(n_fft) ** 2, (n_frames, n_fft)), hop_length)


def istft(frames_spectrum: np.ndarray, n_fft: int, hop_length: int, n_samples: int) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add, cropped to ``n_samples``.

    Samples the window does not cover (possible only for a partial spectrum of
    frames) are 0.
    """
    n_frames = frames_spectrum.shape[0]
    acc = overlap_add(np.fft.irfft(frames_spectrum, n=n_fft, axis=-1) * hann(n_fft), hop_length)
    wsum = window_sum(n_frames, n_fft, hop_length)
    sl = slice(n_fft // 2, n_fft // 2 + n_samples)
    acc, wsum = acc[sl], wsum[sl]
    return np.divide(acc, wsum, out=np.zeros_like(acc), where=wsum > 1e-12)
