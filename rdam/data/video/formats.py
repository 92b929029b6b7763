"""The file extensions rdam reads, and what kind of clip a path is. Imports nothing heavy."""

from __future__ import annotations

from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
"""Suffixes (lower case) read as still images, by :func:`rdam.data.video.read_image`."""

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)
"""Suffixes that folder layouts (data sets, ``rdam predict DIR``) collect as videos; any other
file that is not an image is still opened as a video when it is named directly."""


def clip_kind(path: str | Path) -> str:
    """``image`` (single image file), ``sequence`` (folder of frames) or ``video``."""
    p = Path(path)
    if p.is_dir():
        return "sequence"
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    return "video"
