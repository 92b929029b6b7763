"""``train(config)``: the plain function ``rdam train`` and the tests call.

A run directory holds ``config.yaml``, ``checkpoints/{last,best}.ckpt`` (Lightning, tensors
and plain data only), ``model.safetensors`` (the best weights, or with ``optim.swa_epochs``
the final weight average, with config, class names and clip spec), ``metrics.json``, CSV
and TensorBoard logs. Running ``train`` again on the same run directory resumes from
``checkpoints/last.ckpt``, keeping the CSV log and the training time of what came before
(:mod:`rdam.training.run_log`); on a run that has finished, it does nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    WeightAveraging,
)
from lightning.pytorch.utilities.exceptions import SIGTERMException

import rdam
from rdam.checkpoint import FRAME_WEIGHTS_KEY, load_model, read_checkpoint_file, save_model
from rdam.config import ExperimentConfig, save_config
from rdam.errors import CheckpointError, TrainingInterrupted
from rdam.models import ModelConfig
from rdam.runtime import training_precision
from rdam.training.datamodule import ClipDataModule
from rdam.training.init_from import check_compatible, initialise_from, read_init_model
from rdam.training.module import RDAMLightningModule
from rdam.training.resume import ExactResume, RunCheckpoint, check_same_recipe
from rdam.training.run_log import TrainClock, csv_logger

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path | None
    model_file: Path | None
    metrics: dict[str, float]


class SetDatasetEpoch(L.Callback):
    """Tell the training data set the epoch, so augmentation draws depend on (seed, epoch, i)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        dataset = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if dataset is not None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(trainer.current_epoch)


class SWAPhaseAveraging(WeightAveraging):
    """Stochastic weight averaging over the SWA phase: the equal-weight running average of the
    weights and BatchNorm statistics after every optimiser step from epoch ``start_epoch``
    (zero-based) on. Lightning's :class:`WeightAveraging` swaps the average in for validation,
    checkpoints and the end of training, so ``val/acc``, ``best.ckpt`` and the exported model
    are the averaged network."""

    def __init__(self, start_epoch: int) -> None:
        super().__init__()
        self.start_epoch = start_epoch
        self._in_phase = False
        self._swapped = False

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # the phase from the epoch of each step: Lightning skips on_train_epoch_start when a
        # run resumes inside an epoch, which left the rest of a resumed SWA epoch unaveraged
        self._in_phase = trainer.current_epoch >= self.start_epoch
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self._in_phase

    # Before the first update the average is still the initial copy of the network, so the
    # hooks below leave the trained weights in place until the phase has begun.
    def _has_average(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._swapped = self._has_average()
        if self._swapped:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._swapped:
            super().on_validation_epoch_end(trainer, pl_module)
        self._swapped = False

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._has_average():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._has_average():
            super().on_train_end(trainer, pl_module)


def _saved_metadata(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The bundle metadata a training checkpoint of :func:`train` carries (``{}`` if none)."""
    hyper = checkpoint.get("hyper_parameters")
    bundle = hyper.get("bundle") if isinstance(hyper, dict) else None
    metadata = bundle.get("metadata") if isinstance(bundle, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _training_crop_framing(datamodule: ClipDataModule) -> Any:
    """:meth:`ClipDataModule.training_crop_framing`, with a warning when the clip spec's
    ``face_margin`` would frame the faces found on videos otherwise than the training crops
    are framed, and a note when the crops are equalized and the spec's colour does not."""
    framing = datamodule.training_crop_framing()
    if framing is None:
        return None
    from rdam.data.framing import equalization_note, framing_mismatch

    spec = datamodule.spec
    problem = framing_mismatch(framing, spec.face_margin)
    if problem is not None:
        log.warning("%s", problem)
    note = equalization_note(framing, spec.color)
    if note is not None:
        log.info("%s", note)
    return framing


def _summary(run_dir: Path) -> dict[str, Any] | None:
    """A finished run's ``metrics.json`` (written at its end), None if there is none."""
    summary = run_dir / "metrics.json"
    return json.loads(summary.read_text()) if summary.is_file() else None


def _finished(run_dir: Path, done: dict[str, Any]) -> TrainResult:
    """The result of a run that has already trained to its end, as it recorded it (``done``:
    its ``metrics.json``)."""
    log.info("%s has already trained to its end; nothing to do", run_dir)
    model = run_dir / "model.safetensors"
    best_done = done.get("best_checkpoint")
    return TrainResult(
        run_dir,
        Path(best_done) if best_done else None,
        model if model.is_file() else None,
        done.get("metrics", {}),
    )


def _set_aside_earlier_results(run_dir: Path) -> None:
    """A run that starts over (``--no-resume``, or no ``last.ckpt``) in a directory holding an
    earlier run's end (``metrics.json``, ``model.safetensors``) or its evaluation
    (``eval_metrics.json``, in the directory or a sub-folder) moves those into
    ``replaced-<time>/``: until the new run ends they would read as its results (``rdam
    report`` takes them beside the new ``config.yaml``). An evaluation folder moves whole; an
    ``eval_metrics.json`` of the directory itself goes to ``replaced-<time>/scored-here/`` (one
    level deeper than the report looks)."""
    moves = [(run_dir / n, n) for n in ("metrics.json", "model.safetensors")]
    moves.append((run_dir / "eval_metrics.json", "scored-here/eval_metrics.json"))
    moves += [
        (scored.parent, scored.parent.name)
        for scored in sorted(run_dir.glob("*/eval_metrics.json"))
        if not scored.parent.name.startswith("replaced-")
    ]
    moves = [(path, to) for path, to in moves if path.exists()]
    if not moves:
        return
    aside = run_dir / time.strftime("replaced-%Y%m%dT%H%M%S")
    for path, to in moves:
        target = aside / to
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.rename(target)
        except FileNotFoundError:  # another DDP rank moved it first
            continue
    log.warning(
        "%s: starting over; the earlier run's %s moved to %s",
        run_dir,
        ", ".join(path.relative_to(run_dir).as_posix() for path, _ in moves),
        aside,
    )


def _loggers(config: ExperimentConfig, run_dir: Path, resume_step: int | None) -> list[Any]:
    from lightning.pytorch.loggers import TensorBoardLogger

    out: list[Any] = []
    for name in config.trainer.loggers:
        if name == "csv":
            out.append(csv_logger(run_dir, resume_step))
        elif name == "tensorboard":
            try:
                out.append(TensorBoardLogger(run_dir, name="tb", version=""))
            except ModuleNotFoundError:
                log.warning("tensorboard is not installed; TensorBoard logging is off")
    return out


def build_trainer(
    config: ExperimentConfig,
    run_dir: Path,
    extra_callbacks: Sequence[L.Callback] = (),
    resume_step: int | None = None,
    **overrides: Any,
) -> L.Trainer:
    """The Lightning ``Trainer`` of ``config``: checkpoints in ``run_dir/checkpoints``, the
    configured loggers (a resume from global step ``resume_step`` keeps the CSV rows up to
    it), the training clock, early stopping, and ``extra_callbacks`` appended."""
    t = config.trainer
    callbacks: list[L.Callback] = [SetDatasetEpoch(), ExactResume(), TrainClock()]
    callbacks.append(
        RunCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="best",
            monitor=t.monitor,
            mode="min" if t.monitor.endswith("loss") else "max",
            save_top_k=1,
            enable_version_counter=False,
        )
    )
    # last.ckpt after EVERY epoch (and every n steps if asked). ModelCheckpoint(save_last=True)
    # would refresh it only when the monitored metric improved, so a resumed run would silently
    # restart from the best epoch instead of the latest one.
    callbacks.append(
        RunCheckpoint(
            dirpath=run_dir / "checkpoints",
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        )
    )
    if t.checkpoint_every_n_steps:
        callbacks.append(
            RunCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="last",
                every_n_train_steps=t.checkpoint_every_n_steps,
                save_top_k=1,
                enable_version_counter=False,
            )
        )
    if t.early_stopping_patience:
        mode = "min" if t.monitor.endswith("loss") else "max"
        callbacks.append(EarlyStopping(t.monitor, patience=t.early_stopping_patience, mode=mode))
    if config.optim.swa_epochs:
        callbacks.append(SWAPhaseAveraging(t.max_epochs - config.optim.swa_epochs))
    loggers = _loggers(config, run_dir, resume_step)
    if loggers:
        callbacks.append(LearningRateMonitor("step"))
    callbacks.extend(extra_callbacks)
    kwargs: dict[str, Any] = dict(
        max_epochs=t.max_epochs,
        precision=training_precision(t.precision, t.accelerator),
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        deterministic=t.deterministic,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks,
        logger=loggers or False,
        enable_progress_bar=t.progress_bar,
        default_root_dir=run_dir,
        use_distributed_sampler=False,  # EpochShuffleSampler splits across ranks itself
        enable_model_summary=False,
    )
    for key in ("limit_train_batches", "limit_val_batches", "val_check_interval"):
        if getattr(t, key) is not None:
            kwargs[key] = getattr(t, key)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


def train(
    config: ExperimentConfig,
    run_dir: str | Path | None = None,
    resume: bool = True,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Train ``config``; resume from ``run_dir/checkpoints/last.ckpt`` when it exists.

    ``callbacks`` are extra Lightning callbacks (e.g. to inspect each DDP rank).
    """
    t = config.trainer
    run_dir = Path(run_dir) if run_dir is not None else Path(t.output_dir) / t.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    if t.threads:
        torch.set_num_threads(t.threads)
    L.seed_everything(t.seed, workers=True, verbose=False)

    datamodule = ClipDataModule(config.data, seed=t.seed)
    class_names = datamodule.class_names
    if len(class_names) != config.model.num_classes:
        log.info("num_classes set to %d from the data set's classes", len(class_names))
        config.model = ModelConfig.from_dict(
            {**config.model.to_dict(), "num_classes": len(class_names)}
        )
    # the run's config names every clip spec field it trained with (some came from the cache)
    stream_given = config.data.stream is not None
    config.data = config.data.with_spec(datamodule.spec)
    if not stream_given:  # checked before a run that could not be exported
        config.check_streams(f" (unset, so the cache's: {config.data.cache_dir})")
    one_frame = datamodule.trains_on_one_frame_clips
    if config.model.learns_frame_weights and one_frame:
        log.warning(
            "every training clip of %s has one frame (single images, or data.num_frames 1): the "
            "model's learned frame weights (model.arch=%s, model.temporal=%s: Eq. 9-11 frame "
            "attention or a baseline's frame scores) get no gradient from one-frame clips, only "
            "weight decay, so they single out no frame for a reason (weight decay takes them "
            "towards weighing the frames alike) and explain nothing; the model file records "
            "frame_weights_learned: false. Train on videos or image sequences to learn them",
            config.data.root,
            config.model.arch,
            config.model.temporal,
        )
    metadata: dict[str, Any] = {"experiment": config.to_dict(), "rdam_version": rdam.__version__}
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = None
    resume_step = None
    init = None
    if resume and last.is_file():
        try:  # refuse a truncated or unsafe file before Lightning opens it
            saved = read_checkpoint_file(last)
        except CheckpointError as exc:
            raise type(exc)(
                last,
                f"{exc.reason.rstrip('.')}. Cannot resume from it: delete it, or start over with "
                "`rdam train --no-resume` (train(..., resume=False))",
            ) from exc
        saved_experiment = _saved_metadata(saved).get("experiment")
        if isinstance(saved_experiment, dict):  # none in checkpoints of other tools
            check_same_recipe(
                saved_experiment, metadata["experiment"], ExperimentConfig().to_dict(), last
            )
        resume_step = int(saved.get("global_step", 0))
        done = _summary(run_dir)
        if done is not None and done.get("global_step") == resume_step:
            # metrics.json is written at a run's end, at the step of its last checkpoint: the
            # run has finished. Lightning would fit on: EarlyStopping's stop is not restored.
            save_config(config, run_dir / "config.yaml")  # its run settings, as a resume would
            return _finished(run_dir, done)
        # the weights come from last.ckpt; where the run started stays as first recorded
        started = _saved_metadata(saved).get("init_from")
        if started is not None:
            metadata["init_from"] = started
        ckpt_path = str(last)
        log.info("resuming from %s", last)
    else:
        _set_aside_earlier_results(run_dir)
        if t.init_from:
            init, metadata["init_from"] = read_init_model(t.init_from, t.init_sha256)
            changed = check_compatible(
                init, t.init_from, config.model, class_names, datamodule.spec, t.init_spec_changes
            )
            if changed:
                metadata["init_from"]["spec_changes"] = changed
    framing = _training_crop_framing(datamodule)  # not for a run that has ended (above)
    if framing is not None:
        metadata["training_crop_framing"] = framing.to_dict()
    if config.model.learns_frame_weights:
        # false after one-frame clips, even from a model that learned them (init_from): the
        # backbone's features move on while the frame scores stay where they were
        metadata[FRAME_WEIGHTS_KEY] = not one_frame
    save_config(config, run_dir / "config.yaml")  # after the resume check: never a wrong one
    bundle = {
        "model_config": config.model.to_dict(),
        "class_names": class_names,
        "clip_spec": datamodule.spec.to_dict(),
        "metadata": metadata,
    }
    module = RDAMLightningModule(bundle, optim=config.to_dict()["optim"])
    if init is not None:
        initialise_from(module.model, init, t.init_from)
    trainer = build_trainer(config, run_dir, callbacks, resume_step=resume_step)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit as exc:
        # Lightning ends a fit that a signal stopped with SystemExit: a SIGTERMException, whose
        # exit code is 0, for SIGTERM (a job killed at the end of a session), sys.exit(1) after
        # Ctrl+C. A script would take the first for a finished run.
        if not trainer.interrupted:
            raise
        stopped_by = "SIGTERM" if isinstance(exc, SIGTERMException) else "SIGINT"
        saved_step = (
            int(read_checkpoint_file(last).get("global_step", 0)) if last.is_file() else None
        )
        raise TrainingInterrupted(run_dir, stopped_by, trainer.global_step, saved_step) from exc
    done = _summary(run_dir) if resume_step is not None else None
    if done is not None and trainer.global_step == resume_step:
        return _finished(run_dir, done)  # nothing was trained: what the run recorded stays

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    callback = trainer.checkpoint_callback
    best = callback.best_model_path if callback else ""
    best_path = Path(best) if best else (last if last.is_file() else None)
    best_score = getattr(callback, "best_model_score", None) if callback else None
    # With weight averaging the model is the average at the end of training, chosen without
    # looking at the validation split; otherwise the best checkpoint by ``trainer.monitor``.
    export_from = last if config.optim.swa_epochs and last.is_file() else best_path
    model_file = None
    clock = next(c for c in trainer.callbacks if isinstance(c, TrainClock))
    seconds_this_call = clock.seconds_this_call
    if trainer.is_global_zero and export_from is not None:
        model_file = export_model_file(export_from, run_dir / "model.safetensors")
        summary = {
            "metrics": metrics,
            "best": {
                "monitor": t.monitor,
                "score": None if best_score is None else float(best_score),
            },
            "best_checkpoint": str(best_path),
            "exported_checkpoint": str(export_from),
            "epochs": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            # the whole run's training time, over every resume, and this call's: both
            # measured by one clock, so the first is the second plus the resumed runs' time
            "train_seconds": clock.before + seconds_this_call,
            "train_seconds_this_call": seconds_this_call,
            # what each call of fit (the first and every resume) trained on
            "compute": clock.compute(seconds_this_call),
            # where the weights started: {"source", "sha256"} of trainer.init_from, or None
            "init_from": metadata.get("init_from"),
        }
        (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(run_dir, best_path, model_file, metrics)


def export_model_file(
    checkpoint: str | Path, out: str | Path, dtype: torch.dtype | None = None
) -> Path:
    """Write the weights of a training checkpoint as a ``.safetensors`` model file."""
    bundle = load_model(checkpoint)
    return save_model(
        out,
        bundle.model,
        bundle.config,
        bundle.class_names,
        bundle.spec,
        {
            k: v
            for k, v in bundle.metadata.items()
            if k not in ("path", "rdam_version", "checkpoint")  # of the file read, not the model
        },
        dtype=dtype,
    )
