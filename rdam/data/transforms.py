"""Clip-consistent training augmentation on torch tensors.

:class:`ClipTransform` works on uint8 clips ``(K, 3, H, W)`` and draws ONE set of augmentation
parameters per clip, applied to all its frames (a face must not jump between frames because each
frame got its own crop). Fitting decoded numpy frames to a square, before any tensor exists, is
:func:`rdam.data.frames.fit_frames`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from rdam.errors import ConfigError


@dataclass(frozen=True)
class ClipAugmentParams:
    """One draw of augmentation parameters, shared by all frames of a clip.

    ``crop`` is ``(top, left, height, width)`` in input pixels.
    """

    crop: tuple[int, int, int, int]
    hflip: bool
    angle: float
    brightness: float
    contrast: float
    saturation: float


class ClipTransform:
    """Clip-consistent augmentation of uint8 clips ``(K, 3, H, W) -> (K, 3, size, size)``.

    Training: random resized crop (area fraction ``scale``, aspect ratio 3/4..4/3), horizontal
    flip with probability ``hflip``, rotation uniformly in ``±rotation_deg``, brightness,
    contrast and saturation factors uniformly in ``1 ± color_jitter``; one parameter draw per
    clip. Evaluation: resize the shorter side to ``size`` and crop the centre (a square input is
    just resized). The output stays uint8; the model normalises internally.

    Args:
        size: output side.
        train: augment (True) or the deterministic evaluation transform (False).
        scale: range of the crop's area as a fraction of the frame.
        hflip: probability of a horizontal flip.
        rotation_deg: maximum absolute rotation in degrees.
        color_jitter: maximum relative change of brightness, contrast and saturation.
    """

    def __init__(
        self,
        size: int,
        train: bool,
        scale: tuple[float, float] = (0.8, 1.0),
        hflip: float = 0.5,
        rotation_deg: float = 10.0,
        color_jitter: float = 0.2,
    ) -> None:
        if size < 1:
            raise ConfigError(f"transform size must be >= 1, got {size}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ConfigError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
        if not 0.0 <= hflip <= 1.0:
            raise ConfigError(f"hflip probability must be in [0, 1], got {hflip}")
        if rotation_deg < 0 or not 0.0 <= color_jitter < 1.0:
            raise ConfigError(
                f"rotation_deg must be >= 0 and color_jitter in [0, 1), got "
                f"{rotation_deg}, {color_jitter}"
            )
        self.size = int(size)
        self.train = bool(train)
        self.scale = (float(scale[0]), float(scale[1]))
        self.hflip = float(hflip)
        self.rotation_deg = float(rotation_deg)
        self.color_jitter = float(color_jitter)

    def __repr__(self) -> str:
        return (
            f"ClipTransform(size={self.size}, train={self.train}, scale={self.scale}, "
            f"hflip={self.hflip}, rotation_deg={self.rotation_deg}, "
            f"color_jitter={self.color_jitter})"
        )

    def sample_params(
        self, height: int, width: int, generator: torch.Generator | None = None
    ) -> ClipAugmentParams:
        """Draw one set of training parameters for a clip of ``height x width`` frames."""

        def uniform(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=generator))

        area = height * width
        crop = (0, 0, height, width)
        for _ in range(10):
            target = area * uniform(*self.scale)
            ratio = math.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
            w = round(math.sqrt(target * ratio))
            h = round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                crop = (top, left, h, w)
                break
        else:  # fall back to the largest centred square-ish crop of the lowest scale
            side = min(height, width, round(math.sqrt(area * self.scale[0])))
            crop = ((height - side) // 2, (width - side) // 2, side, side)
        cj = self.color_jitter
        return ClipAugmentParams(
            crop=crop,
            hflip=bool(float(torch.rand((), generator=generator)) < self.hflip),
            angle=uniform(-self.rotation_deg, self.rotation_deg),
            brightness=uniform(1 - cj, 1 + cj),
            contrast=uniform(1 - cj, 1 + cj),
            saturation=uniform(1 - cj, 1 + cj),
        )

    def apply(self, clip: torch.Tensor, params: ClipAugmentParams) -> torch.Tensor:
        """Apply one parameter draw to every frame of ``clip`` ``(K, 3, H, W)`` uint8."""
        top, left, h, w = params.crop
        out = TF.resized_crop(clip, top, left, h, w, [self.size, self.size], antialias=True)
        if params.hflip:
            out = TF.horizontal_flip(out)
        if params.angle != 0.0:
            out = TF.rotate(out, params.angle, interpolation=TF.InterpolationMode.BILINEAR)
        if params.brightness != 1.0:
            out = TF.adjust_brightness(out, params.brightness)
        if params.contrast != 1.0:
            out = TF.adjust_contrast(out, params.contrast)
        if params.saturation != 1.0:
            out = TF.adjust_saturation(out, params.saturation)
        return out

    def __call__(
        self, clip: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Transform a clip.

        Args:
            clip: ``(K, 3, H, W)`` uint8.
            generator: source of randomness (training only); the global torch RNG if None.

        Returns:
            ``(K, 3, size, size)`` uint8.
        """
        if clip.ndim != 4 or clip.shape[1] != 3:
            raise ValueError(f"expected a clip of shape (K, 3, H, W), got {tuple(clip.shape)}")
        if clip.dtype != torch.uint8:
            raise ValueError(f"expected a uint8 clip, got {clip.dtype}")
        if clip.shape[0] == 0:
            return clip.new_zeros((0, 3, self.size, self.size))
        height, width = clip.shape[-2:]
        if self.train:
            return self.apply(clip, self.sample_params(height, width, generator)).contiguous()
        short = min(height, width)
        if (height, width) != (self.size, self.size):
            if height != width:
                clip = TF.center_crop(clip, [short, short])
            clip = TF.resize(clip, [self.size, self.size], antialias=True)
        return clip.contiguous()
