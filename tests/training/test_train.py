"""train(config) end to end on tiny problems: real data, the synthetic set, exact resumption."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
from pathlib import Path
from unittest import mock

import lightning as L
import pytest
import torch
from _tiny import fer2013_subset, make_settings, tiny_config

from rdam.checkpoint import load_model, read_checkpoint_file
from rdam.config import load_config, save_config
from rdam.data.synthetic import synthetic_class_names
from rdam.errors import ConfigError, DatasetError, TrainingInterrupted
from rdam.training.datamodule import ClipDataModule
from rdam.training.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_fer2013_short_run_from_the_shipped_config(
    fer2013_dir: Path, tmp_path: Path, caplog
) -> None:
    manifest = fer2013_subset(fer2013_dir, tmp_path / "fer_subset.csv", {"train": 32, "val": 8})
    config = load_config(
        CONFIGS / "fer2013_face_default.yaml",
        [
            "data.kind=csv",
            f"data.root={manifest}",
            "data.name=FER2013",
            "data.frame_size=32",
            "data.batch_size=32",
            "data.num_workers=0",
            "trainer.max_epochs=2",
            "optim.swa_epochs=1",
            "trainer.threads=1",
            "trainer.loggers=[csv]",
        ],
    )
    with caplog.at_level("WARNING", logger="rdam.training.train"):
        result = train(config, run_dir=tmp_path / "run")
    # FER2013 faces are one-frame clips: the frame attention cannot learn, and says so
    assert "every training clip of" in caplog.text and "get no gradient" in caplog.text
    # the config's 0.15 frames faces on videos otherwise than FER2013 framed them: said, and
    # the measured framing travels in the model file (figure 17: 0.015 on 1,912 train faces)
    assert "but data.face_margin is 0.15" in caplog.text
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["global_step"] == 14  # 224 images, batch 32, drop_last, 2 epochs
    assert summary["best"]["monitor"] == "val/acc"
    assert 0.0 <= summary["best"]["score"] <= 1.0
    assert math.isfinite(summary["metrics"]["train/loss_epoch"])
    bundle = load_model(result.model_file)
    # ... and the model file records it, for every answer to carry
    assert bundle.metadata["frame_weights_learned"] is False
    framing = bundle.metadata["training_crop_framing"]
    assert framing["images"] == 100 and framing["found"] >= 80
    assert -0.03 <= framing["margin"] <= 0.06
    assert framing["equalized"] is True and framing["equalization_gap"] < 3
    assert bundle.frame_weights_learned is False
    assert bundle.class_names == classes
    assert bundle.config.num_classes == 7
    assert bundle.spec.frame_size == 32
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.data.name == "FER2013"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    logged = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "val/acc" in logged


@pytest.mark.shared_data
def test_validation_clips_are_held_out_from_training(fer2013_dir: Path, tmp_path: Path, caplog):
    """A clip listed in both the training and the validation split is refused before
    anything trains; validating on the training split itself is said in a warning."""
    manifest = fer2013_subset(fer2013_dir, tmp_path / "fer.csv", {"train": 1, "val": 1})
    lines = manifest.read_text().splitlines()
    leaked = next(line for line in lines if line.endswith(",train,"))
    manifest.write_text("\n".join([*lines, leaked.replace(",train,", ",val,")]) + "\n")
    config = tiny_config(data={"kind": "csv", "root": str(manifest), "num_frames": 1})
    with pytest.raises(DatasetError, match=r"1 clip\(s\) are in both the training split"):
        ClipDataModule(config.data).setup("fit")
    same = tiny_config(
        data={"kind": "csv", "root": str(manifest), "num_frames": 1, "val_split": "train"}
    )
    with caplog.at_level("WARNING", logger="rdam.training.datamodule"):
        ClipDataModule(same.data).setup("fit")
    assert "data.val_split is the training split 'train'" in caplog.text


def test_synthetic_data_module_splits_and_classes() -> None:
    config = tiny_config(data={"synthetic": {"num_train": 12, "num_val": 8, "num_test": 4}})
    data = ClipDataModule(config.data)
    assert data.class_names == synthetic_class_names(2)
    data.setup(None)
    sizes = {k: len(v) for k, v in data.datasets.items()}
    assert sizes == {"train": 12, "val": 8, "test": 4}
    train_clip = data.datasets["train"][0]["frames"]
    val_clip = data.datasets["val"][0]["frames"]
    assert train_clip.shape == (2, 3, 32, 32) and train_clip.dtype == torch.uint8
    assert not torch.equal(train_clip, val_clip)  # different seeds per split
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (8, 2, 3, 32, 32)


class _Interrupt(Exception):
    pass


class _InterruptAtEpoch(L.Callback):
    """Simulates a killed job: raises when ``epoch`` starts (after the previous one's checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise _Interrupt


def _final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    ckpt = read_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    return ckpt["state_dict"], metrics


def _assert_resume_matches(config_factory, tmp_path: Path, interrupt_epoch: int = 1) -> None:
    straight = train(config_factory(), run_dir=tmp_path / "straight", resume=False)
    assert straight.metrics
    with pytest.raises(_Interrupt):
        train(
            config_factory(),
            tmp_path / "resumed",
            resume=False,
            callbacks=[_InterruptAtEpoch(interrupt_epoch)],
        )
    assert (tmp_path / "resumed" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    interrupted = read_checkpoint_file(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    seconds_before = next(
        v["train_seconds"] for k, v in interrupted["callbacks"].items() if "TrainClock" in k
    )
    train(config_factory(), run_dir=tmp_path / "resumed", resume=True)
    weights_a, metrics_a = _final_state(tmp_path / "straight")
    weights_b, metrics_b = _final_state(tmp_path / "resumed")
    assert weights_a.keys() == weights_b.keys()
    different = [k for k in weights_a if not torch.equal(weights_a[k], weights_b[k])]
    assert not different, f"weights differ after resuming: {different[:5]}"
    for key in ("val/acc", "val/loss", "train/loss_epoch", "train/acc"):
        assert metrics_a[key] == metrics_b[key], key
    # the CSV log of the resumed run still has every epoch of the first call, and the same
    # per-epoch values as the straight run's (Lightning alone would have deleted them)
    assert _epoch_rows(tmp_path / "resumed") == _epoch_rows(tmp_path / "straight")
    # the training time covers both calls: the interrupted call's up to its checkpoint, and
    # the resumed call's
    summary = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert seconds_before > 0 and summary["train_seconds_this_call"] > 0
    assert summary["train_seconds"] == pytest.approx(
        seconds_before + summary["train_seconds_this_call"], abs=1e-6
    )
    # what each call trained on: the interrupted call up to its checkpoint, then the resume
    first, second = summary["compute"]
    stopped_at = int(interrupted["global_step"])
    assert (first["first_step"], first["last_step"]) == (0, stopped_at)
    assert (second["first_step"], second["last_step"]) == (stopped_at, summary["global_step"])
    assert first["seconds"] == pytest.approx(seconds_before, abs=1e-6)
    assert second["seconds"] == summary["train_seconds_this_call"]
    for call in (first, second):
        assert call["precision"] == "32-true" and call["accelerator"] == "cpu"
        assert call["devices"] == 1 and call["threads"] == torch.get_num_threads()
        assert call["torch"] == torch.__version__ and call["device"].endswith(")")
    straight_summary = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [c["first_step"] for c in straight_summary["compute"]] == [0]
    # training a finished run again does nothing and keeps what it recorded
    before = {
        name: (tmp_path / "resumed" / name).read_bytes()
        for name in ("metrics.json", "logs/metrics.csv", "model.safetensors")
    }
    ckpt_before = (tmp_path / "resumed" / "checkpoints" / "last.ckpt").read_bytes()

    def no_fit(*args, **kwargs):  # e.g. an early-stopped run: Lightning would fit on
        raise AssertionError("a finished run was fitted again")

    with mock.patch.object(L.Trainer, "fit", no_fit):
        again = train(config_factory(), run_dir=tmp_path / "resumed", resume=True)
    assert again.metrics == metrics_b
    for name, data in before.items():
        assert (tmp_path / "resumed" / name).read_bytes() == data, name
    assert (tmp_path / "resumed" / "checkpoints" / "last.ckpt").read_bytes() == ckpt_before


def _epoch_rows(run_dir: Path) -> list[tuple[str, str, str]]:
    """(epoch, val/acc, train/loss_epoch) of each epoch-end row of the CSV log."""
    with (run_dir / "logs" / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        (r["epoch"], r["val/acc"], r.get("train/loss_epoch", "")) for r in rows if r.get("val/acc")
    ]


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    """Two epochs straight vs. one epoch, a crash, and a resume: identical weights/metrics."""
    _assert_resume_matches(lambda: tiny_config(trainer={"max_epochs": 2}), tmp_path)


class _SignalInEpoch(L.Callback):
    """Sends this process ``signum`` after the first batch of ``epoch`` (a job killed at the
    end of a session gets SIGTERM)."""

    def __init__(self, signum: int, epoch: int = 1) -> None:
        self.signum = signum
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize(
    ("signum", "name", "code"), [(signal.SIGTERM, "SIGTERM", 143), (signal.SIGINT, "SIGINT", 130)]
)
def test_a_run_stopped_by_a_signal_is_not_taken_for_finished(
    tmp_path: Path, signum: int, name: str, code: int
) -> None:
    """Lightning ends a fit stopped by SIGTERM with exit code 0, and a script (train_rows.sh)
    would score and record the half-trained run; train raises instead, and resumes."""
    run_dir = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)
    # Python's own Ctrl+C handler: a shell starts a background job (`cmd &`) with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as info:
            train(
                tiny_config(trainer={"max_epochs": 2}),
                run_dir,
                resume=False,
                callbacks=[_SignalInEpoch(signum)],
            )
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl+C after the first
    error = info.value
    saved = int(read_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"])
    assert (error.signal_name, error.exit_code) == (name, code)
    assert saved > 0 and f"at global step {saved + 1}, before its end" in str(error)
    assert f"last.ckpt (step {saved})" in str(error) and "run the same command again" in str(error)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model.safetensors").exists()
    resumed = train(tiny_config(trainer={"max_epochs": 2}), run_dir, resume=True)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert resumed.model_file is not None and summary["global_step"] == 2 * saved


def test_the_cli_exits_with_the_signal_code_when_training_is_stopped(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    import rdam.training.train as train_module
    from rdam.cli import main

    def stopped(*args, **kwargs):
        raise TrainingInterrupted(tmp_path / "run", "SIGTERM", 7, 5)

    monkeypatch.setattr(train_module, "train", stopped)
    config = tmp_path / "c.yaml"
    save_config(tiny_config(), config)
    assert main(["train", "-c", str(config), "--run-dir", str(tmp_path / "run")]) == 143
    err = capsys.readouterr().err
    assert "training stopped by SIGTERM at global step 7" in err and "(step 5)" in err


def test_a_resume_with_other_settings_is_refused_and_keeps_the_runs_config(
    tmp_path: Path,
) -> None:
    """A run resumes only as the run it started as: another recipe from its last.ckpt would
    leave one run directory holding two recipes under the second one's config."""
    run_dir = tmp_path / "run"
    with pytest.raises(_Interrupt):
        train(
            tiny_config(trainer={"max_epochs": 2}),
            run_dir,
            resume=False,
            callbacks=[_InterruptAtEpoch(1)],
        )
    written = (run_dir / "config.yaml").read_text()
    other = tiny_config(trainer={"max_epochs": 3}, optim={"lr": 0.5})
    with pytest.raises(ConfigError) as info:
        train(other, run_dir, resume=True)
    message = str(info.value)
    assert "optim.lr: 0.003 in the checkpoint, 0.5 now" in message
    assert "trainer.max_epochs: 2 in the checkpoint, 3 now" in message
    assert "--no-resume" in message and str(run_dir / "config.yaml") in message
    assert (run_dir / "config.yaml").read_text() == written  # not overwritten by the refused one
    # where and how it runs may change (each call's compute is recorded)
    same = tiny_config(
        trainer={"max_epochs": 2, "threads": 1, "progress_bar": False, "tap_convolutions": False}
    )
    train(same, run_dir, resume=True)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["epochs"] == 2 and summary["compute"][-1]["threads"] == 1
    # trainer.tap_convolutions (on by default) in the first call, off after the resume
    assert [c["tap_convolutions"] for c in summary["compute"]] == [True, False]


def test_starting_over_sets_the_earlier_runs_results_aside(tmp_path: Path, caplog) -> None:
    """--no-resume in a finished run's directory: until the new run ends, the earlier run's
    metrics.json must not read as the new one's (rdam report reads it beside config.yaml)."""
    from rdam.evaluation.evaluate import evaluate

    run_dir = tmp_path / "run"
    train(tiny_config(), run_dir, resume=False)
    earlier = (run_dir / "metrics.json").read_bytes()
    evaluate(run_dir / "model.safetensors", out_dir=run_dir / "eval")  # its score, too
    (run_dir / "eval_metrics.json").write_text("{}")  # and one scored into the run directory
    with pytest.raises(_Interrupt), caplog.at_level("WARNING", logger="rdam.training.train"):
        train(tiny_config(optim={"lr": 0.5}), run_dir, resume=False,
              callbacks=[_InterruptAtEpoch(0)])  # fmt: skip
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "model.safetensors").exists()
    (aside,) = run_dir.glob("replaced-*")
    assert (aside / "metrics.json").read_bytes() == earlier
    assert (aside / "model.safetensors").is_file()
    assert (aside / "eval" / "eval_metrics.json").is_file()
    assert (aside / "scored-here" / "eval_metrics.json").read_text() == "{}"
    assert not (run_dir / "eval").exists() and not (run_dir / "eval_metrics.json").exists()
    assert (
        "starting over; the earlier run's metrics.json, model.safetensors, eval_metrics.json, "
        "eval moved to" in caplog.text
    )


class _BestAtStart(L.Callback):
    """Records the best-checkpoint callback's restored state when a fit starts."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        callback = trainer.checkpoint_callback
        self.score = callback.best_model_score
        self.path = callback.best_model_path


def test_a_moved_run_directory_resumes_with_its_best_score(tmp_path: Path, recwarn) -> None:
    """A run resumed from another path (copied to another machine, say): Lightning alone drops
    the best score, so the first epoch after the resume became the run's "best" model."""
    first = tmp_path / "first"
    with pytest.raises(_Interrupt):
        train(tiny_config(trainer={"max_epochs": 3}), first, resume=False,
              callbacks=[_InterruptAtEpoch(2)])  # fmt: skip
    saved = read_checkpoint_file(first / "checkpoints" / "last.ckpt")["callbacks"]
    (best_state,) = [
        v for k, v in saved.items() if k.startswith("ModelCheckpoint{'monitor': 'val/acc'")
    ]
    assert best_state["best_model_score"] is not None
    moved = tmp_path / "moved"
    first.rename(moved)
    seen = _BestAtStart()
    train(tiny_config(trainer={"max_epochs": 3}), moved, resume=True, callbacks=[seen])
    assert float(seen.score) == float(best_state["best_model_score"])
    assert seen.path == str((moved / "checkpoints" / "best.ckpt").resolve())
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]
    best = json.loads((moved / "metrics.json").read_text())["best"]["score"]
    assert best >= float(best_state["best_model_score"])  # the best over all three epochs


def test_check_same_recipe_takes_settings_newer_than_the_checkpoint_at_their_default() -> None:
    from rdam.training.resume import check_same_recipe

    defaults = {"optim": {"lr": 1e-3, "ema": 0.0}, "trainer": {"threads": None}}
    saved = {"optim": {"lr": 1e-3, "gone": 1}, "trainer": {"threads": 2}}
    check_same_recipe(saved, defaults, defaults, Path("r/checkpoints/last.ckpt"))  # passes
    with pytest.raises(ConfigError, match=r"optim.ema: 0.0 in the checkpoint, 0.9 now"):
        check_same_recipe(
            saved, {**defaults, "optim": {"lr": 1e-3, "ema": 0.9}}, defaults, Path("r/x/y")
        )
    # faces detected in the videos or given as crops: other training inputs, not where it runs
    faces = {**defaults, "data": {"face_input": "given"}}
    with pytest.raises(ConfigError, match=r"data.face_input: 'given' in the checkpoint"):
        check_same_recipe(faces, {**defaults, "data": {"face_input": "detect"}}, defaults,
                          Path("r/c"))  # fmt: skip


def test_resume_is_exact_with_random_erasing_and_mixup(tmp_path: Path) -> None:
    """The regularisers draw from torch's global generator, which a resume restores."""
    _assert_resume_matches(
        lambda: tiny_config(
            trainer={"max_epochs": 2}, optim={"random_erasing": 0.5, "mixup_alpha": 1.0}
        ),
        tmp_path,
    )


def test_resume_inside_the_swa_phase_restores_the_average(tmp_path: Path) -> None:
    """Killed after the first SWA epoch: the resumed run continues the same average."""
    _assert_resume_matches(
        lambda: tiny_config(trainer={"max_epochs": 3}, optim={"swa_epochs": 2}),
        tmp_path,
        interrupt_epoch=2,
    )


class _RecordSteps(L.Callback):
    """The module's floating-point state after every optimiser step of epochs >= ``start``."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.states: list[dict[str, torch.Tensor]] = []
        self.val_weights: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch >= self.start:
            self.states.append(
                {
                    k: v.detach().clone()
                    for k, v in pl_module.state_dict().items()
                    if v.is_floating_point()
                }
            )

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.val_weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_swa_phase_validates_and_exports_the_mean_of_its_steps(tmp_path: Path) -> None:
    config = tiny_config(trainer={"max_epochs": 3}, optim={"swa_epochs": 1, "swa_lr": 1e-3})
    recorder = _RecordSteps(start=2)
    result = train(config, run_dir=tmp_path / "run", callbacks=[recorder])
    assert len(recorder.states) == 4  # 32 clips, batch 8: one SWA epoch of 4 steps
    mean = {k: torch.stack([s[k] for s in recorder.states]).mean(0) for k in recorder.states[0]}
    ckpt = read_checkpoint_file(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert int(ckpt["averaging_state"]["n_averaged"]) == 4
    for key, value in mean.items():
        torch.testing.assert_close(ckpt["state_dict"][key], value, msg=key)
    # the state training goes on from is the last step, not the average
    for key, value in recorder.states[-1].items():
        torch.testing.assert_close(ckpt["current_model_state"][key], value, msg=key)
    # before the phase, validation sees the trained weights (no average exists yet); in it,
    # the average of the phase's steps
    assert len(recorder.val_weights) == 4  # sanity check + 3 epochs
    exported = load_model(result.model_file).model.state_dict()
    for key, value in mean.items():
        name = key.removeprefix("model.")
        torch.testing.assert_close(exported[name], value.to(exported[name].dtype), msg=key)
        torch.testing.assert_close(recorder.val_weights[-1][key], value, msg=key)
    first = recorder.val_weights[1]
    assert any(not torch.equal(first[k], recorder.val_weights[0][k]) for k in mean)


def test_swa_schedule_is_cosine_then_constant() -> None:
    from rdam.config import OptimConfig
    from rdam.training.module import lr_factor

    cfg = OptimConfig(lr=2e-3, scheduler="cosine", swa_epochs=2, swa_lr=5e-4)
    factor = lr_factor(cfg, total_steps=8, epochs=4)  # 2 steps per epoch, cosine over 4 steps
    expected = [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]
    assert [factor(i) for i in range(4)] == pytest.approx(expected)
    assert [factor(i) for i in range(4, 8)] == pytest.approx([0.25] * 4)
    plain = lr_factor(OptimConfig(lr=2e-3, scheduler="cosine"), total_steps=8, epochs=4)
    assert plain(4) == pytest.approx(0.5) and plain(7) == pytest.approx(
        0.5 * (1 + math.cos(7 * math.pi / 8))
    )


def test_resume_is_exact_with_augmentation_on_real_images(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    manifest = fer2013_subset(fer2013_dir, tmp_path / "fer.csv", {"train": 4, "val": 2})

    def config():
        return tiny_config(
            model={"num_classes": 7, "dropout": 0.2},
            data={
                "kind": "csv",
                "root": str(manifest),
                "num_frames": 1,
                "augment": {"enabled": True},
                "num_workers": 1,  # workers get a copy of the data set (and its epoch)
            },
            trainer={"max_epochs": 2},
        )

    _assert_resume_matches(config, tmp_path)


class _LogConstant(L.Callback):
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("constant", 1.0)


def test_last_checkpoint_is_the_latest_epoch_even_without_improvement(tmp_path: Path) -> None:
    """The monitored value never improves after epoch 0: best.ckpt stays at epoch 0, but the
    checkpoint a resume starts from must be the latest epoch."""
    config = tiny_config(trainer={"max_epochs": 2, "monitor": "constant"})
    train(config, run_dir=tmp_path, resume=False, callbacks=[_LogConstant()])
    last = read_checkpoint_file(tmp_path / "checkpoints" / "last.ckpt")
    best = read_checkpoint_file(tmp_path / "checkpoints" / "best.ckpt")
    assert (best["epoch"], last["epoch"]) == (0, 1)
    assert (best["global_step"], last["global_step"]) == (4, 8)


def test_two_stream_model_trains_from_a_face_cache_and_predicts(tmp_path: Path, caplog) -> None:
    """Table 5's frames + faces model through the real path: preprocess (with faces) into a
    cache, train from it with data.stream=both, then predict a video with the saved model.
    Half the clips show no face: each epoch says how many clips trained without one."""
    from _inference_fixtures import SquareFaceDetector, write_video

    import rdam
    from rdam.data.layouts import load_manifest
    from rdam.data.preprocess import preprocess

    lines = ["# classes: calm,busy", "path,label,split,group"]
    for i in range(8):
        split = "train" if i < 6 else "val"
        faces = {1, 3, 5} if i % 2 else set()  # half the clips show a face in some frames
        video = write_video(tmp_path / f"clip{i}.mp4", num_frames=8, face_frames=faces)
        lines.append(f"{video},{'busy' if i % 2 else 'calm'},{split},")
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    # a cache made with non-default settings: the model must be served with exactly these
    settings = make_settings(
        num_frames=4,
        frame_size=32,
        faces=True,
        fit="crop",
        margin=0.3,
        max_side=320,
        color="gray",
        face_input="detect",
    )
    report = preprocess(
        load_manifest(tmp_path / "clips.csv"),
        settings,
        tmp_path / "cache",
        progress=False,
        face_detector_factory=SquareFaceDetector,
    )
    assert report.failed == [] and report.done == 8
    config = tiny_config(
        model={"arch": "two_stream", "num_classes": 2},
        data={
            "kind": "csv",
            "root": str(tmp_path / "clips.csv"),
            "stream": "both",
            "cache_dir": str(tmp_path / "cache"),
            "num_frames": 4,
            "frame_size": None,  # unset: the cache's
            "face_input": "detect",
            "batch_size": 3,
        },
        trainer={"max_epochs": 2},
    )
    dm = ClipDataModule(config.data, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["frames"].shape == batch["faces"].shape == (3, 4, 3, 32, 32)
    assert batch["mask"].all()
    with caplog.at_level("WARNING", logger="rdam.training.module"):
        result = train(config, run_dir=tmp_path / "run")
    for epoch in (0, 1):
        assert (
            f"training, epoch {epoch}: 3 of 6 clips had no face in any sampled frame" in caplog.text
        )
        assert f"validation, epoch {epoch}: 1 of 2 clips had no face" in caplog.text
    bundle = load_model(result.model_file)
    assert bundle.config.arch == "two_stream" and bundle.spec == settings.spec
    predictor = rdam.load(result.model_file, face_detector=SquareFaceDetector(), precision="fp32")
    assert predictor.spec == settings.spec  # crop fit, margin 0.3, max side 320, grey
    assert (predictor.spec.fit, predictor.spec.face_margin) == ("crop", 0.3)
    assert (predictor.spec.max_side, predictor.spec.color) == (320, "gray")
    # a data setting that contradicts the cache is refused, not silently re-fitted
    clash = dataclasses.replace(config.data, frame_size=48)
    with pytest.raises(ConfigError, match="frame_size=48"):
        _ = ClipDataModule(clash, seed=0).spec
    pred = predictor.predict_video(write_video(tmp_path / "new.mp4", face_frames={2, 4}))
    assert pred.error is None and pred.label in ("calm", "busy")
    assert sum(pred.face_found) >= 1
    # a one-stream model on this cache with data.stream unset (so the cache's: both) is
    # refused before it trains, not after every epoch, at export, leaving an unreadable run
    one = dataclasses.replace(config, model=dataclasses.replace(config.model, arch="rdam"),
                              data=dataclasses.replace(config.data, stream=None))  # fmt: skip
    with pytest.raises(ConfigError, match=r"model.arch='rdam' with data.stream='both' \(unset"):
        train(one, run_dir=tmp_path / "one")
    assert not (tmp_path / "one" / "checkpoints").exists()
