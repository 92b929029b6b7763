"""`rdam validate` on a crafted CSV manifest lists every missing, unreadable, duplicate and
unlabelled entry with counts (text and --json), exits 1, and exits 0 once they are fixed."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from _fuzz import _write_clip, parse_boxes

from rdam.cli import main

X264 = {"preset": "ultrafast", "crf": "28"}


@pytest.fixture
def data_set(tmp_path: Path) -> dict[str, object]:
    """Files of every kind a real data set ends up with, and a manifest listing them."""
    root = tmp_path / "clips"
    root.mkdir()
    good = [_write_clip(root / f"good{i}.mp4", "libx264", 6 + i, options=X264) for i in range(3)]
    for i in range(2):
        image = np.full((16, 16), 60 * i + 20, np.uint8)
        image[: 4 + i] = 255
        cv2.imwrite(str(root / f"face{i}.png"), image)
    # unreadable: text, zero bytes, cut in half, a PNG that is not one, an index bomb
    (root / "notes.mp4").write_text("this is not a video\n")
    (root / "empty.mp4").write_bytes(b"")
    data = good[2].read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 3])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    frag = _write_clip(
        root / "frag_src.mp4",
        "libx264",
        options=X264,
        container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    bomb = bytearray(frag.read_bytes())
    frag.unlink()
    struct.pack_into(
        ">I", bomb, [b for b in parse_boxes(bytes(bomb)) if b.kind == b"trun"][-1].start, 1
    )
    (root / "bomb.mp4").write_bytes(bomb)
    # the same clip under another name, in another split (test leaks into train)
    shutil.copy(good[0], root / "good0_copy.mp4")
    rows = [
        ("good0.mp4", "joy", "train"),
        ("good1.mp4", "anger", "train"),
        ("good2.mp4", "joy", "val"),
        ("face0.png", "anger", "train"),
        ("face1.png", "joy", "val"),
        ("gone/a.mp4", "joy", "train"),  # missing
        ("gone/b.png", "anger", "val"),  # missing
        ("notes.mp4", "joy", "train"),  # unreadable
        ("empty.mp4", "anger", "train"),  # unreadable
        ("cut.mp4", "joy", "val"),  # unreadable
        ("broken.png", "anger", "val"),  # unreadable
        ("bomb.mp4", "joy", "train"),  # unreadable
        ("good1.mp4", "anger", "train"),  # duplicate: same path
        ("good0_copy.mp4", "joy", "test"),  # duplicate: same content, across splits
        ("face0.png", "", "test"),  # unlabelled (and a duplicate path across splits)
        ("good2.mp4", "", "val"),  # unlabelled (and a duplicate path)
    ]
    csv = root / "manifest.csv"
    csv.write_text(
        "# classes: joy,anger,fear\npath,label,split\n"
        + "".join(f"{p},{label},{s}\n" for p, label, s in rows)
    )
    return {"csv": csv, "root": root, "rows": rows}


def test_validate_lists_every_problem_with_counts(data_set, tmp_path: Path, capsys) -> None:
    csv, root = data_set["csv"], data_set["root"]
    out = tmp_path / "report.json"
    assert main(["validate", str(csv), "--json", str(out), "--no-progress"]) == 1
    text = capsys.readouterr().out
    report = json.loads(out.read_text())

    missing = {str(root / "gone" / "a.mp4"), str(root / "gone" / "b.png")}
    unreadable = {
        str(root / n) for n in ("notes.mp4", "empty.mp4", "cut.mp4", "broken.png", "bomb.mp4")
    }
    assert set(report["missing"]) == missing
    assert {u["path"] for u in report["unreadable"]} == unreadable
    errors = {Path(u["path"]).name: u["error"] for u in report["unreadable"]}
    assert errors["empty.mp4"].startswith("EmptyVideoError")
    assert (
        errors["bomb.mp4"].startswith("CorruptVideoError") and "index lists" in errors["bomb.mp4"]
    )
    assert errors["broken.png"].startswith("CorruptVideoError")
    groups = {
        (g["reason"], tuple(sorted(Path(p).name for p in g["paths"]))): g
        for g in report["duplicates"]
    }
    assert set(groups) == {
        ("same path", ("good1.mp4", "good1.mp4")),
        ("same path", ("face0.png", "face0.png")),
        ("same path", ("good2.mp4", "good2.mp4")),
        ("same content", ("good0.mp4", "good0_copy.mp4")),
    }
    assert groups[("same content", ("good0.mp4", "good0_copy.mp4"))]["cross_split"] is True
    assert groups[("same path", ("face0.png", "face0.png"))]["cross_split"] is True
    assert sorted(Path(p).name for p in report["unlabelled"]) == ["face0.png", "good2.mp4"]
    assert report["total"] == len(data_set["rows"]) == 16
    assert report["counts"] == {
        "train": {"joy": 4, "anger": 4, "fear": 0},
        "val": {"joy": 3, "anger": 2, "fear": 0, "<unlabelled>": 1},
        "test": {"joy": 1, "anger": 0, "fear": 0, "<unlabelled>": 1},
    }
    assert report["ok"] is False
    # the text report: the same counts, every problem path listed
    assert "16 clips: 13 problems" in text  # 2 missing + 5 unreadable + 4 duplicates + 2 unlabelled
    for header in (
        "missing (2):",
        "unreadable (5):",
        "duplicates (4):",
        "unlabelled (2):",
        "ACROSS SPLITS test/train",
        "classes without clips (4):",
    ):
        assert header in text, header
    for path in missing | unreadable:
        assert path in text, path

    # unlabelled clips allowed: 11 problems, still exit 1
    assert main(["validate", str(csv), "--allow-unlabelled", "--no-progress"]) == 1
    assert "16 clips: 11 problems" in capsys.readouterr().out


def test_validate_exits_0_once_the_manifest_is_fixed(data_set, capsys) -> None:
    csv, root = data_set["csv"], data_set["root"]
    keep = [r for r in data_set["rows"][:5]]
    csv.write_text("path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in keep))
    assert main(["validate", str(csv), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("5 clips: OK")
    # a label outside the classes is a manifest error: named, exit 2, nothing else checked
    csv.write_text("# classes: joy,anger\npath,label,split\ngood0.mp4,disgust,train\n")
    assert main(["validate", str(csv), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "rdam validate: error:" in err and "'disgust'" in err and "row 1" in err
    assert root.is_dir()
