"""Live streams: a file or URL whose video holds no frame is an error naming it (not an empty
run that exits 0), a caller that stops reading is not; timestamps that jump back (a restarted
clock, joined segments) are a discontinuity, not frames from the past (synthetic videos)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import av
import numpy as np
import pytest
from _inference_fixtures import (
    SquareFaceDetector,
    save_tiny_model,
    serve_folder,
    video_frames,
    write_video,
)

import rdam
from rdam.cli import main
from rdam.data.tracks import TrackerConfig
from rdam.data.video.reader import VideoReader
from rdam.errors import ConfigError, CorruptVideoError, EmptyVideoError
from rdam.stream import predict_stream, predict_stream_people, stream_frames
from rdam.stream.windows import kept_windows


def _video_without_frames(path: Path) -> Path:
    """A Matroska file with an H.264 video stream that holds no frame (its audio has some)."""
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=8000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def _segment(path: Path, num_frames: int, faces: bool = False) -> Path:
    """A lossless MPEG-TS segment of :func:`video_frames` at 10 fps, its clock from 0."""
    face_frames = set(range(num_frames)) if faces else None
    return write_video(path, num_frames, face_frames=face_frames, format="mpegts")


def _joined(tmp_path: Path, num_frames: int = 12, faces: bool = False) -> Path:
    """Two segments joined byte for byte (``cat a.ts b.ts``): the second restarts the clock,
    its timestamps jump back to those of the first frame."""
    one = _segment(tmp_path / "segment.ts", num_frames, faces).read_bytes()
    joined = tmp_path / "joined.ts"
    joined.write_bytes(one + one)
    return joined


def test_a_video_stream_without_frames_is_an_empty_video_naming_the_source(tmp_path, capsys):
    """Zero decoded frames gave no window and exit code 0; it is an EmptyVideoError naming the
    source, as ``rdam predict FILE`` words it, and the command exits 1."""
    video = _video_without_frames(tmp_path / "no_frames.mkv")
    with pytest.raises(EmptyVideoError, match="the video stream holds no frame") as info:
        list(stream_frames(str(video)))
    assert info.value.path == str(video)
    predictor = rdam.load(save_tiny_model(tmp_path / "m.safetensors"), precision="fp32")
    with pytest.raises(EmptyVideoError):
        list(predict_stream(predictor, str(video)))
    code = main(
        ["predict", "--stream", str(video), "--checkpoint", str(tmp_path / "m.safetensors")]
    )
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert f"{video}: EmptyVideoError: the video stream holds no frame" in err


def test_a_video_whose_listed_frames_do_not_decode_is_corrupt(tmp_path):
    """A download cut right after its index (faststart MP4): the index lists 12 frames, none
    arrives; a corrupt file, not an empty stream."""
    whole = write_video(tmp_path / "whole.mp4", 12, container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.index(b"mdat") + 4])
    with pytest.raises(CorruptVideoError, match="12 packets but no frame could be decoded"):
        list(stream_frames(str(cut)))


def test_a_file_cut_short_answers_its_frames_then_says_it_is_truncated(tmp_path, capsys):
    """A faststart MP4 cut in the middle of its frames (a broken download): the stream ended
    quietly after the frames that arrived (exit 0, as if the video were that short); it now
    answers them, the frames after the last full window included, then raises the video
    reader's CorruptVideoError (exit 1)."""
    whole = write_video(tmp_path / "whole.mp4", 30, container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    times = []
    with pytest.raises(CorruptVideoError, match=r"index lists frames up to 2\.900 s: truncated"):
        for t, _ in stream_frames(str(cut)):
            times.append(t)
    assert 5 <= len(times) < 29 and times == pytest.approx([i / 10 for i in range(len(times))])
    # the file reader says the same of it
    with pytest.raises(CorruptVideoError, match="truncated"):
        rdam.load(save_tiny_model(tmp_path / "m.safetensors"), precision="fp32").prepare(cut)

    predictor = rdam.load(tmp_path / "m.safetensors", precision="fp32")
    windows = []
    with pytest.raises(CorruptVideoError, match="truncated"):
        for window in predict_stream(predictor, str(cut), window=4, stride=4, sample_fps=None):
            windows.append(window)
    assert len(windows) == math.ceil(len(times) / 4)  # the last one over the frames left over
    assert windows[-1].end == pytest.approx(times[-1])
    assert main(["predict", "--stream", str(cut), "--checkpoint", str(tmp_path / "m.safetensors"),
                 "--sample-fps", "0"]) == 1  # fmt: skip
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) >= 1 and "truncated" in captured.err


def test_a_download_cut_short_is_truncated_over_http_too(tmp_path):
    """The same cut MP4 served over HTTP (``--stream URL``, a real socket): the frames that
    arrive, then the truncation error, as for the file; the whole file streams to its end."""
    whole = write_video(tmp_path / "whole.mp4", 30, container_options={"movflags": "faststart"})
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    from_file = []
    with pytest.raises(CorruptVideoError, match="truncated"):
        for t, _ in stream_frames(str(tmp_path / "cut.mp4")):
            from_file.append(t)
    with serve_folder(tmp_path) as url:
        assert len(list(stream_frames(f"{url}/whole.mp4"))) == 30
        from_url = []
        with pytest.raises(
            CorruptVideoError, match=r"index lists frames up to 2\.900 s: truncated"
        ) as info:
            for t, _ in stream_frames(f"{url}/cut.mp4"):
                from_url.append(t)
    assert info.value.path == f"{url}/cut.mp4"
    assert from_url == from_file and len(from_url) >= 5


def test_complete_files_are_not_called_truncated(tmp_path):
    """The truncation check reads the container's promised end the way it is written: a
    Matroska file with one keyframe whose clock starts at 1.4 s (its DURATION tag counts from
    0), and two MPEG-PS files joined with ``cat`` (the clock jumps back), are whole."""
    offset = write_video(tmp_path / "offset.mkv", 50, 25, start=35, keyint=250)
    assert len(list(stream_frames(str(offset)))) == 50
    with VideoReader(str(offset)) as reader:
        assert len(reader.read([0.0, 1.96])) == 2
    six = write_video(tmp_path / "six.mpg", 150, 25, format="mpeg", codec="mpeg2video")
    two = write_video(tmp_path / "two.mpg", 50, 25, format="mpeg", codec="mpeg2video")
    joined = tmp_path / "joined.mpg"
    joined.write_bytes(six.read_bytes() + two.read_bytes())
    assert len(list(stream_frames(str(joined)))) == 200


def test_a_matroska_file_cut_short_is_truncated_as_a_stream_too(tmp_path):
    """The Matroska demuxer lists each keyframe as it reads: the index is taken at the first
    frame, as the video reader takes it, so a cut file is not a quiet shorter video."""
    whole = write_video(tmp_path / "whole.mkv", 150, 25, keyint=10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert len(list(stream_frames(str(whole)))) == 150
    with pytest.raises(CorruptVideoError, match=r"index lists frames up to 5\.960 s: truncated"):
        list(stream_frames(str(cut)))


def test_kept_frames_after_the_last_window_are_answered_before_an_error():
    """A source that breaks off after 3 frames of a 4-frame first window: one window over the
    3, then the error."""

    def breaking():
        for i in range(3):
            yield i / 10, np.zeros((2, 2, 3), np.uint8)
        raise CorruptVideoError("cam", "broke off")

    got = kept_windows(breaking(), lambda t, f: t, 4, 4, None, 4, None)
    index, kept, _ = next(got)
    assert (index, kept) == (0, [0.0, 0.1, 0.2])
    with pytest.raises(CorruptVideoError, match="broke off"):
        next(got)


def test_a_stream_stopped_by_its_reader_is_not_empty(tmp_path, monkeypatch):
    """Stopping early (max_windows, a webcam ended by the user) raises nothing; max_windows=0
    is refused (it gave one window)."""
    import cv2

    frames = video_frames(1)[0][..., ::-1].copy()  # BGR, as OpenCV gives it

    class Webcam:  # a webcam that never ends by itself
        def __init__(self, index: int) -> None:
            pass

        def isOpened(self) -> bool:
            return True

        def read(self):
            return True, frames

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Webcam)
    predictor = rdam.load(save_tiny_model(tmp_path / "m.safetensors"), precision="fp32")
    video = str(write_video(tmp_path / "v.mp4", num_frames=12))
    assert len(list(predict_stream(predictor, video, sample_fps=None, max_windows=1))) == 1
    webcam = predict_stream(predictor, "0", window=2, stride=2, sample_fps=None)
    assert [next(webcam).index for _ in range(2)] == [0, 1]
    webcam.close()  # the user stopped it
    frames_of_file = stream_frames(video)
    next(frames_of_file)
    frames_of_file._frames.close()  # a reader that stops after one frame: no error raised
    with pytest.raises(ConfigError, match="max_windows"):
        list(predict_stream(predictor, video, max_windows=0))
    # a keyframes override would be named in every line without changing a frame
    save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    for stream, model in ((predict_stream, "m"), (predict_stream_people, "faces")):
        fast = rdam.load(tmp_path / f"{model}.safetensors", precision="fp32", keyframes=True)
        with pytest.raises(ConfigError, match="keyframes does not apply to a stream"):
            next(stream(fast, video))


def test_timestamps_that_jump_back_continue_the_clock_with_one_warning(tmp_path, caplog):
    """Joined segments: the second restarts at the first's times. They go on one frame after
    the last (1.2 s ...), with one warning naming the source and the jump; the sampler had
    skipped the whole second segment (its times were all before the next slot)."""
    video = _joined(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="rdam.stream.sources"):
        times = [t for t, _ in stream_frames(str(video))]
    np.testing.assert_allclose(times, np.arange(24) / 10, atol=1e-9)
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert str(video) in warning.getMessage()
    assert "jumped back 1.100 s" in warning.getMessage()
    ((_, kept, _),) = kept_windows(stream_frames(str(video)), lambda t, f: t, 8, 8, 2.0, 8, None)
    np.testing.assert_allclose(kept, [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-9)


def test_the_clock_without_a_frame_rate_goes_on_by_the_last_interval(caplog):
    """No stated rate: a jump goes on by the last interval seen; a frame a little out of
    order (at most 0.1 s) gets the last time and moves nothing after it; the first of each
    kind is warned about, later ones are logged at DEBUG; equal times stay equal."""
    from rdam.stream.sources import _StreamClock

    clock = _StreamClock("cam", 0.0)
    raw = (5.0, 5.2, 5.4, 5.4, 5.35, 5.6, 1.0, 1.2, 0.0, 0.15, 0.1)
    with caplog.at_level(logging.DEBUG, logger="rdam.stream.sources"):
        got = [clock(t) for t in raw]
    np.testing.assert_allclose(got, [0, 0.2, 0.4, 0.4, 0.4, 0.6, 0.8, 1.0, 1.2, 1.35, 1.35])
    assert (clock.jumps, clock.out_of_order) == (2, 2)
    levels = [(r.levelno, "jumped back" in r.getMessage()) for r in caplog.records]
    assert levels == [
        (logging.WARNING, False),
        (logging.WARNING, True),
        (logging.DEBUG, True),
        (logging.DEBUG, False),
    ]
    assert all(r.getMessage().startswith("cam: ") for r in caplog.records)


def test_people_over_joined_segments_keep_time_and_their_id(tmp_path):
    """The per-person stream gets the same clock: windows go forward across the join, and the
    face tracked through it keeps one id (its gap clock ran backwards)."""
    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    predictor = rdam.load(model, face_detector=SquareFaceDetector(), precision="fp32")
    video = _joined(tmp_path, num_frames=6, faces=True)
    windows = list(
        predict_stream_people(
            predictor,
            str(video),
            window=4,
            stride=4,
            sample_fps=None,
            tracker=TrackerConfig(cut_distance=None),
        )
    )
    ends = [t for w in windows for t in (w.start, w.end)]
    np.testing.assert_allclose(ends, [0.0, 0.3, 0.4, 0.7, 0.8, 1.1], atol=1e-9)
    assert {p.person for w in windows for p in w.people} == {windows[0].people[0].person}
