"""Tiny models, videos and a fake face detector for the prediction, explanation, export and
serving tests (``tests/`` is on ``sys.path`` through the root ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from rdam.checkpoint import save_model
from rdam.data.faces import FaceBox
from rdam.data.spec import ClipSpec
from rdam.models import ModelConfig, build_model

CLASS_NAMES = ["anger", "joy", "surprise"]
FACE_SIDE = 24
"""Side of the white square that :class:`SquareFaceDetector` reports as a face."""


def save_tiny_model(
    path: Path,
    stream: str = "frames",
    num_frames: int = 4,
    frame_size: int = 32,
    seed: int = 0,
    class_names: Sequence[str] = CLASS_NAMES,
    metadata: dict[str, object] | None = None,
    **config: object,
) -> Path:
    """An untrained resnet18 RDAM (embed 32) saved as a ``.safetensors`` model file, with the
    classes ``class_names`` and the file's ``metadata``.

    ``config`` overrides :class:`ModelConfig` fields (``arch``, ``region_head`` ...).
    """
    torch.manual_seed(seed)
    cfg = ModelConfig(
        **{
            "backbone": "resnet18",
            "embed_dim": 32,
            "frame_hidden_dim": 16,
            "num_classes": len(class_names),
            **config,
        }
    )
    model = build_model(cfg).eval()
    # Make the frame weights differ from frame to frame (an untrained net gives ~constant α).
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
    if config.get("arch") == "two_stream":
        stream = "both"
    spec = ClipSpec(num_frames=num_frames, frame_size=frame_size, stream=stream, face_margin=0.2)
    return save_model(path, model, cfg, list(class_names), spec, metadata)


def video_frames(
    num_frames: int, width: int = 64, height: int = 48, face_frames: set[int] | None = None
) -> np.ndarray:
    """Frames ``(N, H, W, 3)`` uint8 with a moving colour pattern; frames in ``face_frames``
    also get a white ``FACE_SIDE`` square whose position moves with the frame index."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = (xx * 4 + i * 9) % 200
        frames[i, ..., 1] = (yy * 5 + i * 13) % 200
        frames[i, ..., 2] = (i * 37) % 200
        if face_frames is not None and i in face_frames:
            x0 = 4 + (i % 5) * 4
            frames[i, 8 : 8 + FACE_SIDE, x0 : x0 + FACE_SIDE] = 255
    return frames


def write_video(
    path: Path,
    num_frames: int = 20,
    fps: int = 10,
    width: int = 64,
    height: int = 48,
    face_frames: set[int] | None = None,
    format: str | None = None,
    container_options: dict[str, str] | None = None,
    start: int = 0,
    keyint: int = 5,
    codec: str = "libx264rgb",
) -> Path:
    """A lossless H.264 (libx264rgb, crf 0) video of :func:`video_frames` with a keyframe every
    ``keyint`` frames, its first frame at pts ``start`` (in frames): an mp4 by default, else
    the container ``format`` (``mpegts`` ...), with the muxer's ``container_options``
    (``{"movflags": "faststart"}`` ...); another ``codec`` (``mpeg2video`` for MPEG-PS) in
    yuv420p with its own defaults."""
    frames = video_frames(num_frames, width, height, face_frames)
    with av.open(str(path), "w", format=format, container_options=container_options) as container:
        stream = container.add_stream(codec, rate=fps)
        x264 = codec == "libx264rgb"
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if x264 else "yuv420p"
        stream.time_base = Fraction(1, fps)
        if x264:
            stream.options = {"crf": "0", "preset": "ultrafast", "x264-params": f"keyint={keyint}"}
        mux_frames(container, stream, frames, start)
    return path


def mux_frames(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    frames: np.ndarray,
    start: int = 0,
) -> None:
    """Encode RGB ``frames`` ``(N, H, W, 3)`` into ``stream`` at pts ``start``, ``start + 1``
    ..., mux them into ``container`` and flush the encoder."""
    for i, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        frame.pts = start + i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


class SquareFaceDetector:
    """A deterministic stand-in for YuNet: the bounding box of pure-white pixels is the face
    (score 0.9); no white pixel, no face. Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame_rgb: np.ndarray) -> list[FaceBox]:
        self.calls += 1
        white = np.all(frame_rgb >= 250, axis=-1)
        if white.sum() < 16:
            return []
        ys, xs = np.nonzero(white)
        x0, y0 = float(xs.min()), float(ys.min())
        return [
            FaceBox(x=x0, y=y0, w=float(xs.max()) - x0 + 1, h=float(ys.max()) - y0 + 1, score=0.9)
        ]


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a real socket, for PyAV's http protocol): yields the
    base URL. A plain file server: no byte-range requests, so files are read front to back."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
