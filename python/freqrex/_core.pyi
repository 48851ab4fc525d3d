"""Type stubs of the compiled core (rust/freqrex-py)."""

from typing import Any, Dict, List, Literal, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

class FrequencySpace:
    """A clip decomposed into its frequency space (``fft`` or ``stft``)."""

    def __init__(
        self,
        audio: npt.NDArray[np.float32],
        *,
        space: Literal["fft", "stft"] = "fft",
        n_fft: int = 2048,
        hop_length: int = 512,
        mask_value: float = 0.0,
        n_threads: Optional[int] = None,
    ) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def n_samples(self) -> int: ...
    @property
    def n_frames(self) -> int: ...
    @property
    def n_bins(self) -> int: ...
    @property
    def n_fft(self) -> int: ...
    @property
    def hop_length(self) -> int: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    def coefficients(self) -> npt.NDArray[np.complex128]: ...
    def synthesize(self, masks: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]: ...

class Engine:
    """One explanation as an ask/tell loop over a FrequencySpace."""

    def __init__(
        self,
        space: FrequencySpace,
        target: int,
        target_score: float,
        *,
        band: Tuple[int, int],
        n_parts: int = 4,
        min_part: int = 2,
        max_depth: int = 16,
        iterations: int = 20,
        budget: int = 2000,
        seed: int = 0,
        cuts: Literal["uniform", "log"] = "uniform",
        rule: Literal["minimal", "rex", "confidence"] = "minimal",
        threshold: Optional[float] = None,
        extraction_batch: int = 2,
        tol: float = 0.01,
        alternatives: int = 4,
        class_maps: int = 5,
        max_queries: Optional[int] = None,
        magnitude: Optional[npt.NDArray[np.float64]] = None,
        responsibility: Optional[npt.NDArray[np.float64]] = None,
    ) -> None: ...
    def ask(self, batch_size: int) -> Optional[npt.NDArray[np.float32]]: ...
    def tell(self, scores: npt.NDArray[np.float64]) -> None: ...
    @property
    def phase(self) -> Literal["search", "extract", "done"]: ...
    @property
    def active_iterations(self) -> int: ...
    def stats(self) -> Dict[str, Any]: ...
    def responsibility(self) -> npt.NDArray[np.float64]: ...
    def ranking(self) -> npt.NDArray[np.int64]: ...
    def sets(self) -> Dict[str, Any]: ...
    def class_responsibility(self) -> Dict[int, npt.NDArray[np.float64]]: ...
    def class_counts(self) -> Dict[int, int]: ...

def splitmix64(seed: int, n: int) -> List[int]: ...
