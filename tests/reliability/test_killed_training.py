"""`rdam train` killed with SIGKILL mid-epoch: rerunning it resumes from ``last.ckpt`` and
ends with the weights and metrics of an uninterrupted run; a truncated ``last.ckpt`` is
reported, not loaded; a mid-epoch step checkpoint resumes exactly too."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from _tiny import tiny_config
from conftest import base_seed, rdam_command, sigkill_when, trials

from rdam.checkpoint import read_checkpoint_file
from rdam.cli import main
from rdam.config import ExperimentConfig, save_config
from rdam.training.train import train

STEPS_PER_EPOCH = 8
EPOCHS = 3
METRICS = ("val/acc", "val/loss", "train/loss_epoch", "train/acc")


def _config(**trainer: Any) -> ExperimentConfig:
    """Seconds-long CPU run: synthetic clips, test_resnet with dropout, 2 frames of 32 px,
    batch 8."""
    return tiny_config(
        model={"dropout": 0.2},  # the resumed run must draw the same dropout masks
        data={"synthetic": {"num_train": 8 * STEPS_PER_EPOCH}},
        trainer={"max_epochs": EPOCHS, "seed": 7, **trainer},
    )


def _final(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    ckpt = read_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return ckpt["state_dict"], metrics


def _assert_same_run(a: Path, b: Path) -> None:
    weights_a, metrics_a = _final(a)
    weights_b, metrics_b = _final(b)
    assert weights_a.keys() == weights_b.keys()
    different = [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])]
    assert not different, f"weights differ after resuming: {different[:5]}"
    for key in METRICS:
        assert metrics_a[key] == metrics_b[key], key


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """``trainer.threads`` sets torch's thread count; give it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """(config file, uninterrupted run dir, seconds per epoch) of the tiny experiment."""
    root = tmp_path_factory.mktemp("train_reference")
    config = root / "tiny.yaml"
    save_config(_config(), config)
    assert main(["train", "-c", str(config), "--run-dir", str(root / "straight")]) == 0
    # the training time alone (the wall time of the call, with its start-up and export, made
    # the kill land after the last epoch on a loaded machine)
    seconds = json.loads((root / "straight" / "metrics.json").read_text())["train_seconds"]
    return config, root / "straight", seconds / EPOCHS


def _kill_mid_epoch(config: Path, run_dir: Path, rng: random.Random, epoch_s: float) -> dict:
    """Start `rdam train`; once epoch 0's last.ckpt is written, SIGKILL it a random time
    into the following epoch. Returns where the run stood when killed."""
    last = run_dir / "checkpoints" / "last.ckpt"
    delay = rng.uniform(0.05, 0.9) * epoch_s
    sigkill_when(
        rdam_command("train", "-c", str(config), "--run-dir", str(run_dir)),
        last.is_file,
        delay,
        poll_s=0.005,
    )
    ckpt = read_checkpoint_file(last)
    return {"delay_s": round(delay, 3), "epoch": ckpt["epoch"], "step": ckpt["global_step"]}


def test_sigkilled_training_resumes_to_the_uninterrupted_result(
    reference, tmp_path: Path, measured
) -> None:
    config, straight, epoch_s = reference
    rng = random.Random(base_seed())
    n = trials(1, 5)
    kills = []
    for trial in range(n):
        run_dir = tmp_path / f"killed{trial}"
        where = _kill_mid_epoch(config, run_dir, rng, epoch_s)
        for retry in range(3):  # a busy machine can make the epoch shorter than measured
            if where["epoch"] < EPOCHS - 1:
                break
            run_dir = tmp_path / f"killed{trial}_{retry}"
            where = _kill_mid_epoch(config, run_dir, rng, epoch_s / 4 ** (retry + 1))
        assert where["epoch"] < EPOCHS - 1, where  # killed before the end of the run
        assert not (run_dir / "metrics.json").exists()
        # `rdam train` on the same run directory resumes (same command line, this process)
        assert main(["train", "-c", str(config), "--run-dir", str(run_dir)]) == 0
        _assert_same_run(straight, run_dir)
        kills.append(where)
    measured("killed training", trials=n, kills=kills, epoch_s=round(epoch_s, 2),
             result="weights bit-identical, metrics equal")  # fmt: skip


def test_truncated_last_checkpoint_is_reported_not_loaded(reference, tmp_path: Path, capsys):
    config, straight, _ = reference
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    good = (straight / "checkpoints" / "last.ckpt").read_bytes()
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(good[: len(good) // 2])
    assert main(["train", "-c", str(config), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "rdam train: error:" in err and str(last) in err and "truncated or corrupt" in err
    assert "--no-resume" in err  # says what to do
    assert last.read_bytes() == good[: len(good) // 2]  # untouched: training never started
    assert not (run_dir / "metrics.json").exists()
    # the other entry points that read checkpoints say the same
    assert main(["eval", "--checkpoint", str(last)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(last), str(config)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


class _Stop(Exception):
    pass


class _StopAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise _Stop


def _csv_rows(run_dir: Path) -> list[list[str]]:
    return [line.split(",") for line in (run_dir / "logs" / "metrics.csv").read_text().splitlines()]


@pytest.mark.parametrize(
    ("epochs", "stop_step", "workers", "swa_epochs", "every"),
    [
        (1, 5, 0, 0, 3),  # stopped in epoch 0 (after step 3)
        (2, 13, 1, 0, 3),  # in epoch 1 (after step 12)
        (3, 13, 0, 2, 3),  # in the first SWA epoch, which Lightning resumes without its start
        (2, 7, 0, 0, None),  # at a validation inside epoch 0 (val_check_interval 0.5)
    ],
)
def test_resume_from_a_mid_epoch_step_checkpoint_is_exact(
    tmp_path: Path, epochs: int, stop_step: int, workers: int, swa_epochs: int, every: int | None
) -> None:
    """A last.ckpt written mid-epoch: the resumed run skips the batches already trained and
    restores the epoch's metric accumulators and the RNG states, so it ends as the
    uninterrupted run (with a loader worker too, whose iterator Lightning builds before it
    restores the epoch; inside the SWA phase, whose average goes on from the checkpoint's; from
    a checkpoint written by a validation inside the epoch), and its CSV log has the same rows."""

    def config() -> ExperimentConfig:
        c = _config(max_epochs=epochs, checkpoint_every_n_steps=every)
        c.data.num_workers = workers
        c.optim.swa_epochs = swa_epochs
        if every is None:
            c.trainer.val_check_interval = 0.5
        return c

    train(config(), run_dir=tmp_path / "straight", resume=False)
    with pytest.raises(_Stop):
        train(config(), tmp_path / "resumed", resume=False, callbacks=[_StopAtStep(stop_step)])
    ckpt = read_checkpoint_file(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == (stop_step // 3 * 3 if every else STEPS_PER_EPOCH // 2)
    assert ckpt["ClipDataModule"]["train_batches_done"] == ckpt["global_step"] % STEPS_PER_EPOCH
    assert "train_epoch_accumulators" in ckpt
    train(config(), run_dir=tmp_path / "resumed", resume=True)
    _assert_same_run(tmp_path / "straight", tmp_path / "resumed")
    if swa_epochs:  # the exported average is the uninterrupted run's
        straight = read_checkpoint_file(tmp_path / "straight" / "checkpoints" / "last.ckpt")
        resumed = read_checkpoint_file(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
        n = (swa_epochs * STEPS_PER_EPOCH,) * 2
        assert (int(straight["averaging_state"]["n_averaged"]),
                int(resumed["averaging_state"]["n_averaged"])) == n  # fmt: skip
    rows_a, rows_b = _csv_rows(tmp_path / "straight"), _csv_rows(tmp_path / "resumed")
    assert len(rows_b) == len(rows_a)  # no row of the checkpoint's step twice
    assert [r[:2] for r in rows_b] == [r[:2] for r in rows_a]
