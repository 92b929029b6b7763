"""The aggregation baselines of Table 5, over the same backbone and frame features as RDAM.

- :class:`QualityAwareNetwork` (Liu et al., CVPR 2017): a quality unit scores each frame from
  its feature map, ``q = sigmoid(.)``, and the video feature is ``sum q f / sum q``.
- :class:`AttentionClusters` (Long et al., CVPR 2018): several independent attention units
  over the set of frame features, each followed by the *shifting operation*, concatenated.

Plain average aggregation is ``RDAM(region_head="average", temporal="average")``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rdam.models.attention import RegionDualAttentionHead, RegionHeadOutput
from rdam.models.backbone import Backbone
from rdam.models.rdam import ClipModel
from rdam.models.temporal import MIN_FRAME_SCORE, attention_pool


class QualityHead(nn.Module):
    """Frame feature by global average pooling plus QAN's quality unit on the feature map.

    The quality unit is a small convolutional branch, ``conv3x3 -> ReLU -> GAP -> FC -> 1``,
    giving one quality logit per frame.

    Shapes:
        ``M`` ``(N, C, H, W)`` -> features ``(N, D)``, frame_score ``(N,)``.
    """

    def __init__(
        self, in_channels: int, embed_dim: int, hidden_dim: int = 128, dropout: float = 0.0
    ):
        super().__init__()
        self.features = RegionDualAttentionHead(in_channels, embed_dim, "average", dropout=dropout)
        self.quality = nn.Sequential(
            nn.Conv2d(in_channels, hidden_dim, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, feature_map: torch.Tensor) -> RegionHeadOutput:
        out = self.features(feature_map)
        out.frame_score = self.quality(feature_map).squeeze(-1)
        return out


class QualityAwareNetwork(ClipModel):
    """Quality-aware network aggregation: ``F_V = sum_i q_i f_i / sum_i q_i``, ``q = sigmoid``
    (Eq. 11 with ``q`` as the frame weights: :attr:`~ClipModel.frame_decomposable`)."""

    frame_decomposable = True

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        embed_dim: int = 512,
        hidden_dim: int = 128,
        dropout: float = 0.0,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        head = QualityHead(backbone.num_features, embed_dim, hidden_dim, dropout)
        super().__init__(backbone, head, num_classes, embed_dim, dropout, mean, std)

    def aggregate(
        self, frames: RegionHeadOutput, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        quality = torch.sigmoid(frames.frame_score.float().clamp_min(MIN_FRAME_SCORE))
        if mask is not None:
            quality = quality * mask.to(quality.dtype)
        return attention_pool(frames.features, quality), quality


class ShiftedAttentionUnit(nn.Module):
    """One attention unit of Attention Clusters with the shifting operation.

    ``a = softmax_k(w_2^T tanh(W_1 f_k))``, ``v = sum_k a_k f_k``, then
    ``v' = (alpha v + beta) / (sqrt(U) * ||alpha v + beta||_2)`` with learnable scalars
    ``alpha``, ``beta`` and ``U`` units.

    Shapes:
        features ``(B, K, D)``, mask ``(B, K)`` -> ``v'`` ``(B, D)``, ``a`` ``(B, K)``.
    """

    def __init__(self, embed_dim: int, hidden_dim: int, num_units: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1, bias=False)
        )
        self.alpha = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.zeros(1))
        self.norm = math.sqrt(num_units)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(features).squeeze(-1).float()
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=1).nan_to_num(0.0)
        pooled = attention_pool(features, weights)
        shifted = self.alpha * pooled + self.beta
        return F.normalize(shifted, dim=1) / self.norm, weights


class AttentionClusters(ClipModel):
    """Attention Clusters: ``U`` shifted attention units, concatenated, then an FC to ``D``.

    The frame weights reported are the mean of the units' attention weights. The units'
    shifting (an L2 normalisation) and the projection make the video feature no weighted mean
    of the frame features, so the model has no per-frame logits.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        embed_dim: int = 512,
        num_clusters: int = 8,
        hidden_dim: int = 128,
        dropout: float = 0.0,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        head = RegionDualAttentionHead(backbone.num_features, embed_dim, "average", dropout=dropout)
        super().__init__(backbone, head, num_classes, embed_dim, dropout, mean, std)
        self.units = nn.ModuleList(
            ShiftedAttentionUnit(embed_dim, hidden_dim, num_clusters) for _ in range(num_clusters)
        )
        self.project = nn.Linear(num_clusters * embed_dim, embed_dim)

    def aggregate(
        self, frames: RegionHeadOutput, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, weights = zip(*(unit(frames.features, mask) for unit in self.units))
        video_feature = self.project(torch.cat(pooled, dim=1))
        return video_feature, torch.stack(weights, dim=0).mean(dim=0)
