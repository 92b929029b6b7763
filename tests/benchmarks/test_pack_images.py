"""benchmarks.pack_images: a folder of class folders travels in parts and comes back byte for
byte (how FER2013 goes to a lent GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.pack_images import pack, unpack


def test_pack_and_unpack_give_back_every_file_byte_for_byte(tmp_path: Path):
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("happy", "sad"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    (root / "README.txt").write_text("not an image")  # left out
    parts = pack(root, tmp_path / "packed", parts=2)
    assert len(parts) == 2 and all(p.stat().st_size > 0 for p in parts)
    assert unpack(parts, tmp_path / "back") == 12
    for original in root.rglob("*.jpg"):
        copy = tmp_path / "back" / original.relative_to(root)
        assert copy.read_bytes() == original.read_bytes()
    assert not (tmp_path / "back" / "README.txt").exists()
