"""The musicnn music taggers (Pons & Serra, 2019), on numpy and onnxruntime only.

freqrex ships the four pretrained taggers of the ``musicnn`` 0.1.0 package
(ISC licence, see ``data/LICENSE-musicnn.txt``), converted to ONNX by
``scripts/build_musicnn.py``: ``MSD_musicnn`` and ``MSD_vgg`` (Million Song
Dataset: rock, pop, jazz, electronic, ...) and ``MTT_musicnn`` and ``MTT_vgg``
(MagnaTagATune: guitar, piano, techno, vocal, ...), 50 sigmoid tags each.

The front end reproduces musicnn's ``extractor.batch_data`` exactly (with the
librosa 0.7 defaults it was written for):

1. centred STFT: the wave is reflect-padded by 256 samples on each side,
   periodic Hann window of 512 samples, hop 256, so a wave of ``n`` samples
   gives ``1 + n // 256`` frames;
2. power spectrum, Slaney mel filterbank (96 bands, 0-8 kHz, Slaney area
   normalisation), float32;
3. rounded to float16, then ``log10(10000 * mel + 1)`` in float32 (numpy 1's
   promotion, which musicnn relied on);
4. cut into consecutive, non-overlapping patches of 187 frames (3 s); the
   frames after the last whole patch are dropped, as the original does.

Clip-level tags are the mean of the patch tags (as ``musicnn.tagger`` does).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional, Sequence

import numpy as np

from ..errors import ModelError, ParameterError
from .base import Model, as_wave_batch as _as_waves, check_threads, onnx_session

__all__ = ["MusicnnModel", "musicnn", "log_mel", "patches", "mel_filterbank", "NAMES"]

#: Names of the shipped taggers.
NAMES = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187
#: Patches per onnxruntime call. onnxruntime's arena keeps the largest call's activations: 32
#: patches held 1.7 GB for a batch of 16 30 s clips, 8 patches 0.6 GB, at about 15% more CPU.
PATCH_BATCH = 8
#: Fewest samples that give one whole patch (``1 + n // 256 >= 187``): 2.976 s.
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa, htk=False)."""
    hz = np.asanyarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log = hz >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    mel = np.asanyarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mel - 15.0)), mel * 200.0 / 3)


@functools.lru_cache(maxsize=None)
def mel_filterbank() -> np.ndarray:
    """musicnn's mel filterbank, as ``librosa.filters.mel(16000, 512, n_mels=96)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(257, 96)`` (transposed for ``power @ fb``), read-only and
        computed once.  Slaney mel scale and Slaney (area) normalisation,
        0 Hz to 8 kHz, with librosa's float64 arithmetic and float32 storage.
    """
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    ramps = mel_hz[:, None] - fft_hz[None, :]
    fdiff = np.diff(mel_hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    tri = np.maximum(0, np.minimum(lower, upper)).astype(np.float32)
    enorm = 2.0 / (mel_hz[2:] - mel_hz[:-2])
    fb = np.ascontiguousarray((tri * enorm[:, None]).astype(np.float32).T)
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=None)
def _hann() -> np.ndarray:
    """Periodic float64 Hann window of ``N_FFT`` samples, computed as librosa does."""
    from scipy.signal import get_window

    return get_window("hann", N_FFT, fftbins=True)




def log_mel(waves, n_frames: Optional[int] = None) -> np.ndarray:
    """musicnn's log-mel spectrogram of a batch of 16 kHz waves.

    Parameters
    ----------
    waves : array_like
        float ``(batch, samples)`` (or ``(samples,)``), 16 kHz mono, at least
        257 samples (reflect padding needs them).
    n_frames : int, optional
        Compute only the first ``n_frames`` frames (default: all
        ``1 + samples // 256``).

    Returns
    -------
    numpy.ndarray
        float32 ``(batch, frames, 96)``: ``log10(10000 * float16(mel) + 1)``.
    """
    x = _as_waves(waves)
    if x.shape[1] <= N_FFT // 2:
        raise ParameterError(f"waves need more than {N_FFT // 2} samples, got {x.shape[1]}")
    total = 1 + x.shape[1] // HOP
    n_frames = total if n_frames is None else min(int(n_frames), total)
    need = (n_frames - 1) * HOP + N_FFT  # padded samples the frames use
    out = np.empty((x.shape[0], n_frames, N_MELS), dtype=np.float32)
    step = max(1, 8192 // n_frames)  # waves per chunk: bounds the float64 frame buffers
    for i in range(0, x.shape[0], step):
        padded = np.pad(x[i:i + step], ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded[:, :need], N_FFT, axis=1)[:, ::HOP]
        # as librosa: float32 frames * float64 window -> float64 rfft -> complex64 -> |.|^2
        power = np.abs(np.fft.rfft(frames * _hann(), axis=-1).astype(np.complex64)) ** 2
        mel = (power @ mel_filterbank()).astype(np.float16).astype(np.float32)
        out[i:i + step] = np.log10(10000.0 * mel + 1.0)
    return out


def patches(waves, pad: bool = True) -> np.ndarray:
    """Cut waves into musicnn's input patches.

    Parameters
    ----------
    waves : array_like
        float ``(batch, samples)`` (or ``(samples,)``), 16 kHz mono.
    pad : bool, default True
        Zero-pad (at the end) waves shorter than one patch
        (:data:`PATCH_SAMPLES` = 47,616 samples) to one patch; the original
        fails on them.  If False, such waves raise :class:`ParameterError`.

    Returns
    -------
    numpy.ndarray
        float32 ``(batch, n_patches, 187, 96)`` with ``n_patches = (1 + samples
        // 256) // 187``: consecutive 187-frame patches, remainder dropped.
    """
    x = _as_waves(waves)
    if x.shape[1] < PATCH_SAMPLES:
        if not pad:
            raise ParameterError(f"waves need at least {PATCH_SAMPLES} samples, got {x.shape[1]}")
        x = np.pad(x, ((0, 0), (0, PATCH_SAMPLES - x.shape[1])))
    n_patches = (1 + x.shape[1] // HOP) // PATCH_FRAMES
    mel = log_mel(x, n_patches * PATCH_FRAMES)
    return mel.reshape(x.shape[0], n_patches, PATCH_FRAMES, N_MELS)


class MusicnnModel(Model):
    """A musicnn tagger: waves -> clip-level sigmoid tag probabilities.

    Build it with :func:`musicnn`.

    Attributes
    ----------
    name : str
        The tagger (one of :data:`NAMES`).
    sample_rate : int
        16000.
    class_names : list of str
        The 50 tags.
    output : str
        ``"sigmoid"`` (independent tag probabilities).
    input_samples : None
        Any length works: the clip is cut into 3 s patches (the remainder after
        the last whole patch is ignored) and waves shorter than one patch
        (47,616 samples) are zero-padded to one patch.  The taggers were
        trained on 3 s patches of 30 s clips (480,000 samples).
    batch_size : int
        Patches per onnxruntime call.
    """

    sample_rate = SAMPLE_RATE
    output = "sigmoid"
    input_samples = None

    def __init__(self, name: str, session, class_names: Sequence[str], batch_size: int = PATCH_BATCH):
        self.name = name
        self.session = session
        self.class_names = list(class_names)
        self.batch_size = int(batch_size)
        self._input = session.get_inputs()[0].name

    def __repr__(self) -> str:
        return f"MusicnnModel({self.name!r}, batch_size={self.batch_size})"

    def predict_patches(self, x: np.ndarray) -> np.ndarray:
        """Run the network on log-mel patches.

        Parameters
        ----------
        x : numpy.ndarray
            float32 ``(n, 187, 96)`` log-mel patches (see :func:`patches`).

        Returns
        -------
        numpy.ndarray
            float32 ``(n, 50)`` sigmoid tag probabilities per patch.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = [self.session.run(None, {self._input: x[i:i + self.batch_size]})[0]
               for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes), np.float32)

    def taggram(self, waves) -> np.ndarray:
        """Tag probabilities of each 3 s patch.

        Parameters
        ----------
        waves : array_like
            float ``(batch, samples)``, 16 kHz mono.

        Returns
        -------
        numpy.ndarray
            float32 ``(batch, n_patches, 50)``.
        """
        p = patches(waves)
        tags = self.predict_patches(p.reshape(-1, PATCH_FRAMES, N_MELS))
        return tags.reshape(p.shape[0], p.shape[1], -1)

    def __call__(self, waves) -> np.ndarray:
        """Clip-level tags: the mean over patches of :meth:`taggram`.

        Parameters
        ----------
        waves : array_like
            float ``(batch, samples)`` (or ``(samples,)``), 16 kHz mono.

        Returns
        -------
        numpy.ndarray
            float32 ``(batch, 50)`` sigmoid tag probabilities.
        """
        try:
            tags = self.taggram(waves).mean(axis=1)
        except ParameterError:
            raise
        except Exception as exc:  # onnxruntime failures
            raise ModelError(f"musicnn {self.name} failed: {exc}") from exc
        if not np.isfinite(tags).all():
            raise ModelError(f"musicnn {self.name} returned non-finite scores")
        return tags.astype(np.float32, copy=False)


def find_checkpoints() -> Optional[str]:
    """Locate the original TF checkpoints (only the build script and tests need them).

    Looks at the ``FREQREX_MUSICNN_DIR`` environment variable, then at an
    installed ``musicnn`` package (``pip install --no-deps musicnn``; found
    without importing it).

    Returns
    -------
    str or None
        The directory holding ``MSD_musicnn/.index`` etc., or None.
    """
    import importlib.util

    candidates = [os.environ.get("FREQREX_MUSICNN_DIR", "")]
    spec = importlib.util.find_spec("musicnn")
    if spec is not None and spec.submodule_search_locations:
        candidates += list(spec.submodule_search_locations)
    for folder in candidates:
        if folder and os.path.isfile(os.path.join(folder, "MSD_musicnn", ".index")):
            return folder
    return None


def musicnn(name: str = "MSD_musicnn", *, providers: Optional[Sequence] = None,
            batch_size: int = PATCH_BATCH, n_threads: Optional[int] = None) -> MusicnnModel:
    """Load a shipped musicnn tagger.

    Parameters
    ----------
    name : {"MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"}, default "MSD_musicnn"
        The tagger.  MSD models use the Million Song Dataset's 50 tags (rock,
        pop, jazz, electronic, happy, sad, ...), MTT models MagnaTagATune's
        (guitar, piano, techno, vocal, ...).
    providers : sequence, optional
        onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    batch_size : int, default 8
        Patches per onnxruntime call (:data:`PATCH_BATCH`).
    n_threads : int, optional
        onnxruntime intra-op threads (default: onnxruntime's, one per core).
        On 2 cores a 30 s query takes 0.30 s with both, 0.48 s with one: give
        1 when other work shares the machine.

    Returns
    -------
    MusicnnModel
        Maps float32 ``(batch, samples)`` 16 kHz waves to ``(batch, 50)``
        clip-level sigmoid tag probabilities.

    Raises
    ------
    ModelError
        Unknown name, missing model file, or onnxruntime cannot load it.
    ParameterError
        ``batch_size`` or ``n_threads`` < 1.
    """
    if name not in NAMES:
        raise ModelError(f"unknown musicnn model {name!r}; choose from {', '.join(NAMES)}")
    if int(batch_size) < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    check_threads(n_threads)
    path = os.path.join(DATA_DIR, name + ".onnx")
    tags_path = os.path.join(DATA_DIR, "musicnn_tags.json")
    if not os.path.isfile(path) or not os.path.isfile(tags_path):
        raise ModelError(f"musicnn model file missing: {path} (regenerate with scripts/build_musicnn.py)")
    try:
        with open(tags_path) as fh:
            class_names = json.load(fh)[name]
    except Exception as exc:
        raise ModelError(f"cannot read the musicnn tags {tags_path}: {exc}") from exc
    session = onnx_session(path, providers=providers, n_threads=n_threads, what=f"musicnn model {name!r}")
    return MusicnnModel(name, session, class_names, batch_size)
