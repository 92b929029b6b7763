"""Shared fixtures: where the real test data lives, or a clear skip when it is absent.

The data is found through ``RDAM_SHARED_DATA`` (default: ``shared/data`` beside the checkout)
and is never copied into the project.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_path() -> Path:
    """``$RDAM_SHARED_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("RDAM_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set RDAM_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (``fer2013/``, ``ekman6_samples/``); skips the test if absent."""
    return _require(shared_data_path(), "shared test data")


@pytest.fixture(scope="session")
def ekman6_dir(shared_data: Path) -> Path:
    """Folder of the 7 Ekman-6 sample videos (``*.mp4``)."""
    return _require(shared_data / "ekman6_samples", "Ekman-6 sample videos")


@pytest.fixture(scope="session")
def fer2013_dir(shared_data: Path) -> Path:
    """FER2013 root with ``train/<class>/*.jpg`` and ``val/<class>/*.jpg`` (48x48 gray)."""
    return _require(shared_data / "fer2013", "FER2013 images")


@pytest.fixture(scope="session")
def votes_csv(shared_data: Path) -> Path:
    """The FER+ crowd votes for FER2013 (``ferplus/fer2013_votes.csv``)."""
    return _require(shared_data / "ferplus" / "fer2013_votes.csv", "FER+ votes")


@pytest.fixture(scope="session")
def yunet_model(shared_data: Path) -> Path:
    """The YuNet face detector ONNX file (``$RDAM_SHARED_DATA/../models``)."""
    return _require(shared_data.parent / "models" / "face_detection_yunet.onnx", "YuNet face model")


# ---- two real people in one video (tests of tracks, people, streams)

TWO_PEOPLE_FPS = 10
TWO_PEOPLE_SECONDS = 3.0


def _two_people_frames(path: Path, seconds: float = TWO_PEOPLE_SECONDS) -> np.ndarray:
    """``seconds`` of a video at ``TWO_PEOPLE_FPS``, resized to 320 x 240."""
    import cv2

    from rdam.data.video import open_clip

    times = np.arange(round(seconds * TWO_PEOPLE_FPS)) / TWO_PEOPLE_FPS
    with open_clip(path) as reader:
        frames = reader.read(times, max_side=None).frames
    return np.stack([cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames])


def _write_mp4(path: Path, frames: np.ndarray, fps: int) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def two_people(ekman6_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real people, composed from two Ekman-6 samples (joy.mp4: one woman for its first
    3.5 s; fear.mp4: one face throughout), 3 s of each resized to 320 x 240 at 10 fps: side by
    side, one after the other, and each alone."""
    folder = tmp_path_factory.mktemp("two_people")
    fps = TWO_PEOPLE_FPS
    joy, fear = (
        _two_people_frames(ekman6_dir / "joy.mp4"),
        _two_people_frames(ekman6_dir / "fear.mp4"),
    )
    return {
        "side_by_side": _write_mp4(
            folder / "side_by_side.mp4", np.concatenate([joy, fear], axis=2), fps
        ),
        "one_after_the_other": _write_mp4(
            folder / "sequence.mp4", np.concatenate([joy, fear]), fps
        ),
        "joy": _write_mp4(folder / "joy.mp4", joy, fps),
        "fear": _write_mp4(folder / "fear.mp4", fear, fps),
    }
