"""What every clip reader has in common: clip metadata, decoded frames, the reader surface.

A reader answers "which frame is on screen at time t?" and knows nothing of labels or of how the
timestamps were chosen (that is :mod:`rdam.data.sampling`). Timestamps are seconds from the first
frame of the clip: the first frame's presentation time is subtracted, so it is at ``0.0``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np

from rdam.errors import ConfigError


@dataclass(frozen=True)
class VideoInfo:
    """What a clip holds, read from metadata (and at most one decoded frame).

    Attributes:
        path: the file or folder.
        duration: seconds; frames are shown during ``[0, duration)``.
        fps: average frame rate (nominal rate for image sequences).
        num_frames: exact when the container records it, else ``round(duration * fps)``.
        width, height: display size in pixels after rotation (and sample aspect ratio).
        rotation: clockwise degrees (0, 90, 180, 270) applied to coded frames to show them
            upright, the convention of the legacy ``rotate`` tag.
        kind: ``"video"`` or ``"images"``.
    """

    path: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    kind: str


@dataclass
class DecodedFrames:
    """Frames read at requested timestamps, in the order the timestamps were given.

    Attributes:
        frames: ``(K, H, W, 3)`` uint8 RGB, upright.
        timestamps: ``(K,)`` float64 presentation time (s) of each returned frame, which is
            ``<=`` the requested time except before the first frame.
    """

    frames: np.ndarray  # (K, H, W, 3) uint8 RGB
    timestamps: np.ndarray  # (K,) float64 seconds actually shown

    def __len__(self) -> int:
        return len(self.frames)


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled down, keeping the aspect ratio, so that neither side exceeds
    ``max_side``; unchanged when ``max_side`` is ``None`` or the frame already fits."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    if max_side < 1:
        raise ConfigError(f"max_side must be a positive number of pixels, got {max_side}")
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_timestamps(timestamps: Sequence[float] | np.ndarray) -> np.ndarray:
    ts = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(ts)):
        raise ConfigError(f"timestamps must be finite seconds, got {ts[~np.isfinite(ts)][:5]}")
    return ts


def _natural_key(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ClipReader(ABC):
    """Common surface of :class:`VideoReader` and :class:`ImageSequenceReader`.

    Use as a context manager; ``info`` describes the clip and ``read`` returns the frames shown
    at the given timestamps.
    """

    _info: VideoInfo

    @property
    def info(self) -> VideoInfo:
        """Metadata of the clip."""
        return self._info

    @abstractmethod
    def read(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None = None
    ) -> DecodedFrames:
        """Frames ``(K, H, W, 3)`` shown at ``timestamps`` (K seconds, any order, duplicates
        allowed), returned in the caller's order, downscaled so no side exceeds ``max_side``."""

    @abstractmethod
    def close(self) -> None:
        """Release the file handles (idempotent)."""

    def read_keyframes(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None = None
    ) -> DecodedFrames:
        """Approximate sampling: for each time the nearest *keyframe*, with its own time.
        Decoding only keyframes costs a fraction of exact seeking (which must decode from a
        keyframe up to each wanted frame). Every image of a sequence is a keyframe: the same
        as :meth:`read` here."""
        return self.read(timestamps, max_side)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
