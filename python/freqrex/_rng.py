"""SplitMix64, bit for bit the generator of the Rust core (``rng.rs``).

Sharing one small portable generator lets the NumPy reference draw exactly the
partitions the core draws for the same seed.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class SplitMix64:
    """The SplitMix64 generator of Steele, Lea and Flood (2014)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _MASK

    @classmethod
    def for_iteration(cls, seed: int, iteration: int) -> "SplitMix64":
        """The generator of one search iteration: a function of (seed, iteration) only."""
        a = cls(seed).next_u64()
        b = cls(int(iteration) ^ 0x5851F42D4C957F2D).next_u64()
        return cls(a ^ b)

    def next_u64(self) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """An integer uniform in ``range(n)`` (Lemire's multiply-shift)."""
        return (self.next_u64() * n) >> 64

    def uniform(self) -> float:
        """A float uniform in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)
