"""EpochShuffleSampler's split across DDP ranks: training pads, evaluation counts each clip once."""

from __future__ import annotations

import pytest

from rdam.errors import DatasetError
from rdam.training import datamodule
from rdam.training.datamodule import EpochShuffleSampler


def _ranks(monkeypatch, size: int, world: int, *, pad: bool, shuffle: bool) -> list[list[int]]:
    out = []
    for rank in range(world):
        monkeypatch.setattr(datamodule, "_rank_world", lambda r=rank: (r, world))
        sampler = EpochShuffleSampler(size, shuffle=shuffle, seed=3, pad=pad)
        order = list(sampler)
        assert len(order) == len(sampler)
        out.append(order)
    return out


def test_training_split_pads_by_wrapping_so_ranks_step_together(monkeypatch) -> None:
    ranks = _ranks(monkeypatch, size=7, world=3, pad=True, shuffle=False)
    assert ranks == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]  # 9 slots: clips 0 and 1 twice


def test_evaluation_split_gives_every_clip_to_exactly_one_rank(monkeypatch) -> None:
    ranks = _ranks(monkeypatch, size=7, world=3, pad=False, shuffle=False)
    assert ranks == [[0, 3, 6], [1, 4], [2, 5]]
    shuffled = _ranks(monkeypatch, size=15, world=2, pad=False, shuffle=True)
    assert [len(r) for r in shuffled] == [8, 7]
    assert sorted(shuffled[0] + shuffled[1]) == list(range(15))


def test_outside_ddp_the_sampler_is_the_whole_order(monkeypatch) -> None:
    sampler = EpochShuffleSampler(5, shuffle=False, pad=False)
    assert list(sampler) == [0, 1, 2, 3, 4] and len(sampler) == 5


def test_an_evaluation_split_smaller_than_the_world_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(datamodule, "_rank_world", lambda: (0, 4))
    module = datamodule.ClipDataModule.__new__(datamodule.ClipDataModule)
    module.config = type("C", (), {"batch_size": 2, "eval_batch_size": 2, "num_workers": 0})()
    module.seed = 0
    module.datasets = {"val": list(range(3))}
    with pytest.raises(DatasetError, match="the val split has 3 clip.*fewer than the 4 DDP"):
        module._loader("val", train=False)
    module.datasets = {"train": list(range(3))}
    assert len(module._loader("train", train=True).sampler) == 1  # training pads instead


def test_which_training_sets_are_single_images_and_which_models_learn_frame_weights(
    tmp_path,
) -> None:
    """The two halves of train()'s warning that frame attention cannot learn from one-frame
    clips: a training split of images only (not one video among them), and a model whose
    frame fusion has learned scores."""
    from _tiny import tiny_config

    from rdam.models import ModelConfig
    from rdam.training.datamodule import ClipDataModule

    rows = ["path,label,split", "a.png,x,train", "b.JPG,y,train", "c.mp4,x,val"]
    (tmp_path / "images.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mixed.csv").write_text("\n".join([*rows, "d.mp4,y,train"]) + "\n")
    for name, single in [("images.csv", True), ("mixed.csv", False)]:
        config = tiny_config(data={"kind": "csv", "root": str(tmp_path / name)})
        assert ClipDataModule(config.data).trains_on_single_images is single
    assert ClipDataModule(tiny_config().data).trains_on_single_images is False  # synthetic videos
    learns = {
        (arch, temporal): ModelConfig(arch=arch, temporal=temporal).learns_frame_weights
        for arch in ("rdam", "two_stream", "qan", "attention_clusters")
        for temporal in ("attention", "average")
    }
    assert learns == {
        ("rdam", "attention"): True,
        ("rdam", "average"): False,
        ("two_stream", "attention"): True,
        ("two_stream", "average"): False,
        ("qan", "attention"): True,
        ("qan", "average"): True,
        ("attention_clusters", "attention"): True,
        ("attention_clusters", "average"): True,
    }


def _image_folder(root, side: int) -> str:
    import cv2
    import numpy as np

    for split, n in (("train", 3), ("val", 1)):
        for name in ("calm", "glad"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(root / split / name / f"{i}.png"), np.full((side, side), 9 * i))
    return str(root)


def test_given_face_crops_only_for_face_models_trained_on_given_image_crops(tmp_path) -> None:
    """The training images whose framing the clip spec's face margin must match: a face-stream
    model's training images taken as crops (given, or auto at most 2x the frame size)."""
    from _tiny import tiny_config

    from rdam.training.datamodule import ClipDataModule

    small = _image_folder(tmp_path / "small", 12)
    large = _image_folder(tmp_path / "large", 80)  # > 2 x 32: auto detects faces in it

    def crops(root, **data):
        config = tiny_config(data={"kind": "image_folder", "root": root, "num_frames": 1, **data})
        return ClipDataModule(config.data).given_face_crops(limit=4, seed=1)

    drawn = crops(small, stream="faces")
    assert len(drawn) == 4 and all(p.startswith(small) and "/train/" in p for p in drawn)
    assert drawn == crops(small, stream="faces")  # seeded
    assert crops(small, stream="frames") == []
    assert crops(small, stream="faces", face_input="detect") == []
    assert crops(large, stream="faces") == []
    assert len(crops(large, stream="faces", face_input="given")) == 4
