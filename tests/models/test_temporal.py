"""Frame fusion: Eq. 9-11, masks and the average baseline."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdam.errors import ConfigError
from rdam.models.temporal import (
    AverageFrameFusion,
    FrameAttentionFusion,
    attention_pool,
    create_temporal_fusion,
)


def test_attention_pool_matches_hand_computation():
    f = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]]])
    alpha = torch.tensor([[1.0, 3.0, 0.0]])
    # (1*[1,0] + 3*[0,2] + 0*[4,4]) / 4
    torch.testing.assert_close(attention_pool(f, alpha), torch.tensor([[0.25, 1.5]]))


@settings(max_examples=50, deadline=None)
@given(scale=st.floats(min_value=1e-3, max_value=1e3), seed=st.integers(0, 10_000))
def test_eq11_is_invariant_to_scaling_all_alpha(scale, seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    alpha = torch.rand(2, 5, generator=g, dtype=torch.float64) + 0.01
    torch.testing.assert_close(attention_pool(f, alpha * scale), attention_pool(f, alpha))


@pytest.mark.parametrize("alpha", [1e-9, 1e-20, 1e-30])
def test_a_one_frame_clip_is_its_frame_however_small_its_alpha(alpha):
    """Found fitting frame attention on pseudo-clips (docs/benchmarks.md, figure 16): a
    frame with alpha below the old 1e-8 floor of the sum came out shrunk towards zero, so
    an image's answer was the classifier's bias."""
    f = torch.tensor([[[3.0, -2.0]]])
    torch.testing.assert_close(attention_pool(f, torch.tensor([[alpha]])), f[:, 0])


def test_a_very_negative_frame_score_never_makes_a_real_frame_a_padded_one():
    fusion = FrameAttentionFusion(embed_dim=2, hidden_dim=2)
    with torch.no_grad():  # a score of -1000 for every frame: sigmoid would be exactly 0
        fusion.score[2].weight.zero_()
        fusion.score[2].bias.fill_(-1000.0)
    f = torch.tensor([[[3.0, -2.0], [1.0, 0.0]]])
    video, alpha = fusion(f)
    assert bool((alpha > 0).all())
    torch.testing.assert_close(video, f.mean(dim=1))
    # one real frame and a padded one: the feature is the real frame's
    video, alpha = fusion(f, torch.tensor([[True, False]]))
    torch.testing.assert_close(video, f[:, 0])
    assert alpha[0, 1] == 0


def test_frame_attention_is_two_fc_layers_with_sigmoid():
    torch.manual_seed(0)
    fusion = FrameAttentionFusion(embed_dim=6, hidden_dim=4)
    f = torch.randn(2, 3, 6)
    video, alpha = fusion(f)
    fc1, _, fc2 = fusion.score
    expected_alpha = torch.sigmoid(fc2(torch.relu(fc1(f)))).squeeze(-1)
    torch.testing.assert_close(alpha, expected_alpha)
    expected = (expected_alpha.unsqueeze(-1) * f).sum(1) / expected_alpha.sum(1, keepdim=True)
    torch.testing.assert_close(video, expected)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_masked_frames_get_zero_weight_and_change_nothing(activation):
    torch.manual_seed(1)
    fusion = FrameAttentionFusion(embed_dim=4, hidden_dim=3, activation=activation)
    f = torch.randn(2, 4, 4)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    video, alpha = fusion(f, mask)
    assert (alpha[0, 2:] == 0).all()
    perturbed = f.clone()
    perturbed[0, 2:] = 1e3 * torch.randn(2, 4)
    video2, alpha2 = fusion(perturbed, mask)
    torch.testing.assert_close(video, video2)
    torch.testing.assert_close(alpha, alpha2)
    # the clip equals the same clip without its padded frames
    video_short, _ = fusion(f[:1, :2])
    torch.testing.assert_close(video[:1], video_short)


def test_softmax_weights_sum_to_one_over_valid_frames():
    fusion = FrameAttentionFusion(embed_dim=4, activation="softmax")
    mask = torch.tensor([[True, False, True]])
    _, alpha = fusion(torch.randn(1, 3, 4), mask)
    torch.testing.assert_close(alpha.sum(1), torch.ones(1))


def test_average_fusion_weights_valid_frames_equally():
    f = torch.tensor([[[1.0], [3.0], [100.0]]])
    video, w = AverageFrameFusion()(f, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(video, torch.tensor([[2.0]]))
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5, 0.0]]))


def test_all_masked_clip_gives_zero_feature_not_nan():
    video, alpha = FrameAttentionFusion(embed_dim=3)(
        torch.randn(1, 2, 3), torch.zeros(1, 2, dtype=torch.bool)
    )
    assert torch.equal(video, torch.zeros(1, 3)) and torch.equal(alpha, torch.zeros(1, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_attention_pool_of_an_all_zero_clip_is_zero_in_half_precision_too(dtype):
    """1e-8 is 0 in float16: the sums are taken in float32, so a faceless clip under fp16
    autocast is a zero feature, not 0/0 = NaN (which would poison a training step)."""
    features = torch.randn(2, 3, 4).to(dtype)
    weights = torch.tensor([[0.5, 0.2, 0.0], [0.0, 0.0, 0.0]], dtype=dtype)
    pooled = attention_pool(features, weights)
    assert pooled.dtype == dtype and torch.equal(pooled[1], torch.zeros(4, dtype=dtype))
    expected = (features[0, :2].float() * torch.tensor([[0.5], [0.2]])).sum(0) / 0.7
    torch.testing.assert_close(pooled[0].float(), expected, atol=1e-2, rtol=1e-2)


def test_unknown_fusion_is_a_config_error():
    with pytest.raises(ConfigError, match="temporal"):
        create_temporal_fusion("lstm", 4)
    with pytest.raises(ConfigError, match="activation"):
        FrameAttentionFusion(4, activation="relu")
