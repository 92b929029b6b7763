"""trainer.init_from: a run starts from a trained model's weights, and refuses one that does
not fit (other network, classes or clip spec)"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from _tiny import tiny_config

from rdam.checkpoint import load_model, sha256_file
from rdam.errors import ConfigError
from rdam.training.datamodule import ClipDataModule
from rdam.training.train import train


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("init_from") / "source"
    return train(tiny_config(), run_dir=run).model_file


def test_a_run_starts_from_every_weight_of_the_model_file(trained_file: Path, tmp_path: Path):
    # lr 1e-12 and no weight decay: AdamW moves each parameter by about 1e-12 a step, so the
    # run's model is the file it started from (BatchNorm running statistics still move, so
    # compare parameters)
    still = {"lr": 1e-12, "weight_decay": 0.0}
    digest = sha256_file(trained_file)
    config = tiny_config(
        optim=still,
        trainer={"init_from": str(trained_file), "init_sha256": digest.upper()},  # hex, any case
    )
    result = train(config, run_dir=tmp_path / "tuned")
    # the run records where it started, in its summary and in its model file
    start = {"source": str(trained_file), "sha256": digest}
    summary = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert summary["init_from"] == start
    assert load_model(result.model_file).metadata["init_from"] == start
    source = load_model(trained_file).model
    tuned = load_model(result.model_file).model
    params = dict(tuned.named_parameters())
    assert len(params) > 10
    for name, value in source.named_parameters():
        assert torch.allclose(params[name], value, rtol=0, atol=1e-9), name
    # ... while a run from scratch with the same seed starts elsewhere
    scratch = load_model(
        train(tiny_config(optim=still), run_dir=tmp_path / "scratch").model_file
    ).model
    first, value = next(iter(source.named_parameters()))
    assert (dict(scratch.named_parameters())[first] - value).abs().max() > 1e-3
    assert json.loads((tmp_path / "scratch" / "metrics.json").read_text())["init_from"] is None


def test_a_pinned_start_refuses_another_model_file(trained_file: Path, tmp_path: Path):
    pinned = "0" * 64
    config = tiny_config(trainer={"init_from": str(trained_file), "init_sha256": pinned})
    with pytest.raises(ConfigError, match="trainer.init_sha256 pins " + pinned) as info:
        train(config, run_dir=tmp_path / "run")
    assert sha256_file(trained_file) in str(info.value)  # the digest it found, to pin instead
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_a_resumed_run_keeps_the_start_it_recorded(trained_file: Path, tmp_path: Path):
    class Stop(L.Callback):  # a job killed after its first epoch's checkpoint
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                raise KeyError("stopped")

    run = tmp_path / "run"
    copy = tmp_path / "start.safetensors"
    copy.write_bytes(trained_file.read_bytes())
    config = tiny_config(trainer={"init_from": str(copy), "max_epochs": 2})
    with pytest.raises(KeyError, match="stopped"):
        train(config, run_dir=run, callbacks=[Stop()])
    # the weights of a resumed run come from last.ckpt: the start is not read again (here it
    # is gone), and the record of the first call stays
    copy.unlink()
    train(config, run_dir=run)
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["epochs"] == 2
    assert summary["init_from"] == {"source": str(copy), "sha256": sha256_file(trained_file)}


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"model": {"embed_dim": 8}}, "embed_dim: 16 in the file, 8 here"),
        ({"data": {"synthetic": {"num_classes": 3}}, "model": {"num_classes": 3}}, "classes"),
        ({"data": {"frame_size": 48}}, "clip spec frame_size: 32 in the file, 48 here"),
    ],
)
def test_a_model_file_that_does_not_fit_is_refused(
    trained_file: Path, tmp_path: Path, sections: dict, named: str
) -> None:
    config = tiny_config(**sections, trainer={"init_from": str(trained_file)})
    with pytest.raises(ConfigError, match="trainer.init_from") as info:
        train(config, run_dir=tmp_path / "run")
    assert named in str(info.value)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_init_from_default_names_the_shipped_model(tmp_path: Path) -> None:
    # the tiny run is another network than the shipped face model: refused, naming both
    config = tiny_config(trainer={"init_from": "default"})
    with pytest.raises(ConfigError, match="backbone: 'resnet10t' in the file, 'test_resnet' here"):
        train(config, run_dir=tmp_path / "run")


def test_the_model_file_records_whether_its_frame_weights_were_learned(
    trained_file: Path, tmp_path: Path, monkeypatch, caplog
):
    """Frame attention gets no gradient from one-frame clips: a model trained on them records
    ``frame_weights_learned: false``, also when it started from a model that learned them (its
    features move on while the frame scores stay), through a resume too."""
    assert load_model(trained_file).frame_weights_learned is True  # 2-frame synthetic clips
    # clips of one frame that are not images: data.num_frames 1
    with caplog.at_level("WARNING", logger="rdam.training.train"):
        one_frame = {
            "num_frames": 1,
            "synthetic": {
                "num_train": 32,
                "num_val": 16,
                "num_classes": 2,
                "informative_frames": 1,
            },
        }
        one = train(tiny_config(data=one_frame), run_dir=tmp_path / "one")
    assert "has one frame" in caplog.text and "get no gradient" in caplog.text
    assert load_model(one.model_file).frame_weights_learned is False
    monkeypatch.setattr(ClipDataModule, "trains_on_single_images", property(lambda self: True))
    scratch = load_model(train(tiny_config(), run_dir=tmp_path / "scratch").model_file)
    assert scratch.metadata["frame_weights_learned"] is False
    assert scratch.frame_weights_learned is False

    class Stop(L.Callback):  # killed after its first epoch's checkpoint
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                raise KeyError("stopped")

    config = tiny_config(trainer={"init_from": str(trained_file), "max_epochs": 2})
    with pytest.raises(KeyError, match="stopped"):
        train(config, run_dir=tmp_path / "tuned", callbacks=[Stop()])
    tuned = load_model(train(config, run_dir=tmp_path / "tuned").model_file)
    assert tuned.metadata["frame_weights_learned"] is False
    # a model whose frames are averaged has no frame weights to learn: nothing is recorded
    average = tiny_config(model={"temporal": "average"})
    plain = load_model(train(average, run_dir=tmp_path / "average").model_file)
    assert "frame_weights_learned" not in plain.metadata and plain.frame_weights_learned is None


def test_a_fine_tune_may_change_the_clip_spec_fields_it_names(
    trained_file: Path, tmp_path: Path, caplog
) -> None:
    """``trainer.init_spec_changes``: the same weights fine-tuned on larger faces. Only the named
    fields may differ; the change is logged and recorded with the start, and the new model file
    carries the run's clip spec."""
    assert load_model(trained_file).spec.frame_size == 32
    config = tiny_config(
        data={"frame_size": 48},
        trainer={"init_from": str(trained_file), "init_spec_changes": ["frame_size"]},
    )
    with caplog.at_level("INFO", logger="rdam.training.init_from"):
        result = train(config, run_dir=tmp_path / "larger")
    assert "clip spec frame_size changes from 32 (the file's) to 48" in caplog.text
    start = {
        "source": str(trained_file),
        "sha256": sha256_file(trained_file),
        "spec_changes": {"frame_size": [32, 48]},
    }
    assert json.loads((tmp_path / "larger" / "metrics.json").read_text())["init_from"] == start
    tuned = load_model(result.model_file)
    assert tuned.metadata["init_from"] == start
    assert tuned.spec.frame_size == 48
    # every weight came from the file (same shapes: nothing in the network depends on the grid)
    assert set(tuned.model.state_dict()) == set(load_model(trained_file).model.state_dict())

    # a field the config does not name is still refused, with a word on the option
    other = tiny_config(
        data={"frame_size": 48, "num_frames": 3},
        trainer={"init_from": str(trained_file), "init_spec_changes": "frame_size"},
    )
    with pytest.raises(ConfigError, match="clip spec num_frames: 2 in the file, 3 here") as info:
        train(other, run_dir=tmp_path / "other")
    assert "frame_size" not in str(info.value).split("clip spec", 1)[1].split("(")[0]
    assert "trainer.init_spec_changes lists" in str(info.value)


def test_init_spec_changes_names_clip_spec_fields_only() -> None:
    with pytest.raises(ConfigError, match=r"\['frame_sise'\] are not clip spec fields"):
        tiny_config(trainer={"init_spec_changes": ["frame_sise"]})
