"""The Region Dual Attention Model (Figure 2) and its two-stream form (Table 5).

Every clip model here shares one surface, so training, export and explanation code never
special-case a model:

- ``forward(frames, mask=None, return_relations=False) -> RDAMOutput``
- ``forward_features(...) -> RDAMOutput`` without logits, ``forward_head(video_feature)``
- ``reset_classifier(num_classes)``, ``num_features``, ``input_streams``.

Frames come in ``[0, 1]`` (float) or ``0..255`` (uint8) as ``(B, K, C, H, W)``; the model
normalises them itself, so exported models and the predictor need no separate transform.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from rdam.models.attention import RegionDualAttentionHead, RegionHeadOutput
from rdam.models.backbone import Backbone
from rdam.models.temporal import create_temporal_fusion


@dataclass
class RDAMOutput:
    """The result of a clip model for a batch of ``B`` clips of ``K`` frames.

    logits: ``(B, num_classes)`` (None from ``forward_features``).
    video_feature: ``(B, D)``, ``F_V`` of Eq. 11.
    frame_features: ``(B, K, D)``, the ``f_n``.
    frame_weights: ``(B, K)``, ``alpha`` (0 at padded frames).
    location_maps: ``(B, K, H', W')`` location attention ``x`` or None (0 at padded frames).
    relation_maps: ``(B, K, L, L)`` relation attention ``s`` with ``L = H' W'``, only when asked.
    face_frame_weights: ``(B, K_f)`` alpha of the face stream (two-stream model only).
    """

    logits: torch.Tensor | None
    video_feature: torch.Tensor
    frame_features: torch.Tensor
    frame_weights: torch.Tensor
    location_maps: torch.Tensor | None = None
    relation_maps: torch.Tensor | None = None
    face_frame_weights: torch.Tensor | None = None


def _is_tracing() -> bool:
    """True while exporting or compiling, when data-dependent indexing must be avoided."""
    return (
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or bool(getattr(torch.compiler, "is_exporting", lambda: False)())
    )


class ClipModel(nn.Module):
    """Backbone + per-frame head + aggregation over frames + classifier.

    Subclasses choose the frame head (``self.head``) and implement :meth:`aggregate`.
    Padded frames (``mask == False``) are not run through the backbone at all, so they cannot
    change the result, not even through batch-norm statistics in training mode.

    In eval mode the frames can go through the backbone and frame head in chunks
    (:meth:`set_max_backbone_pixels`): the peak memory of a forward pass then no longer grows
    with ``B * K``, and the result is the same up to float summation order.
    """

    input_streams: tuple[str, ...] = ("frames",)

    frame_decomposable: bool = False
    """Whether :meth:`aggregate` is Eq. 11 with the frame weights it reports
    (``F_V = sum_i w_i f_i / sum_i w_i``): with the linear classifier the video logits are then
    exactly ``sum_i (w_i / sum w) (W f_i + b)``, and :meth:`forward_frame_logits` gives the
    ``W f_i + b``. Subclasses whose fusion is not such a mean leave it False."""

    def __init__(
        self,
        backbone: Backbone,
        head: nn.Module,
        num_classes: int,
        embed_dim: int,
        dropout: float = 0.0,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_features = embed_dim
        self.num_classes = num_classes
        self.head_drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.max_backbone_pixels: int | None = None

    def set_max_backbone_pixels(self, pixels: int | None) -> None:
        """Bound the input pixels (frames x H x W) per backbone call in eval mode; None: all
        frames of the batch in one call. Training always runs one call (batch-norm statistics
        must see the whole batch)."""
        if pixels is not None and pixels < 1:
            raise ValueError(f"max_backbone_pixels must be >= 1 or None, got {pixels}")
        self.max_backbone_pixels = pixels

    def _chunk_frames(self, n: int, height: int, width: int) -> int:
        if self.max_backbone_pixels is None or self.training or _is_tracing():
            return n
        return max(1, min(n, self.max_backbone_pixels // (height * width)))

    def _encode_flat(self, flat: torch.Tensor) -> RegionHeadOutput:
        """``(N, C, H, W)`` frames -> per-frame head outputs, in chunks (see the class notes)."""
        n = flat.shape[0]
        chunk = self._chunk_frames(n, flat.shape[-2], flat.shape[-1])
        if chunk >= n:
            return self.head(self.backbone(self.normalize(flat)))
        parts = [self.head(self.backbone(self.normalize(c))) for c in flat.split(chunk)]

        def cat(name: str) -> torch.Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else torch.cat(values)

        return RegionHeadOutput(**{f.name: cat(f.name) for f in fields(RegionHeadOutput)})

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in ``[0, 1]`` (or uint8) -> normalised float frames."""
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        return (frames - self.mean) / self.std

    def encode_frames(
        self, frames: torch.Tensor, mask: torch.Tensor | None, return_relations: bool
    ) -> RegionHeadOutput:
        """Backbone and frame head over the valid frames, laid out again as ``(B, K, ...)``."""
        b, k = frames.shape[:2]
        flat = frames.flatten(0, 1)
        select = mask is not None and not _is_tracing() and not bool(mask.all())
        valid = mask.flatten() if select else None
        if valid is not None:
            flat = flat[valid]
        out = self._encode_flat(flat)

        def unflatten(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            if valid is not None:
                full = t.new_zeros((b * k, *t.shape[1:]))
                full[valid] = t
                t = full
            return t.unflatten(0, (b, k))

        return RegionHeadOutput(
            features=unflatten(out.features),
            location=unflatten(out.location),
            relation=unflatten(out.relation) if return_relations else None,
            frame_score=unflatten(out.frame_score),
        )

    def aggregate(
        self, frames: RegionHeadOutput, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features ``(B, K, D)`` -> video feature ``(B, D)`` and frame weights ``(B, K)``."""
        raise NotImplementedError

    def forward_features(
        self, frames: torch.Tensor, mask: torch.Tensor | None = None, return_relations: bool = False
    ) -> RDAMOutput:
        encoded = self.encode_frames(frames, mask, return_relations)
        video_feature, weights = self.aggregate(encoded, mask)
        return RDAMOutput(
            logits=None,
            video_feature=video_feature,
            frame_features=encoded.features,
            frame_weights=weights,
            location_maps=encoded.location,
            relation_maps=encoded.relation,
        )

    def forward_head(self, video_feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_drop(video_feature))

    def forward_frame_logits(self, frame_features: torch.Tensor) -> torch.Tensor | None:
        """The classifier on each frame feature, ``(B, K, D)`` -> ``(B, K, C)`` (``W f_i + b``),
        or None where the video logits are not their weighted mean
        (:attr:`frame_decomposable` False, or a classifier that is not one linear layer)."""
        if not self.frame_decomposable or not isinstance(self.classifier, nn.Linear):
            return None
        return self.forward_head(frame_features)

    def forward(
        self, frames: torch.Tensor, mask: torch.Tensor | None = None, return_relations: bool = False
    ) -> RDAMOutput:
        """frames ``(B, K, C, H, W)``, mask ``(B, K)`` bool (True = real frame) or None."""
        out = self.forward_features(frames, mask, return_relations)
        out.logits = self.forward_head(out.video_feature)
        return out

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes)


class RDAM(ClipModel):
    """Region Dual Attention Model: backbone -> region dual attention (Eq. 2-7) -> frame
    attention fusion (Eq. 9-11) -> FC classifier.

    ``region_head`` and ``temporal`` select the ablation rows of Tables 1-4. Both temporal
    fusions (frame attention and the average) are Eq. 11 with the weights they report, so the
    model is :attr:`~ClipModel.frame_decomposable`.
    """

    frame_decomposable = True

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        region_head: str = "dual",
        temporal: str = "attention",
        embed_dim: int = 512,
        relation_dim: int = 1,
        frame_hidden_dim: int = 128,
        frame_weight: str = "sigmoid",
        dropout: float = 0.0,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        head = RegionDualAttentionHead(
            backbone.num_features, embed_dim, region_head, relation_dim, dropout
        )
        super().__init__(backbone, head, num_classes, embed_dim, dropout, mean, std)
        self.region_head = region_head
        self.temporal = create_temporal_fusion(temporal, embed_dim, frame_hidden_dim, frame_weight)

    def aggregate(
        self, frames: RegionHeadOutput, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.temporal(frames.features, mask)


class TwoStreamRDAM(nn.Module):
    """Frames ("-I") and faces ("-F") streams, each an RDAM trunk, fused (Table 5).

    ``fusion="concat"``: ``F = FC([F_I; F_F])``; ``fusion="sum"``: ``F = F_I + F_F``. Streams
    trained on their own can be loaded into ``frame_stream``/``face_stream`` before fusing.

    Shapes:
        frames ``(B, K, C, H, W)``, faces ``(B, K_f, C, H_f, W_f)``, masks ``(B, K)``/``(B, K_f)``.

    It has no per-frame logits (no ``forward_frame_logits``): the fused feature mixes two
    weighted means over frames with their own weights, so the video logits are no single
    weighted mean of one classifier output per frame.
    """

    input_streams = ("frames", "faces")

    def __init__(
        self,
        frame_stream: RDAM,
        face_stream: RDAM,
        num_classes: int,
        fusion: str = "concat",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if frame_stream.num_features != face_stream.num_features:
            raise ValueError("both streams need the same embed_dim")
        # The fused model classifies the fused feature; the streams' own classifiers would be
        # parameters without gradients (and break DDP), so they are dropped.
        frame_stream.classifier = nn.Identity()
        face_stream.classifier = nn.Identity()
        self.frame_stream = frame_stream
        self.face_stream = face_stream
        self.fusion = fusion
        self.num_features = frame_stream.num_features
        self.num_classes = num_classes
        self.fuse = (
            nn.Linear(2 * self.num_features, self.num_features) if fusion == "concat" else None
        )
        self.head_drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def load_stream(self, name: str, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a single-stream RDAM's state dict (trained alone) into ``frame``/``face`` stream."""
        stream = {"frame": self.frame_stream, "face": self.face_stream}[name]
        trunk = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
        stream.load_state_dict(trunk)

    def forward_features(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor | None = None,
        faces: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
        return_relations: bool = False,
    ) -> RDAMOutput:
        if faces is None:
            raise ValueError("TwoStreamRDAM needs both `frames` and `faces`")
        img = self.frame_stream.forward_features(frames, mask, return_relations)
        face = self.face_stream.forward_features(faces, face_mask, return_relations)
        if self.fuse is not None:
            video_feature = self.fuse(torch.cat([img.video_feature, face.video_feature], dim=1))
        else:
            video_feature = img.video_feature + face.video_feature
        return replace(img, video_feature=video_feature, face_frame_weights=face.frame_weights)

    def forward_head(self, video_feature: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_drop(video_feature))

    def forward(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor | None = None,
        faces: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
        return_relations: bool = False,
    ) -> RDAMOutput:
        out = self.forward_features(frames, mask, faces, face_mask, return_relations)
        out.logits = self.forward_head(out.video_feature)
        return out

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes)
