"""Video reading: probe values, sparse decoding == full decoding, the right frame, rotation,
pixel formats, sizes, bad files (typed errors naming the file, in bounded time), real videos."""

from __future__ import annotations

import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from _media import (
    Media,
    identify,
    write_4k_mp4,
    write_audio_only,
    write_bframes_mp4,
    write_codec_clip,
    write_ffv1_mkv,
    write_image_sequence,
    write_lossless_mp4,
    write_truncated,
    write_vfr_mp4,
)

from rdam.data.video import (
    DecodedFrames,
    ImageSequenceReader,
    VideoInfo,
    VideoReader,
    fit_size,
    open_clip,
    probe_video,
    read_frames_full_decode,
)
from rdam.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    VideoError,
    VideoNotFoundError,
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Media]:
    d = tmp_path_factory.mktemp("media")
    return {
        "mp4": write_lossless_mp4(d / "clip.mp4"),
        "faststart": write_lossless_mp4(d / "faststart.mp4", faststart=True),
        "bframes": write_bframes_mp4(d / "bframes.mp4"),
        "vfr": write_vfr_mp4(d / "vfr.mp4"),
        "odd": write_ffv1_mkv(d / "odd.mkv", width=63, height=47),
        "gray": write_ffv1_mkv(d / "gray.mkv", width=32, height=24, gray=True),
        "rot_ccw": write_lossless_mp4(d / "rot_ccw.mp4", num_frames=12, rotation=90),
        "rot_cw": write_lossless_mp4(d / "rot_cw.mp4", num_frames=12, rotation=-90),
        "rot_180": write_lossless_mp4(d / "rot_180.mp4", num_frames=12, rotation=180),
        "avi": write_codec_clip(d / "clip.avi", "mpeg4"),
        "ts": write_codec_clip(d / "clip.ts", "mpeg2video"),
        "webm": write_codec_clip(d / "clip.webm", "libvpx-vp9", b_frames=0),
        "raw_h264": write_codec_clip(d / "clip.h264", "libx264", container_format="h264"),
    }


def expected_index(times: np.ndarray, t: float) -> int:
    """Index of the frame displayed at ``t``: last frame with time <= t, clamped."""
    return int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1))


def tricky_timestamps(duration: float, seed: int = 0) -> np.ndarray:
    """Unsorted, duplicated, before the start, exactly 0 and past the end."""
    rng = np.random.default_rng(seed)
    inside = rng.uniform(0, duration, 20)
    return np.concatenate([inside, inside[:4], [0.0, 0.0, -1.0, duration, duration + 5, 1e9]])[
        rng.permutation(30)
    ]


# -- probe ----------------------------------------------------------------------------------


def test_probe_lossless_mp4(media):
    info = probe_video(media["mp4"].path)
    assert info == VideoInfo(
        path=str(media["mp4"].path),
        duration=3.0,
        fps=10.0,
        num_frames=30,
        width=64,
        height=48,
        rotation=0,
        kind="video",
    )


def test_probe_mkv_vfr_gray(media):
    odd = probe_video(media["odd"].path)
    assert (odd.width, odd.height, odd.num_frames, odd.fps) == (63, 47, 12, 10.0)
    assert odd.duration == pytest.approx(1.2)
    vfr = probe_video(media["vfr"].path)
    assert vfr.num_frames == 20
    assert vfr.duration == pytest.approx(1.721)  # last frame at 1.72 s + its 1 ms
    assert vfr.fps == pytest.approx(20 / 1.721)
    gray = probe_video(media["gray"].path)
    assert (gray.width, gray.height, gray.kind) == (32, 24, "video")


# -- sparse == full, and the right frame ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "mp4",
        "faststart",
        "bframes",
        "vfr",
        "odd",
        "gray",
        "rot_ccw",
        "avi",
        "ts",
        "webm",
        "raw_h264",
    ],
)
def test_sparse_equals_full_decode(media, name):
    m = media[name]
    duration = probe_video(m.path).duration
    ts = tricky_timestamps(duration, seed=len(name))
    with open_clip(m.path) as reader:
        sparse = reader.read(ts)
    full = read_frames_full_decode(m.path, ts)
    assert sparse.frames.dtype == np.uint8 and sparse.frames.shape[0] == len(ts)
    np.testing.assert_array_equal(sparse.frames, full.frames)
    np.testing.assert_array_equal(sparse.timestamps, full.timestamps)


@pytest.mark.parametrize("name", ["mp4", "vfr", "odd", "bframes", "avi", "ts", "webm"])
def test_sparse_read_returns_the_displayed_frame(media, name):
    m = media[name]
    ts = tricky_timestamps(float(m.times[-1]) + 0.1, seed=3)
    ts = np.concatenate([ts, m.times, m.times - 1e-6])  # exact frame times and just before
    with open_clip(m.path) as reader:
        out = reader.read(ts)
    for t, frame, shown in zip(ts, out.frames, out.timestamps, strict=True):
        want = expected_index(m.times, t)
        assert shown == pytest.approx(m.times[want], abs=1e-9), t
        if name in ("bframes", "avi", "ts", "webm"):  # lossy: identify the frame by its pattern
            assert identify(frame, m.frames) == want, t
        else:  # lossless: exact pixels
            np.testing.assert_array_equal(frame, m.frames[want], err_msg=f"t={t}")


def test_reader_reused_across_calls_and_backwards(media):
    m = media["mp4"]
    with VideoReader(m.path) as reader:
        for ts in ([2.95, 0.0], [1.05, 1.0], [0.35], [2.0, 0.1, 2.0]):
            out = reader.read(ts)
            for t, frame in zip(ts, out.frames, strict=True):
                np.testing.assert_array_equal(frame, m.frames[expected_index(m.times, t)])


def test_forward_reads_within_a_gop_do_not_seek(media, monkeypatch):
    seeks: list[float] = []
    original = VideoReader._seek_and_pull

    def counting(self, target, at_start):
        seeks.append(target)
        return original(self, target, at_start)

    monkeypatch.setattr(VideoReader, "_seek_and_pull", counting)
    m = media["mp4"]  # keyframes every 6 frames: 0.0, 0.6, 1.2, ...
    with VideoReader(m.path) as reader:
        seeks.clear()
        reader.read([0.05, 0.15, 0.25, 0.45, 0.55])  # all in the first GOP, after opening
        assert seeks == []
        reader.read([1.25, 1.35, 1.55])  # jump to a later GOP: one seek, then forward
        assert len(seeks) == 1
        reader.read([0.1])  # backwards: a seek
        assert len(seeks) == 2


def test_unseekable_raw_stream_decodes_forward(media):
    """A raw H.264 stream cannot seek: reading restarts from the first frame instead, and
    forward reads keep the decoder position."""
    m = media["raw_h264"]
    info = probe_video(m.path)
    assert info.num_frames == 30 and info.fps > 0
    step = 1.0 / info.fps  # raw H.264 carries no timing; FFmpeg assumes a rate
    ts = (np.array([3, 10, 29, 1, 0, 50]) + 0.5) * step
    with open_clip(m.path) as reader:
        out = reader.read(ts)
    assert [identify(f, m.frames) for f in out.frames] == [3, 10, 29, 1, 0, 29]


def test_packet_budget_bounds_the_work(media):
    with (
        VideoReader(media["mp4"].path, max_packets_per_frame=2) as reader,
        pytest.raises(CorruptVideoError, match="gave up after 2 packets") as err,
    ):
        reader.read([0.5])  # frame 5 of a 6-frame GOP needs 6 packets
    assert err.value.path == str(media["mp4"].path)
    # The failed read leaves no stale decoder state behind: a later read is still right.
    m = media["mp4"]
    with VideoReader(m.path, max_packets_per_frame=2) as reader:
        with pytest.raises(CorruptVideoError):
            reader.read([0.5])
        reader._max_packets = 100
        np.testing.assert_array_equal(reader.read([2.95]).frames[0], m.frames[29])


def test_empty_timestamps(media):
    with open_clip(media["mp4"].path) as reader:
        out = reader.read([])
    assert isinstance(out, DecodedFrames) and out.frames.shape == (0, 48, 64, 3) and len(out) == 0


def test_nan_timestamp_is_rejected(media):
    with open_clip(media["mp4"].path) as reader, pytest.raises(ConfigError, match="finite"):
        reader.read([0.0, float("nan")])


# -- rotation, pixel formats, sizes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rotation", "k"), [("rot_ccw", 270, 1), ("rot_cw", 90, -1), ("rot_180", 180, 2)]
)
def test_rotation_metadata_makes_frames_upright(media, name, rotation, k):
    m = media[name]
    info = probe_video(m.path)
    assert info.rotation == rotation
    expected_size = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.width, info.height) == expected_size
    ts = [0.0, 0.35, 1.1]
    with open_clip(m.path) as reader:
        out = reader.read(ts)
    assert out.frames.shape == (3, info.height, info.width, 3)
    for t, frame in zip(ts, out.frames, strict=True):
        np.testing.assert_array_equal(frame, np.rot90(m.frames[expected_index(m.times, t)], k))


def test_rotation_agrees_with_opencv_autorotation(media):
    """An independent implementation (OpenCV's FFmpeg backend) shows the same upright frame."""
    for name in ("rot_ccw", "rot_cw"):
        cap = cv2.VideoCapture(str(media[name].path))
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        ok, bgr = cap.read()
        cap.release()
        assert ok
        with open_clip(media[name].path) as reader:
            ours = reader.read([0.0]).frames[0]
        np.testing.assert_array_equal(ours, bgr[..., ::-1])


def test_grayscale_source_comes_out_rgb(media):
    m = media["gray"]
    with open_clip(m.path) as reader:
        out = reader.read([0.0, 0.55])
    assert out.frames.shape == (2, 24, 32, 3)
    assert np.array_equal(out.frames[..., 0], out.frames[..., 1])
    assert np.array_equal(out.frames[..., 1], out.frames[..., 2])
    np.testing.assert_array_equal(out.frames[1], m.frames[5])


def test_odd_size_and_max_side(media):
    m = media["odd"]
    with open_clip(m.path) as reader:
        full = reader.read([0.3])
        small = reader.read([0.3], max_side=21)
    np.testing.assert_array_equal(full.frames[0], m.frames[3])
    assert small.frames.shape == (1, 16, 21, 3)  # 63x47 scaled by 1/3, rounded
    # A box-filtered copy keeps the mean colour.
    assert np.abs(small.frames.mean((0, 1, 2)) - full.frames.mean((0, 1, 2))).max() < 6


def test_fit_size():
    assert fit_size(3840, 2160, 256) == (256, 144)
    assert fit_size(1080, 1920, 640) == (360, 640)
    assert fit_size(64, 48, 640) == (64, 48)
    assert fit_size(64, 48, None) == (64, 48)
    with pytest.raises(ConfigError):
        fit_size(64, 48, 0)


def test_4k_is_downscaled_with_max_side(tmp_path):
    m = write_4k_mp4(tmp_path / "4k.mp4")
    info = probe_video(m.path)
    assert (info.width, info.height, info.num_frames) == (3840, 2160, 2)
    with open_clip(m.path) as reader:
        out = reader.read([0.0, 0.1, 0.1], max_side=256)
    assert out.frames.shape == (3, 144, 256, 3)
    # Left half red, right half blue; the second frame has green = 40.
    left, right = out.frames[1, :, :100].mean((0, 1)), out.frames[1, :, 156:].mean((0, 1))
    assert left[0] > 150 and left[2] < 50 and right[2] > 150 and right[0] < 50
    assert abs(left[1] - 40) < 12
    np.testing.assert_array_equal(out.frames[1], out.frames[2])
    full = read_frames_full_decode(m.path, [0.1], max_side=256)
    np.testing.assert_array_equal(full.frames[0], out.frames[1])


@pytest.mark.parametrize("name", ["rot_ccw", "rot_cw", "rot_180"])
def test_a_stream_of_a_rotated_file_is_upright_as_the_file_read(media, name):
    """``--stream`` on a phone video: the frames and the source size are the file reader's
    (upright), downscaled too; the stream used to keep them sideways."""
    from rdam.stream import stream_frames

    m = media[name]
    for max_side in (None, 32):
        frames = stream_frames(str(m.path), max_side)
        times, streamed = zip(*[(t, f) for t, f in frames], strict=True)
        with open_clip(m.path) as reader:
            info = reader.info
            read = reader.read(np.asarray(times), max_side=max_side).frames
        assert frames.source_size == (info.width, info.height)
        np.testing.assert_array_equal(np.stack(streamed), read)


def test_a_matroska_video_lasts_as_long_as_its_video_not_its_audio(tmp_path):
    """2 s of video and 6 s of audio in one .mkv: Matroska states no stream duration, and the
    container's (the longest stream's) put the segment times past the last frame, so 6 of 8
    sampled frames were the last one. The video stream's DURATION tag is its length."""
    from rdam.data.clips import sample_times

    path = tmp_path / "longer_audio.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 12, np.uint8), "rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for n in range(0, 16000 * 6, 1024):
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")  # fmt: skip
            sound.sample_rate, sound.pts = 16000, n
            for packet in audio.encode(sound):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    with open_clip(path) as reader:
        info = reader.info
        assert info.duration == pytest.approx(2.0) and info.num_frames == 20
        shown = reader.read(sample_times(info.duration, 8, info.num_frames)[0]).timestamps
    np.testing.assert_allclose(shown, [0.1, 0.3, 0.6, 0.8, 1.1, 1.3, 1.6, 1.8], atol=1e-9)


def test_rotated_and_downscaled(media):
    with open_clip(media["rot_ccw"].path) as reader:
        out = reader.read([0.0], max_side=32)
    assert out.frames.shape == (1, 32, 24, 3)


# -- bad inputs -----------------------------------------------------------------------------


def _bad_files(
    tmp: Path, good: Path, faststart: Path
) -> dict[str, tuple[Path, type[VideoError], str]]:
    zero = tmp / "zero.mp4"
    zero.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    empty_dir = tmp / "empty_folder"
    empty_dir.mkdir()
    return {
        "missing": (tmp / "missing.mp4", VideoNotFoundError, "no such file"),
        "zero": (zero, EmptyVideoError, "empty"),
        "text": (text, CorruptVideoError, "not a video"),
        "truncated": (write_truncated(good, tmp / "cut.mp4"), CorruptVideoError, "truncated"),
        "header_only": (
            write_truncated(faststart, tmp / "header.mp4", 0.02),
            CorruptVideoError,
            "no frame could be decoded",
        ),
        "audio": (write_audio_only(tmp / "audio.mp4"), EmptyVideoError, "audio"),
        "empty_dir": (empty_dir, EmptyVideoError, "no image"),
    }


def test_bad_inputs_raise_typed_errors_naming_the_file(media, tmp_path):
    for name, (path, error, words) in _bad_files(
        tmp_path, media["mp4"].path, media["faststart"].path
    ).items():
        start = time.monotonic()
        with pytest.raises(error) as err, open_clip(path) as reader:
            reader.read([0.0, 1.0])
        assert time.monotonic() - start < 5.0, name
        assert err.value.path == str(path), name
        assert str(path) in str(err.value), name
        assert words in str(err.value), (name, str(err.value))
        with pytest.raises(error):
            probe_video(path)
    assert issubclass(VideoNotFoundError, FileNotFoundError)


def test_truncated_file_with_surviving_index(media, tmp_path):
    """The index is at the front (faststart), the end of the data is gone: frames before the
    cut decode, asking for a later one is an error, not a silently repeated frame."""
    m = media["faststart"]
    cut = write_truncated(m.path, tmp_path / "cut_faststart.mp4", 0.5)
    with open_clip(cut) as reader:
        early = reader.read([0.0, 0.5])
        np.testing.assert_array_equal(early.frames[1], m.frames[5])
        with pytest.raises(CorruptVideoError, match="truncated") as err:
            reader.read([2.9])
    assert err.value.path == str(cut)
    with pytest.raises(CorruptVideoError, match="truncated"):
        read_frames_full_decode(cut, [2.9])


def test_truncated_matroska_detected_from_its_duration_tag(media, tmp_path):
    cut = write_truncated(media["odd"].path, tmp_path / "cut.mkv", 0.5)
    with open_clip(cut) as reader, pytest.raises(CorruptVideoError, match="truncated"):
        reader.read([1.1])


def test_closed_reader_refuses_to_read(media):
    reader = VideoReader(media["mp4"].path)
    reader.close()
    reader.close()
    with pytest.raises(VideoError, match="closed"):
        reader.read([0.0])


def test_folder_given_to_video_reader(tmp_path):
    with pytest.raises(VideoError, match="folder"):
        VideoReader(tmp_path)


# -- image sequences ------------------------------------------------------------------------


def test_image_sequence_natural_order_and_timing(tmp_path):
    m = write_image_sequence(tmp_path / "seq", num_frames=12)
    (tmp_path / "seq" / "notes.txt").write_text("not an image")
    reader = open_clip(m.path)
    assert isinstance(reader, ImageSequenceReader)
    assert [p.name for p in reader.files][:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    info = reader.info
    assert info == VideoInfo(str(m.path), 12.0, 1.0, 12, 40, 30, 0, "images")
    ts = tricky_timestamps(12.0)
    out = reader.read(ts)
    for t, frame, shown in zip(ts, out.frames, out.timestamps, strict=True):
        want = expected_index(m.times, t)
        assert shown == want
        np.testing.assert_array_equal(frame, m.frames[want])
    assert out.frames.shape[1:] == (30, 40, 3)
    assert reader.read([5.0], max_side=20).frames.shape == (1, 15, 20, 3)


def test_image_sequence_fps_and_single_image(tmp_path):
    m = write_image_sequence(tmp_path / "seq", num_frames=4)
    with ImageSequenceReader(m.path, fps=10.0) as reader:
        assert reader.info.duration == pytest.approx(0.4)
        np.testing.assert_array_equal(reader.read([0.25]).frames[0], m.frames[2])
    single = m.path / "frame_3.png"
    with open_clip(single) as reader:
        assert reader.info.num_frames == 1 and reader.info.kind == "images"
        out = reader.read([0.0, 0.7, 5.0])
    for frame in out.frames:
        np.testing.assert_array_equal(frame, m.frames[2])


def test_image_sequence_mixed_sizes_and_gray(tmp_path):
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(folder / "a1.png")
    Image.fromarray(np.full((60, 80), 90, np.uint8), mode="L").save(folder / "a2.png")
    with open_clip(folder) as reader:
        out = reader.read([0.0, 1.0])
    assert out.frames.shape == (2, 30, 40, 3)
    assert (out.frames[0] == 200).all() and (out.frames[1] == 90).all()


def test_16_and_32_bit_grey_images_share_one_scale(tmp_path):
    """The same 12-bit values in a 16-bit PNG and a 32-bit TIFF come out the same 8 bits, one
    fixed 0-65535 scale, not each file's own maximum (which stretched the TIFF to 255)."""
    from PIL import Image

    from rdam.data.video.images import read_image

    values = np.array([[0, 1024], [2048, 4095]], np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")  # mode I;16
    Image.fromarray(values.astype(np.int32)).save(tmp_path / "b.tif")  # mode I
    with Image.open(tmp_path / "b.tif") as image:
        assert image.mode == "I"
    expected = np.round(values / 65535 * 255).astype(np.uint8)
    for name in ("a.png", "b.tif"):
        out = read_image(tmp_path / name)
        assert out.shape == (2, 2, 3)
        np.testing.assert_array_equal(out[..., 0], expected)


def test_corrupt_image_names_the_image(tmp_path):
    m = write_image_sequence(tmp_path / "seq", num_frames=3)
    bad = m.path / "frame_2.png"
    bad.write_bytes(b"not a png")
    with open_clip(m.path) as reader:
        reader.read([0.0])
        with pytest.raises(CorruptVideoError) as err:
            reader.read([1.0])
    assert err.value.path == str(bad)


def test_open_clip_missing_path(tmp_path):
    with pytest.raises(VideoNotFoundError):
        open_clip(tmp_path / "nothing")


# -- real videos ----------------------------------------------------------------------------


@pytest.mark.shared_data
def test_ekman6_samples_probe_and_sparse_read(ekman6_dir):
    paths = sorted(ekman6_dir.glob("*.mp4"))
    assert len(paths) == 7
    infos = {p: probe_video(p) for p in paths}
    for path, info in infos.items():
        assert 5.0 < info.duration < 45.0, path
        assert 20.0 < info.fps < 31.0, path
        assert abs(info.num_frames - info.duration * info.fps) < 3, path
        assert 320 <= info.width <= 1920 and 240 <= info.height <= 1080, path
        assert info.rotation == 0 and info.kind == "video"
    # Sparse reading of every video; the two shortest are compared with a full decode.
    shortest = sorted(paths, key=lambda p: infos[p].duration)[:2]
    for path in paths:
        ts = np.linspace(0, infos[path].duration, 16, endpoint=False) + 0.2
        with open_clip(path) as reader:
            sparse = reader.read(ts, max_side=320)
        assert sparse.frames.shape[0] == 16 and max(sparse.frames.shape[1:3]) == 320
        assert np.all(np.diff(sparse.timestamps) > 0), path  # 16 distinct frames
        assert np.all(sparse.timestamps <= ts + 1e-9)
        assert sparse.frames.std() > 10  # real content, not blank frames
        if path in shortest:
            full = read_frames_full_decode(path, ts, max_side=320)
            np.testing.assert_array_equal(sparse.timestamps, full.timestamps)
            diff = np.abs(sparse.frames.astype(np.int16) - full.frames.astype(np.int16))
            assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 2, path


@pytest.mark.parametrize("writer", [write_lossless_mp4, write_bframes_mp4])
def test_read_keyframes_gives_the_nearest_keyframe_exactly(tmp_path: Path, writer) -> None:
    media = writer(tmp_path / "clip.mp4")  # 30 frames at 10 fps, a keyframe every 6 frames
    asked = [0.25, 0.35, 0.85, 2.9, 1.45, 0.25]
    with VideoReader(media.path) as reader:
        got = reader.read_keyframes(asked)
        # keyframes at 0, 0.6, 1.2, 1.8, 2.4 s; the nearest to each asked time
        np.testing.assert_allclose(got.timestamps, [0.0, 0.6, 0.6, 2.4, 1.2, 0.0])
        assert [identify(f, media.frames) for f in got.frames] == [0, 6, 6, 24, 12, 0]
        # the very frames an exact read at those times gives, and the reader still reads
        exact = reader.read(got.timestamps)
        assert np.array_equal(exact.frames, got.frames)
        assert identify(reader.read([1.0]).frames[0], media.frames) == 10
        small = reader.read_keyframes([2.0], max_side=32)
        assert small.frames.shape == (1, 24, 32, 3) and small.timestamps.tolist() == [1.8]


def test_read_keyframes_of_an_image_sequence_is_read(tmp_path: Path) -> None:
    media = write_image_sequence(tmp_path / "seq", num_frames=5)
    with open_clip(media.path) as reader:
        a, b = reader.read_keyframes([0.4, 2.6]), reader.read([0.4, 2.6])
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.timestamps, b.timestamps)
