"""Tiny real training runs for the evaluation tests (the demo's config builder, shrunk)."""

from __future__ import annotations

from pathlib import Path

from rdam.config import ExperimentConfig
from rdam.demo import DemoSettings, demo_config
from rdam.training.train import TrainResult, train

TINY = DemoSettings(
    frame_size=32,
    num_frames=2,
    num_classes=2,
    informative_frames=1,
    num_train=32,
    num_val=16,
    epochs=1,
    batch_size=8,
    precision="32",
)


def tiny_run_config(variant: str, seed: int = 0) -> ExperimentConfig:
    return demo_config(variant, TINY, seed=seed, threads=1)


def tiny_run(run_dir: Path, variant: str, seed: int = 0) -> TrainResult:
    return train(tiny_run_config(variant, seed), run_dir=run_dir, resume=False)
