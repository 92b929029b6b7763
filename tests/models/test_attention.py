"""Region attention: Eq. 2-7 checked against hand computations and the paper's literal form."""

from __future__ import annotations

import pytest
import torch

from rdam.errors import ConfigError
from rdam.models.attention import (
    RegionDualAttentionHead,
    RegionLocationAttention,
    RegionRelationAttention,
    paper_relation_reference,
)


def test_location_weights_sum_to_one_and_pool_is_weighted_sum():
    torch.manual_seed(0)
    m = torch.randn(3, 16, 5, 7)
    att = RegionLocationAttention(16)
    pooled, x = att(m)
    assert x.shape == (3, 5, 7)
    torch.testing.assert_close(x.sum(dim=(1, 2)), torch.ones(3))
    # Eq. 2 by hand: softmax of the 1x1 conv scores over all H*W regions.
    scores = torch.einsum("nchw,c->nhw", m, att.score.weight.view(-1)) + att.score.bias
    expected_x = scores.flatten(1).softmax(-1).view(3, 5, 7)
    torch.testing.assert_close(x, expected_x)
    # Eq. 3: M^p = M * x / sum(x); attention pooling sums the regions.
    m_p = m * x.unsqueeze(1) / x.sum(dim=(1, 2)).view(3, 1, 1, 1)
    torch.testing.assert_close(pooled, m_p.sum(dim=(2, 3)))


def test_location_attention_picks_out_a_region_with_a_large_score():
    att = RegionLocationAttention(2)
    with torch.no_grad():
        att.score.weight.copy_(torch.tensor([[[[100.0]], [[0.0]]]]))
        att.score.bias.zero_()
    m = torch.zeros(1, 2, 3, 3)
    m[0, 0, 1, 2] = 1.0  # region l = (2-1)*3 + 3 = 6 (1-based), the only one with a score
    m[0, 1, 1, 2] = 7.0
    pooled, x = att(m)
    assert x[0, 1, 2] > 0.999
    torch.testing.assert_close(pooled, torch.tensor([[1.0, 7.0]]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("relation_dim", [1, 4])
def test_relation_row_softmax_equals_papers_global_softmax_then_renormalise(relation_dim):
    torch.manual_seed(1)
    m = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    att = RegionRelationAttention(8, relation_dim=relation_dim).double()
    pooled, s = att(m)
    b = att.query(m).flatten(2).transpose(1, 2)  # (N, L, d)
    c = att.key(m).flatten(2)  # (N, d, L)
    if relation_dim == 1:
        ref_pooled, ref_s = paper_relation_reference(m, b.squeeze(-1), c.squeeze(1))
    else:  # the d-channel extension: S = B C / sqrt(d), same Eq. 4-5 afterwards
        n, ch, h, w = m.shape
        scores = (b @ c) / relation_dim**0.5
        glob = scores.reshape(n, -1).softmax(-1).reshape(n, h * w, h * w)
        ref_s = glob / glob.sum(2, keepdim=True)
        regions = m.reshape(n, ch, -1).transpose(1, 2)
        ref_pooled = (regions + ref_s @ regions).mean(1)
    torch.testing.assert_close(s, ref_s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(pooled, ref_pooled, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.sum(-1), torch.ones(2, 20, dtype=torch.float64))


def test_relation_is_numerically_safe_for_large_scores():
    att = RegionRelationAttention(4)
    with torch.no_grad():
        att.query.weight.fill_(50.0)
        att.key.weight.fill_(50.0)
    m = torch.randn(1, 4, 6, 6) * 10
    pooled, s = att(m)
    assert torch.isfinite(pooled).all() and torch.isfinite(s).all()
    # The paper's literal global softmax underflows whole rows here; the row softmax does not.
    torch.testing.assert_close(s.sum(-1), torch.ones(1, 36))


def test_relation_key_bias_would_cancel_so_there_is_none():
    # A bias on C shifts row l of S by b_l * bias, which the row normalisation cancels.
    att = RegionRelationAttention(3, relation_dim=2).double()
    assert att.key.bias is None
    m = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    s = att.relation(m)
    b = att.query(m).flatten(2).transpose(1, 2)
    c = att.key(m).flatten(2) + torch.tensor([0.7, -1.3], dtype=torch.float64).view(1, 2, 1)
    shifted = (b @ c / 2**0.5).softmax(-1)
    torch.testing.assert_close(s, shifted)


def test_relation_identity_when_relation_is_uniform():
    # With zero maps B and C every s_lm = 1/L, so M^r_l = M_l + mean(M) and v^r = 2 mean(M).
    att = RegionRelationAttention(3)
    for conv in (att.query, att.key):
        torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(att.query.bias)
    m = torch.randn(2, 3, 4, 4)
    pooled, s = att(m)
    torch.testing.assert_close(s, torch.full((2, 16, 16), 1 / 16))
    torch.testing.assert_close(pooled, 2 * m.mean(dim=(2, 3)))


def test_dual_head_is_sum_of_the_tanh_projections_then_fc():
    torch.manual_seed(2)
    head = RegionDualAttentionHead(6, embed_dim=5, region_head="dual").eval()
    m = torch.randn(4, 6, 3, 3)
    out = head(m)
    v_p, x = head.location(m)
    v_r, s = head.relation(m)
    f = head.fuse(torch.tanh(head.proj_location(v_p)) + torch.tanh(head.proj_relation(v_r)))
    torch.testing.assert_close(out.features, f)
    torch.testing.assert_close(out.location, x)
    torch.testing.assert_close(out.relation, s)


@pytest.mark.parametrize(
    ("kind", "has_location", "has_relation"),
    [
        ("average", False, False),
        ("location", True, False),
        ("relation", False, True),
        ("dual", True, True),
    ],
)
def test_head_variants_expose_their_maps(kind, has_location, has_relation):
    head = RegionDualAttentionHead(4, embed_dim=8, region_head=kind)
    out = head(torch.randn(2, 4, 3, 5))
    assert out.features.shape == (2, 8)
    assert (out.location is not None) == has_location
    assert (out.relation is not None) == has_relation


def test_average_head_uses_global_average_pooling():
    head = RegionDualAttentionHead(3, embed_dim=4, region_head="average")
    m = torch.randn(2, 3, 4, 4)
    expected = head.fuse(torch.tanh(head.proj_average(m.mean(dim=(2, 3)))))
    torch.testing.assert_close(head(m).features, expected)


def test_unknown_head_is_a_config_error():
    with pytest.raises(ConfigError, match="region_head"):
        RegionDualAttentionHead(3, region_head="triple")
