"""Batched augmentation: the per-clip draws of ClipTransform, applied to a whole batch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rdam.data.datasets import ClipDataset
from rdam.data.transforms import BatchClipTransform, ClipTransform, clip_generator
from rdam.errors import ConfigError


def _clips(b: int = 6, k: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random uint8 clips (bilinear up-sampled noise, like real frames)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((b * k, 3, size // 4, size // 4), generator=g) * 255
    full = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    return full.round().to(torch.uint8).view(b, k, 3, size, size)


def _per_clip(t: ClipTransform, clips: torch.Tensor, indices: list[int]) -> torch.Tensor:
    return torch.stack([t(c, clip_generator(0, 1, i)) for c, i in zip(clips, indices)])


def test_clip_generator_is_the_data_sets_generator():
    stub = SimpleNamespace(seed=3, epoch=2)
    _, expected = ClipDataset._rng(stub, 17)
    assert torch.equal(
        torch.rand(5, generator=expected), torch.rand(5, generator=clip_generator(3, 2, 17))
    )


def test_the_draws_are_the_per_clip_draws():
    t = ClipTransform(32, True, scale=(0.5, 1.0), rotation_deg=15, color_jitter=0.4)
    params = BatchClipTransform(t).sample_params(
        32, 32, [clip_generator(0, 1, i) for i in range(8)]
    )
    assert params == [t.sample_params(32, 32, clip_generator(0, 1, i)) for i in range(8)]


@pytest.mark.parametrize(
    "settings",
    [
        dict(rotation_deg=0, color_jitter=0, hflip=0),  # resized crop alone
        dict(scale=(1.0, 1.0), color_jitter=0, hflip=0),  # rotation alone
        dict(color_jitter=0),  # crop, flip, rotation
    ],
)
def test_geometry_gives_the_per_clip_pixels(settings):
    t = ClipTransform(32, True, **{"scale": (0.5, 1.0), "rotation_deg": 15, **settings})
    clips, indices = _clips(), [3, 1, 4, 1, 5, 9]
    out = BatchClipTransform(t)(clips, [clip_generator(0, 1, i) for i in indices])
    assert out.dtype == torch.uint8 and out.shape == clips.shape
    assert torch.equal(out, _per_clip(t, clips, indices))


def test_full_augmentation_matches_the_per_clip_one():
    # colour blends can differ by one level where a fused multiply-add rounds otherwise
    t = ClipTransform(32, True, scale=(0.5, 1.0), rotation_deg=15, color_jitter=0.4)
    clips, indices = _clips(b=8, seed=1), list(range(8))
    out = BatchClipTransform(t)(clips, [clip_generator(0, 1, i) for i in indices])
    diff = (out.int() - _per_clip(t, clips, indices).int()).abs()
    assert int(diff.max()) <= 1
    assert float((diff == 0).float().mean()) >= 0.999


def test_larger_frames_are_down_scaled_per_clip_like_torchvision():
    t = ClipTransform(24, True, scale=(0.6, 1.0), rotation_deg=10, color_jitter=0)
    clips, indices = _clips(b=4, size=40), [0, 1, 2, 3]
    out = BatchClipTransform(t)(clips, [clip_generator(0, 1, i) for i in indices])
    assert out.shape == (4, 2, 3, 24, 24)
    assert torch.equal(out, _per_clip(t, clips, indices))


def test_every_frame_of_a_clip_gets_its_clips_draw_and_padding_stays_black():
    t = ClipTransform(32, True, rotation_deg=20, color_jitter=0.4)
    clips = _clips(b=3, k=1).repeat(1, 3, 1, 1, 1)
    clips[1, 2] = 0  # a padded frame
    out = BatchClipTransform(t)(clips, [clip_generator(0, 0, i) for i in range(3)])
    assert torch.equal(out[0, 1], out[0, 0]) and torch.equal(out[2, 2], out[2, 0])
    assert int(out[1, 2].max()) == 0


def test_bad_inputs_are_refused():
    t = BatchClipTransform(ClipTransform(32, True))
    with pytest.raises(ValueError, match="uint8"):
        t(torch.zeros(1, 1, 3, 32, 32), [None])
    with pytest.raises(ValueError, match="shape"):
        t(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), [None])
    with pytest.raises(ValueError, match="draws"):
        t.apply(torch.zeros(2, 1, 3, 32, 32, dtype=torch.uint8), [])
    with pytest.raises(ConfigError):
        BatchClipTransform(ClipTransform(32, False))
