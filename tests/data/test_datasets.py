"""ClipDataset and collate_clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rdam.data import datasets as ds
from rdam.data.clips import make_clip
from rdam.data.datasets import ClipDataset, collate_clips
from rdam.data.faces import FaceCrops
from rdam.data.layouts import image_folder_manifest
from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.spec import ClipSpec
from rdam.data.transforms import ClipTransform
from rdam.errors import ConfigError, CorruptVideoError, VideoNotFoundError


def spec(k: int, s: int, **changes) -> ClipSpec:
    return ClipSpec(num_frames=k, frame_size=s, **changes)


SHARED = Path(
    os.environ.get(
        "RDAM_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    )
)


def test_clip_dataset_on_images(fer_like: Path):
    m = image_folder_manifest(fer_like).split("train")
    dset = ClipDataset(m, spec(4, 16), mode="center")
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
    a = ClipDataset(m, spec(2, 16), "random", transform=t, seed=1)
    b = ClipDataset(m, spec(2, 16), "random", transform=t, seed=1)
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
    dset = ClipDataset(m, spec(1, 8))
    with pytest.raises(CorruptVideoError) as err:
        dset[0]
    assert err.value.path == str(bad)
    with pytest.raises(VideoNotFoundError, match="gone.png"):
        dset[1]


def test_clip_dataset_rejects_bad_arguments(fer_like: Path):
    m = image_folder_manifest(fer_like)
    with pytest.raises(ConfigError, match="stream"):
        ClipDataset(m, spec(2, 8, stream="audio"))
    with pytest.raises(ConfigError, match="mode"):
        ClipDataset(m, spec(2, 8), mode="uniform")
    with pytest.raises(ConfigError, match="face_input"):
        ClipDataset(m, spec(2, 8), face_input="guess")


def _fake_reading(monkeypatch, frames_of, calls=None) -> None:
    """Replace the decoding step of ``ClipDataset``'s reader by ``frames_of(K, view)`` decoded
    frames; what follows (fitting, face crops, colour) is the real :func:`make_clip`."""

    def fake_read_clip(path, spec, mode="center", rng=None, view=(0, 1), face_input="auto",
                       detector=None, keep_raw=False):  # fmt: skip
        if calls is not None:
            calls.append((path, spec.num_frames, rng is None, view))
        raw = frames_of(spec.num_frames, view)
        how = "detect" if face_input == "auto" else face_input
        return make_clip(raw, np.arange(len(raw)), spec, face_input=how, detector=detector)

    monkeypatch.setattr(ds, "read_clip", fake_read_clip)


def test_clip_dataset_video_path_uses_sampled_frames(monkeypatch, tmp_path: Path):
    """Videos go through read_clip; fitted to the frame size, K frames with a full mask."""
    calls = []
    _fake_reading(
        monkeypatch,
        lambda k, view: np.stack([np.full((20, 30, 3), 10 * i, np.uint8) for i in range(k)]),
        calls,
    )
    m = Manifest([ClipRecord(str(tmp_path / "v.mp4"), None, "test")], ["a"])
    item = ClipDataset(m, spec(3, 8, max_side=100), mode="center")[0]
    assert item["frames"].shape == (3, 3, 8, 8)
    assert [int(item["frames"][k].float().mean()) for k in range(3)] == [0, 10, 20]
    assert item["mask"].all() and int(item["label"]) == -1
    assert calls == [(str(tmp_path / "v.mp4"), 3, True, (0, 1))]


def _fake_faces(monkeypatch, crop_faces) -> None:
    """Replace the face cropper, so the face stream runs without a detector model."""
    import rdam.data.faces as faces_mod

    monkeypatch.setattr(faces_mod, "crop_faces", crop_faces)


def test_clip_dataset_face_stream_uses_the_detector_per_process(monkeypatch, tmp_path: Path):

    made = []

    class FakeDetector:
        def detect(self, frame):
            return []

    def factory():
        made.append(1)
        return FakeDetector()

    def fake_crop_faces(
        frames, detector, size=112, margin=0.2, select="largest", min_score=0, detections=None
    ):
        detector.detect(frames[0])  # a lazy detector: built on first use
        assert isinstance(detector._detector, FakeDetector)
        k = frames.shape[0]
        mask = np.arange(k) % 2 == 0
        crops = np.zeros((k, size, size, 3), np.uint8)
        crops[mask] = 200
        return FaceCrops(crops, mask, np.zeros((k, 5), np.float32), mask.astype(np.int64))

    _fake_faces(monkeypatch, fake_crop_faces)
    _fake_reading(monkeypatch, lambda k, view: np.zeros((k, 40, 40, 3), np.uint8))
    m = Manifest([ClipRecord(str(tmp_path / f"{i}.mp4"), 0, "test") for i in range(2)], ["a"])
    dset = ClipDataset(m, spec(3, 10, stream="faces"), "center", face_detector_factory=factory)
    items = [dset[0], dset[1]]
    assert made == [1]
    assert items[0]["mask"].tolist() == [True, False, True]
    assert items[0]["frames"].shape == (3, 3, 10, 10)
    assert (items[0]["frames"][0] == 200).all() and (items[0]["frames"][1] == 0).all()


def test_clip_dataset_both_streams_share_the_sampled_frames(monkeypatch, tmp_path: Path):

    def fake_crop_faces(
        frames, detector, size=112, margin=0.2, select="largest", min_score=0, detections=None
    ):
        # the crop of frame k is that frame's own value, so a test can tell which frame it is
        mask = frames[:, 0, 0, 0] != 20
        crops = np.repeat(frames[:, :1, :1], size, axis=1).repeat(size, axis=2)
        return FaceCrops(crops, mask, np.zeros((len(frames), 5)), mask.astype(np.int64))

    _fake_faces(monkeypatch, fake_crop_faces)
    _fake_reading(
        monkeypatch,
        lambda k, view: np.stack([np.full((20, 30, 3), 10 * i, np.uint8) for i in range(k)]),
    )
    m = Manifest([ClipRecord(str(tmp_path / f"{i}.mp4"), 1, "test") for i in range(2)], ["a", "b"])
    dset = ClipDataset(m, spec(3, 6, stream="both"), "center", face_detector_factory=object)
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
    dset = ClipDataset(m, spec(4, 16), "random", transform=ClipTransform(12, train=True))
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
    item = ClipDataset(m.split("val"), spec(8, 48), "center")[0]
    assert item["frames"].shape == (1, 3, 48, 48)
    # grayscale source: the three channels are equal
    assert torch.equal(item["frames"][:, 0], item["frames"][:, 1])


@pytest.mark.shared_data
def test_real_video_decodes_on_the_fly():
    video = SHARED / "ekman6_samples" / "anger.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not found (set RDAM_SHARED_DATA)")
    m = Manifest([ClipRecord(str(video), 0, "test")], ["anger"])
    center = ClipDataset(m, spec(4, 32, max_side=256), "center")
    a, b = center[0], center[0]
    assert a["frames"].shape == (4, 3, 32, 32) and a["mask"].all()
    assert torch.equal(a["frames"], b["frames"])  # centre sampling is deterministic
    # the four frames come from different moments of the video
    frames = a["frames"].int()
    assert all((frames[k] - frames[0]).abs().float().mean() > 1 for k in range(1, 4))


def test_test_views_and_flip_give_every_view_of_every_clip(fer_like: Path):
    m = image_folder_manifest(fer_like).split("val")
    plain = ClipDataset(m, spec(1, 12), "center")
    tta = ClipDataset(m, spec(1, 12), "center", test_views=2, test_flip=True)
    assert len(tta) == 4 * len(plain)
    for i in range(len(plain)):
        items = [tta[4 * i + j] for j in range(4)]
        assert [int(x["index"]) for x in items] == [i] * 4
        assert all(int(x["label"]) == int(plain[i]["label"]) for x in items)
        # (view 0, view 0 mirrored, view 1, view 1 mirrored); an image has one frame per view
        assert torch.equal(items[0]["frames"], plain[i]["frames"])
        assert torch.equal(items[1]["frames"], plain[i]["frames"].flip(-1))
        assert torch.equal(items[2]["frames"], items[0]["frames"])
    with pytest.raises(ConfigError, match="mode='center'"):
        ClipDataset(m, spec(1, 12), "random", test_flip=True)
    with pytest.raises(ConfigError, match="test_views"):
        ClipDataset(m, spec(1, 12), "center", test_views=0)


def test_test_views_of_a_video_are_the_multi_view_sampler_views(monkeypatch, tmp_path: Path):
    calls = []
    _fake_reading(
        monkeypatch,
        lambda k, view: np.stack([np.full((20, 30, 3), 10 * view[0], np.uint8)] * k),
        calls,
    )
    m = Manifest([ClipRecord(str(tmp_path / "v.mp4"), 0, "test")], ["a"])
    data = ClipDataset(m, spec(3, 8), "center", test_views=3)
    means = [int(data[i]["frames"].float().mean()) for i in range(3)]
    assert [c[3] for c in calls] == [(0, 3), (1, 3), (2, 3)] and means == [0, 10, 20]


def test_ten_crop_test_gives_five_crops_and_their_mirrors(fer_like: Path):
    """``test_crops=5, test_flip=True``: per clip, (crop c, crop c mirrored) for the centre and
    the four corners, each 0.9 of the side resized back."""
    from rdam.data.transforms import test_crop

    m = image_folder_manifest(fer_like).split("val")
    plain = ClipDataset(m, spec(1, 12), "center")
    ten = ClipDataset(m, spec(1, 12), "center", test_crops=5, test_flip=True)
    assert len(ten) == 10 * len(plain)
    frames = plain[0]["frames"]
    items = [ten[j] for j in range(10)]
    assert [int(x["index"]) for x in items] == [0] * 10
    for c in range(5):
        assert torch.equal(items[2 * c]["frames"], test_crop(frames, c, 0.9))
        assert torch.equal(items[2 * c + 1]["frames"], test_crop(frames, c, 0.9).flip(-1))
    with pytest.raises(ConfigError, match="test_crops"):
        ClipDataset(m, spec(1, 12), "center", test_crops=10)


def test_test_crops_are_the_centre_and_the_corners_resized_back():
    from rdam.data.transforms import test_crop

    frames = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    frames[..., :2, :2] = 10  # top-left quadrant
    frames[..., :2, 2:] = 20
    frames[..., 2:, :2] = 30
    frames[..., 2:, 2:] = 40
    for which, value in ((1, 10), (2, 20), (3, 30), (4, 40)):
        assert (test_crop(frames, which, 0.5) == value).all(), which
    centre = test_crop(frames, 0, 0.5)  # rows/cols 1-2: one pixel of each quadrant, upsampled
    assert centre.shape == frames.shape
    assert centre[0, 0, 0, 0] == 10 and centre[0, 0, -1, -1] == 40
    assert torch.equal(test_crop(frames, 0, 1.0), frames)
