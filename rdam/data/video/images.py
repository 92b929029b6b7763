"""Still images: the one image decoder of rdam, and image sequences read as clips.

:func:`read_image` (Pillow) reads every image rdam takes: single images (a one-frame clip, such
as a FER2013 face), the frames of an image sequence (CK+), and uploads. EXIF orientation is
applied, 16-bit images are scaled to 8 bits, grey images are replicated to RGB, and whatever a
damaged file makes Pillow raise becomes a :class:`~rdam.errors.CorruptVideoError` naming it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rdam.data.video.base import (
    ClipReader,
    DecodedFrames,
    VideoInfo,
    _check_timestamps,
    _natural_key,
    fit_size,
)
from rdam.data.video.formats import IMAGE_EXTENSIONS
from rdam.errors import ConfigError, CorruptVideoError, EmptyVideoError, VideoNotFoundError

DEFAULT_IMAGE_FPS = 1.0
"""Nominal frame rate of an image sequence: 1 frame per second, so a timestamp in seconds is the
frame index. Image sequences (CK+, FER2013 images) carry no timing; segment sampling only uses
relative positions, so any rate gives the same frames."""


@contextlib.contextmanager
def _pillow_errors(path: Path) -> Iterator[None]:
    """Turn whatever Pillow raises on a damaged image into :class:`CorruptVideoError`.

    Its parsers report damage with UnidentifiedImageError, OSError, ValueError, but also
    SyntaxError ("broken PNG file"), TypeError (a TIFF strip offset that is a float),
    DecompressionBombError (a header claiming 179+ million pixels) ... (all found by fuzzing).
    """
    try:
        yield
    except FileNotFoundError as exc:
        raise VideoNotFoundError(str(path), "the image disappeared while reading") from exc
    except Exception as exc:
        raise CorruptVideoError(
            str(path), f"unreadable image ({type(exc).__name__}: {exc})"
        ) from exc


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """One image file as ``(H, W, 3)`` uint8 RGB: EXIF orientation applied, grey replicated to
    three channels, 16-bit (and 32-bit integer) grey scaled from 0-65535 to 8 bits.

    Raises:
        VideoNotFoundError, EmptyVideoError, CorruptVideoError naming the file.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoNotFoundError(str(path), "the image does not exist; check the path") from None
    if size == 0:
        raise EmptyVideoError(str(path), "the image file is empty (0 bytes)")
    with _pillow_errors(path), Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            # one fixed 16-bit range for every file (32-bit "I" images as Pillow gives 16-bit
            # PNGs and TIFFs): scaled by its own maximum, the same values came out brighter or
            # darker from file to file, and the frames of a sequence flickered
            array = np.asarray(image, dtype=np.float64)
            gray = np.clip(array / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return np.repeat(gray[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, read from the header only."""
    from PIL import Image

    with _pillow_errors(path), Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside ``folder`` (hidden files skipped), sorted naturally by name
    (``f2.png`` before ``f10.png``)."""
    entries = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(entries, key=lambda p: _natural_key(p.name))


class ImageSequenceReader(ClipReader):
    """A folder of images (one clip, natural name order) or a single image (a 1-frame clip).

    Frame ``i`` is shown during ``[i / fps, (i + 1) / fps)``; ``duration = N / fps``. Images whose
    size differs from the first one are resized to it. EXIF orientation is applied on reading,
    so ``info.rotation`` is 0.

    Args:
        path: a folder of images or one image file.
        fps: nominal frame rate (default :data:`DEFAULT_IMAGE_FPS` = 1, timestamp = index).

    Raises:
        VideoNotFoundError: the path does not exist.
        EmptyVideoError: the folder holds no image.
        CorruptVideoError: an image cannot be read (names that image).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = DEFAULT_IMAGE_FPS) -> None:
        self.path = str(path)
        if not fps > 0:
            raise ConfigError(f"image sequence fps must be > 0, got {fps}")
        p = Path(path)
        if not p.exists():
            raise VideoNotFoundError(self.path, "no such file or folder; check the path")
        if p.is_dir():
            files = list_images(p)
            if not files:
                raise EmptyVideoError(
                    self.path, f"the folder holds no image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
        else:
            if p.stat().st_size == 0:
                raise EmptyVideoError(self.path, "the image file is empty (0 bytes)")
            files = [p]
        self.files = files
        self.fps = float(fps)
        width, height = image_size(files[0])
        self._info = VideoInfo(
            path=self.path,
            duration=len(files) / self.fps,
            fps=self.fps,
            num_frames=len(files),
            width=width,
            height=height,
            rotation=0,
            kind="images",
        )

    def index_at(self, t: float) -> int:
        """Index of the image shown at ``t`` seconds (clamped to the sequence)."""
        index = math.floor(t * self.fps + 1e-9)
        return min(max(index, 0), len(self.files) - 1)

    def read(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None = None
    ) -> DecodedFrames:
        """Images shown at ``timestamps``, in the caller's order.

        Returns:
            :class:`DecodedFrames` ``frames (K, H, W, 3)`` uint8 RGB, ``timestamps (K,)``.
        """
        import cv2

        ts = _check_timestamps(timestamps)
        width, height = fit_size(self._info.width, self._info.height, max_side)
        frames = np.empty((len(ts), height, width, 3), np.uint8)
        shown = np.empty(len(ts), np.float64)
        loaded: dict[int, np.ndarray] = {}
        for i, t in enumerate(ts):
            index = self.index_at(float(t))
            if index not in loaded:
                image = read_image(self.files[index])
                if image.shape[:2] != (height, width):
                    shrink = image.shape[0] * image.shape[1] > height * width
                    image = cv2.resize(
                        image,
                        (width, height),
                        interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
                    )
                loaded[index] = image
            frames[i] = loaded[index]
            shown[i] = index / self.fps
        return DecodedFrames(frames=frames, timestamps=shown)

    def close(self) -> None:
        """Nothing to release: images are opened and closed per read."""
