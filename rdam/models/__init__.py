"""RDAM and the models it is compared with; ``build_model(config)`` builds any of them."""

from rdam.models.attention import (
    RegionDualAttentionHead,
    RegionHeadOutput,
    RegionLocationAttention,
    RegionRelationAttention,
)
from rdam.models.backbone import Backbone, create_backbone
from rdam.models.baselines import AttentionClusters, QualityAwareNetwork
from rdam.models.config import ModelConfig
from rdam.models.factory import build_model, model_inputs
from rdam.models.rdam import RDAM, ClipModel, RDAMOutput, TwoStreamRDAM
from rdam.models.temporal import AverageFrameFusion, FrameAttentionFusion, attention_pool

__all__ = [
    "RDAM",
    "AttentionClusters",
    "AverageFrameFusion",
    "Backbone",
    "ClipModel",
    "FrameAttentionFusion",
    "ModelConfig",
    "QualityAwareNetwork",
    "RDAMOutput",
    "RegionDualAttentionHead",
    "RegionHeadOutput",
    "RegionLocationAttention",
    "RegionRelationAttention",
    "TwoStreamRDAM",
    "attention_pool",
    "build_model",
    "create_backbone",
    "model_inputs",
]
