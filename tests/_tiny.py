"""Helpers of the training tests: tiny experiment configs and FER2013 subsets."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rdam.config import ExperimentConfig, merge_config_dicts


def tiny_config(**sections: dict[str, Any]) -> ExperimentConfig:
    """A seconds-long CPU experiment on the synthetic set (32 px, 2 frames, test_resnet);
    ``sections`` are merged over it (``model={...}, data={...}, ...``)."""
    base: dict[str, Any] = {
        "model": {
            "backbone": "test_resnet",
            "weights": "none",
            "num_classes": 2,
            "region_head": "dual",
            "embed_dim": 16,
            "frame_hidden_dim": 8,
        },
        "data": {
            "kind": "synthetic",
            "num_frames": 2,
            "frame_size": 32,
            "batch_size": 8,
            "num_workers": 0,
            "augment": {"enabled": False},
            "synthetic": {"num_train": 32, "num_val": 16, "num_classes": 2},
        },
        "optim": {"lr": 3e-3, "scheduler": "cosine"},
        "trainer": {
            "max_epochs": 1,
            "precision": "32",
            "accelerator": "cpu",
            "devices": 1,
            "loggers": ["csv"],
            "progress_bar": False,
            "log_every_n_steps": 1,
            "threads": 1,
        },
    }
    return ExperimentConfig.from_dict(merge_config_dicts(base, sections))


def fer2013_subset(root: Path, out: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """A CSV manifest of a few FER2013 images per class and split (never copies the images).

    ``per_class`` maps split -> images per class.
    """
    rng = random.Random(seed)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    lines = ["# classes: " + ",".join(classes), "path,label,split,group"]
    for split, count in per_class.items():
        for name in classes:
            files = sorted((root / split / name).glob("*.jpg"))
            for path in rng.sample(files, min(count, len(files))):
                lines.append(f"{path},{name},{split},")
    out.write_text("\n".join(lines) + "\n")
    return out


def make_settings(
    num_frames: int = 16,
    frame_size: int = 112,
    faces: bool = False,
    margin: float = 0.2,
    sampler: str = "center",
    num_views: int = 1,
    max_side: int | None = 640,
    fit: str = "squash",
    seed: int = 0,
    keyframes: bool = False,
    face_input: str = "auto",
    color: str = "rgb",
):
    """Preprocessing settings from the flat options of ``rdam preprocess`` (``faces``: frames
    and face crops, the spec's stream ``both``)."""
    from rdam.data.cache import PreprocessSettings
    from rdam.data.spec import ClipSpec

    spec = ClipSpec(
        num_frames=num_frames,
        frame_size=frame_size,
        stream="both" if faces else "frames",
        face_margin=margin,
        max_side=max_side,
        fit=fit,
        keyframes=keyframes,
        color=color,
    )
    return PreprocessSettings(
        spec=spec, mode=sampler, num_views=num_views, seed=seed, face_input=face_input
    )
