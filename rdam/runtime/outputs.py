"""What a runner returns, and the arithmetic on it that every caller shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ModelOutputs:
    """A runner's outputs for a batch of ``B`` clips padded to ``K`` frames (numpy, float32).

    logits ``(B, C)``; frame_weights ``(B, K)`` (α of Eq. 10, 0 at masked frames);
    location_maps ``(B, K, h, w)`` (x of Eq. 2) or None; relation_maps ``(B, K, L, L)`` (S of
    Eq. 4) or None; face_frame_weights ``(B, K)`` (two-stream models) or None.
    """

    logits: np.ndarray
    frame_weights: np.ndarray
    location_maps: np.ndarray | None = None
    relation_maps: np.ndarray | None = None
    face_frame_weights: np.ndarray | None = None

    @property
    def probabilities(self) -> np.ndarray:
        """``(B, C)`` float64 softmax of the logits."""
        return softmax(self.logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (``(B, C)`` -> ``(B, C)``)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def average_mirrored(out: ModelOutputs, mirrored: ModelOutputs) -> ModelOutputs:
    """Average a pass over clips and a pass over the same clips mirrored (flip TTA).

    The class probabilities are averaged (returned as their logs, so ``softmax`` of the logits
    gives the averaged probabilities), and so are the frame weights; the mirrored pass's
    location maps are flipped back before averaging. Relation maps are those of the unmirrored
    pass (the region indices of a mirrored frame are another order).
    """

    def mean(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else (a + b) / 2

    probs = (softmax(out.logits) + softmax(mirrored.logits)) / 2
    maps = None
    if out.location_maps is not None and mirrored.location_maps is not None:
        maps = (out.location_maps + mirrored.location_maps[..., ::-1]) / 2
    return ModelOutputs(
        logits=np.log(np.maximum(probs, np.finfo(np.float32).tiny)).astype(np.float32),
        frame_weights=mean(out.frame_weights, mirrored.frame_weights),
        location_maps=maps,
        relation_maps=out.relation_maps,
        face_frame_weights=mean(out.face_frame_weights, mirrored.face_frame_weights),
    )
