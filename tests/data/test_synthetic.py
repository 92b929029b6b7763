"""The synthetic region-emotion data set: determinism, balance, where the class lives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rdam.data.datasets import ClipDataset, collate_clips
from rdam.data.spec import ClipSpec
from rdam.data.synthetic import (
    BLANK_VALUE,
    MARKER_COLOUR,
    SyntheticClipDataset,
    class_patterns,
    make_synthetic_clips,
    synthetic_class_names,
    write_synthetic_videos,
)
from rdam.data.transforms import ClipTransform
from rdam.errors import ConfigError


def _crop(frames: np.ndarray, n: int, k: int, box: np.ndarray) -> np.ndarray:
    y0, x0, y1, x1 = (int(v) for v in box)
    return frames[n, k, :, y0:y1, x0:x1]


def test_deterministic_by_seed_and_balanced():
    a = make_synthetic_clips(10, 4, 48, 3, 1, seed=5)
    b = make_synthetic_clips(10, 4, 48, 3, 1, seed=5)
    c = make_synthetic_clips(10, 4, 48, 3, 1, seed=6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    frames, labels, meta = a
    assert frames.shape == (10, 4, 3, 48, 48) and frames.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels, minlength=3).tolist() == [4, 3, 3]
    assert (
        meta["class_names"]
        == synthetic_class_names(3)
        == ["stripes_000", "stripes_060", "stripes_120"]
    )


def test_patterns_are_distinct_gratings():
    p = class_patterns(4, 12)
    assert p.shape == (4, 12, 12) and set(np.unique(p)) == {30, 225}
    for i in range(4):
        for j in range(i + 1, 4):
            assert (p[i] != p[j]).mean() > 0.25
    assert (p[0] == p[0][:, :1]).all()  # class 0: horizontal stripes (rows constant)


def test_informative_frames_carry_the_class_pattern_only_in_the_marker():
    frames, labels, meta = make_synthetic_clips(12, 6, 64, 4, 2, seed=1)
    b, p = meta["border"], meta["patterns"]
    assert meta["informative"].sum(axis=1).tolist() == [2] * 12
    for n in range(12):
        for k in range(6):
            box = meta["marker_boxes"][n, k]
            marker = _crop(frames, n, k, box)
            # the border is the marker colour
            assert (marker[:, 0, :] == np.array(MARKER_COLOUR)[:, None]).all()
            inner = marker[:, b:-b, b:-b]
            if meta["informative"][n, k]:
                assert (inner == p[labels[n]][None]).all()
            else:
                assert (inner == BLANK_VALUE).all()
            # every class's pattern appears once as a distractor in every frame
            for c in range(4):
                assert (_crop(frames, n, k, meta["distractor_boxes"][n, k, c]) == p[c][None]).all()
    # the marker stays in one grid cell for the whole clip
    cell = 64 // meta["grid"]
    cells = (meta["marker_boxes"][..., 0] + b) // cell * meta["grid"] + (
        meta["marker_boxes"][..., 1] + b
    ) // cell
    assert (cells == cells[:, :1]).all()


def test_frame_statistics_do_not_reveal_the_label():
    """Without the marker's content, pattern counts per frame are the same for every class."""
    frames, labels, _ = make_synthetic_clips(200, 4, 48, 4, 1, seed=2, noise=0)
    dark = (frames == 30).reshape(200, -1).mean(axis=1)
    means = [dark[labels == c].mean() for c in range(4)]
    assert max(means) - min(means) < 0.01 * max(means)


def test_argument_checks():
    with pytest.raises(ConfigError, match="informative_frames"):
        make_synthetic_clips(4, 3, 64, 4, informative_frames=4)
    with pytest.raises(ConfigError, match="too small"):
        make_synthetic_clips(4, 3, 20, 4)
    with pytest.raises(ConfigError, match="num_classes"):
        make_synthetic_clips(4, 3, 64, 1)


def test_dataset_items_match_the_clip_dataset_format():
    ds = SyntheticClipDataset(6, num_frames=3, size=32, num_classes=2, informative_frames=1, seed=0)
    frames, labels, _ = make_synthetic_clips(6, 3, 32, 2, 1, seed=0)
    item = ds[4]
    assert item["frames"].shape == (3, 3, 32, 32) and item["frames"].dtype == torch.uint8
    assert torch.equal(item["frames"], torch.from_numpy(frames[4]))
    assert item["mask"].all() and int(item["label"]) == labels[4] and item["index"] == 4
    batch = collate_clips([ds[i] for i in range(6)])
    assert batch["frames"].shape == (6, 3, 3, 32, 32)
    t = SyntheticClipDataset(6, 3, 32, 2, 1, seed=0, transform=ClipTransform(24, train=True))
    assert t[0]["frames"].shape == (3, 3, 24, 24)


def test_videos_round_trip_through_the_video_reader(tmp_path: Path):
    pytest.importorskip("rdam.data.video")
    manifest = write_synthetic_videos(
        tmp_path, 4, num_frames=4, size=32, num_classes=2, seed=3, split="train"
    )
    frames, labels, _ = make_synthetic_clips(4, 4, 32, 2, 2, seed=3)
    assert [r.label for r in manifest] == labels.tolist()
    assert all(Path(r.path).parent.parent.name == "train" for r in manifest)
    ds = ClipDataset(manifest, ClipSpec(num_frames=4, frame_size=32), "center")
    for i in range(4):
        got = ds[i]["frames"].numpy().astype(int)
        assert got.shape == (4, 3, 32, 32)
        assert np.abs(got - frames[i]).mean() < 6  # near-lossless H.264 (yuv444p, crf 4)
