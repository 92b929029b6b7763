"""What a runner returns, and the arithmetic on it that every caller shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ModelOutputs:
    """A runner's outputs for a batch of ``B`` clips padded to ``K`` frames (numpy, float32).

    logits ``(B, C)``; frame_weights ``(B, K)`` (α of Eq. 10, 0 at masked frames; raw, they do
    not sum to 1: see :attr:`normalized_frame_weights`); location_maps ``(B, K, h, w)`` (x of
    Eq. 2) or None; relation_maps ``(B, K, L, L)`` (the row-normalised ``s`` of Eq. 4-5) or None; face_frame_weights
    ``(B, K)`` (two-stream models) or None.

    frame_logits ``(B, K, C)``: the classifier on each frame feature, ``W f_i + b``, NaN at
    masked frames. The classifier is linear and Eq. 11 a normalised weighted mean, so the video
    logits are exactly ``sum_i w_i (W f_i + b)`` with ``w`` the normalised weights
    (:meth:`recomposed_logits`; a clip with every frame masked is the exception: its logits are
    ``b``). None where that does not hold — the two-stream model (two means with their own
    weights), Attention Clusters (a non-linear fusion), a non-linear classifier — and from an
    ONNX file exported before its graph output them (``EXPORT_FORMAT`` 1 of
    :mod:`rdam.export.onnx`).
    """

    logits: np.ndarray
    frame_weights: np.ndarray
    location_maps: np.ndarray | None = None
    relation_maps: np.ndarray | None = None
    face_frame_weights: np.ndarray | None = None
    frame_logits: np.ndarray | None = None

    @property
    def probabilities(self) -> np.ndarray:
        """``(B, C)`` float64 softmax of the logits."""
        return softmax(self.logits)

    @property
    def normalized_frame_weights(self) -> np.ndarray:
        """``(B, K)`` float64 ``α_i / Σ_j α_j``: each frame's share of the video feature (and,
        where :attr:`frame_logits` exist, of the video logits); 0 at masked frames, each row
        sums to 1 (all 0 for a clip without a usable frame)."""
        return normalize_weights(self.frame_weights)

    @property
    def frame_probabilities(self) -> np.ndarray | None:
        """``(B, K, C)`` float64 softmax of each frame's logits (NaN at masked frames), or None
        without :attr:`frame_logits`."""
        return None if self.frame_logits is None else softmax(self.frame_logits)

    def recomposed_logits(self) -> np.ndarray | None:
        """``(B, C)`` float64 ``Σ_i w_i (W f_i + b)`` from :attr:`frame_logits` and
        :attr:`normalized_frame_weights`: equal to :attr:`logits` up to float rounding (the
        decomposition the per-frame answers rest on), or None without frame logits."""
        if self.frame_logits is None:
            return None
        w = self.normalized_frame_weights
        z = np.where(w[..., None] > 0, self.frame_logits.astype(np.float64), 0.0)
        return np.einsum("bk,bkc->bc", w, z)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (``(B, C)`` -> ``(B, C)``)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def normalize_weights(weights: np.ndarray) -> np.ndarray:
    """``(B, K)`` non-negative weights -> float64 ``w / Σ w`` per row (0 for an all-zero row)."""
    w = np.clip(np.nan_to_num(np.asarray(weights, np.float64)), 0.0, None)
    total = w.sum(axis=-1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def average_mirrored(out: ModelOutputs, mirrored: ModelOutputs) -> ModelOutputs:
    """Average a pass over clips and a pass over the same clips mirrored (flip TTA).

    The class probabilities are averaged (returned as their logs, so ``softmax`` of the logits
    gives the averaged probabilities), and so are the frame weights; the mirrored pass's
    location maps are flipped back before averaging. Relation maps are those of the unmirrored
    pass (the region indices of a mirrored frame are another order). Per-frame logits are
    averaged like the video's, as the logs of the mean per-frame probabilities; the average of
    two passes is no longer exactly the weighted mean of its frames (each pass is).
    """

    averaged = average_views([out, mirrored], maps_from=out)
    averaged.location_maps = None
    if out.location_maps is not None and mirrored.location_maps is not None:
        averaged.location_maps = (out.location_maps + mirrored.location_maps[..., ::-1]) / 2
    return averaged


def average_views(views: list[ModelOutputs], maps_from: ModelOutputs) -> ModelOutputs:
    """Average the passes over several test views of the same clips (crops, each maybe with its
    mirror): the class probabilities (returned as their logs), the per-frame probabilities and
    the frame weights. Crops see other parts of the frame, so their maps do not line up: the
    location and relation maps are those of ``maps_from``, a pass over the whole frames.
    """

    def mean(name: str) -> np.ndarray | None:
        arrays = [getattr(v, name) for v in views]
        return None if any(a is None for a in arrays) else np.mean(arrays, axis=0)

    tiny = np.finfo(np.float32).tiny
    probs = np.mean([softmax(v.logits) for v in views], axis=0)
    frame_logits = None
    if all(v.frame_logits is not None for v in views):
        frame_probs = np.mean([softmax(v.frame_logits) for v in views], axis=0)
        with np.errstate(invalid="ignore"):
            frame_logits = np.log(np.maximum(frame_probs, tiny))
        frame_logits = np.where(np.isnan(frame_probs), np.nan, frame_logits).astype(np.float32)
    return ModelOutputs(
        logits=np.log(np.maximum(probs, tiny)).astype(np.float32),
        frame_weights=mean("frame_weights"),
        location_maps=maps_from.location_maps,
        relation_maps=maps_from.relation_maps,
        face_frame_weights=mean("face_frame_weights"),
        frame_logits=frame_logits,
    )
