"""Random erasing and mixup in the training step (rdam.training.regularize), checked against
the arithmetic they stand for."""

from __future__ import annotations

import pytest
import torch

from rdam.config import OptimConfig
from rdam.errors import ConfigError
from rdam.training.regularize import mixup, random_erasing


def _clips(b: int = 4, k: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, k, 3, 24, 24), generator=g, dtype=torch.uint8)


def test_random_erasing_fills_one_rectangle_per_clip_on_every_frame():
    frames = _clips()
    torch.manual_seed(1)
    out = random_erasing(frames, p=1.0)
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    for i in range(len(frames)):
        changed = (out[i] != frames[i]).any(dim=1)  # (K, H, W)
        assert changed.any()
        # the same rectangle on every frame of the clip
        rows = torch.nonzero((out[i] != frames[i]).any(dim=(0, 1)).any(dim=1)).flatten()
        cols = torch.nonzero((out[i] != frames[i]).any(dim=(0, 1)).any(dim=0)).flatten()
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        mean = frames[i].float().mean(dim=(0, 2, 3)).round().to(torch.uint8)
        patch = out[i, :, :, top:bottom, left:right]
        assert (patch == mean[None, :, None, None]).all()  # filled with the clip's mean colour
        area = (bottom - top) * (right - left) / (24 * 24)
        assert 0.02 - 0.01 <= float(area) <= 0.33 + 0.05
        outside = out[i].clone()
        outside[:, :, top:bottom, left:right] = frames[i, :, :, top:bottom, left:right]
        assert torch.equal(outside, frames[i])  # nothing else changed
    assert torch.equal(random_erasing(frames, p=0.0), frames)
    torch.manual_seed(1)
    assert torch.equal(random_erasing(frames, p=1.0), out)  # the global generator decides


def test_mixup_mixes_frames_and_targets_with_one_lambda_and_permutation():
    frames = _clips()
    faces = _clips()[:, :, :, :8, :8]
    targets = torch.eye(4)
    torch.manual_seed(3)
    mixed, mixed_targets, lam = mixup({"frames": frames, "faces": faces}, targets, alpha=1.0)
    torch.manual_seed(3)
    lam_again = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(4)
    assert lam == pytest.approx(lam_again) and 0.0 < lam < 1.0
    x = frames.float() / 255
    torch.testing.assert_close(mixed["frames"], lam * x + (1 - lam) * x[perm])
    f = faces.float() / 255
    torch.testing.assert_close(mixed["faces"], lam * f + (1 - lam) * f[perm])
    torch.testing.assert_close(mixed_targets, lam * targets + (1 - lam) * targets[perm])
    torch.testing.assert_close(mixed_targets.sum(1), torch.ones(4))


def test_the_settings_are_checked():
    with pytest.raises(ConfigError, match="random_erasing"):
        OptimConfig(random_erasing=1.5)
    with pytest.raises(ConfigError, match="mixup_alpha"):
        OptimConfig(mixup_alpha=-1)


def test_the_training_step_uses_them_and_leaves_the_batch_alone():
    from _tiny import tiny_config

    from rdam.training.module import RDAMLightningModule

    config = tiny_config(optim={"random_erasing": 1.0, "mixup_alpha": 1.0})
    bundle = {"model_config": config.model.to_dict(), "class_names": ["a", "b"]}
    module = RDAMLightningModule(bundle, optim=config.to_dict()["optim"])
    batch = {
        "frames": _clips(2, 2),
        "mask": torch.ones(2, 2, dtype=torch.bool),
        "label": torch.tensor([0, 1]),
    }
    before = batch["frames"].clone()
    torch.manual_seed(0)
    out = module.regularized(batch)
    assert torch.equal(batch["frames"], before) and "target" not in batch
    assert out["frames"].dtype == torch.float32 and out["target"].shape == (2, 2)
    torch.testing.assert_close(out["target"].sum(1), torch.ones(2))
    plain = RDAMLightningModule(bundle, optim=tiny_config().to_dict()["optim"])
    assert plain.regularized(batch) is batch
