"""Tiny test media written with PyAV: lossless clips whose frames identify themselves, and bad files.

Every generator returns the path it wrote plus what a reader must give back (the frames as
``(N, H, W, 3)`` uint8 RGB, in coded orientation, and their presentation times in seconds), so a
test can compare decoded pixels exactly and tell which frame was returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass
class Media:
    """A written test clip and its ground truth.

    Attributes:
        path: the file written.
        frames: ``(N, H, W, 3)`` uint8 RGB, exactly what was encoded (coded orientation).
        times: ``(N,)`` float64 presentation time of each frame in seconds, from 0.
    """

    path: Path
    frames: np.ndarray
    times: np.ndarray


def pattern_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Frames that differ everywhere: frame ``i`` has its own colour, a bar ``i`` pixels wide and
    a marker in the top-left corner, so any frame is identified by its pixels alone.

    Returns:
        ``(num_frames, height, width, 3)`` uint8 RGB.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frame = frames[i]
        frame[..., 0] = (xx * 3 + i * 7) % 256
        frame[..., 1] = (yy * 5 + i * 11) % 256
        frame[..., 2] = (i * 37) % 256
        frame[:, : min(width, i + 1), 2] = 255 - (i * 37) % 256
        frame[0, 0] = (i, 255 - i, i * 3 % 256)
    return frames


def identify(frame: np.ndarray, reference: np.ndarray) -> int:
    """Index of the reference frame closest to ``frame`` (mean absolute difference).

    Args:
        frame: ``(H, W, 3)`` uint8.
        reference: ``(N, H, W, 3)`` uint8.
    """
    diff = np.abs(reference.astype(np.int16) - frame.astype(np.int16)[None])
    return int(diff.reshape(len(reference), -1).mean(axis=1).argmin())


def _encode(
    path: Path,
    frames: np.ndarray,
    pts: list[int],
    time_base: Fraction,
    codec: str,
    pix_fmt: str,
    options: dict[str, str] | None = None,
    rotation: int | None = None,
    input_format: str = "rgb24",
    container_options: dict[str, str] | None = None,
) -> None:
    height, width = frames.shape[1:3]
    with av.open(str(path), "w", container_options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=round(1 / float(time_base)))
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if options:
            stream.options = options
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for array, p in zip(frames, pts, strict=True):
            data = array[..., 0] if input_format == "gray" else array
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=input_format)
            frame.pts = p
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


X264_LOSSLESS = {
    "crf": "0",
    "preset": "veryfast",
    "x264-params": "keyint=6:min-keyint=6:scenecut=0:bframes=2",
}


def write_lossless_mp4(
    path: Path,
    num_frames: int = 30,
    fps: int = 10,
    width: int = 64,
    height: int = 48,
    rotation: int | None = None,
    faststart: bool = False,
) -> Media:
    """Lossless H.264 RGB (libx264rgb, crf 0) in mp4, a keyframe every 6 frames and B-frames, so
    seeking is exercised. ``rotation`` is written as a display matrix (counter-clockwise degrees,
    PyAV's ``set_display_rotation`` convention)."""
    frames = pattern_frames(num_frames, height, width)
    _encode(
        path,
        frames,
        list(range(num_frames)),
        Fraction(1, fps),
        "libx264rgb",
        "rgb24",
        X264_LOSSLESS,
        rotation=rotation,
        container_options={"movflags": "faststart"} if faststart else None,
    )
    return Media(path, frames, np.arange(num_frames, dtype=np.float64) / fps)


def write_bframes_mp4(path: Path, num_frames: int = 30, fps: int = 10) -> Media:
    """Lossy H.264 (yuv420p, crf 12) with B-frames (decode order differs from display order)
    and a keyframe every 6 frames. Decoding is deterministic, so sparse and full decoding must
    still agree exactly; ``frames`` are the encoder's input (match by :func:`identify`)."""
    frames = pattern_frames(num_frames, 48, 64)
    _encode(
        path,
        frames,
        list(range(num_frames)),
        Fraction(1, fps),
        "libx264",
        "yuv420p",
        {
            "crf": "12",
            "preset": "veryfast",
            "x264-params": "keyint=6:min-keyint=6:scenecut=0:bframes=2:b-adapt=0",
        },
    )
    return Media(path, frames, np.arange(num_frames, dtype=np.float64) / fps)


def write_codec_clip(
    path: Path,
    codec: str,
    pix_fmt: str = "yuv420p",
    num_frames: int = 30,
    fps: int = 10,
    gop: int = 5,
    b_frames: int = 2,
    container_format: str | None = None,
) -> Media:
    """A lossy clip in any container/codec PyAV writes (``x.avi`` mpeg4, ``x.ts`` mpeg2video,
    raw ``x.h264`` with ``container_format="h264"``...), B-frames and a short GOP by default;
    ``frames`` are the encoder's input (match by :func:`identify`)."""
    frames = pattern_frames(num_frames, 48, 64)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Media(path, frames, np.arange(num_frames, dtype=np.float64) / fps)


def write_vfr_mp4(path: Path, num_frames: int = 20, width: int = 64, height: int = 48) -> Media:
    """Lossless variable-frame-rate clip: gaps between frames alternate 40, 40, 250 ms and more."""
    frames = pattern_frames(num_frames, height, width)
    gaps = [40, 40, 250, 100, 10]
    pts = [0]
    for i in range(1, num_frames):
        pts.append(pts[-1] + gaps[i % len(gaps)])
    _encode(path, frames, pts, Fraction(1, 1000), "libx264rgb", "rgb24", X264_LOSSLESS)
    return Media(path, frames, np.asarray(pts, dtype=np.float64) / 1000.0)


def write_ffv1_mkv(
    path: Path,
    num_frames: int = 12,
    fps: int = 10,
    width: int = 63,
    height: int = 47,
    gray: bool = False,
) -> Media:
    """Lossless FFV1 in Matroska; odd sizes are fine. ``gray=True`` writes a ``gray`` stream
    (the expected RGB frames then have R = G = B)."""
    frames = pattern_frames(num_frames, height, width)
    if gray:
        frames = np.repeat(frames[..., 1:2], 3, axis=3)
    _encode(
        path,
        frames,
        list(range(num_frames)),
        Fraction(1, fps),
        "ffv1",
        "gray" if gray else "bgr0",
        input_format="gray" if gray else "rgb24",
    )
    return Media(path, frames, np.arange(num_frames, dtype=np.float64) / fps)


def write_4k_mp4(path: Path, num_frames: int = 2) -> Media:
    """A 3840x2160 H.264 clip (lossy, fast preset), to check ``max_side`` bounds memory."""
    height, width = 2160, 3840
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frames[i, :, : width // 2] = (200, 40 * i, 0)
        frames[i, :, width // 2 :] = (0, 40 * i, 200)
    _encode(
        path,
        frames,
        list(range(num_frames)),
        Fraction(1, 10),
        "libx264",
        "yuv420p",
        {"preset": "ultrafast"},
    )
    return Media(path, frames, np.arange(num_frames, dtype=np.float64) / 10)


def write_audio_only(path: Path, seconds: float = 0.5, rate: int = 44100) -> Path:
    """An mp4 (or any container) with one AAC audio stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        samples = int(seconds * rate)
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
        chunk = 1024
        for start in range(0, samples, chunk):
            part = tone[None, start : start + chunk]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(part), format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_truncated(source: Path, path: Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``source``'s bytes to ``path`` (an interrupted download)."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_image_sequence(
    folder: Path, num_frames: int = 12, width: int = 40, height: int = 30
) -> Media:
    """PNG frames named ``frame_1.png .. frame_N.png`` (natural order differs from lexical order
    once N >= 10), lossless so pixels compare exactly. Times assume 1 frame per second."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    frames = pattern_frames(num_frames, height, width)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{i + 1}.png")
    return Media(folder, frames, np.arange(num_frames, dtype=np.float64))


def write_image(path: Path, value: int, size: int = 12, gray: bool = True) -> None:
    """A constant image (gray or RGB) written with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size) if gray else (size, size, 3), value, np.uint8)
    cv2.imwrite(str(path), img)


def write_gray_mp4(path: Path, values: list[int], x264_params: str | None = None) -> Path:
    """A 32x32 H.264 mp4 at 10 fps whose frame ``i`` is uniformly ``values[i]``
    (``x264_params``, e.g. ``"keyint=10"``, set the GOP structure)."""
    options = {"x264-params": x264_params} if x264_params else {}
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options=options)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for value in values:
            img = np.full((32, 32, 3), value, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
