"""Live prediction over a stream: a sliding window of ``K`` frames over a webcam, a network
stream (``rtsp://``, ``http://`` ...) or a video file read from start to end.

Frames are kept at most ``sample_fps`` per second of stream time (the model was trained on
``K`` frames spread over a whole clip, so a window should span seconds, not ``K`` consecutive
frames); every kept frame is preprocessed once (fitted, or face-cropped) as it arrives.

When answers come: the first as soon as ``first_window`` frames are kept (default: about
:data:`FIRST_ANSWER_S` = 2 s of them, ``ceil(2 * sample_fps)`` frames, at most ``K``: 4 frames,
by 1.5 s of stream time, at the default 2 fps); then every ``stride`` kept frames, over the
last ``K`` frames or all of them while fewer are there (the window grows to ``K``, then
slides); and when the input ends, once more over the last frames if any arrived after the last
answer (so a clip shorter than one window still gets a line). A window is a shorter clip
than the model was trained on until it holds ``K`` frames (the model takes any ``K``).

Sources: :mod:`rdam.stream.sources`. Every person of the stream, each with their own line
entry: :mod:`rdam.stream.people`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rdam.data.clips import Clip, concat_clips
from rdam.errors import ConfigError, NoFaceError, VideoError
from rdam.inference import Prediction, Predictor
from rdam.stream.sources import stream_frames

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_FPS = 2.0
T = TypeVar("T")
FIRST_ANSWER_S = 2.0  # the first window holds about this much stream time of kept frames


@dataclass
class StreamWindow:
    """The prediction for one window: ``index`` counts windows from 0; ``start``/``end`` are
    the stream times (s) of its first and last frame; ``latency`` is the seconds from the
    arrival of its last frame to the prediction."""

    index: int
    start: float
    end: float
    latency: float
    prediction: Prediction

    def to_dict(self) -> dict[str, Any]:
        data = self.prediction.to_dict()
        data.pop("path")
        return {
            "window": self.index,
            "source": self.prediction.path,
            "start": self.start,
            "end": self.end,
            "latency_s": self.latency,
            **data,
        }


def first_window_frames(k: int, sample_fps: float | None) -> int:
    """Kept frames of the first window: ``ceil(FIRST_ANSWER_S * sample_fps)``, at most ``k``
    (``k`` when every frame is kept: the stream's frame rate is not known in advance)."""
    if sample_fps is None:
        return k
    return max(1, min(k, math.ceil(FIRST_ANSWER_S * sample_fps - 1e-9)))


def window_settings(
    predictor: Predictor,
    window: int | None,
    stride: int | None,
    sample_fps: float | None,
    first_window: int | None,
    max_windows: int | None = None,
) -> tuple[int, int, int]:
    """``(K, stride, first window)`` with the defaults of :func:`predict_stream`, checked
    (with ``max_windows``: at least one window, or None)."""
    if predictor.overrides.get("keyframes"):  # every line would name an override not applied
        raise ConfigError(
            "keyframes does not apply to a stream: its frames are decoded in order, every one, "
            "so there is no keyframe to jump to; leave keyframes out (it applies to files)"
        )
    k = window or predictor.num_frames
    stride = stride or max(1, k // 2)
    if k < 1 or stride < 1:
        raise ConfigError(f"window and stride must be >= 1, got {k} and {stride}")
    if max_windows is not None and max_windows < 1:  # 0 gave one window all the same
        raise ConfigError(f"max_windows must be >= 1 or None (no limit), got {max_windows}")
    if sample_fps is not None and not sample_fps > 0:
        raise ConfigError(f"sample_fps must be > 0 or None, got {sample_fps}")
    first = first_window_frames(k, sample_fps) if first_window is None else first_window
    if not 1 <= first <= k:
        raise ConfigError(f"first_window must be between 1 and the window {k}, got {first}")
    return k, stride, first


def kept_windows(
    frames: Iterable[tuple[float, np.ndarray]],
    keep: Callable[[float, np.ndarray], T],
    k: int,
    stride: int,
    sample_fps: float | None,
    first: int,
    max_windows: int | None,
) -> Iterator[tuple[int, list[T], float]]:
    """The window schedule of the module notes over ``frames``: each kept frame becomes
    ``keep(t, frame)`` as it arrives; yields ``(window index, the last <= K kept items, arrival
    time of the newest)``. The first frame is always kept, so an input of at least one frame
    gives at least one window. When ``frames`` raises a :class:`~rdam.errors.VideoError` (a
    stream that breaks off, a file cut short), the kept frames after the last window get their
    window first, then the error goes on to the caller."""
    buffer: deque[T] = deque(maxlen=k)
    next_keep = -math.inf
    since = 0
    emitted = 0
    arrived = 0.0
    failure: list[VideoError] = []

    def arriving() -> Iterator[tuple[float, np.ndarray]]:
        try:
            yield from frames
        except VideoError as exc:
            failure.append(exc)

    for t, frame in arriving():
        if sample_fps is not None:
            if t + 1e-9 < next_keep:
                continue
            # the next slot of the grid; after a gap (a stall, a slow window) one interval on
            # from this frame, never at once: at most sample_fps frames per second
            next_keep += 1.0 / sample_fps
            if next_keep <= t + 1e-9:
                next_keep = t + 1.0 / sample_fps
        arrived = time.perf_counter()
        buffer.append(keep(t, frame))
        since += 1
        if (not emitted and len(buffer) < first) or (emitted and since < stride):
            continue
        since = 0
        yield emitted, list(buffer), arrived
        emitted += 1
        if max_windows is not None and emitted >= max_windows:
            return
    if since and buffer:  # the input ended: answer for the frames after the last window
        yield emitted, list(buffer), arrived
    if failure:
        raise failure[0]


def predict_stream(
    predictor: Predictor,
    source: str | int,
    window: int | None = None,
    stride: int | None = None,
    sample_fps: float | None = DEFAULT_SAMPLE_FPS,
    max_windows: int | None = None,
    first_window: int | None = None,
) -> Iterator[StreamWindow]:
    """Growing, then sliding window predictions over a stream (see the module docs).

    Args:
        predictor: from :func:`rdam.load`.
        source: webcam index (``0`` or ``"0"``), URL or video file.
        window: ``K`` frames per full window (default: the predictor's ``num_frames``).
        stride: kept frames between two windows (default ``max(1, K // 2)``).
        sample_fps: keep at most this many frames per second of stream time (``None``: every
            frame).
        max_windows: stop after this many windows, at least 1 (``None``: until the stream
            ends).
        first_window: kept frames of the first answer (default
            :func:`first_window_frames`: about 2 s of them); the first line comes after at
            most this many kept frames.

    Raises:
        ConfigError: a window setting is out of range.
        VideoError (subclasses) naming the source, from :func:`stream_frames`: it cannot be
            opened, breaks off, or (a file or URL) its video holds no frame
            (:class:`~rdam.errors.EmptyVideoError`): a stream never ends without a window
            or an error. A caller that stops reading (Ctrl+C on a webcam, ``max_windows``)
            gets no error.

    Yields:
        :class:`StreamWindow`; a face-stream window without a face, or without evidence
        enough (the predictor's evidence rules), carries a
        :class:`~rdam.inference.NoFaceError` with the reason instead of a label, and the faces
        that were found (``face_found``, ``face_boxes``).
    """
    k, stride, first = window_settings(
        predictor, window, stride, sample_fps, first_window, max_windows
    )
    name = str(source)

    frames = stream_frames(source, predictor.spec.max_side)

    def keep(t: float, frame: np.ndarray) -> Clip:  # boxes reported in the source's pixels
        return predictor.make_clip(
            frame[None], np.array([t]), path=name, source_size=frames.source_size
        )

    for index, clips, arrived in kept_windows(
        frames, keep, k, stride, sample_fps, first, max_windows
    ):
        yield _predict_window(predictor, name, clips, index, arrived)


def _predict_window(
    predictor: Predictor, source: str, frames: list[Clip], index: int, arrived: float
) -> StreamWindow:
    clip = concat_clips(frames, source)
    times = clip.timestamps
    try:
        predictor.check_faces(clip)
    except NoFaceError as exc:  # no face at all, or too little evidence: the rules' reason
        found = clip.face_found
        prediction = Prediction(
            path=source,
            timestamps=[float(t) for t in times],
            face_found=None if found is None else [bool(m) for m in found],
            face_boxes=_source_boxes(clip),
            face_input=clip.face_input,
            error=exc.reason,
            error_type=type(exc).__name__,
            **predictor.answer_settings,
        )
    else:
        t0 = time.perf_counter()
        out = predictor.run([clip])
        prediction = predictor.to_prediction(clip, out, 0, time.perf_counter() - t0)
    return StreamWindow(
        index=index,
        start=float(times[0]),
        end=float(times[-1]),
        latency=time.perf_counter() - arrived,
        prediction=prediction,
    )


def _source_boxes(clip: Clip) -> list[list[float] | None] | None:
    """The clip's face boxes ``[x, y, w, h, score]`` in source pixels (None where no face was
    found), as :meth:`Predictor.to_prediction` reports them; None when no face was searched."""
    if clip.boxes is None:
        return None
    scale = clip.source_size[0] / clip.raw_size[0] if clip.raw_size[0] else 1.0
    return [
        [*(float(v) * scale for v in b[:4]), float(b[4])] if np.isfinite(b[0]) else None
        for b in clip.boxes
    ]
