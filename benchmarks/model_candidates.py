"""Figure 14: what a larger face model would cost, before training one (issue "A stronger
default model": a larger backbone is fine if ``rdam predict`` on a video stays within 2x of
today's time per video).

Each candidate is the shipped model's layout (RDAM face stream: timm backbone at output stride
8, dual head, frame attention, K = 16 grey faces; its model config and clip spec read from the
shipped file) with another backbone and/or face size, as an untrained model file: speed does not depend on the weights. Two costs per
candidate:

- **predict**: warm seconds per Ekman-6 sample video of ``Predictor.predict_many([video])``
  (:func:`rdam.load`'s defaults, as ``rdam predict``: decoding, YuNet, crops, the model),
  the candidates timed round-robin video by video so that load drifts hit all of them; the
  figure is the ratio of the summed medians to today's layout;
- **train**: images/s of one training step (forward + backward + AdamW, bf16 autocast,
  channels_last, batch 64 one-frame clips, as the FER2013 recipe trains), also round-robin.
  It says what a 30-epoch run on 28,709 faces costs on this machine.

    nice -n 10 .venv/bin/python -m benchmarks.model_candidates --out benchmarks/results/model_candidates.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FER2013_CLASSES,
    ekman6_videos,
    figure_result,
    interleaved_times,
    machine_info,
    write_json,
)

# name -> (timm backbone, face size in px); the first is today's shipped layout
CANDIDATES: dict[str, tuple[str, int]] = {
    "resnet10t_48": ("resnet10t", 48),
    "resnet10t_96": ("resnet10t", 96),
    "resnet18_48": ("resnet18", 48),
    "resnet18_96": ("resnet18", 96),
    "resnet26t_48": ("resnet26t", 48),
}


def candidate_file(backbone: str, frame_size: int) -> Path:
    """An untrained model file of the shipped layout with ``backbone`` and ``frame_size``: the
    shipped file's model config and clip spec otherwise, read from it (no copy to drift)."""
    from dataclasses import replace

    from benchmarks.memory import untrained_model_file
    from rdam.checkpoint import load_bundle
    from rdam.inference import default_model_path

    shipped = load_bundle(default_model_path())
    config = replace(shipped.config, backbone=backbone, weights="none")
    spec = shipped.spec.replace(frame_size=frame_size)
    return untrained_model_file(
        f"face_{backbone}_{frame_size}px_untrained", config, list(shipped.class_names), spec
    )


def _train_step(bundle: Any, batch: int) -> tuple[Any, int]:
    """A zero-argument training step of ``bundle``'s model on random one-frame clips of its face
    size, and the model's parameter count."""
    import torch

    model = bundle.model.train().to(memory_format=torch.channels_last)
    size = bundle.spec.frame_size
    channels = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(batch, 1, channels, size, size, generator=g)
    mask = torch.ones(batch, 1, dtype=torch.bool)
    labels = torch.randint(0, len(FER2013_CLASSES), (batch,), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(frames, mask).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def model_candidates(
    names: list[str] | None = None,
    repeats: int = 3,
    train_steps: int = 5,
    batch: int = 64,
    max_videos: int | None = None,
    files: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Figure 14 (see the module notes): per candidate the predict seconds per Ekman-6 video and
    the training images/s, and their ratios to today's layout (the first candidate).
    ``max_videos``: the first videos only (a smoke run). ``files``: name -> model file, to time
    trained models instead (the shipped model against a new one; the first is "today")."""
    from rdam.checkpoint import load_bundle
    from rdam.inference import load

    if files is None:
        names = names or list(CANDIDATES)
        files = {n: candidate_file(*CANDIDATES[n]) for n in names}
    names = list(files)
    videos = ekman6_videos()[:max_videos]
    predictors = {n: load(f) for n, f in files.items()}
    per_video: dict[str, dict[str, float]] = {n: {} for n in names}
    for video in videos:
        times = interleaved_times(
            {
                n: (lambda p=p, v=video: p.predict_many([v], batch_size=1))
                for n, p in predictors.items()
            },
            repeats=repeats,
            warmup=1,
        )
        for n, t in times.items():
            per_video[n][video.name] = statistics.median(t)
    steps: dict[str, Any] = {}
    params: dict[str, int] = {}
    bundles = {n: load_bundle(f) for n, f in files.items()}
    for n, bundle in bundles.items():
        steps[n], params[n] = _train_step(bundle, batch)
    step_times = interleaved_times(
        {n: (lambda s=s: [s() for _ in range(train_steps)]) for n, s in steps.items()},
        repeats=repeats,
        warmup=1,
    )
    base = names[0]
    total = {n: sum(per_video[n].values()) for n in names}
    rows = {}
    for n in names:
        best = min(step_times[n]) / train_steps
        rows[n] = {
            "file": str(files[n]),
            "backbone": bundles[n].config.backbone,
            "frame_size": bundles[n].spec.frame_size,
            "parameters": params[n],
            "predict_s_per_video": per_video[n],
            "predict_s_total": total[n],
            "predict_vs_today": total[n] / total[base],
            "train_images_per_s_best": batch / best,
            "train_images_per_s_median": batch * train_steps / statistics.median(step_times[n]),
            "train_step_vs_today": best / (min(step_times[base]) / train_steps),
            "hours_per_30_epochs_at_best": 30 * 28709 / (batch / best) / 3600,
        }
    worst = max(r["predict_vs_today"] for r in rows.values())
    return figure_result(
        14,
        "larger face models: predict time per Ekman-6 video and training images/s vs today's layout",
        "rdam predict per video within 2x of today's layout",
        worst,
        worst <= 2.0,
        {
            "candidates": rows,
            "repeats": repeats,
            "train_steps": train_steps,
            "batch": batch,
            "videos": [v.name for v in videos],
            "machine": machine_info(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        unit="x (slowest candidate)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES))
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="NAME=FILE",
        help="time these model files instead of the untrained candidates (the first is today's)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    files = None
    if args.models:
        pairs = [m.split("=", 1) for m in args.models]
        if any(len(p) != 2 or not p[0] for p in pairs):
            parser.error(f"--models takes NAME=FILE pairs, got {args.models}")
        files = {name: Path(path) for name, path in pairs}
    result = model_candidates(args.candidates, args.repeats, args.train_steps, files=files)
    if args.out:
        write_json(result, args.out)
    for name, row in result["details"]["candidates"].items():
        print(
            f"{name:14s} params {row['parameters'] / 1e6:5.1f} M  predict x{row['predict_vs_today']:.2f}"
            f"  train {row['train_images_per_s_best']:6.0f} img/s (x{row['train_step_vs_today']:.2f} step)"
            f"  30 epochs {row['hours_per_30_epochs_at_best']:.1f} h"
        )


if __name__ == "__main__":
    main()
