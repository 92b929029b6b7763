"""Which timestamps to read from a clip: segment-based sampling (TSN-style, as in the paper).

A sampler answers "which times?" for a clip of a given duration and knows nothing of decoding
(:mod:`rdam.data.video` answers "which frames are shown then?"). The clip ``[0, duration)`` is
split into ``K`` equal segments and one time is taken per segment: a uniform random offset for
training, the segment centre for evaluation, or ``V`` evenly spread offsets for multi-view
testing (the predictions of the ``V`` clips are averaged).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from rdam.errors import ConfigError

SEGMENT_MODES = ("center", "random")


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_duration(duration: float) -> float:
    duration = float(duration)
    if not math.isfinite(duration) or duration < 0:
        raise ConfigError(f"clip duration must be finite seconds >= 0, got {duration!r}")
    return duration


def segment_times(duration: float, num_segments: int, offsets: np.ndarray) -> np.ndarray:
    """Times ``(k + offset) * duration / K`` for segment ``k``, clipped into ``[0, duration)``.

    Args:
        duration: clip length in seconds (0 gives all zeros).
        num_segments: ``K``.
        offsets: ``(..., K)`` positions inside each segment, in ``[0, 1)``.

    Returns:
        ``(..., K)`` float64 seconds, non-decreasing along the last axis.
    """
    duration = _check_duration(duration)
    if duration == 0.0:
        return np.zeros(np.shape(offsets), np.float64)
    step = duration / num_segments
    times = (np.arange(num_segments, dtype=np.float64) + offsets) * step
    return np.clip(times, 0.0, np.nextafter(duration, 0.0))


class ClipSampler(ABC):
    """Chooses the timestamps (seconds) to read from a clip of a known duration."""

    @abstractmethod
    def sample(self, duration: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """Timestamps for a clip of ``duration`` seconds (shape depends on the sampler)."""


class SegmentSampler(ClipSampler):
    """One timestamp per segment of ``K`` equal segments of ``[0, duration)``.

    Args:
        num_segments: ``K``, frames per clip.
        mode: ``"random"`` (training: uniform offset inside each segment) or ``"center"``
            (evaluation: the middle of each segment).
    """

    def __init__(self, num_segments: int, mode: str = "center") -> None:
        self.num_segments = _check_count("num_segments", num_segments)
        if mode not in SEGMENT_MODES:
            raise ConfigError(
                f"unknown segment sampling mode {mode!r}; valid: {', '.join(SEGMENT_MODES)}"
            )
        self.mode = mode

    def sample(self, duration: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(K,)`` sorted float64 timestamps in ``[0, duration)`` (all 0 when ``duration`` is 0).

        ``rng`` drives the random offsets (a fresh unseeded generator when ``None``); the same
        seed gives the same timestamps. Ignored in ``center`` mode.
        """
        k = self.num_segments
        if self.mode == "center":
            offsets = np.full(k, 0.5)
        else:
            offsets = (rng if rng is not None else np.random.default_rng()).random(k)
        return segment_times(duration, k, offsets)

    def __repr__(self) -> str:
        return f"SegmentSampler(num_segments={self.num_segments}, mode={self.mode!r})"


class MultiViewSampler(ClipSampler):
    """``V`` deterministic clips of ``K`` segments each, for multi-view testing: view ``v`` takes
    offset ``(v + 0.5) / V`` inside every segment (``V = 1`` is the centre sampler).

    Args:
        num_segments: ``K``, frames per view.
        num_views: ``V``, clips per video whose predictions are averaged.
    """

    def __init__(self, num_segments: int, num_views: int) -> None:
        self.num_segments = _check_count("num_segments", num_segments)
        self.num_views = _check_count("num_views", num_views)

    def sample(self, duration: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(V, K)`` float64 timestamps in ``[0, duration)``; each row sorted. ``rng`` is
        unused (the views are deterministic); it is accepted for a uniform sampler surface."""
        offsets = (np.arange(self.num_views, dtype=np.float64) + 0.5) / self.num_views
        offsets = np.broadcast_to(offsets[:, None], (self.num_views, self.num_segments))
        return segment_times(duration, self.num_segments, offsets)

    def __repr__(self) -> str:
        return f"MultiViewSampler(num_segments={self.num_segments}, num_views={self.num_views})"


SAMPLERS: dict[str, type[ClipSampler]] = {
    "segment": SegmentSampler,
    "multiview": MultiViewSampler,
}


def create_sampler(name: str, **kwargs: object) -> ClipSampler:
    """Build a sampler by name: ``segment`` (:class:`SegmentSampler`) or ``multiview``
    (:class:`MultiViewSampler`); ``kwargs`` go to its constructor.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or invalid arguments.
    """
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; valid: {', '.join(sorted(SAMPLERS))}")
    try:
        return SAMPLERS[name](**kwargs)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"bad arguments for sampler {name!r}: {exc}") from exc
