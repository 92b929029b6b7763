"""Where stream frames come from: a webcam (OpenCV ``VideoCapture``, for an integer source
such as ``"0"``) or PyAV (URLs and files), each frame as ``(seconds since the first frame,
(H, W, 3) uint8 RGB)`` bounded by the clip spec's ``max_side``.

Rotation metadata is not applied to streams. Over HTTP, an MP4 whose index (``moov``) is at the
end can only be read from a server that answers byte-range requests (FFmpeg seeks to the index);
MPEG-TS, fragmented or "faststart" MP4 read front to back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rdam.errors import CorruptVideoError, VideoError, VideoNotFoundError

STREAM_TIMEOUT_S = 15.0
#: what the readers yield: seconds, the kept (downscaled) frame, the source's (width, height)
_Sized = tuple[float, np.ndarray, tuple[int, int]]
WEBCAM_READ_ATTEMPTS = 3
"""Failed webcam reads in a row (a frame dropped now and then is not an end) that end a webcam
stream as broken off."""
WEBCAM_RETRY_S = 0.05
"""Pause between two failed webcam reads."""


def _resize(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    from rdam.data.video import fit_size

    height, width = frame.shape[:2]
    new_w, new_h = fit_size(width, height, max_side)
    if (new_w, new_h) == (width, height):
        return frame
    return cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)


def _webcam_frames(index: int, max_side: int | None) -> Iterator[_Sized]:
    """A webcam's frames until the caller stops. A webcam has no end of its own: when
    :data:`WEBCAM_READ_ATTEMPTS` reads in a row give no frame (unplugged, taken by another
    program, its driver failed), the stream broke off (:class:`CorruptVideoError`)."""
    import cv2

    name = f"webcam {index}"
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise VideoError(name, "cannot open the webcam (is it connected and free?)")
    start = time.monotonic()
    frames = 0
    failed = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                failed += 1
                if failed >= WEBCAM_READ_ATTEMPTS:
                    raise CorruptVideoError(
                        name,
                        f"the webcam stopped giving frames after {frames} frames "
                        f"({failed} reads in a row failed): unplugged, or taken by another "
                        "program?",
                    )
                time.sleep(WEBCAM_RETRY_S)
                continue
            failed = 0
            frames += 1
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yield time.monotonic() - start, _resize(rgb, max_side), (rgb.shape[1], rgb.shape[0])
    finally:
        capture.release()


def _frame_time(frame: Any, last: float | None, step: float) -> float | None:
    """A decoded frame's time (s) on the stream's clock, as the video reader times frames of
    a file: its pts, else its dts, else one frame interval ``step`` (from the stream's frame
    rate) after the ``last`` frame (a raw H.264 elementary stream carries no timestamps); None
    when none of them is known."""
    if frame.time is not None:
        return float(frame.time)
    if frame.dts is not None and frame.time_base is not None:
        return float(frame.dts * frame.time_base)
    if last is None:
        return 0.0
    return last + step if step > 0 else None


def _pyav_frames(source: str, max_side: int | None, timeout: float) -> Iterator[_Sized]:
    import av

    from rdam.data.video import fit_size
    from rdam.data.video.reader import frame_to_rgb

    is_url = re.match(r"^[a-z][a-z0-9+.-]*://", source, re.IGNORECASE) is not None
    if not is_url and not Path(source).exists():
        raise VideoNotFoundError(source, "no such file; give a file, a URL or a webcam index")
    options = {"rtsp_transport": "tcp"} if source.lower().startswith("rtsp://") else {}
    try:
        container = av.open(source, options=options, timeout=(timeout, timeout))
    except Exception as exc:
        raise CorruptVideoError(
            source, f"cannot open the stream ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        if not container.streams.video:
            raise CorruptVideoError(source, "the stream has no video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # the frame rate of the video reader (rdam.data.video.reader), for frames without times
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        step = 1.0 / fps if fps > 0 else 0.0
        origin: float | None = None
        last: float | None = None
        for frame in container.decode(stream):
            t = _frame_time(frame, last, step)
            if t is None:
                raise CorruptVideoError(
                    source,
                    "its frames carry no timestamps and it states no frame rate, so the times "
                    "of its frames (window start/end, --sample-fps) are unknown; remux it into "
                    "a container with timestamps (ffmpeg -i IN -c copy OUT.mkv)",
                )
            last = t
            origin = t if origin is None else origin
            # the conversion (and area-filtered downscaling) of the video reader
            size = fit_size(frame.width, frame.height, max_side)
            yield t - origin, frame_to_rgb(frame, size, 0), (frame.width, frame.height)
    except VideoError:
        raise
    except Exception as exc:
        raise CorruptVideoError(
            source, f"the stream broke off ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        container.close()


class StreamFrames:
    """The frames of a stream as ``(seconds since the first frame, (H, W, 3) uint8 RGB)``
    pairs; :attr:`source_size` is the ``(width, height)`` of the source's last frame before
    the downscaling, so boxes found on the kept frames can be reported in source pixels."""

    def __init__(self, frames: Iterator[_Sized]) -> None:
        self._frames = frames
        self.source_size: tuple[int, int] = (0, 0)

    def __iter__(self) -> StreamFrames:
        return self

    def __next__(self) -> tuple[float, np.ndarray]:
        t, frame, self.source_size = next(self._frames)
        return t, frame


def stream_frames(
    source: str | int, max_side: int | None = None, timeout: float = STREAM_TIMEOUT_S
) -> StreamFrames:
    """``(seconds since the first frame, (H, W, 3) uint8 RGB)`` from a webcam index, URL or
    file, downscaled so no side exceeds ``max_side`` (the source's size:
    :attr:`StreamFrames.source_size`).

    A file or URL ends where its video ends; a webcam never ends by itself (the caller stops
    reading), so frames that stop coming from it are an error.

    Raises:
        VideoError (subclasses) naming the source when it cannot be opened or breaks off
        (a webcam: :class:`CorruptVideoError` when it stops giving frames).
    """
    text = str(source)
    if re.fullmatch(r"\d+", text):
        return StreamFrames(_webcam_frames(int(text), max_side))
    return StreamFrames(_pyav_frames(text, max_side, timeout))
