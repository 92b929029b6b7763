"""Region attention over the feature map of one frame (paper section 3.2-3.4).

The feature map ``M`` of shape ``(N, C, H, W)`` is read as ``L = H*W`` regional features,
numbered row-major, ``l = (i-1)*W + j`` (Eq. 1; the paper's ``M`` there is a typo for ``W``).
Each module here turns ``M`` into one pooled ``(N, C)`` vector plus the attention it used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rdam.errors import ConfigError

REGION_HEADS = ("average", "location", "relation", "dual")


def _softmax_dtype(t: torch.Tensor) -> torch.dtype:
    """Softmax in at least float32: bf16/fp16 logits over hundreds of regions lose the tail."""
    return torch.promote_types(t.dtype, torch.float32)


class RegionLocationAttention(nn.Module):
    """Regional location attention, Eq. 2-3.

    A 1x1 convolution ``C -> 1`` scores every region; a softmax over all ``H*W`` regions gives
    ``x`` (Eq. 2, so ``sum_ij x_ij = 1``); Eq. 3 reweights the regions, ``M^p = M * x / sum x``,
    and attention pooling sums them: ``v^p = sum_ij x_ij M[:, i, j]``.

    Shapes:
        ``M``: ``(N, C, H, W)`` -> ``v^p``: ``(N, C)``, ``x``: ``(N, H, W)``.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(in_channels, 1, kernel_size=1)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = feature_map.shape
        logits = self.score(feature_map).flatten(1)  # (N, L)
        x = logits.softmax(dim=-1, dtype=_softmax_dtype(logits)).to(feature_map.dtype)
        pooled = torch.einsum("ncl,nl->nc", feature_map.flatten(2), x)
        return pooled, x.view(n, h, w)


class RegionRelationAttention(nn.Module):
    """Regional relationship attention, Eq. 4-5.

    Two 1x1 convolutions give maps ``B`` and ``C`` (each ``H x W``, reshaped ``N x 1`` and
    ``1 x N``); ``S = B C`` scores every pair of regions. The paper takes a softmax over all
    ``N^2`` entries (Eq. 4) and then divides each row by its sum (Eq. 5), which is exactly a
    softmax over each row, so it is computed that way (tests check the equivalence).
    Eq. 5: ``M^r_l = M_l + sum_m s_lm M_m``; the frame vector is ``v^r = mean_l M^r_l``.

    Because only ``v^r`` is used downstream, it is computed as
    ``mean(M) + (1/L) (1^T s) M``: the same sum, without the ``(L, C)`` matrix ``M^r``.

    ``relation_dim = d > 1`` is a documented extension: ``B``, ``C`` get ``d`` channels and
    ``S = B C / sqrt(d)`` (scaled dot-product); ``d = 1`` is the paper.

    Shapes:
        ``M``: ``(N, C, H, W)`` -> ``v^r``: ``(N, C)``, ``s``: ``(N, L, L)``, rows sum to 1.
    """

    def __init__(self, in_channels: int, relation_dim: int = 1) -> None:
        super().__init__()
        if relation_dim < 1:
            raise ConfigError(f"relation_dim must be >= 1, got {relation_dim}")
        self.relation_dim = relation_dim
        self.query = nn.Conv2d(in_channels, relation_dim, kernel_size=1)  # B
        # No bias on C: it would add b_l * bias to every entry of row l of S, which the row
        # normalisation of Eq. 5 cancels exactly, so it could never learn anything.
        self.key = nn.Conv2d(in_channels, relation_dim, kernel_size=1, bias=False)  # C
        self.scale = 1.0 / math.sqrt(relation_dim)

    def relation(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The row-normalised relation matrix ``s`` of Eq. 4-5, ``(N, L, L)``."""
        b = self.query(feature_map).flatten(2).transpose(1, 2)  # (N, L, d)
        c = self.key(feature_map).flatten(2)  # (N, d, L)
        scores = torch.bmm(b, c) * self.scale  # (N, L, L)
        return scores.softmax(dim=-1, dtype=_softmax_dtype(scores)).to(feature_map.dtype)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        regions = feature_map.flatten(2)  # (N, C, L)
        s = self.relation(feature_map)
        column_mean = s.mean(dim=1)  # (N, L): (1/L) 1^T s
        pooled = regions.mean(dim=2) + torch.einsum("ncl,nl->nc", regions, column_mean)
        return pooled, s


@dataclass
class RegionHeadOutput:
    """What a region head returns for ``N`` frames.

    features: ``(N, D)`` frame features ``f_n``.
    location: ``(N, H, W)`` location attention ``x`` (``location``/``dual`` heads), else None.
    relation: ``(N, L, L)`` relation attention ``s`` (``relation``/``dual`` heads), else None.
    frame_score: ``(N,)`` a per-frame score computed from the feature map (the quality score
        of the quality-aware network baseline), else None.
    """

    features: torch.Tensor
    location: torch.Tensor | None = None
    relation: torch.Tensor | None = None
    frame_score: torch.Tensor | None = None


class RegionDualAttentionHead(nn.Module):
    """Frame feature from the region attention branches and their fusion, Eq. 6-7 + FC.

    ``f_n = FC(tanh(W^p v^p + b^p) + tanh(W^r v^r + b^r))`` for the ``dual`` head. The ablation
    variants keep the same projection so that they differ only in how regions are pooled:

    - ``average``: ``FC(tanh(W^a mean(M) + b^a))`` (global average pooling),
    - ``location``: ``FC(tanh(W^p v^p + b^p))``,
    - ``relation``: ``FC(tanh(W^r v^r + b^r))``,
    - ``dual``: both branches summed.

    Shapes:
        ``M``: ``(N, C, H, W)`` -> :class:`RegionHeadOutput` with ``features`` ``(N, embed_dim)``.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dim: int = 512,
        region_head: str = "dual",
        relation_dim: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if region_head not in REGION_HEADS:
            raise ConfigError(f"region_head={region_head!r} is not one of {REGION_HEADS}")
        self.region_head = region_head
        self.location = (
            RegionLocationAttention(in_channels) if region_head in ("location", "dual") else None
        )
        self.relation = (
            RegionRelationAttention(in_channels, relation_dim)
            if region_head in ("relation", "dual")
            else None
        )
        self.proj_average = nn.Linear(in_channels, embed_dim) if region_head == "average" else None
        self.proj_location = (
            nn.Linear(in_channels, embed_dim) if self.location is not None else None
        )
        self.proj_relation = (
            nn.Linear(in_channels, embed_dim) if self.relation is not None else None
        )
        self.dropout = nn.Dropout(dropout)
        self.fuse = nn.Linear(embed_dim, embed_dim)
        self.embed_dim = embed_dim

    def forward(self, feature_map: torch.Tensor) -> RegionHeadOutput:
        location = relation = None
        if self.proj_average is not None:
            fused = torch.tanh(self.proj_average(feature_map.mean(dim=(2, 3))))
        else:
            fused = 0.0
            if self.location is not None:
                v_p, location = self.location(feature_map)
                fused = fused + torch.tanh(self.proj_location(v_p))  # Eq. 6
            if self.relation is not None:
                v_r, relation = self.relation(feature_map)
                fused = fused + torch.tanh(self.proj_relation(v_r))  # Eq. 7
        features = self.fuse(self.dropout(fused))
        return RegionHeadOutput(features=features, location=location, relation=relation)


def paper_relation_reference(
    feature_map: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4-5 exactly as printed, for tests: global softmax over all ``N^2`` entries, then
    ``M^r_l = M_l + sum_m M_m s_lm / sum_m s_lm`` and ``v^r = mean_l M^r_l``.

    Args:
        feature_map: ``(N, C, H, W)``; b, c: the maps ``B`` and ``C``, ``(N, L)`` each.
    Returns:
        ``v^r`` ``(N, C)`` and the row-normalised ``s`` ``(N, L, L)``.
    """
    n, ch, h, w = feature_map.shape
    scores = b.unsqueeze(2) * c.unsqueeze(1)  # (N, L, L) = B (Nx1) times C (1xN)
    s = F.softmax(scores.reshape(n, -1), dim=-1).reshape(n, h * w, h * w)  # Eq. 4
    regions = feature_map.reshape(n, ch, h * w).transpose(1, 2)  # (N, L, C)
    m_r = regions + (s @ regions) / s.sum(dim=2, keepdim=True)  # Eq. 5
    return m_r.mean(dim=1), s / s.sum(dim=2, keepdim=True)
