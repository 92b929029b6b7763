"""Clip-consistent training augmentation on torch tensors.

:class:`ClipTransform` works on uint8 clips ``(K, 3, H, W)`` and draws ONE set of augmentation
parameters per clip, applied to all its frames (a face must not jump between frames because each
frame got its own crop). :class:`BatchClipTransform` applies the same draws to whole batches
(training throughput: one batched pass in the main process instead of one per item in the
loader). Fitting decoded numpy frames to a square, before any tensor exists, is
:func:`rdam.data.frames.fit_frames`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
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


TEST_CROPS = (1, 5)
DEFAULT_CROP_FRACTION = 0.9


def test_crop(
    frames: torch.Tensor, which: int, fraction: float = DEFAULT_CROP_FRACTION
) -> torch.Tensor:
    """Crop ``which`` of the five test crops of a clip, resized back to its size: 0 the centre,
    1-4 the top-left, top-right, bottom-left and bottom-right corners, each a square of
    ``fraction`` of the frame's side (``(K, C, H, W)`` uint8 -> the same shape, bilinear with
    antialiasing). With the mirror of each, they are the ten-crop test of the FER2013 anchors
    (``../shared/docs/accuracy-anchors.md``); 0.9 of the side is 0.81 of the area, inside the
    training crops' ``scale`` (0.75-1 of the area in the shipped recipe)."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"the crop fraction must be in (0, 1], got {fraction}")
    if not 0 <= which < 5:
        raise ConfigError(f"test crop must be 0-4, got {which}")
    height, width = frames.shape[-2:]
    ch, cw = max(1, round(height * fraction)), max(1, round(width * fraction))
    tops = (
        ((height - ch) // 2, (width - cw) // 2),
        (0, 0),
        (0, width - cw),
        (height - ch, 0),
        (height - ch, width - cw),
    )
    top, left = tops[which]
    crop = frames[..., top : top + ch, left : left + cw].float()
    resized = torch.nn.functional.interpolate(
        crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.round().clamp(0, 255).to(frames.dtype)


def clip_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The torch generator that :class:`rdam.data.datasets.ClipDataset` gives item ``index``
    in ``epoch``: its draws depend only on ``(seed, epoch, index)``, so batched augmentation
    (:class:`BatchClipTransform`) draws exactly what the per-item transform would have."""
    seq = np.random.SeedSequence([int(seed), int(epoch), int(index)])
    return torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))


class BatchClipTransform:
    """:class:`ClipTransform`'s training augmentation applied to a whole batch at once.

    The parameters are drawn per clip by the same :meth:`ClipTransform.sample_params` (so the
    distribution of transforms is the per-clip one by construction) and applied with batched
    tensor operations in the per-clip order: resized crop (bilinear), horizontal flip, rotation
    about the centre (bilinear, zero fill), brightness, contrast, saturation, with the same
    rounding to uint8 after each step. Rotation and the colour steps follow torchvision's
    kernels and give the same pixels; the resized crop interpolates in float where
    torchvision's uint8 kernel uses fixed point, so a pixel may differ by one grey level
    (``tests/data/test_batch_transforms.py``). Crops larger than the output side (down-scaling,
    where torchvision anti-aliases) are resized per clip with torchvision.

    Args:
        transform: the per-clip training transform whose settings (size, scale, hflip,
            rotation, colour jitter) this applies.
    """

    def __init__(self, transform: ClipTransform) -> None:
        if not transform.train:
            raise ConfigError("BatchClipTransform applies a training ClipTransform (train=True)")
        self.transform = transform
        self.size = transform.size

    def __repr__(self) -> str:
        return f"BatchClipTransform({self.transform!r})"

    def sample_params(
        self, height: int, width: int, generators: Sequence[torch.Generator | None]
    ) -> list[ClipAugmentParams]:
        """One draw per clip, from its own generator."""
        return [self.transform.sample_params(height, width, g) for g in generators]

    def apply(self, clips: torch.Tensor, params: Sequence[ClipAugmentParams]) -> torch.Tensor:
        """Apply ``params[b]`` to every frame of clip ``b``: ``(B, K, 3, H, W)`` uint8 ->
        ``(B, K, 3, size, size)`` uint8."""
        if clips.ndim != 5 or clips.shape[2] != 3:
            raise ValueError(f"expected clips of shape (B, K, 3, H, W), got {tuple(clips.shape)}")
        if clips.dtype != torch.uint8:
            raise ValueError(f"expected uint8 clips, got {clips.dtype}")
        if len(params) != clips.shape[0]:
            raise ValueError(f"{len(params)} parameter draws for {clips.shape[0]} clips")
        b, k = clips.shape[:2]
        if b == 0 or k == 0:
            return clips.new_zeros((b, k, 3, self.size, self.size))
        x = self._resized_crop(clips, params)
        flip = torch.tensor([p.hflip for p in params], device=x.device)
        if bool(flip.any()):
            x = torch.where(flip.view(b, 1, 1, 1, 1), x.flip(-1), x)
        x = self._rotate(x, [p.angle for p in params])
        x = self._colour(x, params)
        return x.to(torch.uint8)

    def __call__(
        self, clips: torch.Tensor, generators: Sequence[torch.Generator | None]
    ) -> torch.Tensor:
        """Draw one parameter set per clip (``generators[b]``, e.g. :func:`clip_generator`)
        and apply it: ``(B, K, 3, H, W)`` uint8 -> ``(B, K, 3, size, size)`` uint8."""
        height, width = clips.shape[-2:]
        return self.apply(clips, self.sample_params(height, width, generators))

    # -- steps; each returns float tensors holding whole numbers in [0, 255] -----------------

    def _resized_crop(
        self, clips: torch.Tensor, params: Sequence[ClipAugmentParams]
    ) -> torch.Tensor:
        s = self.size
        crops = [p.crop for p in params]
        if any(h > s or w > s for _, _, h, w in crops):  # down-scaling: torchvision per clip
            return torch.stack(
                [
                    TF.resized_crop(c, *crop, [s, s], antialias=True)
                    for c, crop in zip(clips, crops, strict=True)
                ]
            ).float()
        b, k, c, height, width = clips.shape
        # torch's uint8 bilinear kernel (the one torchvision uses here), emulated exactly:
        # separable, along the width first, then the height; each pass sums int16 fixed-point
        # weights times pixels, rounds half up and clips to uint8. As matrix products: every
        # product and partial sum is a whole number below 2**24, exact in float32.
        mx, px = _fixed_point_matrix([(p[1], p[3]) for p in crops], width, s, clips.device)
        x = clips.float().view(b, k * c * height, width).bmm(mx)  # (B, KCH, s)
        x = _fixed_point_round(x, px.view(b, 1, 1)).view(b, k * c, height, s)
        my, py = _fixed_point_matrix([(p[0], p[2]) for p in crops], height, s, clips.device)
        x = my.transpose(1, 2).unsqueeze(1).matmul(x)  # (B, KC, s, s)
        return _fixed_point_round(x, py.view(b, 1, 1, 1)).view(b, k, c, s, s)

    def _rotate(self, x: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
        """torchvision's ``rotate(bilinear, expand=False, fill=None)`` per clip, batched."""
        if all(a % 360 == 0 for a in angles):
            return x
        b, k, c, h, w = x.shape
        theta = []
        for angle in angles:
            # torchvision: _get_inverse_affine_matrix(center=0, -(angle % 360), no shear/scale)
            rot = math.radians(-(angle % 360))
            theta.append([math.cos(rot), math.sin(rot), 0.0, -math.sin(rot), math.cos(rot), 0.0])
        theta_t = torch.tensor(theta, dtype=torch.float32, device=x.device).view(b, 2, 3)
        # torchvision's _affine_grid, one theta per clip
        base = torch.empty(1, h, w, 3, dtype=torch.float32, device=x.device)
        base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w))
        base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h)[:, None])
        base[..., 2].fill_(1)
        scale = torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32, device=x.device)
        rescaled = theta_t.transpose(1, 2).div(scale)  # (B, 3, 2)
        grid = base.view(1, h * w, 3).expand(b, -1, -1).bmm(rescaled).view(b, 1, h, w, 2)
        grid = grid.expand(b, k, h, w, 2).reshape(b * k, h, w, 2)
        out = F.grid_sample(
            x.reshape(b * k, c, h, w),
            grid,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        out = out.round_().view(b, k, c, h, w)
        still = torch.tensor([a % 360 == 0 for a in angles], device=x.device)
        return torch.where(still.view(b, 1, 1, 1, 1), x, out) if bool(still.any()) else out

    @staticmethod
    def _grey(x: torch.Tensor) -> torch.Tensor:
        r, g, b = x.unbind(dim=-3)
        return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()

    def _colour(self, x: torch.Tensor, params: Sequence[ClipAugmentParams]) -> torch.Tensor:
        """brightness, contrast, saturation as torchvision's uint8 kernels: blend, clamp to
        [0, 255], truncate to a whole number; contrast blends with each frame's mean grey."""
        n = x.shape[0]

        def factors(name: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
            values = [float(getattr(p, name)) for p in params]
            f = torch.tensor(values, dtype=torch.float32, device=x.device).view(n, 1, 1, 1, 1)
            rest = torch.tensor([1.0 - v for v in values], dtype=torch.float32, device=x.device)
            return f, rest.view(n, 1, 1, 1, 1), any(v != 1.0 for v in values)

        f, _, active = factors("brightness")
        if active:
            x = x.mul(f).clamp_(0, 255).trunc_()
        f, rest, active = factors("contrast")
        if active:
            mean = self._grey(x).mean(dim=(-3, -2, -1), keepdim=True)
            x = x.mul(f).add_(mean.mul(rest)).clamp_(0, 255).trunc_()
        f, rest, active = factors("saturation")
        if active:
            x = x.mul(f).add_(self._grey(x).mul(rest)).clamp_(0, 255).trunc_()
        return x


def _fixed_point_matrix(
    spans: Sequence[tuple[int, int]], in_size: int, size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's uint8 antialiased bilinear resize (``compute_index_ranges_int16_weights``) of
    ``spans[b] = (start, length)`` of an axis of ``in_size`` pixels to ``size`` samples,
    up-scaling only, as matrices of int16 weights ``(B, in_size, size)`` (float32) and each
    span's weight precision in bits ``(B,)``."""
    span = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    start, length = span[:, 0, None, None], span[:, 1, None, None]  # (B, 1, 1)
    i = np.arange(size, dtype=np.float64)[None, :, None]
    center = (length / size) * (i + 0.5)  # scale <= 1 (up-scaling): support 1, two taps
    xmin = np.maximum(np.trunc(center - 1.0 + 0.5), 0.0)
    xmax = np.minimum(np.trunc(center + 1.0 + 0.5), length)  # exclusive
    pos = xmin + np.arange(2, dtype=np.float64)[None, None, :]  # (B, size, 2)
    w = np.where(pos < xmax, np.maximum(0.0, 1.0 - np.abs(pos - center + 0.5)), 0.0)
    w = w / w.sum(axis=2, keepdims=True)
    wt_max = w.max(axis=(1, 2))[:, None]
    # the most bits (< 22) for which the largest weight still fits int16 with one bit to spare
    bits = 2.0 ** (np.arange(22, dtype=np.float64)[None, :] + 1)
    precision = (np.trunc(0.5 + wt_max * bits) < (1 << 15)).sum(axis=1).astype(np.float64)
    weight = np.trunc(0.5 + w * np.exp2(precision)[:, None, None])
    index = (start + np.minimum(pos, length - 1)).astype(np.int64)  # (B, size, 2)
    matrix = torch.zeros((len(span), size, in_size), dtype=torch.float32)
    matrix.scatter_add_(2, torch.from_numpy(index), torch.from_numpy(weight).float())
    return (
        matrix.transpose(1, 2).to(device),
        torch.from_numpy(precision).to(device, torch.float32),
    )


def _fixed_point_round(sums: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """``clip((sums + 2**(p-1)) >> p, 0, 255)`` on whole-number sums."""
    unit = torch.exp2(precision)
    return sums.add(unit / 2).div_(unit).floor_().clamp_(0, 255)
