"""Decoded frames as numpy arrays: fitting frames to a square, the clip spec's colour, and
picking stored frames of a clip.

:func:`fit_frames` gives the square ``(K, S, S, 3)`` uint8 frames stored in the cache and fed to
the data set. It is deterministic and used by the on-the-fly path, the preprocessing cache and
prediction, so they agree pixel for pixel. Nothing here imports torch.
"""

from __future__ import annotations

import cv2
import numpy as np

from rdam.data.spec import COLORS, FIT_MODES
from rdam.errors import ConfigError


def fit_frames(frames: np.ndarray, size: int, mode: str = "squash") -> np.ndarray:
    """Resize decoded frames to ``size x size``.

    Args:
        frames: ``(K, H, W, 3)`` uint8 RGB (``(K, H, W)`` grayscale is expanded to RGB).
        size: output side ``S``.
        mode: ``squash`` resizes the whole frame (aspect ratio not kept, nothing lost);
            ``crop`` resizes the shorter side to ``S`` and crops the centre; ``pad`` resizes the
            longer side to ``S`` and pads the rest with black (letterbox).

    Returns:
        ``(K, S, S, 3)`` uint8, C-contiguous.
    """
    if mode not in FIT_MODES:
        raise ConfigError(f"unknown fit mode {mode!r}; valid: {', '.join(FIT_MODES)}")
    if size < 1:
        raise ConfigError(f"frame size must be >= 1, got {size}")
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (K, H, W, 3), got {frames.shape}")
    frames = frames.astype(np.uint8, copy=False)
    out = np.zeros((frames.shape[0], size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = _fit_one(frame, size, mode)
    return out


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=interp)


def _fit_one(img: np.ndarray, size: int, mode: str) -> np.ndarray:
    h, w = img.shape[:2]
    if mode == "squash":
        return _resize(img, size, size)
    if mode == "crop":
        scale = size / min(h, w)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = _resize(img, nw, nh)
        top, left = (nh - size) // 2, (nw - size) // 2
        return img[top : top + size, left : left + size]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    img = _resize(img, nw, nh)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = img
    return canvas


def to_color(frames: np.ndarray, color: str) -> np.ndarray:
    """``(K, S, S, 3)`` uint8 RGB as the clip spec's ``color``: unchanged for ``rgb``; for
    ``gray`` the ITU-R BT.601 luma, rounded, replicated to three channels; for
    ``gray_equalized`` that luma with each frame's histogram equalized (OpenCV's
    ``equalizeHist``: grey levels mapped through their cumulative histogram)."""
    if color not in COLORS:
        raise ConfigError(f"unknown color {color!r}; valid: {', '.join(COLORS)}")
    if color == "rgb":
        return frames
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    if color == "gray_equalized":
        import cv2

        grey = np.stack([cv2.equalizeHist(np.ascontiguousarray(g)) for g in grey])
    return np.repeat(grey[..., None], 3, axis=-1)


def segment_indices(
    n: int, k: int, rng: np.random.Generator | None, view: tuple[int, int] | None = None
) -> np.ndarray:
    """Pick ``min(n, k)`` of ``n`` stored frames, one per equal segment: a random one in each
    segment with ``rng``, the centre one without, or for ``view=(v, V)`` (multi-view testing,
    ``V > 1``) the one at offset ``(v + 0.5) / V`` inside each segment, as
    :class:`rdam.data.sampling.MultiViewSampler` does with timestamps. Returns sorted int64
    ``(min(n, k),)``."""
    k = min(n, k)
    if k <= 0:
        return np.zeros((0,), dtype=np.int64)
    edges = np.linspace(0, n, k + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(np.floor(edges[1:]).astype(np.int64), lo + 1)
    if rng is not None:
        offsets = (rng.random(k) * (hi - lo)).astype(np.int64)
    elif view is not None and view[1] > 1:
        offsets = np.floor((view[0] + 0.5) / view[1] * (hi - lo)).astype(np.int64)
    else:
        offsets = (hi - lo - 1) // 2
    idx = lo + offsets
    return np.clip(idx, 0, n - 1)
