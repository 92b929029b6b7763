"""``rdam demo``: the whole path on the embedded synthetic set, no download, a few CPU minutes.

1. The synthetic region-emotion set (:mod:`rdam.data.synthetic`): the class is a stripe
   orientation shown inside one marked region in only a few frames; every class's stripes
   also appear as distractors elsewhere in every frame.
2. Two RDAM variants are trained with :func:`rdam.training.train.train` exactly as a real
   experiment is (``data.kind: synthetic``): ``average`` (global average pooling per frame,
   average over frames: "ResNet + average aggregation") and ``dual`` (region dual attention,
   frame attention). Same backbone, data, budget and seed.
3. Both are evaluated (:func:`rdam.evaluation.evaluate.evaluate`: accuracy, per-class, macro-F1,
   confusion matrix in each run directory) and an ablation table is printed. For the dual model
   two attention diagnostics are measured on the validation clips: how often the location
   attention's strongest region touches the marked region in informative frames, and the share
   of frame weight ``alpha`` on the informative frames.
4. Location-attention heatmaps of a few validation clips of the dual model are written as PNGs.

The run directories (``out_dir/average``, ``out_dir/dual``) are ordinary ones:
``rdam report out_dir`` renders them as the paper's ablation table.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdam.config import ExperimentConfig

log = logging.getLogger(__name__)

VARIANTS = ("average", "dual")
_LABELS = {
    "average": "average aggregation (GAP per frame, mean over frames)",
    "location": "regional location attention",
    "relation": "regional relationship attention",
    "dual": "regional dual attention (RDAM)",
}


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo problem and its training budget."""

    backbone: str = "test_resnet"  # timm's 0.4 M-parameter ResNet: fast enough for a CPU demo
    frame_size: int = 64  # 64 px, output stride 8 -> 8x8 regions
    num_frames: int = 8
    num_classes: int = 4
    informative_frames: int = 3
    num_train: int = 384
    num_val: int = 128
    epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    precision: str = "auto"


FULL = DemoSettings()
QUICK = DemoSettings(
    frame_size=48,
    num_frames=4,
    informative_frames=1,
    num_train=48,
    num_val=24,
    epochs=1,
    batch_size=12,
)


@dataclass
class DemoResult:
    """What ``run_demo`` measured and wrote.

    results: per variant ``{"accuracy", "macro_f1", "per_class": {name: acc}, "train_seconds",
        "location_hit_rate", "informative_weight_share"}`` (the last two None where the model
        has no such attention).
    """

    out_dir: Path
    table: str
    results: dict[str, dict[str, Any]]
    run_dirs: dict[str, Path]
    heatmaps: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def auto_threads() -> int:
    """Torch threads for the demo: the idle cores (1-4). Oversubscribing a busy CPU makes
    small convolutions several times slower, so a loaded machine gets one thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(4, int((cores or 1) - busy)))


def demo_config(
    variant: str, settings: DemoSettings = FULL, seed: int = 0, threads: int | None = None
) -> ExperimentConfig:
    """The experiment config of one demo variant (``average`` | ``location`` | ``relation`` |
    ``dual``)."""
    s = settings
    return ExperimentConfig.from_dict(
        {
            "model": {
                "arch": "rdam",
                "backbone": s.backbone,
                "weights": "none",
                "output_stride": 8,
                "num_classes": s.num_classes,
                "region_head": variant,
                "temporal": "average" if variant == "average" else "attention",
                "embed_dim": 64,
                "frame_hidden_dim": 32,
            },
            "data": {
                "kind": "synthetic",
                "name": "synthetic",
                "num_frames": s.num_frames,
                "frame_size": s.frame_size,
                "batch_size": s.batch_size,
                "eval_batch_size": 32,
                "num_workers": 0,
                "augment": {"enabled": False},
                "synthetic": {
                    "num_train": s.num_train,
                    "num_val": s.num_val,
                    "num_classes": s.num_classes,
                    "informative_frames": s.informative_frames,
                    "seed": seed,
                },
            },
            "optim": {
                "optimizer": "adamw",
                "lr": s.lr,
                "weight_decay": 0.01,
                "scheduler": "cosine",
                "warmup_epochs": 0.3,
            },
            "trainer": {
                "max_epochs": s.epochs,
                "precision": s.precision,
                "accelerator": "cpu",
                "devices": 1,
                "seed": seed,
                "loggers": ["csv"],
                "progress_bar": False,
                "log_every_n_steps": 5,
                "threads": threads or auto_threads(),
                "run_name": f"demo_{variant}",
            },
        }
    )


# ------------------------------------------------------------------------------------------
# attention diagnostics and heatmaps


def _attention_outputs(
    model: torch.nn.Module, frames: torch.Tensor, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Probabilities ``(N, C)``, location maps ``(N, K, h, w)`` or None, frame weights ``(N, K)``,
    through the runner every prediction path uses (fp32)."""
    from rdam.runtime import TorchRunner

    runner = TorchRunner(model, precision="fp32")
    mask = torch.ones(frames.shape[:2], dtype=torch.bool)
    outs = [
        runner({"frames": frames[i : i + batch_size], "mask": mask[i : i + batch_size]})
        for i in range(0, frames.shape[0], batch_size)
    ]
    maps = [o.location_maps for o in outs if o.location_maps is not None]
    return (
        np.concatenate([o.probabilities for o in outs]),
        np.concatenate(maps) if maps else None,
        np.concatenate([o.frame_weights for o in outs]),
    )


def location_hit_rate(
    maps: np.ndarray, informative: np.ndarray, boxes: np.ndarray, frame_size: int
) -> float:
    """Share of informative frames whose strongest region touches the marked region.

    Args:
        maps: ``(N, K, h, w)`` location attention.
        informative: ``(N, K)`` bool.
        boxes: ``(N, K, 4)`` marker boxes ``(y0, x0, y1, x1)`` in pixels.
    """
    n, k, h, w = maps.shape
    flat = maps.reshape(n, k, h * w).argmax(-1)
    cy, cx = flat // w, flat % w
    sy, sx = frame_size / h, frame_size / w
    y0, x0, y1, x1 = (boxes[..., i] for i in range(4))
    hit = (cy * sy < y1) & ((cy + 1) * sy > y0) & (cx * sx < x1) & ((cx + 1) * sx > x0)
    return float(hit[informative].mean())


def informative_weight_share(weights: np.ndarray, informative: np.ndarray) -> float:
    """Mean over clips of ``sum(alpha on informative frames) / sum(alpha)``; ``(N, K)`` each."""
    total = np.maximum(weights.sum(1), 1e-12)
    return float(((weights * informative).sum(1) / total).mean())


def save_heatmap(
    path: Path,
    frames: np.ndarray,
    location: np.ndarray,
    weights: np.ndarray,
    informative: np.ndarray,
    marker_boxes: np.ndarray,
    title: str,
) -> Path:
    """One clip: each frame with its location map upsampled over it, the marked region
    outlined, and the frame weights ``alpha`` as bars.

    Args:
        frames: ``(K, 3, S, S)`` uint8; location ``(K, h, w)``; weights, informative ``(K,)``;
            marker_boxes ``(K, 4)``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    k, _, size, _ = frames.shape
    share = weights / max(float(weights.sum()), 1e-12)
    fig = plt.figure(figsize=(max(6.0, 1.5 * k), 4.2))
    grid = fig.add_gridspec(2, k, height_ratios=[1.5, 1], hspace=0.45)
    vmax = float(location.max()) or 1.0
    for t in range(k):
        ax = fig.add_subplot(grid[0, t])
        ax.imshow(frames[t].transpose(1, 2, 0))
        ax.imshow(
            location[t],
            cmap="jet",
            alpha=0.45,
            vmin=0.0,
            vmax=vmax,
            extent=(-0.5, size - 0.5, size - 0.5, -0.5),
            interpolation="bilinear",
        )
        y0, x0, y1, x1 = marker_boxes[t]
        ax.add_patch(
            Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", ls="--")
        )
        mark = " *" if informative[t] else ""
        ax.set_title(f"t={t}{mark}\nα={weights[t]:.3f}", fontsize=8)
        ax.axis("off")
    bars = fig.add_subplot(grid[1, :])
    bars.bar(range(k), share, color=["tab:red" if i else "tab:gray" for i in informative])
    bars.set_xticks(range(k))
    bars.set_xlabel("frame (red, * = the class is shown)", fontsize=8)
    bars.set_ylabel("α / Σα", fontsize=8)
    fig.suptitle(title, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# the demo


def _table(results: dict[str, dict[str, Any]], class_names: list[str], backbone: str) -> str:
    from rdam.evaluation.report import backbone_label

    bb = backbone_label(backbone)
    header = [
        "Method",
        "Accuracy (%)",
        "Macro-F1",
        *(f"{c} (%)" for c in class_names),
        "Location hit (%)",
        "α on informative frames (%)",
        "Train (s)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" + " ---: |" * (len(header) - 1)]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f}"

    for variant, r in results.items():
        row = [
            f"{bb} + {_LABELS.get(variant, variant)}",
            pct(r["accuracy"]),
            f"{r['macro_f1']:.3f}",
            *(pct(r["per_class"][c]) for c in class_names),
            pct(r["location_hit_rate"]),
            pct(r["informative_weight_share"]),
            f"{r['train_seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_demo(
    out_dir: str | Path = "rdam-demo",
    quick: bool = False,
    seed: int = 0,
    threads: int | None = None,
    variants: tuple[str, ...] = VARIANTS,
    num_heatmaps: int = 4,
    settings: DemoSettings | None = None,
) -> DemoResult:
    """Train and compare ``variants`` on the synthetic set; write run dirs and heatmaps.

    Args:
        out_dir: where ``<variant>/`` run directories, ``heatmaps/`` and ``table.md`` go.
        quick: a tiny problem that only exercises the path (seconds; accuracy meaningless).
        seed: data and training seed.
        threads: torch threads (default: the idle cores, see :func:`auto_threads`).
        variants: region heads to compare (``average``, ``location``, ``relation``, ``dual``).
        num_heatmaps: validation clips (one per class first) drawn for the attention model.
        settings: the problem size and budget (default :data:`FULL` or :data:`QUICK`).
    """
    from rdam.checkpoint import load_model
    from rdam.evaluation.evaluate import evaluate
    from rdam.training.datamodule import ClipDataModule
    from rdam.training.train import train

    start = time.time()
    settings = settings or (QUICK if quick else FULL)
    threads = threads or auto_threads()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    results: dict[str, dict[str, Any]] = {}
    run_dirs: dict[str, Path] = {}
    heatmaps: list[Path] = []
    heat_variant = next((v for v in ("dual", "location") if v in variants), None)
    try:
        for variant in variants:
            config = demo_config(variant, settings, seed, threads)
            log.info("demo: training %s (%s)", variant, _LABELS.get(variant, variant))
            # the demo's own folder: a rerun replaces it (rdam train would set the earlier
            # results aside)
            shutil.rmtree(out_dir / variant, ignore_errors=True)
            trained = train(config, run_dir=out_dir / variant, resume=False)
            run_dirs[variant] = trained.run_dir
            seconds = _train_seconds(trained.run_dir)
            # fp32 like the diagnostics below, so the table does not depend on the CPU
            report = evaluate(trained.model_file, precision="fp32", out_dir=trained.run_dir)

            data = ClipDataModule(config.data, seed=config.trainer.seed)
            data.setup("validate")
            val = data.datasets["val"]
            bundle = load_model(trained.model_file)
            probs, maps, weights = _attention_outputs(bundle.model, val.frames)
            informative = np.asarray(val.meta["informative"])
            boxes = np.asarray(val.meta["marker_boxes"])
            results[variant] = {
                "accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "per_class": {k: v["accuracy"] for k, v in report["per_class"].items()},
                "train_seconds": seconds,
                "location_hit_rate": None
                if maps is None
                else location_hit_rate(maps, informative, boxes, config.data.frame_size),
                "informative_weight_share": None
                if variant == "average"
                else informative_weight_share(weights, informative),
            }
            if maps is not None and variant == heat_variant:
                heatmaps = _write_heatmaps(
                    out_dir / "heatmaps",
                    val,
                    probs,
                    maps,
                    weights,
                    bundle.class_names,
                    num_heatmaps,
                )
    finally:
        torch.set_num_threads(previous_threads)
    class_names = list(next(iter(results.values()))["per_class"]) if results else []
    table = _table(results, class_names, settings.backbone)
    elapsed = time.time() - start
    s = settings
    summary = (
        f"Synthetic region-emotion set: {s.num_classes} classes, {s.num_train} training / "
        f"{s.num_val} validation clips of K={s.num_frames} frames at {s.frame_size} px, the class "
        f"shown in {s.informative_frames} of {s.num_frames} frames inside one marked region. "
        f"Same backbone ({s.backbone}, no pre-training), {s.epochs} epoch(s), seed {seed}, "
        f"{threads} thread(s). Location hit: the strongest region of the location map touches "
        "the marked region (informative frames). Total time "
        f"{elapsed:.0f} s."
    )
    text = f"{table}\n\n{summary}\n"
    (out_dir / "table.md").write_text(text)
    return DemoResult(out_dir, text, results, run_dirs, heatmaps, elapsed)


def _train_seconds(run_dir: Path) -> float:
    import json

    try:
        return float(json.loads((run_dir / "metrics.json").read_text())["train_seconds"])
    except (OSError, KeyError, ValueError):
        return float("nan")


def _write_heatmaps(
    folder: Path,
    dataset: Any,
    probs: np.ndarray,
    maps: np.ndarray,
    weights: np.ndarray,
    class_names: list[str],
    count: int,
) -> list[Path]:
    labels = dataset.labels.numpy()
    chosen: list[int] = []
    for c in range(len(class_names)):  # one clip per class first, then in order
        hits = np.flatnonzero(labels == c)
        if hits.size and len(chosen) < count:
            chosen.append(int(hits[0]))
    chosen += [i for i in range(len(labels)) if i not in chosen][: max(0, count - len(chosen))]
    paths = []
    for i in chosen:
        pred = int(probs[i].argmax())
        title = (
            f"validation clip {i}: true {class_names[labels[i]]}, predicted {class_names[pred]} "
            f"({probs[i, pred]:.0%})\nheat = location attention x, dashed box = marked region"
        )
        paths.append(
            save_heatmap(
                folder / f"clip_{i:03d}_{class_names[labels[i]]}.png",
                dataset.frames[i].numpy(),
                maps[i],
                weights[i],
                np.asarray(dataset.meta["informative"][i]),
                np.asarray(dataset.meta["marker_boxes"][i]),
                title,
            )
        )
    return paths
