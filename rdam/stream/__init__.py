"""Live prediction over a stream (webcam, URL or file read front to back): sliding windows of
kept frames, one answer per window (:mod:`rdam.stream.windows`), or one per person of each
window (:mod:`rdam.stream.people`); frames from :mod:`rdam.stream.sources`."""

from rdam.stream.people import StreamPeopleWindow, StreamPerson, predict_stream_people
from rdam.stream.sources import STREAM_TIMEOUT_S, stream_frames
from rdam.stream.windows import (
    DEFAULT_SAMPLE_FPS,
    FIRST_ANSWER_S,
    StreamWindow,
    first_window_frames,
    predict_stream,
)

__all__ = [
    "DEFAULT_SAMPLE_FPS",
    "FIRST_ANSWER_S",
    "STREAM_TIMEOUT_S",
    "StreamPeopleWindow",
    "StreamPerson",
    "StreamWindow",
    "first_window_frames",
    "predict_stream",
    "predict_stream_people",
    "stream_frames",
]
