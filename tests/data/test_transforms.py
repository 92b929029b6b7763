"""Clip-consistent augmentation."""

from __future__ import annotations

import pytest
import torch

from rdam.data.transforms import ClipTransform
from rdam.errors import ConfigError


def _clip(k: int = 4, h: int = 40, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (k, 3, h, w), generator=g, dtype=torch.uint8)


def test_eval_transform_is_identity_at_the_same_size():
    clip = _clip()
    out = ClipTransform(40, train=False)(clip)
    assert out.dtype == torch.uint8
    assert torch.equal(out, clip)


def test_eval_transform_resizes_and_centre_crops():
    clip = torch.zeros((2, 3, 20, 40), dtype=torch.uint8)
    clip[..., 10:30] = 255  # the centre square is white
    out = ClipTransform(10, train=False)(clip)
    assert out.shape == (2, 3, 10, 10)
    assert (out == 255).all()


def test_train_transform_is_deterministic_given_a_generator():
    clip = _clip()
    t = ClipTransform(32, train=True)
    a = t(clip, torch.Generator().manual_seed(3))
    b = t(clip, torch.Generator().manual_seed(3))
    c = t(clip, torch.Generator().manual_seed(4))
    assert a.shape == (4, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_train_transform_applies_one_draw_to_every_frame():
    frame = _clip(k=1)
    clip = frame.repeat(5, 1, 1, 1)  # five identical frames
    out = ClipTransform(24, train=True, rotation_deg=30, color_jitter=0.4)(
        clip, torch.Generator().manual_seed(0)
    )
    for k in range(1, 5):
        assert torch.equal(out[k], out[0])


def test_train_flip_only_mirrors():
    clip = _clip(k=2)
    t = ClipTransform(40, train=True, scale=(1.0, 1.0), hflip=1.0, rotation_deg=0, color_jitter=0)
    # a full-area crop with aspect ratio 1 on a square frame is the frame itself
    params = t.sample_params(40, 40, torch.Generator().manual_seed(0))
    out = t.apply(clip, params)
    if params.crop == (0, 0, 40, 40):
        assert torch.equal(out, clip.flip(-1))
    assert params.hflip


def test_transform_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        ClipTransform(0, train=True)
    with pytest.raises(ConfigError):
        ClipTransform(8, train=True, scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="uint8"):
        ClipTransform(8, train=False)(torch.zeros(1, 3, 8, 8))
