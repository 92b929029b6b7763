"""The PyTorch runner: a clip model under ``torch.inference_mode`` and the resolved precision."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import torch

from rdam.models import ClipModel
from rdam.runtime.outputs import ModelOutputs
from rdam.runtime.precision import autocast, resolve_precision

log = logging.getLogger(__name__)

# Four 224x224 frames per backbone call: the forward pass of a ResNet-50 RDAM (output stride
# 8, K=16, fp32) peaked at 1,142 MB RSS this way against 1,369 MB with the 16 frames in one
# call (docs/benchmarks.md, figure 6); the convolutions' GEMMs stay thousands of rows tall.
DEFAULT_BACKBONE_PIXELS = 4 * 224 * 224

Array = np.ndarray | torch.Tensor


class ModelRunner(Protocol):
    """Runs a clip model on a padded batch.

    ``inputs``: ``frames`` ``(B, K, 3, S, S)`` uint8 (numpy or torch, any strides), ``mask``
    ``(B, K)`` bool and, for two-stream models, ``faces``/``face_mask`` likewise.
    ``provides_relations`` tells whether ``relation_maps`` can be returned; ``precision`` is
    the resolved precision (``fp32``, ``bf16`` ...).
    """

    provides_relations: bool
    precision: str
    two_stream: bool

    def __call__(self, inputs: Mapping[str, Array], relations: bool = False) -> ModelOutputs: ...


class TorchRunner:
    """A PyTorch clip model under ``torch.inference_mode``.

    Args:
        model: any rdam clip model (``RDAM``, ``TwoStreamRDAM``, baselines).
        device: where to run.
        precision: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` autocast (``auto`` resolved once
            by :func:`rdam.runtime.resolve_precision`).
        channels_last: use NHWC convolution kernels (default: on with bf16 on CPU, where they
            are fastest).
        max_backbone_pixels: input pixels (frames x H x W) per backbone call, so that the
            peak memory does not grow with clips per batch or frames per clip (see
            ``ClipModel.set_max_backbone_pixels``); None: every frame of a batch in one call.
    """

    provides_relations = True

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        channels_last: bool | None = None,
        max_backbone_pixels: int | None = DEFAULT_BACKBONE_PIXELS,
    ) -> None:
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        if channels_last is None:
            channels_last = self.precision == "bf16" and self.device.type == "cpu"
        self.channels_last = bool(channels_last)
        self.model = model.eval().to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        for module in self.model.modules():
            if isinstance(module, ClipModel):
                module.set_max_backbone_pixels(max_backbone_pixels)
        self.two_stream = "faces" in tuple(getattr(model, "input_streams", ("frames",)))
        log.debug("model runs on %s under %s", self.device, self.precision)

    def _tensor(self, array: Array, dtype: torch.dtype | None = None) -> torch.Tensor:
        if not isinstance(array, torch.Tensor):
            array = np.asarray(array)
            if any(stride < 0 for stride in array.strides):  # a mirrored view
                array = np.ascontiguousarray(array)
        t = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
        if dtype is not None:
            t = t.to(dtype)
        return t.to(self.device, non_blocking=True)

    def __call__(self, inputs: Mapping[str, Array], relations: bool = False) -> ModelOutputs:
        kwargs: dict[str, Any] = {
            "frames": self._tensor(inputs["frames"]),
            "mask": self._tensor(inputs["mask"], torch.bool),
        }
        if self.two_stream:
            kwargs["faces"] = self._tensor(inputs["faces"])
            kwargs["face_mask"] = self._tensor(inputs["face_mask"], torch.bool)
        with torch.inference_mode(), autocast(self.precision, self.device):
            out = self.model(**kwargs, return_relations=relations)
            frame_logits = frame_logits_of(self.model, out, kwargs["mask"])

        def np32(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().float().cpu().numpy()

        return ModelOutputs(
            logits=np32(out.logits),
            frame_weights=np32(out.frame_weights),
            location_maps=np32(out.location_maps),
            relation_maps=np32(out.relation_maps) if relations else None,
            face_frame_weights=np32(getattr(out, "face_frame_weights", None)),
            frame_logits=np32(frame_logits),
        )


def frame_logits_of(model: Any, out: Any, mask: torch.Tensor) -> torch.Tensor | None:
    """``(B, K, C)`` float32 ``W f_i + b`` per frame of a model's output ``out``, NaN at masked
    frames; None for models whose video logits are no weighted mean of them (see
    ``ModelOutputs.frame_logits``). The torch runner and the ONNX export both take them here."""
    head = getattr(model, "forward_frame_logits", None)
    features = getattr(out, "frame_features", None)
    if head is None or features is None or getattr(out, "face_frame_weights", None) is not None:
        return None
    logits = head(features)
    if logits is None:
        return None
    return logits.float().masked_fill(~mask.to(torch.bool)[..., None], float("nan"))
