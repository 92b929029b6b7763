"""Live streams: frame times where the container gives none, the sample rate after a gap, and
per-person boxes and evidence in the source's pixels (tiny models, synthetic videos)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from _inference_fixtures import (
    SquareFaceDetector,
    mux_frames,
    save_tiny_model,
    video_frames,
    write_video,
)

import rdam
from rdam.data.tracks import TrackerConfig
from rdam.data.video import open_clip
from rdam.stream import predict_stream, predict_stream_people, stream_frames
from rdam.stream.windows import kept_windows


def _raw_h264(path: Path, num_frames: int = 12) -> Path:
    """An H.264 elementary stream (``.h264``): its frames carry no pts and no dts."""
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, array in enumerate(video_frames(num_frames)):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_frames_without_timestamps_are_timed_as_the_file_reader_times_them(tmp_path):
    """A raw H.264 stream has no frame times: each frame is one frame interval after the last
    (the stream's rate), as for ``rdam predict FILE``; not every frame at 0 s, which kept one
    frame of the whole stream at the default 2 fps and answered for it alone."""
    video = _raw_h264(tmp_path / "raw.h264")
    with av.open(str(video)) as container:
        assert all(f.pts is None and f.dts is None for f in container.decode(video=0))
    times = [t for t, _ in stream_frames(str(video))]
    with open_clip(video) as reader:
        expected = [t for t, _ in reader.iter_all_frames()]
    assert len(times) == 12 and np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, expected, atol=1e-9)


def test_an_anamorphic_video_is_shown_with_square_pixels_by_the_reader_and_the_stream(tmp_path):
    """Pixels twice as wide as high (sample aspect ratio 2:1, as some broadcast video): the
    file reader and the stream both widen the 64 x 48 coded frames to 128 x 48, so a stream's
    face crops and boxes are those of the same file read as a file (the stream kept 64 x 48)."""
    from fractions import Fraction

    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        stream.codec_context.sample_aspect_ratio = Fraction(2, 1)
        stream.options = {"crf": "0", "preset": "ultrafast"}
        mux_frames(out, stream, video_frames(3))
    with open_clip(path) as reader:
        assert (reader.info.width, reader.info.height) == (128, 48)
        from_file = reader.read(np.array([0.0])).frames[0]
    frames = stream_frames(str(path))
    _, from_stream = next(frames)
    assert frames.source_size == (128, 48)
    assert from_stream.shape == from_file.shape == (48, 128, 3)
    np.testing.assert_array_equal(from_stream, from_file)


def test_a_gap_in_the_stream_does_not_keep_two_frames_at_once():
    """At most ``sample_fps`` kept frames per second: after a gap (a stalled webcam, a slow
    window) the next frame is kept and the one after it one interval later, not at once."""
    times = [0.0, 0.1, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 3.0]
    frames = ((t, np.zeros((1, 1, 3), np.uint8)) for t in times)
    ((_, kept, _),) = kept_windows(frames, lambda t, f: t, 10, 100, 2.0, 10, None)
    assert kept == [0.0, 2.0, 2.5, 3.0]


@pytest.fixture
def face_stream(tmp_path: Path):
    """A face-stream tiny model whose frames are decoded at most 32 px large, and a 64 x 48
    video with a 24-px face in every frame (12 px once downscaled)."""
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), max_side=32, precision="fp32")
    video = write_video(tmp_path / "faces.mp4", num_frames=8, face_frames=set(range(8)))
    return predictor, video


def test_stream_people_report_boxes_and_apply_the_evidence_in_source_pixels(face_stream):
    """Faces are found on frames downscaled to max_side; each person's boxes are in the
    source's pixels as every other answer's are, and the evidence rules' min_face_px (16)
    judges the 24-px face, not its 12-px downscaled box (which refused every person)."""
    predictor, video = face_stream
    settings = {"window": 4, "sample_fps": None, "max_windows": 1}
    (plain,) = predict_stream(predictor, str(video), **settings)
    (window,) = predict_stream_people(
        predictor, str(video), tracker=TrackerConfig(cut_distance=None), **settings
    )
    assert plain.prediction.error is None
    (person,) = window.people
    assert person.reason is None and window.reason is None
    assert window.person == person.person and window.label == person.label is not None
    np.testing.assert_allclose(person.boxes, plain.prediction.face_boxes, atol=1e-5)
    assert [b[2] for b in person.boxes] == [24.0] * 4
