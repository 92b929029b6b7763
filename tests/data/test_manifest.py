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


def _touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def _clips(m: Manifest) -> set[tuple[str, str, str]]:
    return {
        (Path(r.path).parent.name + "/" + Path(r.path).name, m.class_names[r.label], r.split)
        for r in m
    }


def test_split_list_path_is_never_taken_from_another_class(tmp_path: Path, caplog):
    # the lists say anger/0001 and joy/0002, the disk has them the other way round: taking
    # them by file name would give them the other class and put anger/0002 in train and test
    root = tmp_path / "ekman"
    _touch(root, "joy/0001.mp4", "anger/0002.mp4")
    (root / "train.txt").write_text("anger/0001.mp4\njoy/0002.mp4\n")
    (root / "test.txt").write_text("anger/0002.mp4\n")
    with pytest.raises(DatasetError, match="train.txt names clips") as err:
        ekman6_manifest(root)
    assert "line 1: anger/0001.mp4 (not taken from joy/0001.mp4: not in its class anger)" in str(
        err.value
    )
    assert "line 2: joy/0002.mp4 (not taken from anger/0002.mp4: not in its class joy)" in str(
        err.value
    )
    with caplog.at_level("WARNING", logger="rdam.data"):
        m = ekman6_manifest(root, strict=False)
    assert _clips(m) == {("anger/0002.mp4", "anger", "test")}
    assert "2 listed clips are missing and were skipped" in caplog.text


def test_split_list_falls_back_by_name_only_for_bare_names_or_the_same_class(
    tmp_path: Path, caplog
):
    root = tmp_path / "ve8"
    _touch(
        root,
        "Anger/extra/a1.mp4",  # listed as Anger/a1.mp4: same class, taken
        "Fear/f1.mp4",  # listed as clips/f1.mp4 fear: the label names the class, taken
        "Joy/j1.mp4",  # listed as clips/j1.mp4: no class to check it by, missing
        "Trust/t1.mp4",  # listed as the bare t1.mp4: found by name, its folder's class
        "Joy/dup.mp4",
        "Trust/dup.mp4",  # bare dup.mp4: two of that name, missing
    )
    (root / "train_1.txt").write_text("Anger/a1.mp4\nclips/f1.mp4 fear\nclips/j1.mp4\n")
    (root / "test_1.txt").write_text("t1.mp4\ndup.mp4\n")
    with pytest.raises(DatasetError, match="train_1.txt names clips") as err:
        videoemotion8_manifest(root, 1)
    assert "line 3: clips/j1.mp4 (not taken from Joy/j1.mp4: the list names no class" in str(
        err.value
    )
    with pytest.raises(DatasetError, match=r"line 2: dup\.mp4 \(2 files of that name"):
        (root / "train_1.txt").write_text("Anger/a1.mp4\nclips/f1.mp4 fear\n")
        videoemotion8_manifest(root, 1)
    (root / "train_1.txt").write_text("Anger/a1.mp4\nclips/f1.mp4 fear\nclips/j1.mp4\n")
    with caplog.at_level("INFO", logger="rdam.data.split_lists"):
        m = videoemotion8_manifest(root, 1, strict=False)
    assert _clips(m) == {
        ("extra/a1.mp4", "anger", "train"),
        ("Fear/f1.mp4", "fear", "train"),
        ("Trust/t1.mp4", "trust", "test"),
    }
    messages = {(r.levelname, r.getMessage().split(": ", 1)[1]) for r in caplog.records}
    assert (
        "WARNING",
        f"2 listed paths do not exist under {root.resolve()} and were taken from another folder "
        "of the same class with the same file name: Anger/a1.mp4 -> Anger/extra/a1.mp4; "
        "clips/f1.mp4 -> Fear/f1.mp4",
    ) in messages
    assert ("INFO", f"1 bare file names were found by name under {root.resolve()}") in messages
    assert ("WARNING", "1 listed clips are missing and were skipped") in messages


def test_split_lists_putting_one_clip_in_two_splits_raise(tmp_path: Path):
    root = tmp_path / "ekman"
    _touch(root, "anger/0002.mp4", "joy/0003.mp4")
    (root / "train.txt").write_text("joy/0003.mp4\n0002.mp4\n")  # the bare name is anger/0002
    (root / "test.txt").write_text("anger/0002.mp4\n")
    for strict in (True, False):
        with pytest.raises(DatasetError, match="one clip in two splits") as err:
            ekman6_manifest(root, strict=strict)
        clip = str((root / "anger" / "0002.mp4").resolve())
        assert (
            f"{clip} is in split 'train' ({root.resolve()}/train.txt line 2 (listed as "
            f"'0002.mp4', found at anger/0002.mp4)) and in split 'test' "
            f"({root.resolve()}/test.txt line 1)"
        ) in str(err.value)
    # one file of 'relative/path split' lines: its own name and line numbers in the messages
    single = tmp_path / "split.txt"
    single.write_text("# header\njoy/0003.mp4 train\nanger/0002.mp4 train\njoy/0003.mp4 test\n")
    with pytest.raises(DatasetError, match="one clip in two splits") as err:
        ekman6_manifest(root, split_file=single)
    joy = str((root / "joy" / "0003.mp4").resolve())
    assert (
        f"{joy} is in split 'train' ({single} line 2) and in split 'test' ({single} line 4)"
        in str(err.value)
    )
    single.write_text("joy/0003.mp4 train\n\nanger/gone.mp4 test\n")
    with pytest.raises(DatasetError, match=rf"{single} names clips .*: line 3: anger/gone\.mp4"):
        ekman6_manifest(root, split_file=single)
    # the same clip twice in one split is not leakage
    single.write_text("joy/0003.mp4 train\njoy/0003.mp4 train\nanger/0002.mp4 test\n")
    assert len(ekman6_manifest(root, split_file=single)) == 3


def test_class_folders_outside_the_classes_are_logged_and_a_class_needs_training_clips(
    tmp_path: Path, caplog
):
    root = tmp_path / "ck"
    for rel in ("train/happiness/S005_001", "train/sad/S010_001", "test/happy/S011_001"):
        for f in range(2):
            write_image(root / rel / f"{f}.png", 10 * f)
    write_image(root / "train" / "happiness" / "S006_001" / "0.png", 5)
    with pytest.raises(DatasetError) as err:
        sequence_folder_manifest(root, class_names=["happy", "sad"])
    assert str(err.value) == (
        f"class 'happy' of ['happy', 'sad'] has no image sequences in the training split "
        f"'train': expected {root.resolve()}/train/<class>/... (class folder names match "
        "case-insensitively); folders there outside the classes: happiness (2 image "
        "sequences). The model would have a class it never trains on: rename the class folder "
        "or fix class_names"
    )
    (root / "train" / "happiness").rename(root / "train" / "Happy")
    assert sequence_folder_manifest(root, class_names=["happy", "sad"]).split(
        "train"
    ).label_counts() == {"happy": 2, "sad": 1}

    # a folder outside the classes is dropped with a warning naming it and its clips
    write_image(root / "train" / "contempt" / "S020_001" / "0.png", 1)
    write_image(root / "test" / "contempt" / "S021_001" / "0.png", 1)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rdam.data.layouts"):
        m = sequence_folder_manifest(root, class_names=["happy", "sad"])
    assert len(m) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{root.resolve()}/test/contempt is not a folder of one of the classes ['happy', 'sad']: "
        "its 1 image sequences are not used; rename it to its class (case-insensitive) if it is "
        "one",
        f"{root.resolve()}/train/contempt is not a folder of one of the classes ['happy', 'sad']: "
        "its 1 image sequences are not used; rename it to its class (case-insensitive) if it is "
        "one",
    ]

    # without a training split (split 'all') a class without clips is only logged
    flat = tmp_path / "flat"
    write_image(flat / "happiness" / "S001_001" / "0.png", 1)
    write_image(flat / "sad" / "S002_001" / "0.png", 1)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rdam.data.layouts"):
        m = sequence_folder_manifest(flat, class_names=["happy", "sad"])
    assert [(Path(r.path).name, r.label, r.split) for r in m] == [("S002_001", 1, "all")]
    assert [r.getMessage() for r in caplog.records][-1] == (
        f"no image sequences of class 'happy' under {flat.resolve()} (class folder names match "
        "case-insensitively)"
    )
    # classes read from the folders: a class only in the test split is logged, not an error
    split = tmp_path / "split"
    write_image(split / "train" / "sad" / "S001_001" / "0.png", 1)
    write_image(split / "test" / "sad" / "S002_001" / "0.png", 1)
    write_image(split / "test" / "happy" / "S003_001" / "0.png", 1)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rdam.data.layouts"):
        m = sequence_folder_manifest(split)
    assert m.class_names == ["happy", "sad"] and len(m) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "class 'happy' of ['happy', 'sad'] has no image sequences in the training split 'train': "
        f"expected {split.resolve()}/train/<class>/... (class folder names match "
        "case-insensitively)"
    ]
