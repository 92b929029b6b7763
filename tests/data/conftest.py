"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from _media import write_image


@pytest.fixture
def fer_like(tmp_path: Path) -> Path:
    """root/<split>/<class>/*.png, 2 classes, gray images whose value encodes class and index."""
    root = tmp_path / "fer"
    for split, n in (("train", 3), ("val", 2)):
        for c, name in enumerate(("happy", "angry")):
            for i in range(n):
                write_image(root / split / name / f"{i}.png", 100 * c + 10 * i + 5)
    return root
