"""Figure 5: the share of a training step spent waiting for data, reading from the cache.

The default FER2013 training config (``configs/fer2013_face_default.yaml``: resnet10t, 48x48,
batch 64, bf16-mixed, one loader worker) runs in a Lightning ``Trainer`` with the real
:class:`~rdam.training.module.RDAMLightningModule` and
:class:`~rdam.training.datamodule.ClipDataModule`; the data comes from a preprocessing cache
written beforehand by :func:`rdam.data.preprocess.preprocess` (a class-stratified subset of the
training images, packed into memory-mapped shards). A callback stamps the end of each batch and
the start of the next: the gap is the time the loop waited for ``next(dataloader)`` (plus
Lightning's own bookkeeping, so the share is an upper bound); the rest is the step (forward,
backward, optimiser). The first batches (loader worker start-up) are not counted.

A slow step hides a slow loader, so the cost of making one batch in the main process (no worker,
no model) is measured too: ``loader_cost_over_step`` is the share of a step's time the loader
needs; while it stays well below 1, one worker keeps up even with a faster step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import WORK_DIR, figure_result, machine_info

WARMUP_BATCHES = 3


class _StepTimer:
    """Lightning callback recording the data wait before and the duration of each batch."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.steps: list[float] = []
        self._end: float | None = None
        self._start = 0.0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self.waits.append(self._start - self._end)

    def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
        self._end = time.perf_counter()
        self.steps.append(self._end - self._start)


def _callback(timer: _StepTimer) -> Any:
    import lightning as L

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args: Any) -> None:
            timer.on_train_batch_start(*args)

        def on_train_batch_end(self, *args: Any) -> None:
            timer.on_train_batch_end(*args)

    return StepTimer()


def cache_settings() -> Any:
    """What the cache holds: clips under the default config's clip spec and face input
    (``configs/fer2013_face_default.yaml``), so the training run reads them unchanged."""
    from benchmarks.accuracy import BASE_CONFIG
    from rdam.config import load_config
    from rdam.data.cache import PreprocessSettings

    data = load_config(BASE_CONFIG).data
    return PreprocessSettings(spec=data.clip_spec(), face_input=data.face_input)


def build_cache(manifest_csv: Path, cache_root: Path) -> dict[str, Any]:
    """Preprocess the manifest's images into a cache (skipped when already there)."""
    from rdam.data.layouts import load_manifest
    from rdam.data.preprocess import preprocess

    settings = cache_settings()
    report = preprocess(load_manifest(str(manifest_csv)), settings, cache_root, progress=False)
    if report.failed:
        raise RuntimeError(report.format())
    return {
        "written": report.done,
        "already_cached": report.skipped_cached,
        "s": report.seconds,
        "settings": settings.to_dict(),
    }


def measure(
    manifest_csv: Path, cache_dir: Path | None, batches: int, num_workers: int | None = None
) -> dict[str, Any]:
    """Train ``batches`` + warm-up batches of the default config and time waits and steps."""
    import lightning as L

    from benchmarks.accuracy import BASE_CONFIG
    from rdam.config import load_config
    from rdam.training.datamodule import ClipDataModule
    from rdam.training.module import RDAMLightningModule

    overrides = [
        "data.kind=csv",
        f"data.root={manifest_csv}",
        f"data.cache_dir={cache_dir if cache_dir else 'null'}",
        "trainer.max_epochs=1",
        "optim.swa_epochs=0",
        # the pipeline figure 5 measures: a loader reading the cache (or the files) per item,
        # not the in-memory array the default config now preloads
        "data.augment.in_memory=false",
        "data.augment.batched=false",
        "data.num_workers=1",
    ]
    if num_workers is not None:
        overrides.append(f"data.num_workers={num_workers}")
    config = load_config(BASE_CONFIG, overrides)
    L.seed_everything(0, workers=True, verbose=False)
    datamodule = ClipDataModule(config.data, seed=0)
    bundle = {
        "model_config": {**config.model.to_dict(), "num_classes": len(datamodule.class_names)},
        "class_names": datamodule.class_names,
        "clip_spec": datamodule.spec.to_dict(),
        "metadata": {},
    }
    module = RDAMLightningModule(bundle, optim=config.to_dict()["optim"])
    timer = _StepTimer()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=batches + WARMUP_BATCHES,
        limit_val_batches=0,
        precision=config.trainer.precision,
        accelerator="cpu",
        devices=1,
        callbacks=[_callback(timer)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=datamodule)
    loader_s = _loader_only(datamodule, batches)
    waits = timer.waits[WARMUP_BATCHES - 1 :]
    steps = timer.steps[WARMUP_BATCHES:]
    wait, step = sum(waits), sum(steps)
    return {
        "cache": str(cache_dir) if cache_dir else None,
        "num_workers": config.data.num_workers,
        "batch_size": config.data.batch_size,
        "clip_spec": datamodule.spec.to_dict(),
        "batches_timed": len(steps),
        "wait_s": wait,
        "step_s": step,
        "wait_share": wait / (wait + step),
        "mean_step_s": step / max(1, len(steps)),
        "mean_wait_s": wait / max(1, len(waits)),
        "max_wait_s": max(waits) if waits else 0.0,
        "loader_only_s_per_batch": loader_s,
        "loader_cost_over_step": loader_s / (step / max(1, len(steps))),
    }


def _loader_only(datamodule: Any, batches: int) -> float:
    """Seconds to make one training batch in this process (no worker, no model): the CPU
    cost of the input pipeline, to compare with the step time."""
    from torch.utils.data import DataLoader

    loader = datamodule.train_dataloader()
    single = DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=loader.sampler,
        num_workers=0,
        collate_fn=loader.collate_fn,
        drop_last=loader.drop_last,
    )
    it = iter(single)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        n += 1
    return (time.perf_counter() - start) / max(1, n)


def data_wait_share(
    train_images: int = 4096, batches: int = 40, work_dir: Path | None = None
) -> dict[str, Any]:
    """Data-wait share of training from the cache (and, for reference, decoding JPEGs on the
    fly). ``value`` = the cached share, goal <= 10 %."""
    from benchmarks.accuracy import write_subset_manifest

    work_dir = work_dir or WORK_DIR / "training_input"
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest = write_subset_manifest(work_dir / f"fer_train{train_images}.csv", train_images)
    # one cache root per settings key: a root holds one set of settings for training
    cache_root = work_dir / f"cache_{cache_settings().key()}"
    cache_build = build_cache(manifest, cache_root)
    cached = measure(manifest, cache_root, batches)
    uncached = measure(manifest, None, batches)
    value = cached["wait_share"]
    return figure_result(
        5,
        "Training input overhead: share of a step waiting for data (cached FER2013 shards)",
        "<= 10%",
        100 * value,
        value <= 0.10,
        {
            "setting": {
                "config": "configs/fer2013_face_default.yaml (resnet10t, 48 px, bf16-mixed)",
                "train_images": train_images,
                "warmup_batches": WARMUP_BATCHES,
            },
            "cache_build": cache_build,
            "cached": cached,
            "decoded_on_the_fly": uncached,
            "machine": machine_info(),
        },
        unit="% of step time",
    )


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] == ["--quick"]:  # a smoke run
        print(json.dumps(data_wait_share(train_images=512, batches=2), indent=2))
    else:
        print(json.dumps(data_wait_share(train_images=1024, batches=8), indent=2))
