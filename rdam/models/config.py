"""The typed model configuration: plain data, validated once, stored in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rdam.errors import ConfigError
from rdam.models.attention import REGION_HEADS
from rdam.models.backbone import IMAGENET_MEAN, IMAGENET_STD, VALID_OUTPUT_STRIDES
from rdam.models.temporal import FRAME_WEIGHT_ACTIVATIONS, TEMPORAL_FUSIONS
from rdam.scalars import coerce_scalars

ARCHITECTURES = ("rdam", "two_stream", "qan", "attention_clusters")
STREAM_FUSIONS = ("concat", "sum")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; ``build_model(config)`` is the one constructor.

    Attributes:
        arch: ``rdam`` | ``two_stream`` (frames + faces, Table 5) | ``qan`` (quality-aware
            network baseline) | ``attention_clusters`` (baseline).
        backbone: timm architecture name (``resnet50`` in the paper).
        weights: backbone weights, ``none`` | ``imagenet`` | path to a local file.
        output_stride: 8 in the paper (dilated last two stages).
        num_classes: number of emotion classes.
        region_head: ``average | location | relation | dual`` (Tables 1-4 ablation).
        temporal: ``attention | average`` frame fusion.
        embed_dim: width of frame features ``f_n`` and the video feature ``F_V``.
        relation_dim: channels of the relation maps ``B``/``C`` (1 = paper).
        frame_hidden_dim: hidden width of the frame attention network ``W^g``.
        frame_weight: ``sigmoid | softmax`` activation of the frame weights ``alpha``.
        dropout: dropout on the fused frame feature and before the classifier.
        stream_fusion: ``concat | sum``, how ``two_stream`` joins its two video features.
        num_clusters: attention units of the ``attention_clusters`` baseline.
        in_chans, mean, std: input channels and the normalisation applied inside the model
            to frames given in ``[0, 1]``.
    """

    arch: str = "rdam"
    backbone: str = "resnet50"
    weights: str = "none"
    output_stride: int = 8
    num_classes: int = 6
    region_head: str = "dual"
    temporal: str = "attention"
    embed_dim: int = 512
    relation_dim: int = 1
    frame_hidden_dim: int = 128
    frame_weight: str = "sigmoid"
    dropout: float = 0.0
    stream_fusion: str = "concat"
    num_clusters: int = 8
    in_chans: int = 3
    mean: tuple[float, ...] = field(default=IMAGENET_MEAN)
    std: tuple[float, ...] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        choices = {
            "arch": ARCHITECTURES,
            "region_head": REGION_HEADS,
            "temporal": TEMPORAL_FUSIONS,
            "frame_weight": FRAME_WEIGHT_ACTIVATIONS,
            "stream_fusion": STREAM_FUSIONS,
            "output_stride": VALID_OUTPUT_STRIDES,
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ConfigError(f"model.{name}={getattr(self, name)!r} is not one of {valid}")
        for name in (
            "num_classes",
            "embed_dim",
            "relation_dim",
            "frame_hidden_dim",
            "num_clusters",
            "in_chans",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ConfigError(
                f"model.mean/std need {self.in_chans} values (in_chans), got {self.mean} / {self.std}"
            )

    @property
    def learns_frame_weights(self) -> bool:
        """Its frame fusion weighs the frames of a clip by learned scores: frame attention
        (Eq. 9-11), QAN's quality scores, Attention Clusters' units. A one-frame clip gives
        those scores no gradient (a weighted mean of one feature is that feature)."""
        return self.arch in ("qan", "attention_clusters") or self.temporal == "attention"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown model config keys {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**coerce_scalars(cls, data, "model"))
