"""The LightningModule: loss, metrics, optimiser and schedule around any rdam clip model.

The network is given to the module, built by :func:`rdam.models.build_model` from the config;
the module owns only training concerns. Its hyper-parameters are plain data (the model
config, class names, clip spec, optimiser settings), so checkpoints load with
``torch.load(weights_only=True)`` and rebuild the model without the training code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassStatScores,
)

from rdam.config import OptimConfig
from rdam.data.clips import faceless_clips
from rdam.models import ModelConfig, build_model, model_inputs
from rdam.models.tap_conv import use_tap_convolutions
from rdam.training.regularize import mixup, random_erasing
from rdam.training.resume import mid_epoch_batches

log = logging.getLogger(__name__)


class MeanClassAccuracy(MulticlassStatScores):
    """Balanced accuracy: the mean recall of the classes that have clips, as ``rdam eval``'s
    ``mean_class_accuracy`` (:func:`rdam.evaluation.metrics.classification_report`).
    torchmetrics' macro ``MulticlassAccuracy`` also averages in, as 0, a class that was
    predicted but has no clip."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, average=None)

    def compute(self) -> torch.Tensor:
        tp, _, _, fn = self._final_state()
        support = tp + fn
        present = support > 0
        if not present.any():
            return torch.zeros((), device=tp.device)
        return (tp[present].float() / support[present]).mean()


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    """top-1, macro-F1 (over the classes present in the labels or the predictions, as
    ``rdam eval``) and mean class accuracy, so ``rdam report`` reads ``val/`` and eval
    figures as one metric each."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes, average="macro"),
            "mean_class_acc": MeanClassAccuracy(num_classes),
        },
        prefix=prefix,
        # each metric keeps its own state, so a mid-epoch checkpoint can save and restore it
        compute_groups=False,
    )


def lr_factor(cfg: OptimConfig, total_steps: int, epochs: int) -> Callable[[int], float]:
    """The learning-rate multiplier at each optimiser step: linear warm-up, then the schedule
    over the epochs before the SWA phase, then the constant ``swa_lr / lr`` during it."""
    main_epochs = epochs - cfg.swa_epochs
    main_steps = max(1, round(total_steps * main_epochs / epochs))
    warmup = round(cfg.warmup_epochs * total_steps / epochs)
    swa_factor = (cfg.swa_lr if cfg.swa_lr is not None else 0.1 * cfg.lr) / cfg.lr

    def factor(step: int) -> float:
        if cfg.swa_epochs and step >= main_steps:
            return swa_factor
        if step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            progress = (step - warmup) / max(1, main_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if cfg.scheduler == "step":
            epoch = step * epochs // total_steps
            return cfg.gamma ** (epoch // cfg.step_size)
        return 1.0

    return factor


def _trainer_option(bundle: dict[str, Any], name: str) -> Any:
    """``trainer.<name>`` of the experiment the bundle was made for (``metadata.experiment``,
    as :func:`rdam.training.train.train` passes it), else the :class:`TrainerConfig` default."""
    from rdam.config import TrainerConfig

    experiment = (bundle.get("metadata") or {}).get("experiment") or {}
    return (experiment.get("trainer") or {}).get(name, getattr(TrainerConfig, name))


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return [_detached(v) for v in value]  # list states (e.g. "cat" reductions)


class RDAMLightningModule(L.LightningModule):
    """Trains a clip model with cross-entropy (optional label smoothing) against the batch's
    ``label``, or its soft ``target`` distributions where it has them (``data.soft_labels``;
    the metrics still compare the argmax with ``label``).

    Args:
        bundle: ``{"model_config": ..., "class_names": [...], "clip_spec": {...},
            "metadata": {...}}`` — everything a saved model carries (see :mod:`rdam.checkpoint`).
        optim: optimiser/scheduler settings, as a dict of :class:`OptimConfig` fields.
        model: an already built network (else built from ``bundle["model_config"]``).
    """

    def __init__(
        self, bundle: dict[str, Any], optim: dict[str, Any], model: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.config = ModelConfig.from_dict(bundle["model_config"])
        self.class_names = list(bundle["class_names"])
        self.optim_config = OptimConfig(**optim)
        self.model = model if model is not None else build_model(self.config)
        if _trainer_option(bundle, "channels_last"):
            self.model.to(memory_format=torch.channels_last)
        if _trainer_option(bundle, "tap_convolutions"):
            use_tap_convolutions(self.model)
        n = self.config.num_classes
        self.train_metrics = _metrics(n, "train/")
        self.train_loss = MeanMetric()  # train/loss_epoch: batch-size-weighted mean
        self.val_metrics = _metrics(n, "val/")
        self.test_metrics = _metrics(n, "test/")
        # clips of this epoch with no face in any frame (rdam.data.clips.faceless_clips), per
        # stage: they train (or are scored by) the classifier's bias alone; warned at the end
        self._faceless: dict[str, list[int]] = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        return self.model(**model_inputs(self.model, batch))

    def model_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch).logits.float()
        # soft targets (data.soft_labels: (B, C) distributions) where the batch has them;
        # cross-entropy takes probabilities, label smoothing mixes them with the uniform
        target = batch["target"].float() if "target" in batch else batch["label"]
        loss = F.cross_entropy(logits, target, label_smoothing=self.optim_config.label_smoothing)
        return loss, logits

    def regularized(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The training batch under ``optim.random_erasing`` and ``optim.mixup_alpha``
        (:mod:`rdam.training.regularize`); mixup turns the labels into mixed ``target`` rows.
        The batch itself is left as it is."""
        o = self.optim_config
        if not o.random_erasing and not o.mixup_alpha:
            return batch
        batch = dict(batch)
        streams = [name for name in ("frames", "faces") if name in batch]
        if o.random_erasing:
            for name in streams:
                batch[name] = random_erasing(batch[name], o.random_erasing)
        if o.mixup_alpha:
            n = self.config.num_classes
            target = (
                batch["target"].float()
                if "target" in batch
                else (F.one_hot(batch["label"], n).float())
            )
            mixed, batch["target"], _ = mixup({k: batch[k] for k in streams}, target, o.mixup_alpha)
            batch.update(mixed)
        return batch

    def _count_faceless(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        seen = self._faceless.setdefault(stage, [0, 0])
        seen[0] += int(faceless_clips(batch).sum())
        seen[1] += int(batch["label"].shape[0])

    def _warn_faceless(self, stage: str) -> None:
        empty, total = self._faceless.pop(stage, [0, 0])
        if empty:
            log.warning(
                "%s, epoch %d: %d of %d clips had no face in any sampled frame; the model sees "
                "only their label (it learns or is scored on the classifier's bias). Check the "
                "face detection (rdam preprocess counts them), or leave them out of the data set",
                stage,
                self.current_epoch,
                empty,
                total,
            )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._count_faceless("training", batch)
        loss, logits = self.model_step(self.regularized(batch))
        self.train_metrics.update(logits.argmax(1), batch["label"])
        bs = batch["label"].shape[0]
        self.train_loss.update(loss.detach(), weight=bs)
        self.log(
            "train/loss_step",
            loss,
            on_step=True,
            prog_bar=True,
            batch_size=bs,
            sync_dist=True,  # the same value on every DDP rank, as the other metrics
        )
        return loss

    def on_train_epoch_end(self) -> None:
        # torchmetrics reduce over DDP ranks themselves: the same value on every rank
        self.log("train/loss_epoch", self.train_loss.compute())
        self.log_dict(self.train_metrics.compute())
        self.train_metrics.reset()
        self.train_loss.reset()
        self._warn_faceless("training")

    # Lightning restores weights, optimiser and loops from a checkpoint, not the accumulators
    # of the epoch in progress: a mid-epoch checkpoint carries them (see rdam.training.resume).
    def _train_accumulators(self) -> dict[str, Metric]:
        return {"loss": self.train_loss, **dict(self.train_metrics.items(keep_base=True))}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if mid_epoch_batches(self._trainer) is not None:
            checkpoint["train_epoch_accumulators"] = {
                name: {k: _detached(v) for k, v in metric.metric_state.items()}
                for name, metric in self._train_accumulators().items()
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("train_epoch_accumulators")
        if not saved:
            return
        for name, metric in self._train_accumulators().items():
            for key, value in saved[name].items():
                setattr(metric, key, value)
            metric._update_count = 1  # so compute() knows the state holds updates
            metric._computed = None

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._count_faceless("validation", batch)
        loss, logits = self.model_step(batch)
        self.val_metrics.update(logits.argmax(1), batch["label"])
        bs = batch["label"].shape[0]
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=bs, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log_dict(values, prog_bar=True, sync_dist=True)
        self.val_metrics.reset()
        self._warn_faceless("validation")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, logits = self.model_step(batch)
        self.test_metrics.update(logits.argmax(1), batch["label"])
        self.log(
            "test/loss", loss, on_epoch=True, batch_size=batch["label"].shape[0], sync_dist=True
        )

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # The fused CPU kernels read a gradient in its parameter's memory order, whatever its
        # strides (torch 2.14): autograd makes them alike, a gradient set by hand may not.
        for group in optimizer.param_groups:
            if group.get("fused"):
                for p in group["params"]:
                    if p.grad is not None and p.grad.stride() != p.stride():
                        p.grad = torch.empty_like(p).copy_(p.grad)

    def configure_optimizers(self) -> Any:
        cfg = self.optim_config
        backbone, rest = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (backbone if ".backbone." in f".{name}" else rest).append(param)
        groups = [
            {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale},
            {"params": rest, "lr": cfg.lr},
        ]
        fused = cfg.fused
        if fused is None:  # the fused kernels exist for CPU and CUDA tensors
            fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
        kwargs = {"fused": True} if fused else {}
        if cfg.optimizer == "adamw":
            optimizer = torch.optim.AdamW(
                groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kwargs
            )
        else:
            optimizer = torch.optim.SGD(
                groups,
                lr=cfg.lr,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
                nesterov=True,
                **kwargs,
            )
        if cfg.scheduler == "none" and cfg.warmup_epochs <= 0 and cfg.swa_epochs == 0:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_factor(
                cfg,
                total_steps=max(1, int(self.trainer.estimated_stepping_batches)),
                epochs=max(1, int(self.trainer.max_epochs or 1)),
            ),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
