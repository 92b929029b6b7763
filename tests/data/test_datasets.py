"""Manifests, data-set adapters, ClipDataset and collate_clips."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rdam.data import datasets as ds
from rdam.data.datasets import (
    ClipDataset,
    ClipRecord,
    Manifest,
    collate_clips,
    ekman6_manifest,
    image_folder_manifest,
    load_manifest,
    segment_indices,
    sequence_folder_manifest,
    video_folder_manifest,
    videoemotion8_manifest,
)
from rdam.data.transforms import ClipTransform
from rdam.errors import ConfigError, CorruptVideoError, DatasetError, VideoNotFoundError

SHARED = Path(
    os.environ.get(
        "RDAM_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    )
)


def _write_image(path: Path, value: int, size: int = 12, gray: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size) if gray else (size, size, 3), value, np.uint8)
    cv2.imwrite(str(path), img)


@pytest.fixture
def fer_like(tmp_path: Path) -> Path:
    """root/<split>/<class>/*.png, 2 classes, gray images whose value encodes class and index."""
    root = tmp_path / "fer"
    for split, n in (("train", 3), ("val", 2)):
        for c, name in enumerate(("happy", "angry")):
            for i in range(n):
                _write_image(root / split / name / f"{i}.png", 100 * c + 10 * i + 5)
    return root


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
                _write_image(tmp_path / "ck" / cls / s / f"{f:03d}.png", f)
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


def test_segment_indices():
    assert segment_indices(8, 4, None).tolist() == [0, 2, 4, 6]
    assert segment_indices(3, 8, None).tolist() == [0, 1, 2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = segment_indices(10, 3, rng)
        assert len(set(idx.tolist())) == 3 and idx.tolist() == sorted(idx.tolist())
        assert idx[0] < 3 <= idx[1] < 6 <= idx[2] < 10


def test_clip_dataset_on_images(fer_like: Path):
    m = image_folder_manifest(fer_like).split("train")
    dset = ClipDataset(m, num_frames=4, frame_size=16, sampler_mode="center")
    item = dset[0]
    assert item["frames"].shape == (1, 3, 16, 16) and item["frames"].dtype == torch.uint8
    assert item["mask"].tolist() == [True]
    assert item["label"].dtype == torch.int64 and int(item["label"]) == m.records[0].label
    # the gray value written for angry/0.png is 105, replicated to RGB and kept by resizing
    assert (item["frames"] == 105).all()
    assert item["index"] == 0


def test_clip_dataset_transform_and_seed_determinism(fer_like: Path):
    m = image_folder_manifest(fer_like).split("train")
    t = ClipTransform(8, train=True)
    a = ClipDataset(m, 2, 16, "random", transform=t, seed=1)
    b = ClipDataset(m, 2, 16, "random", transform=t, seed=1)
    first = [a[i]["frames"] for i in range(len(m))]
    assert first[3].shape == (1, 3, 8, 8)
    assert all(torch.equal(first[i], b[i]["frames"]) for i in range(len(m)))
    # draws depend only on (seed, epoch, index): re-reading gives the same clip, the next
    # epoch draws new augmentations, reproducibly
    again = [a[i]["frames"] for i in range(len(m))]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    a.set_epoch(1)
    b.set_epoch(1)
    second = [a[i]["frames"] for i in range(len(m))]
    assert any(not torch.equal(x, y) for x, y in zip(first, second))
    assert all(torch.equal(second[i], b[i]["frames"]) for i in range(len(m)))


def test_clip_dataset_bad_image_raises_typed_error(tmp_path: Path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    m = Manifest(
        [ClipRecord(str(bad), 0, "train"), ClipRecord(str(tmp_path / "gone.png"), 0, "train")],
        ["a"],
    )
    dset = ClipDataset(m, 1, 8)
    with pytest.raises(CorruptVideoError) as err:
        dset[0]
    assert err.value.path == str(bad)
    with pytest.raises(VideoNotFoundError, match="gone.png"):
        dset[1]


def test_clip_dataset_rejects_bad_arguments(fer_like: Path):
    m = image_folder_manifest(fer_like)
    with pytest.raises(ConfigError, match="stream"):
        ClipDataset(m, 2, 8, stream="audio")
    with pytest.raises(ConfigError, match="sampler_mode"):
        ClipDataset(m, 2, 8, sampler_mode="uniform")


def test_clip_dataset_video_path_uses_sampled_frames(monkeypatch, tmp_path: Path):
    """Videos go through decode_clip; fitted to the frame size, K frames with a full mask."""
    calls = []

    def fake_decode(path, num_frames, rng, max_side=None):
        calls.append((path, num_frames, rng is None, max_side))
        return np.stack([np.full((20, 30, 3), 10 * i, np.uint8) for i in range(num_frames)])

    monkeypatch.setattr(ds, "decode_clip", fake_decode)
    m = Manifest([ClipRecord(str(tmp_path / "v.mp4"), None, "test")], ["a"])
    item = ClipDataset(m, 3, 8, sampler_mode="center", max_side=100)[0]
    assert item["frames"].shape == (3, 3, 8, 8)
    assert [int(item["frames"][k].float().mean()) for k in range(3)] == [0, 10, 20]
    assert item["mask"].all() and int(item["label"]) == -1
    assert calls == [(str(tmp_path / "v.mp4"), 3, True, 100)]


def test_clip_dataset_face_stream_uses_the_detector_per_process(monkeypatch, tmp_path: Path):
    from types import SimpleNamespace

    made = []

    def factory():
        made.append(1)
        return "detector"

    def fake_crop_faces(frames, detector, size=112, margin=0.2):
        assert detector == "detector"
        k = frames.shape[0]
        mask = np.arange(k) % 2 == 0
        crops = np.zeros((k, size, size, 3), np.uint8)
        crops[mask] = 200
        return SimpleNamespace(crops=crops, mask=mask, boxes=np.zeros((k, 5), np.float32))

    import sys
    import types

    faces_mod = sys.modules.get("rdam.data.faces") or types.ModuleType("rdam.data.faces")
    monkeypatch.setitem(sys.modules, "rdam.data.faces", faces_mod)
    monkeypatch.setattr(faces_mod, "crop_faces", fake_crop_faces, raising=False)
    monkeypatch.setattr(
        ds, "decode_clip", lambda p, k, rng, max_side=None: np.zeros((k, 40, 40, 3), np.uint8)
    )
    m = Manifest([ClipRecord(str(tmp_path / f"{i}.mp4"), 0, "test") for i in range(2)], ["a"])
    dset = ClipDataset(m, 3, 10, "center", stream="faces", face_detector_factory=factory)
    items = [dset[0], dset[1]]
    assert made == [1]
    assert items[0]["mask"].tolist() == [True, False, True]
    assert items[0]["frames"].shape == (3, 3, 10, 10)
    assert (items[0]["frames"][0] == 200).all() and (items[0]["frames"][1] == 0).all()


def test_clip_dataset_both_streams_share_the_sampled_frames(monkeypatch, tmp_path: Path):
    from types import SimpleNamespace

    def fake_crop_faces(frames, detector, size=112, margin=0.2):
        # the crop of frame k is that frame's own value, so a test can tell which frame it is
        mask = frames[:, 0, 0, 0] != 20
        crops = np.repeat(frames[:, :1, :1], size, axis=1).repeat(size, axis=2)
        return SimpleNamespace(crops=crops, mask=mask, boxes=np.zeros((len(frames), 5)))

    import sys
    import types

    faces_mod = sys.modules.get("rdam.data.faces") or types.ModuleType("rdam.data.faces")
    monkeypatch.setitem(sys.modules, "rdam.data.faces", faces_mod)
    monkeypatch.setattr(faces_mod, "crop_faces", fake_crop_faces, raising=False)
    monkeypatch.setattr(
        ds,
        "decode_clip",
        lambda p, k, rng, max_side=None: np.stack(
            [np.full((20, 30, 3), 10 * i, np.uint8) for i in range(k)]
        ),
    )
    m = Manifest([ClipRecord(str(tmp_path / f"{i}.mp4"), 1, "test") for i in range(2)], ["a", "b"])
    dset = ClipDataset(m, 3, 6, "center", stream="both", face_detector_factory=object)
    item = dset[0]
    assert item["frames"].shape == item["faces"].shape == (3, 3, 6, 6)
    assert item["mask"].tolist() == [True, True, True]
    assert item["face_mask"].tolist() == [True, True, False]  # frame 2 (value 20) has no face
    frame_values = [int(item["frames"][k].float().mean()) for k in range(3)]
    face_values = [int(item["faces"][k].float().mean()) for k in range(3)]
    assert frame_values == face_values == [0, 10, 20]
    batch = collate_clips([dset[0], {**dset[1], "faces": dset[1]["faces"][:2],
                                     "face_mask": dset[1]["face_mask"][:2]}])  # fmt: skip
    assert batch["faces"].shape == (2, 3, 3, 6, 6) and batch["frames"].shape == (2, 3, 3, 6, 6)
    assert batch["face_mask"].tolist() == [[True, True, False], [True, True, False]]
    assert (batch["faces"][1, 2] == 0).all()  # padding
    assert "faces" not in collate_clips([{k: v for k, v in item.items() if "face" not in k}])


def test_collate_pads_with_zeros_and_false_mask():
    a = {
        "frames": torch.full((2, 3, 4, 4), 7, dtype=torch.uint8),
        "mask": torch.tensor([True, False]),
        "label": torch.tensor(1),
        "index": 5,
    }
    b = {
        "frames": torch.full((3, 3, 4, 4), 9, dtype=torch.uint8),
        "mask": torch.ones(3, dtype=torch.bool),
        "label": torch.tensor(-1),
        "index": 2,
    }
    batch = collate_clips([a, b])
    assert batch["frames"].shape == (2, 3, 3, 4, 4)
    assert batch["mask"].tolist() == [[True, False, False], [True, True, True]]
    assert (batch["frames"][0, 2] == 0).all() and (batch["frames"][0, :2] == 7).all()
    assert batch["label"].tolist() == [1, -1] and batch["index"].tolist() == [5, 2]
    with pytest.raises(ValueError, match="share"):
        collate_clips([a, {**b, "frames": torch.zeros((1, 3, 5, 5), dtype=torch.uint8)}])


def test_clip_dataset_works_in_a_dataloader(fer_like: Path):
    m = image_folder_manifest(fer_like)
    dset = ClipDataset(m, 4, 16, "random", transform=ClipTransform(12, train=True))
    loader = torch.utils.data.DataLoader(dset, batch_size=4, collate_fn=collate_clips)
    batches = list(loader)
    assert sum(b["frames"].shape[0] for b in batches) == len(m)
    assert batches[0]["frames"].shape[1:] == (1, 3, 12, 12)


@pytest.mark.shared_data
def test_fer2013_manifest_on_shared_data():
    root = SHARED / "fer2013"
    if not root.is_dir():
        pytest.skip(f"FER2013 not found at {root} (set RDAM_SHARED_DATA)")
    m = image_folder_manifest(root)
    assert m.class_names == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert len(m.split("train")) == 28709 and len(m.split("val")) == 3589
    item = ClipDataset(m.split("val"), 8, 48, "center")[0]
    assert item["frames"].shape == (1, 3, 48, 48)
    # grayscale source: the three channels are equal
    assert torch.equal(item["frames"][:, 0], item["frames"][:, 1])


@pytest.mark.shared_data
def test_real_video_decodes_on_the_fly():
    video = SHARED / "ekman6_samples" / "anger.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found (set RDAM_SHARED_DATA)")
    m = Manifest([ClipRecord(str(video), 0, "test")], ["anger"])
    center = ClipDataset(m, 4, 32, "center", max_side=256)
    a, b = center[0], center[0]
    assert a["frames"].shape == (4, 3, 32, 32) and a["mask"].all()
    assert torch.equal(a["frames"], b["frames"])  # centre sampling is deterministic
    # the four frames come from different moments of the video
    frames = a["frames"].int()
    assert all((frames[k] - frames[0]).abs().float().mean() > 1 for k in range(1, 4))
