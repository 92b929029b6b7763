"""Shared fixtures: where the real test data lives, or a clear skip when it is absent.

The data is found through ``RDAM_SHARED_DATA`` (default: ``shared/data`` beside the checkout)
and is never copied into the project.
"""

from __future__ import annotations

import os
from pathlib import Path

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
