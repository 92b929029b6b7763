"""Where stream frames come from: a webcam (OpenCV ``VideoCapture``, for an integer source
such as ``"0"``) or PyAV (URLs and files), each frame as ``(seconds since the first frame,
(H, W, 3) uint8 RGB)`` bounded by the clip spec's ``max_side``.

Stream times never go back: a frame timed well before the frame before it (the source's clock
was reset or wrapped: a camera restarting, segments joined one after the other) is a
discontinuity, logged as a warning naming the source, and the times go on one frame interval
after the last one (:class:`_StreamClock`). A file or URL whose video holds no frame is an error
(:class:`EmptyVideoError`, or :class:`CorruptVideoError` when it lists frames that do not
decode), not an empty stream.

Frames from PyAV are shown as the video reader shows a file's: square pixels, turned upright by
the rotation metadata (a webcam's frames come as the camera gives them). Over HTTP, an MP4 whose index (``moov``) is at the
end can only be read from a server that answers byte-range requests (FFmpeg seeks to the index);
MPEG-TS, fragmented or "faststart" MP4 read front to back.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rdam.errors import CorruptVideoError, EmptyVideoError, VideoError, VideoNotFoundError

log = logging.getLogger(__name__)

STREAM_TIMEOUT_S = 15.0
#: what the readers yield: seconds, the kept (downscaled) frame, the source's (width, height)
_Sized = tuple[float, np.ndarray, tuple[int, int]]
WEBCAM_READ_ATTEMPTS = 3
"""Failed webcam reads in a row (a frame dropped now and then is not an end) that end a webcam
stream as broken off."""
WEBCAM_RETRY_S = 0.05
"""Pause between two failed webcam reads."""
_MAX_UNSIZED_INDEX = 10_000_000
"""Index entries beyond which a stream of unknown size is not checked for truncation (walking
them would take minutes; 10 million frames are over four days at 25 fps)."""


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


DISCONTINUITY_S = 0.1
"""A frame timed more than this before the last one is a discontinuity of the source's clock;
one timed less before it is out of order (FFmpeg's command line draws the line here too)."""


class _StreamClock:
    """The stream's times (s since its first frame) from its frames' own times, never going
    back, as FFmpeg's command line times the packets of a stream with timestamp
    discontinuities (MPEG-TS).

    A frame timed more than :data:`DISCONTINUITY_S` before the last one is a discontinuity of
    the source's clock (a camera or encoder restarting its clock, a timestamp wrap, segments
    joined one after the other), not a frame from the past: the clock goes on one frame
    interval after the last time (the stream's rate ``step``; else the last interval seen
    between two frames) and follows the source's times from there. A frame timed less before
    the last one is out of order: it gets the last time, and the clock stays as it was. Without
    this the sampler skipped every frame until the source's time caught up with the old one (a
    whole restarted segment lost), windows went back in time and the per-person tracker's gap
    clock ran backwards. The first frame of each kind is logged as a warning naming the
    source, later ones at DEBUG level; :attr:`jumps` and :attr:`out_of_order` count them."""

    def __init__(self, source: str, step: float) -> None:
        self.source = source
        self.step = step
        self.jumps = 0
        self.out_of_order = 0
        self._offset: float | None = None  # stream time = source time + offset
        self._last = 0.0  # the last stream time given
        self._last_raw = 0.0  # and the source's time of that frame
        self._interval = 0.0  # the last positive interval between two frames

    def __call__(self, raw: float) -> float:
        if self._offset is None:
            self._offset, self._last, self._last_raw = -raw, 0.0, raw
            return 0.0
        t = raw + self._offset
        back = self._last - t
        if back > DISCONTINUITY_S:
            self.jumps += 1
            resumed = self._last + (self.step if self.step > 0 else self._interval)
            self._log(
                self.jumps,
                "the stream's timestamps jumped back %.3f s (from %.3f s to %.3f s of its own "
                "clock: restarted, wrapped or joined segments); taken as a discontinuity, its "
                "times go on from %.3f s",
                back,
                self._last_raw,
                raw,
                resumed,
            )
            self._offset += resumed - t
            t = resumed
        elif back > 0:
            self.out_of_order += 1
            self._log(
                self.out_of_order,
                "a frame timed %.3f s before the one before it (%.3f s after %.3f s of its own "
                "clock) is taken as out of order: it gets the time of the one before it",
                back,
                raw,
                self._last_raw,
            )
            t = self._last
        elif back < 0:
            self._interval = -back
        self._last, self._last_raw = t, raw
        return t

    def _log(self, count: int, message: str, *args: object) -> None:
        if count == 1:
            log.warning(
                "%s: " + message + " (later ones of this stream are logged at DEBUG level)",
                self.source,
                *args,
            )
        else:
            log.debug("%s: " + message + " (%d so far)", self.source, *args, count)


def _no_frame_error(source: str, stream: Any, packets: int) -> VideoError:
    """The error of a video stream that gave no frame, as the video reader words it: corrupt
    when it holds (or its index lists) packets that did not decode, else empty."""
    listed = max(int(stream.frames or 0), len(stream.index_entries))
    if packets or listed:
        return CorruptVideoError(
            source,
            f"its video stream holds {max(packets, listed)} packets but no frame could be "
            "decoded: truncated or corrupt",
        )
    return EmptyVideoError(source, "the video stream holds no frame")


def _listed_end(
    source: str, container: Any, stream: Any, first_pts: int, first_time: float
) -> tuple[float, float] | None:
    """``(the first frame's time, the container's listed end on the clock from that frame)``
    (:func:`rdam.data.video.reader.index_end`), or ``None`` when it lists no end.

    Raises:
        CorruptVideoError: the index lists more packets than the file (or download, where its
            size is known) has bytes, as the video reader refuses it.
    """
    from rdam.data.video.reader import index_end, oversized_index_error

    index = stream.index_entries
    size = int(container.size or 0)  # -1 or 0 where the input does not say (a live stream)
    error = oversized_index_error(source, len(index), size)
    if error is not None:
        raise error
    if stream.time_base is None or (size <= 0 and len(index) > _MAX_UNSIZED_INDEX):
        return None
    entries = [e for e in index if e.timestamp is not None and not e.is_discard]
    end = index_end(entries, first_pts, stream.time_base, stream)
    return None if end is None else (first_time, end)


def _pyav_frames(source: str, max_side: int | None, timeout: float) -> Iterator[_Sized]:
    import av

    from rdam.data.video.reader import (
        display_rotation,
        display_width,
        fitted_sizes,
        frame_to_rgb,
        truncation_error,
    )

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
        if not container.streams.video:  # worded as the video reader words it
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise EmptyVideoError(
                source, f"no video stream (found: {', '.join(kinds)}); is it audio only?"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # the frame rate of the video reader (rdam.data.video.reader), for frames without times
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        step = 1.0 / fps if fps > 0 else 0.0
        sar = stream.sample_aspect_ratio
        rotation: int | None = None  # from the first frame, as the video reader takes it
        clock = _StreamClock(source, step)
        last: float | None = None
        latest: float | None = None  # the latest raw time (a frame may come a little early)
        # (the first frame's time, where the container's index says the video ends)
        listed_end: tuple[float, float] | None = None
        packets = 0
        decoded = 0
        for packet in container.demux(stream):  # what container.decode(stream) does
            packets += packet.size > 0
            for frame in packet.decode():
                raw = _frame_time(frame, last, step)
                if raw is None:
                    raise CorruptVideoError(
                        source,
                        "its frames carry no timestamps and it states no frame rate, so the "
                        "times of its frames (window start/end, --sample-fps) are unknown; "
                        "remux it into a container with timestamps (ffmpeg -i IN -c copy "
                        "OUT.mkv)",
                    )
                last = raw
                if decoded == 0 and frame.pts is not None and frame.time_base is not None:
                    # the index as the file states it, read before demuxing adds to it (the
                    # Matroska demuxer lists each keyframe it reads), as the video reader does
                    listed_end = _listed_end(source, container, stream, int(frame.pts), raw)
                latest = raw if latest is None else max(latest, raw)
                decoded += 1
                # the conversion (and area-filtered downscaling) of the video reader, to
                # square pixels (an anamorphic stream is widened), turned upright
                if rotation is None:
                    rotation = display_rotation(stream, frame)
                width, height = display_width(frame.width, sar), frame.height
                shown = (height, width) if rotation in (90, 270) else (width, height)
                _, coded = fitted_sizes(*shown, rotation, max_side)
                yield clock(raw), frame_to_rgb(frame, coded, rotation), shown
        # it ended by itself (a caller that stops reading never gets here)
        if not decoded:
            raise _no_frame_error(source, stream, packets)
        if listed_end is not None and latest is not None and not clock.jumps:
            # a file (or download) cut short whose index survived: the windows so far stand,
            # but the stream did not end where the file says it does (as the video reader
            # says). Not after a jump back of the clock (joined files): the index end is then
            # not where the last frame's time should be.
            error = truncation_error(source, latest - listed_end[0], listed_end[1], fps)
            if error is not None:
                raise error
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
    the downscaling, in square pixels as the video reader shows it (an anamorphic stream's
    coded width times its pixel aspect ratio), so boxes found on the kept frames can be
    reported in the source pixels of the same file read as a file."""

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
        (a webcam: :class:`CorruptVideoError` when it stops giving frames); a file or URL
        without a video stream, or whose video holds no frame: :class:`EmptyVideoError`
        (:class:`CorruptVideoError` when it holds packets that do not decode), raised when
        the stream ends, so a stream always gives a frame or an error.
    """
    text = str(source)
    if re.fullmatch(r"\d+", text):
        return StreamFrames(_webcam_frames(int(text), max_side))
    return StreamFrames(_pyav_frames(text, max_side, timeout))
