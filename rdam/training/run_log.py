"""What a run directory records across resumes: the per-epoch CSV log and the training time.

A run is stopped and resumed from ``checkpoints/last.ckpt`` (sessions end; ``rdam train``
again picks up where it was). Two records must survive that:

- **The CSV log** (``logs/metrics.csv``). Lightning's ``CSVLogger`` deletes an existing
  ``metrics.csv`` when it starts, so a resumed run would keep only the rows logged after
  the resume. :func:`csv_logger` keeps the rows logged up to the checkpoint's step
  (later rows belong to work the resumed run does again) and writes on after them.
- **The training time.** :class:`TrainClock` keeps the seconds of training in each checkpoint
  and adds those of the run that resumes from it. So ``metrics.json``'s ``train_seconds`` is
  the whole run's time up to its last checkpoint; the time lost to a stop is not counted.
  It also keeps **what each call trained on** (``metrics.json`` ``compute``: one entry per call
  of ``fit``, with its steps, seconds, Lightning precision, device, threads, and
  whether dilated convolutions could go tap by tap), so a table
  whose rows were trained on different machines or precisions says so.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from rdam.models.tap_conv import TapConv2d
from rdam.runtime import device_name


class TrainClock(L.Callback):
    """Seconds of training over every resume of a run, and what each call of ``fit`` ran on
    (see the module notes)."""

    def __init__(self) -> None:
        self.before = 0.0  # seconds of the runs this one resumes
        self.started: float | None = None
        self.earlier: list[dict[str, Any]] = []  # the compute of the calls this one resumes
        self.this_call: dict[str, Any] = {}
        self._trainer: L.Trainer | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.perf_counter()
        self._trainer = trainer
        self.this_call = {
            "precision": str(trainer.precision),
            "accelerator": trainer.strategy.root_device.type,
            "device": device_name(trainer.strategy.root_device),
            "devices": int(trainer.world_size),
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),  # a str subclass, refused by weights_only loads
            # trainer.tap_convolutions: dilated convolutions by taps where their input is small
            "tap_convolutions": trainer.strategy.root_device.type == "cpu"
            and any(isinstance(m, TapConv2d) for m in pl_module.modules()),
        }

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.this_call["first_step"] = int(trainer.global_step)  # after a resume's restore

    @property
    def seconds_this_call(self) -> float:
        """Training seconds of this call of ``fit`` so far (from its ``on_fit_start``)."""
        return 0.0 if self.started is None else time.perf_counter() - self.started

    @property
    def seconds(self) -> float:
        """The whole run's training seconds so far: the resumed runs' and this call's."""
        return self.before + self.seconds_this_call

    def compute(self, seconds_this_call: float | None = None) -> list[dict[str, Any]]:
        """One entry per call of ``fit`` up to now: ``first_step``/``last_step`` (global steps),
        ``seconds`` (this call's: ``seconds_this_call`` when given, so that it is the figure
        recorded beside it), ``precision`` (Lightning's), ``accelerator``, ``device``,
        ``devices``, ``threads``, ``torch``."""
        if not self.this_call:
            return list(self.earlier)
        seconds = self.seconds_this_call if seconds_this_call is None else seconds_this_call
        step = self._trainer.global_step if self._trainer is not None else None
        return [*self.earlier, {**self.this_call, "last_step": step, "seconds": seconds}]

    def state_dict(self) -> dict[str, Any]:
        now = self.seconds_this_call
        return {"train_seconds": self.before + now, "compute": self.compute(now)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before = float(state_dict.get("train_seconds", 0.0))
        self.earlier = list(state_dict.get("compute", []))  # none in older checkpoints


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def csv_logger(run_dir: Path, resume_step: int | None) -> Any:
    """Lightning's ``CSVLogger`` writing ``run_dir/logs/metrics.csv``; when the run resumes
    from a checkpoint at global step ``resume_step``, the rows logged before that step are kept
    (see the module notes): the checkpoint holds batches ``0 .. resume_step - 1``, and the rows
    of step ``resume_step`` (its batch's loss and learning rate) come again from the resumed
    run. Epoch-end and validation rows are logged at the step of their epoch's last batch."""
    from lightning.pytorch.loggers import CSVLogger

    path = run_dir / "logs" / "metrics.csv"
    header: list[str] = []
    kept: list[dict[str, str]] = []
    if resume_step is not None and path.is_file():
        header, rows = _read_rows(path)
        kept = [r for r in rows if r.get("step") not in (None, "") and int(r["step"]) < resume_step]
    logger = CSVLogger(run_dir, name="logs", version="")
    if kept:
        writer = logger.experiment  # its start removed the old file: write back what we keep
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(header)  # Lightning's own column order
        with path.open("w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=keys)
            out.writeheader()
            out.writerows(kept)
        writer.metrics_keys = keys  # new columns later rewrite the header, old rows kept
    return logger


__all__ = ["TrainClock", "csv_logger"]
