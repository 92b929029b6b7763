"""Decoding clips: video files (PyAV, sparse seeking), single images and image sequences.

- :mod:`~rdam.data.video.formats`: the one list of image and video file extensions;
- :mod:`~rdam.data.video.base`: :class:`VideoInfo`, :class:`DecodedFrames`, :class:`ClipReader`;
- :mod:`~rdam.data.video.reader`: :class:`VideoReader` (and the full-decode reference);
- :mod:`~rdam.data.video.images`: :func:`read_image`, the one image decoder, and
  :class:`ImageSequenceReader`.

:func:`open_clip` picks the reader for a path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdam.data.video.base import ClipReader, DecodedFrames, VideoInfo, fit_size
from rdam.data.video.formats import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, clip_kind
from rdam.data.video.images import DEFAULT_IMAGE_FPS, ImageSequenceReader, list_images, read_image
from rdam.errors import VideoNotFoundError

if TYPE_CHECKING:
    from rdam.data.video.reader import VideoReader

# PyAV is imported with the video reader, the first time a video is opened (or one of these
# names is asked for): reading images, training on them and the rest of rdam do not need it.
_READER_NAMES = ("DEFAULT_TIMEOUT_S", "VideoReader", "read_frames_full_decode")


def __getattr__(name: str) -> Any:
    if name in _READER_NAMES:
        from rdam.data.video import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_clip(
    path: str | os.PathLike[str],
    *,
    image_fps: float = DEFAULT_IMAGE_FPS,
    timeout: float | None = None,
) -> VideoReader | ImageSequenceReader:
    """Open a clip: a folder is an image sequence, a file with an image suffix is a 1-frame
    clip, anything else is a video.

    Args:
        path: video file, image file or folder of images.
        image_fps: nominal rate of image sequences.
        timeout: seconds one blocking FFmpeg call may wait (videos; default
            :data:`~rdam.data.video.reader.DEFAULT_TIMEOUT_S`).
    """
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(str(path), "no such file or folder; check the path")
    if p.is_dir() or p.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageSequenceReader(p, fps=image_fps)
    from rdam.data.video.reader import DEFAULT_TIMEOUT_S, VideoReader

    return VideoReader(p, timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Metadata of a clip (video, image or folder of images) without decoding it: container
    and stream fields, plus one decoded frame for videos (rotation and decodability).

    Raises:
        VideoNotFoundError, EmptyVideoError, CorruptVideoError: see :class:`VideoReader`.
    """
    with open_clip(path) as reader:
        return reader.info


__all__ = [
    "DEFAULT_IMAGE_FPS",
    "DEFAULT_TIMEOUT_S",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipReader",
    "DecodedFrames",
    "ImageSequenceReader",
    "VideoInfo",
    "VideoReader",
    "clip_kind",
    "fit_size",
    "list_images",
    "open_clip",
    "probe_video",
    "read_frames_full_decode",
    "read_image",
]
