"""Resuming a fit from ``last.ckpt`` so that it ends as the uninterrupted run would.

Lightning restores weights, optimiser, schedule and loop counters, but not:

* the global RNG states (dropout masks): :class:`ExactResume` stores them in every checkpoint
  and sets them back when training restarts; the data loaders draw their worker seeds from
  their own generator (``ClipDataModule``), so iterating them leaves the global state alone;
* the train loader's epoch: Lightning builds and starts iterating it while estimating the
  schedule, before it restores the epoch counter, and reuses that iterator; a loader with
  workers has by then taken epoch 0's order and given its workers epoch 0's data set.
  :class:`ExactResume` rebuilds it once the counter is restored;
* where a mid-epoch checkpoint (``trainer.checkpoint_every_n_steps``) stood in its epoch: the
  data module stores the batches already trained (the loader skips them on resume) and the
  module its epoch accumulators, both only when the checkpoint is mid-epoch
  (:func:`mid_epoch_batches`);
* the best score so far, when the run directory has moved (another path or machine):
  Lightning then drops it with a warning, and the first validation after the resume became
  the "best" checkpoint, exported as the run's model. :class:`RunCheckpoint` moves the saved
  paths along with the directory.

Under DDP the checkpoint holds rank 0's RNG states, which every rank takes on resume.

And it resumes only **the run it started as**: :func:`check_same_recipe` refuses to train on
from ``last.ckpt`` with other settings than those the checkpoint was trained with (another
config, or an override), which would leave one run directory holding a run of two recipes
under the name of the second.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from rdam.config import RUN_SETTINGS, flat_settings
from rdam.errors import ConfigError


def check_same_recipe(
    saved: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any], checkpoint: Path
) -> None:
    """Refuse to resume ``checkpoint`` (trained with the experiment config ``saved``) under
    ``now``, when they differ in anything but :data:`rdam.config.RUN_SETTINGS`. A setting that the
    checkpoint's rdam did not have yet counts as unchanged when ``now`` has its default
    (``defaults``: a default config's ``to_dict()``); one that is no longer a setting is
    ignored.

    Raises:
        ConfigError: naming each changed setting, its value in the checkpoint and now.
    """
    old, new, default = flat_settings(saved), flat_settings(now), flat_settings(defaults)
    changed = []
    for key, value in new.items():
        if key in RUN_SETTINGS:
            continue
        before = old[key] if key in old else default.get(key, value)
        if before != value:
            changed.append(f"{key}: {before!r} in the checkpoint, {value!r} now")
    if changed:
        run_dir = checkpoint.parent.parent
        raise ConfigError(
            f"{checkpoint}: resuming would train on with other settings than the run was "
            f"trained with ({'; '.join(changed)}). Resume with its own config "
            f"(rdam train -c {run_dir / 'config.yaml'} --run-dir {run_dir}), train the new "
            "settings in another --run-dir (to train further from this run's weights: "
            f"trainer.init_from={run_dir / 'model.safetensors'}), or start this one over with "
            "--no-resume"
        )


def mid_epoch_batches(trainer: Any) -> int | None:
    """Batches of the current epoch already trained, if ``trainer`` is fitting and inside an
    epoch (at least one batch done, not all); ``None`` otherwise (between epochs, not fitting).
    A checkpoint written by a validation inside the epoch (``trainer.val_check_interval``
    below 1) is inside it too: the trainer is then validating, but still fitting."""
    state = getattr(trainer, "state", None)
    if state is None or getattr(state, "fn", None) != "fit" or trainer.sanity_checking:
        return None
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    total = trainer.num_training_batches
    if 0 < done < total:
        return int(done)
    return None


def rng_states() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), NumPy and Python, as tensors and plain
    values (checkpoints are read with ``weights_only=True``, which refuses NumPy arrays)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Set the global RNG states saved by :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(L.Callback):
    """Stores the RNG states in each checkpoint; on a resumed fit, rebuilds the train loader
    for the restored epoch and sets the RNG states back, before the first resumed batch."""

    def __init__(self) -> None:
        self._states: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng_states": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._states = state_dict.get("rng_states")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path is None:
            return
        loop = trainer.fit_loop
        loop._combined_loader = None  # no public way to ask for a rebuild (Lightning 2.6)
        loop.setup_data()
        if self._states is not None:
            set_rng_states(self._states)
            self._states = None


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` that resumes its state (best score, best and last
    paths) also when the run directory has moved since the checkpoint was saved: its saved
    paths under the old ``dirpath`` are read as the same files under the new one."""

    @property
    def state_key(self) -> str:
        """Lightning's key of this callback's state in a checkpoint, as ``ModelCheckpoint``
        names it: checkpoints saved before this class (and after) resume with their state."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if isinstance(old, str) and self.dirpath and old != self.dirpath:
            state_dict = moved_checkpoint_state(state_dict, old, self.dirpath)
        super().load_state_dict(state_dict)


def moved_checkpoint_state(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A ``ModelCheckpoint`` state with every path under ``old`` moved under ``new``."""

    def move(path: Any) -> Any:
        if not isinstance(path, str) or not path:
            return path
        inside = Path(path).relative_to(old) if Path(path).is_relative_to(old) else None
        return path if inside is None else str(Path(new) / inside)

    out = dict(state, dirpath=new)
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in out:
            out[key] = move(out[key])
    if isinstance(out.get("best_k_models"), dict):
        out["best_k_models"] = {move(k): v for k, v in out["best_k_models"].items()}
    return out
