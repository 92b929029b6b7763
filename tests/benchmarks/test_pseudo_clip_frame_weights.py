"""benchmarks.pseudo_clip_frame_weights: pseudo-clips are composed as the recipe says, and
fitting W^g alone learns to weigh the frames of a clip's own class above the neutral ones."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.pseudo_clip_frame_weights import (
    FitSettings,
    FrameBank,
    PseudoClipRecipe,
    compose_pseudo_clips,
    degrade_frames,
    fit_frame_attention,
    score_pseudo_clips,
)
from rdam.models.temporal import FrameAttentionFusion

NEUTRAL = 0


def _labels() -> torch.Tensor:
    return torch.tensor([0] * 10 + [1] * 6 + [2] * 4)


def test_pseudo_clips_follow_the_recipe():
    labels = _labels()
    recipe = PseudoClipRecipe(num_frames=6, degrade_prob=0.5, min_expressive=2)
    clips = compose_pseudo_clips(labels, NEUTRAL, recipe, 500, torch.Generator().manual_seed(0))
    assert clips.image.shape == (500, 6) and clips.label.shape == (500,)
    image_class = labels[clips.image]
    for i in range(500):
        y = int(clips.label[i])
        if y == NEUTRAL:  # every frame neutral, none counted as expressive
            assert bool((image_class[i] == NEUTRAL).all()) and not bool(clips.expressive[i].any())
        else:
            expressive = clips.expressive[i]
            assert int(expressive.sum()) >= 2
            assert bool((image_class[i][expressive] == y).all())
            assert bool((image_class[i][~expressive] == NEUTRAL).all())
    assert 0.45 < float(clips.degraded.float().mean()) < 0.55
    # the clip labels follow the images' class frequencies (10 / 6 / 4 of 20)
    assert 0.42 < float((clips.label == NEUTRAL).float().mean()) < 0.58
    again = compose_pseudo_clips(labels, NEUTRAL, recipe, 500, torch.Generator().manual_seed(0))
    assert torch.equal(again.image, clips.image) and torch.equal(again.degraded, clips.degraded)


def test_every_frame_of_the_class_when_min_expressive_is_the_clip_length():
    recipe = PseudoClipRecipe(num_frames=4, min_expressive=4)
    clips = compose_pseudo_clips(_labels(), NEUTRAL, recipe, 50, torch.Generator().manual_seed(1))
    assert bool((_labels()[clips.image] == clips.label[:, None]).all())


def test_degradations_keep_shape_and_type_and_change_the_pixels():
    frames = torch.randint(0, 256, (8, 3, 48, 48), dtype=torch.uint8)
    out = degrade_frames(frames, torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert all(not torch.equal(out[i], frames[i]) for i in range(8))
    assert torch.equal(out, degrade_frames(frames, torch.Generator().manual_seed(0)))


class _Head(nn.Module):
    """Frame attention and a fixed classifier that reads class c off feature dimension c."""

    def __init__(self) -> None:
        super().__init__()
        self.temporal = FrameAttentionFusion(3, 8)
        self.classifier = nn.Linear(3, 3)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(3))
            self.classifier.bias.zero_()

    def forward_head(self, video: torch.Tensor) -> torch.Tensor:
        return self.classifier(video)


def _bank(count: int, seed: int) -> FrameBank:
    """Neutral faces lean towards class 0, the others more strongly towards their class (the
    average of K frames then picks neutral where fewer than 4 of 8 show the expression)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (count,), generator=g)
    strength = torch.where(labels == NEUTRAL, 2.5, 4.0)
    clean = torch.nn.functional.one_hot(labels, 3).float() * strength[:, None]
    clean = clean + 0.3 * torch.randn((count, 3), generator=g)
    return FrameBank(clean, clean * 0.1, labels)


def test_fitting_learns_to_weigh_the_expressive_frames_and_nothing_else():
    torch.manual_seed(0)
    model = _Head()
    classifier = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    recipe = PseudoClipRecipe(num_frames=8, degrade_prob=0.0, min_expressive=1)
    settings = FitSettings(steps=300, batch_size=64, lr=1e-2, val_clips=1000)
    report = fit_frame_attention(model, _bank(400, 0), _bank(400, 1), NEUTRAL, recipe, settings)
    before, after = report["val_before"], report["val_after"]
    # one strongly expressive frame among seven neutral ones loses the average ...
    assert (
        before["accuracy_average"] < 0.85
        and after["accuracy_average"] == before["accuracy_average"]
    )
    # ... and learned alpha finds it: near the oracle that knows the expressive frames
    assert after["accuracy"] > before["accuracy"] + 0.1
    assert after["accuracy"] >= after["accuracy_expressive_only"] - 0.03
    assert after["alpha"]["expressive_clean"] > 3 * after["alpha"]["neutral_clean"]
    assert report["train_loss_last_100"] < report["train_loss_first_100"]
    assert all(torch.equal(v, model.classifier.state_dict()[k]) for k, v in classifier.items())
    assert all(p.requires_grad for p in model.parameters())  # frozen only while fitting


def test_scores_count_effective_frames():
    model = _Head()
    bank = _bank(50, 2)
    recipe = PseudoClipRecipe(num_frames=5, degrade_prob=0.0)
    clips = compose_pseudo_clips(bank.labels, NEUTRAL, recipe, 20, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.temporal.score[2].weight.zero_()
        model.temporal.score[2].bias.fill_(2.0)  # every alpha the same: all 5 frames count
    assert abs(score_pseudo_clips(model, bank, clips)["effective_frames"] - 5.0) < 1e-4
