"""``build_model(config)``: the one place where a model configuration becomes modules; and
``model_inputs``: the keyword arguments a built model takes from a batch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rdam.models.backbone import create_backbone
from rdam.models.baselines import AttentionClusters, QualityAwareNetwork
from rdam.models.config import ModelConfig
from rdam.models.rdam import RDAM, TwoStreamRDAM


def _rdam(config: ModelConfig) -> RDAM:
    backbone = create_backbone(
        config.backbone, config.weights, config.output_stride, config.in_chans
    )
    return RDAM(
        backbone,
        num_classes=config.num_classes,
        region_head=config.region_head,
        temporal=config.temporal,
        embed_dim=config.embed_dim,
        relation_dim=config.relation_dim,
        frame_hidden_dim=config.frame_hidden_dim,
        frame_weight=config.frame_weight,
        dropout=config.dropout,
        mean=config.mean,
        std=config.std,
    )


def build_model(config: ModelConfig | dict[str, Any]) -> nn.Module:
    """Build the model ``config`` describes (``arch``: rdam, two_stream, qan, attention_clusters).

    Backbone weights (``config.weights``) are loaded here; a saved rdam model carries its own
    weights, so rebuild those with ``weights="none"`` and load the state dict.
    """
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    if config.arch == "rdam":
        return _rdam(config)
    if config.arch == "two_stream":
        return TwoStreamRDAM(
            _rdam(config), _rdam(config), config.num_classes, config.stream_fusion, config.dropout
        )
    backbone = create_backbone(
        config.backbone, config.weights, config.output_stride, config.in_chans
    )
    common = dict(
        num_classes=config.num_classes,
        embed_dim=config.embed_dim,
        dropout=config.dropout,
        mean=config.mean,
        std=config.std,
    )
    if config.arch == "qan":
        return QualityAwareNetwork(backbone, hidden_dim=config.frame_hidden_dim, **common)
    return AttentionClusters(
        backbone, num_clusters=config.num_clusters, hidden_dim=config.frame_hidden_dim, **common
    )


def model_inputs(model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments ``model`` takes from a collated batch."""
    kwargs = {"frames": batch["frames"], "mask": batch["mask"]}
    if "faces" in getattr(model, "input_streams", ()):
        kwargs["faces"] = batch["faces"]
        kwargs["face_mask"] = batch["face_mask"]
    return kwargs
