"""`rdam validate`: missing, unreadable, duplicate and unlabelled clips, counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
from _media import write_gray_mp4

from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.validate import validate_manifest


def _video(path: Path) -> Path:
    return write_gray_mp4(path, [40 * i for i in range(5)])


def _image(path: Path, value: int) -> Path:
    cv2.imwrite(str(path), np.full((8, 8), value, np.uint8))
    return path


def _manifest(tmp_path: Path) -> Manifest:
    v = _video(tmp_path / "a.mp4")
    shutil.copy(v, tmp_path / "copy_of_a.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    _image(tmp_path / "x.png", 10)
    _image(tmp_path / "y.png", 200)
    records = [
        ClipRecord(str(v), 0, "train"),
        ClipRecord(str(tmp_path / "copy_of_a.mp4"), 0, "test"),  # same content, other split
        ClipRecord(str(tmp_path / "x.png"), 1, "train"),
        ClipRecord(str(tmp_path / "x.png"), 1, "train"),  # same path twice
        ClipRecord(str(tmp_path / "y.png"), None, "test"),
        ClipRecord(str(tmp_path / "gone.mp4"), 0, "train"),
        ClipRecord(str(tmp_path / "text.mp4"), 1, "test"),
        ClipRecord(str(tmp_path / "empty.mp4"), 1, "test"),
    ]
    return Manifest(records, ["joy", "fear", "anger"])


def test_validate_finds_every_kind_of_problem(tmp_path: Path):
    m = _manifest(tmp_path)
    report = validate_manifest(m)
    assert report.total == 8
    assert report.missing == [str(tmp_path / "gone.mp4")]
    unreadable = dict(report.unreadable)
    assert set(unreadable) == {str(tmp_path / "text.mp4"), str(tmp_path / "empty.mp4")}
    assert "EmptyVideoError" in unreadable[str(tmp_path / "empty.mp4")]
    reasons = {g.reason: g for g in report.duplicates}
    assert reasons["same path"].paths == [str(tmp_path / "x.png")] * 2
    assert not reasons["same path"].cross_split
    assert sorted(reasons["same content"].paths) == [
        str(tmp_path / "a.mp4"),
        str(tmp_path / "copy_of_a.mp4"),
    ]
    assert reasons["same content"].cross_split
    assert report.unlabelled == [str(tmp_path / "y.png")]
    assert report.counts == {
        "train": {"joy": 2, "fear": 2, "anger": 0},
        "test": {"joy": 1, "fear": 2, "anger": 0, "<unlabelled>": 1},
    }
    assert ("train", "anger") in report.empty_classes
    assert report.num_problems == 1 + 2 + 2 + 1 and not report.ok
    text = report.format()
    for needle in ("missing (1)", "unreadable (2)", "ACROSS SPLITS test/train", "unlabelled (1)"):
        assert needle in text
    assert report.to_dict()["duplicates"][1]["cross_split"] is True


def test_validate_clean_manifest_is_ok_and_options(tmp_path: Path):
    _image(tmp_path / "x.png", 10)
    _image(tmp_path / "y.png", 20)
    m = Manifest(
        [
            ClipRecord(str(tmp_path / "x.png"), 0, "train"),
            ClipRecord(str(tmp_path / "y.png"), None, "val"),
        ],
        ["joy"],
    )
    assert not validate_manifest(m).ok  # the unlabelled clip
    report = validate_manifest(m, require_labels=False, cache_root=tmp_path / "cache")
    assert report.ok and "OK" in report.format()
    assert list((tmp_path / "cache" / "hashes").glob("*.jsonl"))
    # without probing or hashing only existence, paths and labels are checked
    (tmp_path / "y.png").write_text("broken")
    report = validate_manifest(m, probe=False, hash_content=False, require_labels=False)
    assert report.ok


def test_validate_decodes_every_image_of_a_sequence(tmp_path: Path):
    good, bad, empty = tmp_path / "good", tmp_path / "bad", tmp_path / "empty"
    for folder in (good, bad):
        folder.mkdir()
        for i in range(3):
            _image(folder / f"{i:03d}.png", 10 * i + (folder == bad))
    empty.mkdir()
    whole = (bad / "002.png").read_bytes()
    (bad / "002.png").write_bytes(whole[: len(whole) // 2])  # a later frame cut short
    m = Manifest(
        [
            ClipRecord(str(good), 0, "train"),
            ClipRecord(str(bad), 0, "train"),
            ClipRecord(str(empty), 0, "test"),
        ],
        ["joy"],
    )
    report = validate_manifest(m)
    unreadable = dict(report.unreadable)
    assert sorted(unreadable) == [str(bad), str(empty)]
    assert unreadable[str(bad)].startswith(
        f"CorruptVideoError: {bad / '002.png'}: unreadable image"
    )
    assert unreadable[str(empty)].startswith(f"EmptyVideoError: {empty}: the folder holds no image")
    assert report.missing == [] and report.duplicates == []


def test_validate_same_content_pairs_each_path_with_its_split(tmp_path: Path):
    _image(tmp_path / "z.png", 10)
    shutil.copy(tmp_path / "z.png", tmp_path / "a.png")
    _image(tmp_path / "m.png", 99)
    m = Manifest(
        [
            ClipRecord(str(tmp_path / "z.png"), 0, "train"),  # listed first, sorts last
            ClipRecord(str(tmp_path / "m.png"), 0, "val"),
            ClipRecord(str(tmp_path / "a.png"), 0, "test"),
        ],
        ["joy"],
    )
    report = validate_manifest(m)
    assert report.to_dict()["duplicates"] == [
        {
            "reason": "same content",
            "paths": [str(tmp_path / "a.png"), str(tmp_path / "z.png")],
            "splits": ["test", "train"],
            "cross_split": True,
        }
    ]
