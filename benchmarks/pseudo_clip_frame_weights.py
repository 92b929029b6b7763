"""Can pseudo-clips of still faces teach frame attention (Eq. 9-11)? (docs/benchmarks.md, figure 16)

    .venv/bin/python -m benchmarks.pseudo_clip_frame_weights \
        --out benchmarks/results/pseudo_clip_frame_weights.json --save-model /tmp/fw_model.safetensors


A model trained on still faces (FER2013) never learns its frame weights: a weighted mean of one
frame is that frame, so ``W^g`` of Eq. 10 gets no gradient and, on a video, every face frame gets
about the same ``alpha``. This module learns ``W^g`` alone, everything else frozen, from clips
composed of the training images:

1. Every image of the training and validation splits goes once through the frozen model (eval
   mode, under its own clip spec and precision), as it is and once degraded
   (:data:`DEGRADATIONS`: blurred, low resolution, half occluded, or dark and noisy), giving the
   frame features ``f`` of Eq. 8 (:class:`FrameBank`).
2. A **pseudo-clip** of label ``y`` has ``K`` frames (the model's ``num_frames``): ``n`` images
   of class ``y``, ``n`` uniform in ``1..K``, and ``K - n`` images of the neutral class (the
   onset and offset of an expression); a clip of the neutral class has ``K`` neutral images.
   Each frame is its degraded version with probability ``degrade_prob``; the frames are
   shuffled (:func:`compose_pseudo_clips`).
3. ``W^g`` is trained with cross-entropy of the frozen classifier on ``F_V`` (Eq. 11). The
   backbone, region attention and classifier are untouched, so the model's answer on any one
   frame (any single image) is unchanged: :func:`fit_frame_weights` checks it.
4. Pseudo-clips of images that ``W^g`` did not see (a fixed draw) score the learned ``alpha``
   against the average (every frame weighs the same) and against knowing which frames are of
   the clip's class (``accuracy_expressive_only``, the best a weighting can do).

Two fits: on the training images (which the frozen model was trained on, so their features are
easier than unseen faces') scored on the validation images, and on half of the validation
images scored on the other half. Three recipes: ``min_expressive`` 1 (a clip may show its
expression in one frame), 8, and 16 (no neutral frames: only the degradations differ).

It is not the paper's end-to-end training on emotion videos (there are none here), and the
shipped model does not use it: the figure says why.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from rdam.checkpoint import FRAME_WEIGHTS_KEY, load_bundle, save_model
from rdam.data.datasets import ClipDataset
from rdam.data.manifest import Manifest
from rdam.errors import ConfigError
from rdam.models.temporal import FrameAttentionFusion, attention_pool

log = logging.getLogger(__name__)

DEGRADATIONS = ("blur", "low_resolution", "occlusion", "dark")


@dataclass(frozen=True)
class PseudoClipRecipe:
    """How pseudo-clips are composed (module doc, step 2)."""

    num_frames: int = 16
    neutral_class: str = "neutral"
    degrade_prob: float = 0.25
    min_expressive: int = 1
    """The fewest frames of the clip's own class; ``num_frames``: no neutral frames at all, so
    only the degradations tell the frames apart."""

    def __post_init__(self) -> None:
        if self.num_frames < 2:
            raise ConfigError(f"pseudo-clips need at least 2 frames, got {self.num_frames}")
        if not 1 <= self.min_expressive <= self.num_frames:
            raise ConfigError(
                f"min_expressive must be in 1..{self.num_frames}, got {self.min_expressive}"
            )
        if not 0.0 <= self.degrade_prob <= 1.0:
            raise ConfigError(f"degrade_prob must be in [0, 1], got {self.degrade_prob}")


@dataclass(frozen=True)
class FitSettings:
    """The optimisation of ``W^g`` (module doc, step 3) and the size of the validation draw."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_clips: int = 4000

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.val_clips < 1:
            raise ConfigError(f"steps, batch_size and val_clips must be >= 1: {self}")


@dataclass
class FrameBank:
    """Frame features of a split's images: ``clean`` and ``degraded`` ``(N, D)`` float32,
    ``labels`` ``(N,)`` model class indices."""

    clean: torch.Tensor
    degraded: torch.Tensor
    labels: torch.Tensor


@dataclass
class PseudoClips:
    """``B`` pseudo-clips of ``K`` frames: ``image`` ``(B, K)`` bank indices, ``degraded`` and
    ``expressive`` ``(B, K)`` bool (a frame of the clip's own class), ``label`` ``(B,)``."""

    image: torch.Tensor
    degraded: torch.Tensor
    expressive: torch.Tensor
    label: torch.Tensor

    def features(self, bank: FrameBank) -> torch.Tensor:
        """``(B, K, D)`` frame features of the clips."""
        return torch.where(
            self.degraded.unsqueeze(-1), bank.degraded[self.image], bank.clean[self.image]
        )


def degrade_frames(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of :data:`DEGRADATIONS` per frame, drawn from ``generator``.

    Shapes:
        frames ``(N, C, S, S)`` uint8 -> ``(N, C, S, S)`` uint8.
    """
    out = frames.clone()
    n, _, size, _ = frames.shape
    kinds = torch.randint(len(DEGRADATIONS), (n,), generator=generator)
    for i in range(n):
        kind = DEGRADATIONS[int(kinds[i])]
        u = torch.rand(4, generator=generator)
        frame = frames[i].float()
        if kind == "blur":  # sigma 1.5-3 px at 48 px
            sigma = float(1.5 + 1.5 * u[0]) * size / 48
            kernel = 2 * math.ceil(2 * sigma) + 1
            frame = TF.gaussian_blur(frame, [kernel, kernel], [sigma, sigma])
        elif kind == "low_resolution":  # 1/6 to 1/3 of the side, then back up
            small = max(4, round(size * float(1 / 6 + u[0] / 6)))
            frame = F.interpolate(frame[None], size=small, mode="area")
            frame = F.interpolate(frame, size=size, mode="bilinear", align_corners=False)[0]
        elif kind == "occlusion":  # a block of 30-50 % of the face, a flat grey level
            side = round(size * math.sqrt(0.3 + 0.2 * float(u[0])))
            top = int(u[1] * (size - side + 1))
            left = int(u[2] * (size - side + 1))
            frame[:, top : top + side, left : left + side] = 255.0 * float(u[3])
        else:  # dark: 20-40 % of the light, with sensor noise
            noise = torch.randn(frame.shape, generator=generator) * 6.0
            frame = frame * float(0.2 + 0.2 * u[0]) + noise
        out[i] = frame.round().clamp(0, 255).to(torch.uint8)
    return out


@torch.no_grad()
def encode_frames(
    model: nn.Module,
    dataset: ClipDataset,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    precision_context: Any = None,
    seed: int = 0,
) -> FrameBank:
    """The frame features ``f`` (Eq. 8) of every one-frame clip of ``dataset``, clean and
    degraded (module doc, step 1), through the frozen ``model`` in eval mode.

    ``labels``: the model class of each item. ``precision_context``: a callable giving the
    autocast context the model predicts under (None: float32).
    """
    from torch.utils.data import DataLoader

    from rdam.data.datasets import collate_clips

    model.eval()
    generator = torch.Generator().manual_seed(seed)
    clean, degraded = [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_clips)
    for batch in loader:
        frames = batch["frames"]
        if frames.shape[1] != 1:
            raise ConfigError(
                f"pseudo-clips are made of single images; the data set has clips of "
                f"{frames.shape[1]} frames (use a folder of face images, such as FER2013)"
            )
        frames = frames[:, 0]
        for store, images in ((clean, frames), (degraded, degrade_frames(frames, generator))):
            with precision_context() if precision_context else contextlib.nullcontext():
                out = model.forward_features(images[:, None])
            store.append(out.frame_features[:, 0].float())
    return FrameBank(torch.cat(clean), torch.cat(degraded), labels)


def compose_pseudo_clips(
    labels: torch.Tensor,
    neutral: int,
    recipe: PseudoClipRecipe,
    count: int,
    generator: torch.Generator,
) -> PseudoClips:
    """``count`` pseudo-clips of the images with ``labels`` (module doc, step 2): the label of
    a clip is that of a uniformly drawn image (the data set's class frequencies).

    Raises:
        ConfigError: no image of the neutral class.
    """
    k = recipe.num_frames
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    pools = [torch.nonzero(labels == c).flatten() for c in range(max(num_classes, neutral + 1))]
    if len(pools[neutral]) == 0:
        raise ConfigError(f"no image of the neutral class (index {neutral}) to compose clips from")
    sizes = torch.tensor([len(p) for p in pools])
    starts = torch.cumsum(sizes, 0) - sizes
    flat = torch.cat(pools)
    label = labels[torch.randint(len(labels), (count,), generator=generator)]
    # n expressive frames, uniform in min_expressive..K (all K for the neutral class)
    n = torch.randint(recipe.min_expressive, k + 1, (count,), generator=generator)
    n = torch.where(label == neutral, torch.full_like(n, k), n)
    order = torch.rand((count, k), generator=generator).argsort(dim=1)  # shuffled positions
    expressive = order < n[:, None]
    cls = torch.where(expressive, label[:, None], torch.full_like(order, neutral))
    pick = (torch.rand((count, k), generator=generator) * sizes[cls]).long()
    image = flat[starts[cls] + pick]
    degraded = torch.rand((count, k), generator=generator) < recipe.degrade_prob
    return PseudoClips(image, degraded, expressive & (label[:, None] != neutral), label)


def clip_logits(
    model: nn.Module, features: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video logits of frame features ``(B, K, D)`` with the model's frame attention, or with
    given ``weights`` ``(B, K)``: ``(logits (B, C), alpha (B, K))``."""
    if weights is None:
        video, weights = model.temporal(features)
    else:
        video = attention_pool(features, weights)
    return model.forward_head(video), weights


@torch.no_grad()
def score_pseudo_clips(model: nn.Module, bank: FrameBank, clips: PseudoClips) -> dict[str, Any]:
    """Accuracy of the model's ``alpha`` on ``clips``, against the average, and the mean
    ``alpha`` of each kind of frame (of clips that are not neutral)."""
    features = clips.features(bank)
    logits, alpha = clip_logits(model, features)
    average, _ = clip_logits(model, features, torch.ones(alpha.shape))
    not_neutral = clips.expressive.any(dim=1)
    # the best a frame weighting could know: only the frames of the clip's own class count
    only = torch.where(not_neutral[:, None], clips.expressive.float(), torch.ones(alpha.shape))
    oracle, _ = clip_logits(model, features, only)

    def accuracy(x: torch.Tensor) -> float:
        return float((x.argmax(1) == clips.label).float().mean())

    def mean_alpha(where: torch.Tensor) -> float | None:
        where = where & not_neutral[:, None]
        return float(alpha[where].mean()) if bool(where.any()) else None

    effective = alpha.sum(1) ** 2 / (alpha**2).sum(1).clamp_min(1e-12)  # (sum a)^2 / sum a^2
    return {
        "clips": len(clips.label),
        "effective_frames": float(effective.mean()),
        "accuracy": accuracy(logits),
        "accuracy_average": accuracy(average),
        "accuracy_expressive_only": accuracy(oracle),
        "alpha": {
            "expressive_clean": mean_alpha(clips.expressive & ~clips.degraded),
            "expressive_degraded": mean_alpha(clips.expressive & clips.degraded),
            "neutral_clean": mean_alpha(~clips.expressive & ~clips.degraded),
            "neutral_degraded": mean_alpha(~clips.expressive & clips.degraded),
        },
    }


def fit_frame_attention(
    model: nn.Module,
    train: FrameBank,
    val: FrameBank,
    neutral: int,
    recipe: PseudoClipRecipe,
    settings: FitSettings,
) -> dict[str, Any]:
    """Train ``model.temporal`` (``W^g``) alone on pseudo-clips of ``train``; score on a fixed
    draw of ``val`` before and after. Changes ``model`` in place; returns the report."""
    temporal = model.temporal
    if not isinstance(temporal, FrameAttentionFusion):
        raise ConfigError(
            f"the model fuses frames with {type(temporal).__name__}; only frame attention "
            "(model.temporal: attention) has frame weights to learn"
        )
    model.eval()  # frozen batch-norm statistics and no dropout: f is what prediction sees
    val_clips = compose_pseudo_clips(
        val.labels, neutral, recipe, settings.val_clips, torch.Generator().manual_seed(1)
    )
    before = score_pseudo_clips(model, val, val_clips)
    params = list(temporal.parameters())
    frozen = [p for p in model.parameters() if all(p is not q for q in params)]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps)
    generator = torch.Generator().manual_seed(settings.seed)
    start, losses = time.perf_counter(), []
    try:
        for step in range(settings.steps):
            clips = compose_pseudo_clips(
                train.labels, neutral, recipe, settings.batch_size, generator
            )
            logits, _ = clip_logits(model, clips.features(train))
            loss = F.cross_entropy(logits, clips.label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if (step + 1) % max(1, settings.steps // 10) == 0:
                log.info(
                    "frame weights: step %d/%d, loss %.4f",
                    step + 1,
                    settings.steps,
                    sum(losses[-100:]) / len(losses[-100:]),
                )
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {
        "val_before": before,
        "val_after": score_pseudo_clips(model, val, val_clips),
        "train_loss_first_100": sum(losses[:100]) / len(losses[:100]),
        "train_loss_last_100": sum(losses[-100:]) / len(losses[-100:]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def class_indices(manifest: Manifest, class_names: list[str]) -> torch.Tensor:
    """The model class of each record of ``manifest``, matched by name (case-insensitive).

    Raises:
        ConfigError: a data class the model does not have, or an unlabelled record.
    """
    lower = {name.lower(): i for i, name in enumerate(class_names)}
    missing = [c for c in manifest.class_names if c.lower() not in lower]
    if missing:
        raise ConfigError(
            f"the data set has classes {missing} that the model (classes {class_names}) does "
            "not have; pseudo-clips need images of the model's own classes"
        )
    out = []
    for record in manifest.records:
        if record.label is None:
            raise ConfigError(f"{record.path} has no label; pseudo-clips need labelled images")
        out.append(lower[manifest.class_names[record.label].lower()])
    return torch.tensor(out, dtype=torch.long)


def recipe_record(recipe: PseudoClipRecipe, settings: FitSettings) -> dict[str, Any]:
    """The recipe and settings as the model file records them."""
    return {"recipe": asdict(recipe), "settings": asdict(settings), "degradations": DEGRADATIONS}


@torch.no_grad()
def _single_image_check(
    original: nn.Module, fitted: nn.Module, part: Manifest, spec: Any, count: int = 512
) -> dict[str, Any]:
    """The logits of up to ``count`` single images, before and after: Eq. 11 of one frame is
    that frame whatever its ``alpha``, so only float rounding may differ.

    Raises:
        ConfigError: some top-1 class changed (the fit touched more than ``W^g``).
    """
    from torch.utils.data import DataLoader, Subset

    from rdam.data.datasets import collate_clips

    dataset = ClipDataset(part, spec, mode="center")
    subset = Subset(dataset, range(min(count, len(dataset))))
    largest, same = 0.0, True
    for batch in DataLoader(subset, batch_size=128, collate_fn=collate_clips):
        a = original(batch["frames"], batch["mask"]).logits
        b = fitted(batch["frames"], batch["mask"]).logits
        largest = max(largest, float((a - b).abs().max()))
        same = same and bool((a.argmax(1) == b.argmax(1)).all())
    if not same or largest > 1e-3:
        raise ConfigError(
            f"fitting the frame weights changed single-image logits by up to {largest:.3g}; "
            "only W^g of Eq. 10 may change"
        )
    return {"images": len(subset), "max_abs_logit_change": largest, "top1_unchanged": same}


def subset(bank: FrameBank, index: torch.Tensor) -> FrameBank:
    """The images ``index`` of ``bank``."""
    return FrameBank(bank.clean[index], bank.degraded[index], bank.labels[index])


def run(
    model_path: str | None,
    data: Path,
    settings: FitSettings,
    save_model_to: Path | None = None,
    degrade_prob: float = 0.25,
) -> dict[str, Any]:
    """Encode FER2013 once, then every fit of the module doc; the val-half fit with
    ``min_expressive`` 1 is written to ``save_model_to`` (to look at it on videos)."""
    from rdam.data.layouts import load_manifest
    from rdam.runtime.precision import autocast, resolve_precision

    bundle = load_bundle(model_path)
    lower = [c.lower() for c in bundle.class_names]
    neutral = lower.index("neutral")
    manifest = load_manifest(str(data))
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    banks, seconds = {}, {}
    for seed, split in enumerate(("train", "val")):
        part = manifest.split(split)
        start = time.perf_counter()
        banks[split] = encode_frames(
            bundle.model,
            ClipDataset(part, bundle.spec, mode="center"),
            class_indices(part, bundle.class_names),
            precision_context=lambda: autocast(precision, device),
            seed=settings.seed + seed,
        )
        seconds[split] = round(time.perf_counter() - start, 1)
    n = len(banks["val"].labels)
    half = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed))
    val_a, val_b = subset(banks["val"], half[: n // 2]), subset(banks["val"], half[n // 2 :])
    fits = []
    for fit_on, fit_bank, score_on, score_bank in (
        ("train", banks["train"], "val", banks["val"]),
        ("val half A", val_a, "val half B", val_b),
    ):
        for min_expressive in (1, 8, bundle.spec.num_frames):
            recipe = PseudoClipRecipe(
                bundle.spec.num_frames, bundle.class_names[neutral], degrade_prob, min_expressive
            )
            model = copy.deepcopy(bundle.model)
            report = fit_frame_attention(model, fit_bank, score_bank, neutral, recipe, settings)
            report["single_image"] = _single_image_check(
                bundle.model, model, manifest.split("val"), bundle.spec
            )
            fits.append(
                {
                    "fit_on": fit_on,
                    "score_on": score_on,
                    **recipe_record(recipe, settings),
                    **report,
                }
            )
            log.info("%s, min_expressive %d: %s", fit_on, min_expressive, report["val_after"])
            if save_model_to and fit_on != "train" and min_expressive == 1:
                metadata = {k: v for k, v in bundle.metadata.items() if k != "path"}
                metadata[FRAME_WEIGHTS_KEY] = True
                save_model(
                    save_model_to, model, bundle.config, bundle.class_names, bundle.spec, metadata
                )
    return {
        "model": Path(bundle.metadata["path"]).name,
        "data": str(data),
        "precision": precision,
        "images": {k: len(v.labels) for k, v in banks.items()},
        "encode_seconds": seconds,
        "fits": fits,
    }


def on_videos(fitted: Path, videos: list[Path]) -> list[dict[str, Any]]:
    """``rdam predict`` of each video with the shipped model and with ``fitted``: label, its
    probability and the effective number of frames ``(sum a)^2 / sum a^2`` (16 = all alike)."""
    import numpy as np

    from rdam.inference.loading import load

    answers = {
        name: load(path).predict_many([str(v) for v in videos])
        for name, path in (("shipped", None), ("pseudo_clip_fit", fitted))
    }
    rows = []
    for i, video in enumerate(videos):
        row: dict[str, Any] = {"video": video.name}
        for name, predictions in answers.items():
            p = predictions[i]
            if p.label is None:
                row[name] = {"error_type": p.error_type}
                continue
            w = np.asarray(p.frame_weights, dtype=np.float64)
            row[name] = {
                "label": p.label,
                "probability": round(float(p.probabilities[p.label]), 3),
                "effective_frames": round(float(w.sum() ** 2 / (w**2).sum()), 2),
                "largest_share": round(float(w.max() / w.sum()), 3),
            }
        rows.append(row)
    return rows


def main() -> None:
    import argparse

    from benchmarks.common import ekman6_videos, fer2013_root, machine_info, write_json
    from rdam.threads import set_cpu_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=None, help="FER2013 (default: shared data)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--save-model",
        type=Path,
        help="write the val-half fit with min_expressive 1 here and predict the Ekman-6 "
        "samples with it and with the shipped model",
    )
    parser.add_argument("--steps", type=int, default=FitSettings.steps)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    set_cpu_threads(args.threads)
    result = run(
        args.model, args.data or fer2013_root(), FitSettings(steps=args.steps), args.save_model
    )
    if args.save_model:
        result["videos"] = on_videos(args.save_model, ekman6_videos())
    result["machine"] = machine_info()
    result["threads"] = args.threads
    write_json(result, args.out)


if __name__ == "__main__":
    main()
