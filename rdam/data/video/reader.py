"""Read the frames of a video file shown at given timestamps (PyAV).

A reader answers "which frame is on screen at time t?" and knows nothing of labels or of how the
timestamps were chosen (that is :mod:`rdam.data.sampling`). Timestamps are seconds from the first
frame of the clip: the first frame's presentation time is subtracted, so it is at ``0.0``.

The frame returned for a time ``t`` is the frame being displayed at ``t``: the last frame whose
presentation time is ``<= t``; the first frame when ``t`` is before it, the last frame when ``t``
is past the end. :class:`VideoReader` decodes sparsely (seek to the keyframe before ``t``, decode
forward, keep going without seeking while the next timestamp lies in the same GOP);
:func:`read_frames_full_decode` decodes every frame and is the reference it is tested against.

Frames come out as upright RGB: any pixel format is converted, the rotation of the display
matrix (or legacy ``rotate`` tag) is applied (mirroring flags are not), non-square pixels are
resized to their display width. Bad files raise typed errors naming the file, in bounded work:
a packet budget per requested frame, a timeout per blocking FFmpeg call, a cap on undecodable
packets, and a check that decoding did not end before the last frame the index lists
(truncated downloads).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from rdam.data.video.base import (
    ClipReader,
    DecodedFrames,
    VideoInfo,
    _check_timestamps,
    fit_size,
)
from rdam.errors import (
    CorruptVideoError,
    EmptyVideoError,
    VideoError,
    VideoNotFoundError,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
"""Seconds one blocking FFmpeg call (open, read) may wait before the read is abandoned."""

DEFAULT_MAX_PACKETS_PER_FRAME = 100_000
"""Packets one requested frame may demux before the file is declared corrupt (about 55 minutes
of 30 fps video in a single GOP): bounds the work on a damaged file."""

MAX_DECODE_ERRORS = 32
"""Undecodable packets tolerated in one reader before the file is declared corrupt."""

_FORWARD_WINDOW_S = 2.0
"""Without a keyframe index, decode forward instead of seeking when the next timestamp is at
most this far ahead of the decoder position."""

_SEEK_BACKOFF_S = 1.0
"""First step back when a seek lands after the wanted time (open GOP, sparse index); doubled on
every retry until the start of the stream."""


# Video files
# ----------------------------------------------------------------------------------------------


def _wrap_av_error(path: str, exc: BaseException, doing: str) -> VideoError:
    """Translate a PyAV/OS error into the typed error naming the file and the step that failed."""
    if isinstance(exc, VideoError):
        return exc
    if isinstance(exc, av.error.FileNotFoundError | FileNotFoundError):
        return VideoNotFoundError(path, f"no such file while {doing}")
    if isinstance(exc, av.error.PermissionError | PermissionError | av.error.IsADirectoryError):
        return VideoError(path, f"cannot read the file while {doing}: {exc}")
    if isinstance(exc, av.error.TimeoutError | av.error.ExitError):
        return CorruptVideoError(path, f"timed out while {doing}: {exc}")
    return CorruptVideoError(
        path, f"corrupt, truncated or not a video ({type(exc).__name__} while {doing}: {exc})"
    )


def _tag_seconds(tag: str | None) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag (``HH:MM:SS.fffffffff``), ``None`` if absent."""
    if not tag:
        return None
    match = re.fullmatch(r"\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)\s*", tag)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def index_end(
    entries: Sequence[Any], origin: int, time_base: Fraction, stream: Any
) -> float | None:
    """Seconds after the frame at ``origin`` (pts) of the last packet a container's index lists
    (``entries``: its index entries with a timestamp, decode times, so at or before their
    display times), else of its Matroska ``DURATION`` tag (an end time counted from 0, not
    from the first frame) less one frame; ``None`` when the container promises no end
    (MPEG-TS, a live stream), or states a ``DURATION`` without a frame rate to turn it into
    the last frame's time."""
    if len(entries) > 1:
        return float((max(int(e.timestamp) for e in entries) - origin) * time_base)
    end = _tag_seconds(stream.metadata.get("DURATION"))
    fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
    if end is None or fps <= 0:
        return None
    # Matroska: end time -> last frame time, on the clock that starts at the first frame
    return end - 1.0 / fps - float(origin * time_base)


def oversized_index_error(path: str, packets: int, size: int) -> CorruptVideoError | None:
    """The error of a container whose index lists more packets than its ``size`` bytes can
    hold (a packet takes at least one byte), else ``None``: a damaged fragment header can make
    FFmpeg list millions of packets, and walking them in Python would take minutes."""
    if size > 0 and packets > size:
        return CorruptVideoError(
            path, f"the index lists {packets} packets in a {size}-byte file: corrupt"
        )
    return None


def truncation_error(
    path: str, last_time: float, listed_end: float | None, fps: float
) -> CorruptVideoError | None:
    """The error of a video whose decoding ended at ``last_time`` (s, the last frame's time on
    the :func:`index_end` clock) more than 1.5 frame intervals before the end its index lists
    (a truncated download whose index survived), else ``None``."""
    if listed_end is None:
        return None
    interval = 1.0 / fps if fps > 0 else 0.0
    if last_time + 1.5 * interval + 1e-6 < listed_end:
        return CorruptVideoError(
            path,
            f"the file ends after {last_time:.3f} s but its index lists frames up to "
            f"{listed_end:.3f} s: truncated",
        )
    return None


def _rotation_from_degrees(degrees: float) -> int:
    return round(degrees / 90.0) * 90 % 360


def display_rotation(stream: Any, frame: av.VideoFrame) -> int:
    """Clockwise degrees (0, 90, 180, 270) to turn a stream's frames upright: its ``rotate``
    tag, else the display matrix of its (first) ``frame`` (phone videos)."""
    tag = stream.metadata.get("rotate")
    if tag is not None:
        try:
            return _rotation_from_degrees(float(tag))
        except ValueError:
            return 0
    return _rotation_from_degrees(-float(frame.rotation or 0))


def display_width(coded_width: int, sample_aspect_ratio: Any) -> int:
    """The width of a frame shown with square pixels: the coded width times the stream's
    sample (pixel) aspect ratio, where it states one other than 1 (anamorphic video)."""
    sar = sample_aspect_ratio
    if sar is not None and sar > 0 and sar != 1:
        return max(1, round(coded_width * float(sar)))
    return coded_width


def fitted_sizes(
    width: int, height: int, rotation: int, max_side: int | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((width, height), coded)`` for an upright ``width x height`` picture bounded by
    ``max_side``: the size frames come out at, and the size to scale the decoded picture to
    before turning it by ``rotation`` (:func:`frame_to_rgb`'s ``coded_size``)."""
    out_w, out_h = fit_size(width, height, max_side)
    return (out_w, out_h), ((out_h, out_w) if rotation in (90, 270) else (out_w, out_h))


def frame_to_rgb(frame: av.VideoFrame, coded_size: tuple[int, int], rotation: int) -> np.ndarray:
    """Convert one decoded frame to upright RGB.

    Args:
        frame: any pixel format.
        coded_size: ``(width, height)`` to scale to *before* rotation.
        rotation: clockwise degrees to turn the picture after scaling.

    Returns:
        ``(H, W, 3)`` uint8 RGB, C-contiguous.
    """
    width, height = coded_size
    if (frame.width, frame.height) == (width, height):
        array = frame.to_ndarray(format="rgb24")
    else:
        array = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    if rotation:
        # np.rot90 turns counter-clockwise; a clockwise turn by r is k = -r / 90.
        array = np.rot90(array, k=-(rotation // 90))
    return np.ascontiguousarray(array)


class _Decoded:
    """One decoded frame with its time (s, from the clip start)."""

    __slots__ = ("frame", "time")

    def __init__(self, time: float, frame: av.VideoFrame) -> None:
        self.time = time
        self.frame = frame


class VideoReader(ClipReader):
    """Sparse frame reader for one video file (PyAV).

    Opening probes the metadata and decodes the first frame (to read the rotation and prove the
    file decodes). ``read`` seeks to the keyframe before each wanted time and decodes forward,
    reusing the decoder position when the next wanted time is ahead within the same GOP.

    Args:
        path: the video file.
        timeout: seconds one blocking FFmpeg call may wait.
        max_packets_per_frame: demuxed packets one requested frame may cost before the file is
            declared corrupt (bounds the work on damaged files).

    Raises:
        VideoNotFoundError: the path does not exist.
        EmptyVideoError: zero bytes, no video stream (audio only) or no decodable frame.
        CorruptVideoError: the container or stream cannot be parsed or decoded.

    A reader is not thread-safe: give each worker its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_packets_per_frame: int = DEFAULT_MAX_PACKETS_PER_FRAME,
    ) -> None:
        self.path = str(path)
        self._timeout = float(timeout)
        self._max_packets = int(max_packets_per_frame)
        self._container: av.container.InputContainer | None = None
        self._decode_errors = 0
        self._packets = 0
        self._iter: Iterator[_Decoded] | None = None
        self._prev: _Decoded | None = None
        self._next: _Decoded | None = None
        self._eof = False
        self._at_start = True
        self._first_pts: int | None = None
        self._seekable = True
        self._key_shift = 0.0
        self._listed_packets = 0
        self._index_end: float | None = None
        p = Path(path)
        if not p.exists():
            raise VideoNotFoundError(self.path, "no such file; check the path")
        if p.is_dir():
            raise VideoError(self.path, "is a folder; use open_clip() for image sequences")
        self._size = p.stat().st_size
        if self._size == 0:
            raise EmptyVideoError(self.path, "the file is empty (0 bytes)")
        try:
            self._container = av.open(self.path, mode="r", timeout=(timeout, timeout))
        except Exception as exc:
            raise _wrap_av_error(self.path, exc, "opening the container") from exc
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- metadata -------------------------------------------------------------------------------

    def _setup(self) -> None:
        container = self._container
        assert container is not None
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise EmptyVideoError(
                self.path, f"no video stream (found: {', '.join(kinds)}); is it audio only?"
            )
        stream = container.streams.video[0]
        self._stream = stream
        self._tb = stream.time_base or Fraction(1, 1_000_000)
        self._origin = int(stream.start_time) if stream.start_time is not None else 0
        self._fps_hint = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        index = stream.index_entries
        error = oversized_index_error(self.path, len(index), self._size)
        if error is not None:
            raise error
        entries = [e for e in index if e.timestamp is not None and not e.is_discard]
        self._listed_packets = max(len(entries), int(stream.frames or 0))

        # A freshly opened container is at the start: decode the first frame without seeking.
        self._at_start = True
        self._iter = self._decode_from_here(drop_leading=False)
        first = self._pull()
        if first is None:
            raise self._no_frame_error()
        # Times count from the first frame shown (start_time can differ, e.g. AVI B-frames).
        if first.frame.pts is not None:
            self._origin = int(first.frame.pts)
            first.time = 0.0
        self._first_pts = first.frame.pts
        self._next = first

        keyframes = [
            float((int(e.timestamp) - self._origin) * self._tb) for e in entries if e.is_keyframe
        ]
        self._keytimes = np.asarray(sorted(keyframes), dtype=np.float64)
        # Index timestamps are decode times for some demuxers (mp4): with B-frames a keyframe is
        # presented a little after its index time. Learn that shift from the first keyframe so
        # seeks land on the keyframe *presented* before the wanted time.
        self._key_shift = 0.0
        if len(self._keytimes) and self._keytimes[0] < first.time:
            self._key_shift = min(first.time - float(self._keytimes[0]), _SEEK_BACKOFF_S)
            self._keytimes = self._keytimes + self._key_shift
        # The last packet the index promises (decode time, so at or before its display time).
        self._index_end = index_end(entries, self._origin, self._tb, stream)

        self._rotation = rotation = display_rotation(stream, first.frame)

        coded_w = display_width(first.frame.width, stream.sample_aspect_ratio)
        coded_h = first.frame.height
        width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)

        container = self._container  # the first seek may have reopened it
        stream = self._stream
        assert container is not None
        duration = 0.0
        tagged = _tag_seconds(stream.metadata.get("DURATION"))  # Matroska: the video's own end
        if stream.duration:
            duration = float(stream.duration * self._tb)
        elif tagged is not None and tagged > 0:
            duration = tagged - float(self._origin * self._tb)
        elif container.duration:  # the longest stream's: audio may outlast the video
            duration = container.duration / av.time_base
        num_frames = int(stream.frames or 0)
        fps = self._fps_hint
        if duration <= 0 or fps <= 0:
            scanned_duration, scanned_frames = self._scan_packets()
            duration = duration if duration > 0 else scanned_duration
            num_frames = num_frames or scanned_frames
            if fps <= 0:
                fps = num_frames / duration if duration > 0 else 0.0
        if num_frames <= 0:
            num_frames = max(1, round(duration * fps))
        if duration <= 0 and fps > 0:
            duration = num_frames / fps
        self._info = VideoInfo(
            path=self.path,
            duration=duration,
            fps=fps,
            num_frames=num_frames,
            width=width,
            height=height,
            rotation=rotation,
            kind="video",
        )

    def _scan_packets(self) -> tuple[float, int]:
        """Demux (no decoding) the whole stream: ``(duration s, packet count)``. Used only when
        the container records neither duration nor rate."""
        assert self._container is not None
        count, end = 0, 0.0
        self._reopen()
        assert self._container is not None
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue
                count += 1
                if count > self._max_packets:
                    raise CorruptVideoError(self.path, "too many packets while scanning")
                if packet.pts is not None:
                    stop = packet.pts + (packet.duration or 0)
                    end = max(end, float((stop - self._origin) * self._tb))
        except av.error.FFmpegError as exc:
            raise _wrap_av_error(self.path, exc, "scanning packets") from exc
        return end, count

    # -- decoding -------------------------------------------------------------------------------

    def _time_of(self, frame: av.VideoFrame, last: float | None) -> float:
        if frame.pts is not None:
            return float((frame.pts - self._origin) * self._tb)
        if frame.dts is not None:
            return float((frame.dts - self._origin) * self._tb)
        step = 1.0 / self._fps_hint if self._fps_hint > 0 else 0.0
        return 0.0 if last is None else last + step

    def _decode_from_here(self, drop_leading: bool, bounded: bool = True) -> Iterator[_Decoded]:
        """Decode forward from the current demuxer position.

        With ``drop_leading`` (after a seek into the middle), frames presented before the first
        keyframe reached are dropped: they belong to the previous GOP and may reference frames
        that were never decoded.
        """
        assert self._container is not None
        floor: int | None = None
        last: float | None = None
        try:
            for packet in self._container.demux(self._stream):
                self._packets += 1
                if bounded and self._packets > self._max_packets:
                    raise CorruptVideoError(
                        self.path,
                        f"gave up after {self._max_packets} packets without reaching the wanted "
                        "frame; the file is damaged or has no usable index",
                    )
                if drop_leading and floor is None and packet.is_keyframe:
                    floor = packet.pts if packet.pts is not None else -(1 << 62)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    self._decode_errors += 1
                    log.warning("%s: skipped an undecodable packet (%s)", self.path, exc)
                    if self._decode_errors > MAX_DECODE_ERRORS:
                        raise CorruptVideoError(
                            self.path, f"more than {MAX_DECODE_ERRORS} undecodable packets"
                        ) from exc
                    continue
                for frame in frames:
                    if drop_leading and (
                        floor is None or (frame.pts is not None and frame.pts < floor)
                    ):
                        continue
                    last = self._time_of(frame, last)
                    yield _Decoded(last, frame)
        except VideoError:
            raise
        except (av.error.FFmpegError, OSError) as exc:
            raise _wrap_av_error(self.path, exc, "demuxing or decoding") from exc

    def _pull(self) -> _Decoded | None:
        assert self._iter is not None
        item = next(self._iter, None)
        if item is None:
            self._eof = True
        return item

    def _seek_and_pull(self, target: float, at_start: bool) -> _Decoded | None:
        """Seek to the keyframe at or before ``target`` (s), or to the start of the stream, and
        return the first usable frame. Sets ``_at_start`` when decoding restarts from the first
        frame (asked for, or because the stream cannot seek)."""
        assert self._container is not None
        if at_start or not self._seekable:
            return self._restart()
        shifted = max(target - self._key_shift, 0.0)
        offset = self._origin + math.floor(shifted / self._tb)
        try:
            self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)
        except av.error.FFmpegError as exc:
            log.warning("%s: cannot seek (%s); decoding from the start instead", self.path, exc)
            self._seekable = False
            return self._restart()
        self._start_decoding(drop_leading=True)
        self._at_start = False
        return self._pull()

    def _start_decoding(self, drop_leading: bool) -> None:
        self._iter = self._decode_from_here(drop_leading=drop_leading)
        self._prev = self._next = None
        self._eof = False

    def _restart(self) -> _Decoded | None:
        """Decode again from the first frame: a seek to the start, checked against the first
        frame's pts (imprecise demuxers such as MPEG-TS may land later), else a reopen."""
        assert self._container is not None
        self._at_start = True
        if self._seekable:
            try:
                self._container.seek(
                    self._origin, backward=True, any_frame=False, stream=self._stream
                )
            except av.error.FFmpegError:
                pass
            else:
                self._start_decoding(drop_leading=False)
                first = self._pull()
                if first is not None and first.frame.pts == self._first_pts:
                    return first
        self._reopen()
        self._start_decoding(drop_leading=False)
        return self._pull()

    def _reopen(self) -> None:
        """Open the file afresh; the decoder is no longer positioned (the next read seeks)."""
        assert self._container is not None
        self._iter = None
        self._prev = self._next = None
        index = self._stream.index
        self._container.close()
        try:
            self._container = av.open(self.path, mode="r", timeout=(self._timeout, self._timeout))
        except Exception as exc:
            raise _wrap_av_error(self.path, exc, "reopening the container") from exc
        self._stream = self._container.streams[index]

    def _position(self) -> float | None:
        """Time of the newest decoded frame, or ``None`` when the decoder is not positioned."""
        if self._iter is None:
            return None
        if self._next is not None:
            return self._next.time
        if self._prev is not None:
            return self._prev.time
        return None

    def _needs_seek(self, t: float) -> bool:
        position = self._position()
        if position is None or (self._prev is not None and t < self._prev.time):
            return True
        if self._prev is None and self._next is not None and t < self._next.time:
            # Positioned on the first frame after a seek and asked for an earlier time; only a
            # seek to the start can tell whether an earlier frame exists.
            return not self._at_start
        if self._eof or t <= position or not self._seekable:
            return False
        if len(self._keytimes) >= 2:
            k = int(np.searchsorted(self._keytimes, t, side="right")) - 1
            return k >= 0 and self._keytimes[k] > position + 1e-9
        return t - position > _FORWARD_WINDOW_S

    def _seek_to(self, t: float) -> None:
        """Position the decoder so that ``_next`` is the first frame at or before ``t`` (or the
        stream's first frame when ``t`` precedes it), stepping back on open GOPs."""
        back = 0.0
        while True:
            target = t - back
            at_start = target <= 0.0
            first = self._seek_and_pull(max(target, 0.0), at_start=at_start)
            if first is None and self._at_start:
                raise self._no_frame_error()
            if first is not None and (first.time <= t or self._at_start):
                self._next = first
                return
            back = _SEEK_BACKOFF_S if back == 0.0 else back * 2

    def _frame_at(self, t: float) -> _Decoded:
        """The frame displayed at ``t`` s (last frame with time <= t, clamped to the stream)."""
        self._packets = 0
        if self._needs_seek(t):
            self._seek_to(t)
        while True:
            if self._next is None:
                if self._eof:
                    break
                self._next = self._pull()
                if self._next is None:
                    break
            if self._next.time <= t:
                self._prev, self._next = self._next, None
                continue
            break
        if self._eof and self._prev is not None:
            self._check_complete(self._prev.time)
        if self._prev is not None:
            return self._prev
        if self._next is not None:  # t precedes the first frame of the stream
            return self._next
        raise self._no_frame_error()

    def _no_frame_error(self) -> VideoError:
        if self._decode_errors or self._listed_packets:
            return CorruptVideoError(
                self.path,
                f"the index lists {self._listed_packets} packets but no frame could be decoded "
                f"({self._decode_errors} undecodable packets): truncated or corrupt",
            )
        return EmptyVideoError(self.path, "the video stream holds no frame")

    def _check_complete(self, last_time: float) -> None:
        """Raise when decoding hit the end of the file before the last packet the index lists
        (a truncated download whose index survived)."""
        error = truncation_error(self.path, last_time, self._index_end, self._fps_hint)
        if error is not None:
            raise error

    def read(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None = None
    ) -> DecodedFrames:
        """Frames shown at ``timestamps`` (seconds from the first frame), in the caller's order.

        Args:
            timestamps: K times; any order, duplicates allowed, clamped to the clip.
            max_side: downscale (keeping the aspect ratio) so no side exceeds this.

        Returns:
            :class:`DecodedFrames` with ``frames (K, H, W, 3)`` uint8 RGB and ``timestamps (K,)``.

        Raises:
            CorruptVideoError: decoding failed or exceeded its work bound.
        """
        ts, coded, frames, shown = self._outputs(timestamps, max_side)
        last: _Decoded | None = None
        last_index = -1
        try:
            for i in np.argsort(ts, kind="stable"):
                decoded = self._frame_at(float(ts[i]))
                if decoded is last:
                    frames[i] = frames[last_index]
                else:
                    frames[i] = frame_to_rgb(decoded.frame, coded, self._rotation)
                shown[i] = decoded.time
                last, last_index = decoded, i
        except BaseException as exc:
            self._iter = None  # the decoder state is unknown: the next read seeks afresh
            self._prev = self._next = None
            if isinstance(exc, av.error.FFmpegError):
                raise _wrap_av_error(self.path, exc, "converting frames") from exc
            raise
        return DecodedFrames(frames=frames, timestamps=shown)

    def _outputs(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None
    ) -> tuple[np.ndarray, tuple[int, int], np.ndarray, np.ndarray]:
        """Checked times, the coded size to convert frames to, and the empty frame and time
        arrays a read fills."""
        if self._container is None:
            raise VideoError(self.path, "the reader is closed")
        ts = _check_timestamps(timestamps)
        (width, height), coded = fitted_sizes(
            self._info.width, self._info.height, self._rotation, max_side
        )
        frames = np.empty((len(ts), height, width, 3), np.uint8)
        return ts, coded, frames, np.empty(len(ts), np.float64)

    def read_keyframes(
        self, timestamps: Sequence[float] | np.ndarray, max_side: int | None = None
    ) -> DecodedFrames:
        """For each time the nearest keyframe (ties to the earlier one) and its time, from one
        pass in which the decoder skips every frame but keyframes (``skip_frame="NONKEY"``);
        only the chosen keyframes are converted. Falls back to :meth:`read` (exact frames)
        when the decoder yields no keyframe that way.

        Raises:
            CorruptVideoError: demuxing or decoding failed.
        """
        ts, coded, frames, shown = self._outputs(timestamps, max_side)
        order = np.argsort(ts, kind="stable")
        j = 0
        prev: tuple[float, av.VideoFrame] | None = None
        last: tuple[av.VideoFrame, int] | None = None  # the last frame converted, and its row

        def assign(i: int, key: tuple[float, av.VideoFrame]) -> None:
            nonlocal last
            if last is not None and last[0] is key[1]:
                frames[i] = frames[last[1]]  # keyframes come in time order: repeats are adjacent
            else:
                frames[i] = frame_to_rgb(key[1], coded, self._rotation)
                last = (key[1], i)
            shown[i] = key[0]

        self._reopen()
        self._stream.codec_context.skip_frame = "NONKEY"
        try:
            for item in self._decode_from_here(drop_leading=False, bounded=False):
                key = (item.time, item.frame)
                while j < len(ts) and ts[order[j]] <= key[0]:
                    t = ts[order[j]]
                    nearest = prev if prev is not None and t - prev[0] <= key[0] - t else key
                    assign(int(order[j]), nearest)
                    j += 1
                prev = key
                if j == len(ts):
                    break
        except av.error.FFmpegError as exc:
            raise _wrap_av_error(self.path, exc, "decoding keyframes") from exc
        finally:
            self._stream.codec_context.skip_frame = "DEFAULT"
        if prev is None:
            log.warning("%s: no keyframe decoded on its own; reading exact frames", self.path)
            return self.read(ts, max_side)
        while j < len(ts):  # after the last keyframe
            assign(int(order[j]), prev)
            j += 1
        return DecodedFrames(frames=frames, timestamps=shown)

    def iter_all_frames(self) -> Iterator[tuple[float, av.VideoFrame]]:
        """Every frame from the start, by a plain linear decode of a freshly opened container
        (no seeking, no work bound): ``(time s, frame)`` pairs. Moves the decoder position."""
        if self._container is None:
            raise VideoError(self.path, "the reader is closed")
        self._reopen()
        for item in self._decode_from_here(drop_leading=False, bounded=False):
            yield item.time, item.frame

    def close(self) -> None:
        self._iter = None
        self._prev = self._next = None
        if self._container is not None:
            self._container.close()
            self._container = None


def read_frames_full_decode(
    path: str | os.PathLike[str],
    timestamps: Sequence[float] | np.ndarray,
    max_side: int | None = None,
) -> DecodedFrames:
    """Reference reader: decode every frame from the start and pick, for each timestamp, the
    same frame :meth:`VideoReader.read` returns (last frame with time ``<= t``, clamped).

    Slow by design; used by tests and the sparse-vs-full decoding benchmark.

    Returns:
        :class:`DecodedFrames` ``frames (K, H, W, 3)`` uint8 RGB, ``timestamps (K,)``.
    """
    ts = _check_timestamps(timestamps)
    order = np.argsort(ts, kind="stable")
    with VideoReader(path) as reader:
        info = reader.info
        (width, height), coded = fitted_sizes(info.width, info.height, info.rotation, max_side)
        chosen: list[tuple[float, av.VideoFrame] | None] = [None] * len(ts)
        prev: tuple[float, av.VideoFrame] | None = None
        j = 0
        for item in reader.iter_all_frames():
            while j < len(order) and item[0] > ts[order[j]]:
                chosen[order[j]] = prev if prev is not None else item
                j += 1
            prev = item
            if j == len(order):
                break
        if prev is None:
            raise reader._no_frame_error()
        if j < len(order):  # decoded to the end of the file
            reader._check_complete(prev[0])
        for k in order[j:]:
            chosen[k] = prev
        frames = np.empty((len(ts), height, width, 3), np.uint8)
        shown = np.empty(len(ts), np.float64)
        for i, pick in enumerate(chosen):
            assert pick is not None
            shown[i] = pick[0]
            frames[i] = frame_to_rgb(pick[1], coded, info.rotation)
    return DecodedFrames(frames=frames, timestamps=shown)
