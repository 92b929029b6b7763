"""Regularisers of the training step, on a collated batch: random erasing (Zhong et al., 2020)
and mixup (Zhang et al., 2018). These are two levers of the FER2013 anchors
(``../shared/docs/accuracy-anchors.md``), set by ``optim.random_erasing`` and
``optim.mixup_alpha``.

Both act on the batch the loader gives, whichever input path made it (per item, or batched in
memory), so there is one copy of each. The draws come from torch's global generator, which an
exact resume restores (:mod:`rdam.training.resume`), so a resumed run draws what an
uninterrupted one does.

Shapes: frames ``(B, K, C, H, W)``, uint8 ``0..255`` or float ``[0, 1]`` (the model takes
either); targets ``(B, n_classes)`` probability rows.
"""

from __future__ import annotations

import math

import torch


def random_erasing(
    frames: torch.Tensor,
    p: float,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """With probability ``p`` per clip, one rectangle of ``scale`` of the frame's area and
    aspect ratio in ``ratio`` (log-uniform), the same on every frame of the clip (a clip stays
    consistent, as the clip transforms keep it), is filled with the clip's mean colour. This is
    torchvision's ``RandomErasing`` with ``value=0`` on normalised frames, but per clip. Returns
    a new tensor of the same dtype."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"random erasing probability must be in [0, 1], got {p}")
    out = frames.clone()
    if p == 0.0:
        return out
    b, _, _, height, width = frames.shape
    area = height * width
    for i in torch.nonzero(torch.rand(b) < p).flatten().tolist():
        for _ in range(10):  # torchvision's number of tries for a rectangle that fits
            target = area * float(torch.empty(1).uniform_(*scale))
            aspect = math.exp(
                float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1])))
            )
            h = round(math.sqrt(target * aspect))
            w = round(math.sqrt(target / aspect))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (1,)))
                left = int(torch.randint(0, width - w + 1, (1,)))
                mean = frames[i].float().mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
                fill = mean.round() if frames.dtype == torch.uint8 else mean
                out[i, :, :, top : top + h, left : left + w] = fill.to(frames.dtype)
                break
    return out


def mixup(
    streams: dict[str, torch.Tensor], targets: torch.Tensor, alpha: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor, float]:
    """Mix each clip with another of the batch (one random permutation for every input stream,
    e.g. ``frames`` and ``faces``): ``λ x + (1 - λ) x'`` and ``λ y + (1 - λ) y'`` with one
    ``λ ~ Beta(α, α)`` per batch. Frames come back as float in ``[0, 1]``. Returns
    ``(streams, targets, λ)``."""
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(targets.shape[0]).to(targets.device)
    mixed = {}
    for name, frames in streams.items():
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        mixed[name] = lam * x + (1.0 - lam) * x[perm]
    return mixed, lam * targets + (1.0 - lam) * targets[perm], lam


__all__ = ["mixup", "random_erasing"]
