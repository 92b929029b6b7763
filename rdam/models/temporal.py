"""Fusion of the K frame features of a clip into one video feature (paper section 3.5)."""

from __future__ import annotations

import torch
from torch import nn

from rdam.errors import ConfigError

TEMPORAL_FUSIONS = ("attention", "average")
FRAME_WEIGHT_ACTIVATIONS = ("sigmoid", "softmax")


MIN_FRAME_SCORE = -80.0
"""Frame scores are clamped at this before the sigmoid (``alpha >= 1.8e-35``): a real frame
never gets ``alpha = 0`` in float32, which Eq. 11 would treat as a padded frame (a clip whose
every frame underflowed would lose its feature)."""


def attention_pool(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 11: ``F_V = sum_i alpha_i f_i / sum_i alpha_i``.

    Invariant to scaling all ``alpha`` by the same positive factor, however small: a one-frame
    clip is its frame's feature even at ``alpha = 1e-30``. A clip whose weights are all zero
    (every frame padded or faceless) gets a zero feature instead of NaN, in every precision:
    the sums are taken in float32 at least.

    Shapes:
        features ``(B, K, D)``, weights ``(B, K)`` (non-negative) -> ``(B, D)``.
    """
    dtype = torch.promote_types(features.dtype, torch.float32)
    weights = weights.to(dtype)
    total = weights.sum(dim=1, keepdim=True)
    # all zero: a zero feature. (A scalar 1, not ones_like(total): the ONNX exporter froze
    # that tensor at the tracing batch's shape, so the graph ran at that batch size only.)
    total = torch.where(total > 0, total, 1.0)
    pooled = torch.einsum("bkd,bk->bd", features.to(dtype), weights) / total
    return pooled.to(features.dtype)


class FrameAttentionFusion(nn.Module):
    """Frame attention, Eq. 9-11.

    ``alpha_i = W^g f_i`` is a small network of two fully connected layers, the last with one
    neuron (Eq. 10). Eq. 11 needs positive weights, so ``alpha = sigmoid(FC2(ReLU(FC1(f))))``
    by default (the score clamped at :data:`MIN_FRAME_SCORE`); ``activation="softmax"`` normalises the scores over the clip's frames instead.
    Padded frames (``mask == False``) get ``alpha = 0`` and so change nothing.

    Shapes:
        features ``(B, K, D)``, mask ``(B, K)`` bool or None -> ``F_V`` ``(B, D)``, ``alpha`` ``(B, K)``.
    """

    def __init__(self, embed_dim: int, hidden_dim: int = 128, activation: str = "sigmoid") -> None:
        super().__init__()
        if activation not in FRAME_WEIGHT_ACTIVATIONS:
            raise ConfigError(
                f"frame weight activation {activation!r} is not one of {FRAME_WEIGHT_ACTIVATIONS}"
            )
        self.activation = activation
        self.score = nn.Sequential(
            nn.Linear(embed_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, 1)
        )

    def frame_weights(self, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``alpha`` of Eq. 10, ``(B, K)``, zero at padded frames."""
        scores = self.score(features).squeeze(-1).float()  # (B, K)
        if self.activation == "sigmoid":
            alpha = torch.sigmoid(scores.clamp_min(MIN_FRAME_SCORE))
            if mask is not None:
                alpha = alpha * mask.to(alpha.dtype)
        else:
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            alpha = torch.softmax(scores, dim=1).nan_to_num(0.0)
        return alpha

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.frame_weights(features, mask)
        return attention_pool(features, alpha), alpha


class AverageFrameFusion(nn.Module):
    """Average aggregation: every valid frame weighs ``1 / K_valid`` (the paper's baseline).

    Shapes:
        features ``(B, K, D)``, mask ``(B, K)`` bool or None -> ``(B, D)``, weights ``(B, K)``.
    """

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, _ = features.shape
        if mask is None:
            weights = features.new_full((b, k), 1.0 / k, dtype=torch.float32)
        else:
            valid = mask.float()
            weights = valid / valid.sum(dim=1, keepdim=True).clamp_min(1.0)
        return attention_pool(features, weights), weights


def create_temporal_fusion(
    kind: str, embed_dim: int, hidden_dim: int = 128, activation: str = "sigmoid"
) -> nn.Module:
    """``attention`` -> :class:`FrameAttentionFusion`; ``average`` -> :class:`AverageFrameFusion`."""
    if kind == "attention":
        return FrameAttentionFusion(embed_dim, hidden_dim, activation)
    if kind == "average":
        return AverageFrameFusion()
    raise ConfigError(f"temporal={kind!r} is not one of {TEMPORAL_FUSIONS}")
