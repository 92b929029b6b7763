"""Manifests and the data-set adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
from _media import write_image

from rdam.data import layouts as ds
from rdam.data.layouts import (
    ekman6_manifest,
    image_folder_manifest,
    load_manifest,
    sequence_folder_manifest,
    video_folder_manifest,
    videoemotion8_manifest,
)
from rdam.data.manifest import ClipRecord, Manifest
from rdam.errors import ConfigError, DatasetError


def test_image_folder_split_layout(fer_like: Path):
    m = image_folder_manifest(fer_like)
    assert m.class_names == ["angry", "happy"]
    assert m.splits == ["train", "val"]
    assert len(m) == 10
    assert m.split("train").label_counts() == {"angry": 3, "happy": 3}
    assert m.split("val").label_counts() == {"angry": 2, "happy": 2}
    rec = m.split("val").records[0]
    assert Path(rec.path).is_absolute() and rec.label == 0 and rec.path.endswith("angry/0.png")


def test_image_folder_class_layout_and_given_class_order(fer_like: Path):
    m = image_folder_manifest(fer_like / "train", split="train", class_names=["happy", "angry"])
    assert m.class_names == ["happy", "angry"]
    assert {r.split for r in m} == {"train"}
    assert all((r.label == 0) == ("/happy/" in r.path) for r in m)
    with pytest.raises(DatasetError, match="split 'val' has no clips"):
        m.split("val")


def test_empty_or_missing_root_is_a_dataset_error(tmp_path: Path):
    with pytest.raises(DatasetError, match="not a folder"):
        image_folder_manifest(tmp_path / "nope")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found"):
        image_folder_manifest(tmp_path / "empty")


def test_manifest_csv_and_json_round_trip(fer_like: Path, tmp_path: Path):
    m = image_folder_manifest(fer_like, class_names=["happy", "angry"])
    m = Manifest(
        [*m.records, ClipRecord(str(tmp_path / "x.mp4"), None, "test", "S1")], m.class_names
    )
    m.to_csv(tmp_path / "m.csv")
    m.to_json(tmp_path / "m.json")
    for loaded in (Manifest.from_csv(tmp_path / "m.csv"), Manifest.from_json(tmp_path / "m.json")):
        assert loaded.class_names == ["happy", "angry"]
        assert loaded.records == m.records
    assert m.label_counts()["<unlabelled>"] == 1


def test_manifest_csv_relative_paths_resolve_against_the_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,label,split\nclips/a.mp4,joy,train\n")
    m = Manifest.from_csv(tmp_path / "sub" / "m.csv")
    assert m.records[0].path == str((tmp_path / "sub" / "clips" / "a.mp4").resolve())
    assert m.class_names == ["joy"] and m.records[0].group is None


def test_manifest_rejects_unknown_labels_and_bad_files(tmp_path: Path):
    (tmp_path / "m.csv").write_text("path,label,split\na.mp4,joy,train\n")
    with pytest.raises(DatasetError, match="'joy' not among"):
        Manifest.from_csv(tmp_path / "m.csv", class_names=["anger"])
    (tmp_path / "bad.csv").write_text("file,label\na.mp4,joy\n")
    with pytest.raises(DatasetError, match="'path' column"):
        Manifest.from_csv(tmp_path / "bad.csv")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        Manifest.from_json(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="outside"):
        Manifest([ClipRecord("a", 3, "train")], ["x"])


def test_video_folder_and_sequence_folder(tmp_path: Path):
    for split in ("train", "test"):
        for cls in ("joy", "fear"):
            d = tmp_path / "v" / split / cls
            d.mkdir(parents=True)
            (d / "a.mp4").write_bytes(b"x")
            (d / "notes.txt").write_text("ignored")
    m = video_folder_manifest(tmp_path / "v")
    assert len(m) == 4 and m.class_names == ["fear", "joy"] and set(m.splits) == {"train", "test"}

    for cls, seqs in (("happy", ["S005_001", "S010_002"]), ("sad", ["clipA"])):
        for s in seqs:
            for f in range(3):
                write_image(tmp_path / "ck" / cls / s / f"{f:03d}.png", f)
    (tmp_path / "ck" / "sad" / "empty_dir").mkdir()
    m = sequence_folder_manifest(tmp_path / "ck")
    assert [(Path(r.path).name, r.label, r.group) for r in m] == [
        ("S005_001", 0, "S005"),
        ("S010_002", 0, "S010"),
        ("clipA", 1, None),
    ]


def _fake_videos(root: Path, classes: list[str], per_class: int = 2) -> None:
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / cls / f"{cls.lower()}_{i}.mp4").write_bytes(b"x")


def test_ekman6_with_and_without_split_lists(tmp_path: Path):
    root = tmp_path / "ekman"
    _fake_videos(root, ["anger", "disgust", "fear", "joy", "sadness", "surprise"])
    m = ekman6_manifest(root)
    assert m.class_names == list(ds.EKMAN6_CLASSES) and len(m) == 12 and m.splits == ["all"]
    (root / "train.txt").write_text("anger/anger_0.mp4\njoy/joy_1.mp4\n# comment\n\n")
    (root / "test.txt").write_text("fear_0.mp4\nsadness/sadness_1.mp4 surprise\n")
    m = ekman6_manifest(root)
    got = {(Path(r.path).name, m.class_names[r.label], r.split) for r in m}
    assert got == {
        ("anger_0.mp4", "anger", "train"),
        ("joy_1.mp4", "joy", "train"),
        ("fear_0.mp4", "fear", "test"),  # bare file name found under root
        ("sadness_1.mp4", "surprise", "test"),  # explicit label wins
    }
    single = tmp_path / "split.txt"
    single.write_text("anger/anger_1.mp4 train\njoy/joy_0.mp4 test\n")
    m = ekman6_manifest(root, split_file=single)
    assert sorted((r.split, m.class_names[r.label]) for r in m) == [
        ("test", "joy"),
        ("train", "anger"),
    ]
    (root / "test.txt").write_text("fear/missing.mp4\n")
    with pytest.raises(DatasetError, match=r"missing\.mp4"):
        ekman6_manifest(root)
    assert len(ekman6_manifest(root, strict=False).split("train")) == 2


def test_videoemotion8_splits(tmp_path: Path):
    root = tmp_path / "ve8"
    classes = [c.capitalize() for c in ds.VIDEOEMOTION8_CLASSES]
    _fake_videos(root, classes)
    (root / "splits").mkdir()
    for i in (1, 2):
        (root / "splits" / f"train_{i}.txt").write_text(
            "\n".join(f"{c}/{c.lower()}_{(i + 1) % 2}.mp4" for c in classes)
        )
        (root / "splits" / f"test_{i}.txt").write_text(
            "\n".join(f"{c}/{c.lower()}_{i % 2}.mp4" for c in classes)
        )
    m1, m2 = videoemotion8_manifest(root, 1), videoemotion8_manifest(root, 2)
    assert m1.class_names == list(ds.VIDEOEMOTION8_CLASSES)
    assert m1.split("train").label_counts() == dict.fromkeys(ds.VIDEOEMOTION8_CLASSES, 1)
    assert {r.path for r in m1.split("train")} == {r.path for r in m2.split("test")}
    with pytest.raises(ConfigError, match="1..10"):
        videoemotion8_manifest(root, 11)
    with pytest.raises(DatasetError, match="train_3"):
        videoemotion8_manifest(root, 3, split_dir=root / "splits")


def test_load_manifest_dispatch(fer_like: Path, tmp_path: Path):
    m = load_manifest(f"image_folder:{fer_like}")
    assert len(m) == 10
    m.to_json(tmp_path / "m.json")
    assert load_manifest(str(tmp_path / "m.json")).records == m.records
    assert (
        len(load_manifest({"kind": "image_folder", "root": fer_like / "val", "split": "val"})) == 4
    )
    with pytest.raises(ConfigError, match="valid kinds: .*image_folder"):
        load_manifest({"kind": "imagenet", "root": "x"})
    with pytest.raises(ConfigError, match="cannot tell"):
        load_manifest("somewhere")
    with pytest.raises(ConfigError, match="bad options"):
        load_manifest({"kind": "image_folder", "root": fer_like, "colour": 1})
