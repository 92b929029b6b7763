"""Experiment configs: include files, data.name, and every shipped config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rdam.config import (
    ROW_OVERRIDES,
    RUN_SETTINGS,
    DataConfig,
    ExperimentConfig,
    check_row_overrides,
    load_config,
    merge_config_dicts,
)
from rdam.errors import ConfigError
from rdam.models import ModelConfig, build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIG_FILES = sorted(CONFIGS.rglob("*.yaml"))


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_merge_is_recursive_for_mappings_and_replaces_the_rest() -> None:
    base = {
        "model": {"backbone": "resnet50", "dropout": 0.1},
        "data": {"augment": {"scale": [0.8, 1]}},
    }
    update = {"model": {"dropout": 0.3}, "data": {"augment": {"scale": [0.5, 1]}}}
    merged = merge_config_dicts(base, update)
    assert merged == {
        "model": {"backbone": "resnet50", "dropout": 0.3},
        "data": {"augment": {"scale": [0.5, 1]}},
    }
    assert base["model"]["dropout"] == 0.1  # inputs untouched


def test_include_chain_file_wins_over_includes_and_overrides_win_over_file(tmp_path: Path) -> None:
    _write(
        tmp_path / "base.yaml",
        {"model": {"backbone": "resnet18", "embed_dim": 64}, "optim": {"lr": 0.1}},
    )
    _write(tmp_path / "mid" / "data.yaml", {"include": "../base.yaml", "data": {"num_frames": 4}})
    top = _write(
        tmp_path / "top.yaml",
        {
            "include": ["base.yaml", "mid/data.yaml"],
            "model": {"embed_dim": 32},
            "optim": {"lr": 0.2},
        },
    )
    config = load_config(top, ["optim.lr=0.3"])
    assert config.model.backbone == "resnet18"
    assert config.model.embed_dim == 32
    assert config.data.num_frames == 4
    assert config.optim.lr == 0.3


def test_include_cycle_and_missing_include_are_clear_errors(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", {"include": "b.yaml"})
    _write(tmp_path / "b.yaml", {"include": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"include": "nope.yaml"})
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "c.yaml")


def test_data_name_defaults_to_the_root_folder_name() -> None:
    assert DataConfig(root="/data/sets/fer2013/").name == "fer2013"
    assert DataConfig(kind="csv", root="/x/subset.csv").name == "subset"
    assert DataConfig(kind="synthetic").name == "synthetic"
    assert DataConfig(root="/data/mhed", name="MHED").name == "MHED"


def test_the_config_folder_has_every_data_set_and_ablation_row() -> None:
    names = {p.relative_to(CONFIGS).as_posix() for p in CONFIG_FILES}
    for data_set in ("ekman6", "videoemotion8", "mhed", "heiv", "sfew", "fer2013", "ckplus"):
        assert f"{data_set}.yaml" in names
    for head in ("average", "location", "relation", "dual"):
        for stream in ("frames", "faces", "two_stream"):
            assert f"ablation/{head}_{stream}.yaml" in names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_every_config_file_loads_and_builds_its_model(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config.model, ModelConfig)
    assert config.data.name
    # the real architecture on a tiny backbone: heads, temporal fusion and streams must fit
    small = ModelConfig.from_dict(
        {**config.model.to_dict(), "backbone": "test_resnet", "weights": "none", "embed_dim": 16}
    )
    model = build_model(small)
    assert model.num_classes == config.model.num_classes


def test_paper_configs_use_the_papers_backbone_and_ablation_rows_differ_only_in_the_head() -> None:
    mhed = load_config(CONFIGS / "mhed.yaml")
    assert (mhed.model.backbone, mhed.model.output_stride, mhed.model.weights) == (
        "resnet50",
        8,
        "imagenet",
    )
    assert (mhed.data.name, mhed.data.stream) == ("MHED", "frames")
    average = load_config(CONFIGS / "ablation" / "average_faces.yaml")
    assert (average.model.region_head, average.model.temporal) == ("average", "average")
    assert average.data.stream == "faces"
    dual = load_config(CONFIGS / "ablation" / "dual_two_stream.yaml")
    assert (dual.model.arch, dual.data.stream) == ("two_stream", "both")
    rest = {k: v for k, v in dual.model.to_dict().items() if k not in ("arch",)}
    assert rest == {k: v for k, v in mhed.model.to_dict().items() if k not in ("arch",)}


def test_swa_phase_must_leave_room_for_the_main_schedule() -> None:
    with pytest.raises(ConfigError, match="swa_epochs=3"):
        ExperimentConfig.from_dict({"optim": {"swa_epochs": 3}, "trainer": {"max_epochs": 3}})
    with pytest.raises(ConfigError, match="swa_lr"):
        ExperimentConfig.from_dict({"optim": {"swa_lr": 0.0}})
    config = ExperimentConfig.from_dict({"optim": {"swa_epochs": 2}, "trainer": {"max_epochs": 3}})
    assert config.optim.swa_epochs == 2


def test_a_rows_overrides_may_say_where_and_how_it_runs_not_what_it_trains() -> None:
    """``rdam train --keep-recipe`` (train_rows.sh's committed records): the seed, threads,
    devices and the start file's name pass; a shorter schedule or another lr is refused, each
    offending key named once."""
    check_row_overrides(
        [
            "trainer.seed=1",
            "trainer.threads=2",
            "data.root=/x",
            "trainer.devices=1",
            "trainer.accelerator=gpu",
            "trainer.init_from=model.safetensors",
        ]
    )
    with pytest.raises(ConfigError) as caught:
        check_row_overrides(["trainer.threads=1", "trainer.max_epochs=1", "optim.lr=0.1"])
    message = str(caught.value)
    assert "override(s) trainer.max_epochs, optim.lr change the config's recipe" in message
    assert "trainer.seed" in message  # the allowed ones are listed, to say what may change
    assert ROW_OVERRIDES >= RUN_SETTINGS


def test_rdam_train_keep_recipe_refuses_before_it_writes_anything(tmp_path: Path, capsys) -> None:
    from rdam.cli import main

    run_dir = tmp_path / "run"
    code = main(["train", "--keep-recipe", "--run-dir", str(run_dir), "trainer.max_epochs=1"])
    assert code == 2
    assert "trainer.max_epochs" in capsys.readouterr().err
    assert not run_dir.exists()


def test_the_recipe_of_a_fixed_config_never_changes():
    """Evaluations record the scored model's recipe (``recipe_sha256``) and ``rdam report``
    checks it against the run's config.yaml read with today's defaults, so a new setting must
    not change the recipe of configs written before it: it goes in ``LATER_SETTINGS``. This
    value was the recipe of this config before ``trainer.init_spec_changes`` existed."""
    from rdam.config import LATER_SETTINGS, recipe_sha256

    fixed = {
        "model": {"backbone": "resnet10t", "num_classes": 7},
        "data": {"frame_size": 48},
        "trainer": {"max_epochs": 30},
    }
    assert recipe_sha256(fixed) == "4ffac1377ee93e43"
    # a later setting at its default is no change of recipe; set, it is one
    assert "trainer.init_spec_changes" in LATER_SETTINGS
    at_default = {**fixed, "trainer": {"max_epochs": 30, "init_spec_changes": []}}
    assert recipe_sha256(at_default) == "4ffac1377ee93e43"
    changed = {**fixed, "trainer": {"max_epochs": 30, "init_spec_changes": ["frame_size"]}}
    assert recipe_sha256(changed) != "4ffac1377ee93e43"


def test_a_setting_that_lists_names_takes_one_string_of_them():
    """``trainer.loggers=csv`` on the command line is one logger, not the letters c, s, v (which
    named no logger, so the run logged nothing); the same for ``trainer.init_spec_changes``."""
    config = ExperimentConfig.from_dict(
        {"trainer": {"loggers": "csv", "init_spec_changes": "frame_size, face_margin"}}
    )
    assert config.trainer.loggers == ("csv",)
    assert config.trainer.init_spec_changes == ("frame_size", "face_margin")
    listed = ExperimentConfig.from_dict({"trainer": {"loggers": ["csv", "tensorboard"]}})
    assert listed.trainer.loggers == ("csv", "tensorboard")
    # a misspelt or unsupported logger is refused, not left out of the run without a word
    with pytest.raises(ConfigError, match=r"trainer.loggers: \['tensorbord', 'wandb'\]"):
        ExperimentConfig.from_dict({"trainer": {"loggers": "csv,tensorbord,wandb"}})
    assert ExperimentConfig.from_dict({"trainer": {"loggers": []}}).trainer.loggers == ()
    # weight averaging exports the last average: an early stop would export neither that nor
    # the best epoch
    with pytest.raises(ConfigError, match="swa_epochs with trainer.early_stopping_patience"):
        ExperimentConfig.from_dict({"optim": {"swa_epochs": 2},
                                    "trainer": {"max_epochs": 5, "early_stopping_patience": 3}})  # fmt: skip


def test_settings_are_typed_as_their_fields_under_the_yaml_core_schema(tmp_path: Path):
    """``optim.lr=3e-4`` (the module's own example) is a float: PyYAML's YAML 1.1 read it as
    the string '3e-4', accepted here and failing inside the first training step. A run named
    0123 keeps its name (not the octal 83), 12:30 stays text (not 750), a setting of the wrong
    type is refused by name before anything runs; the same in a config file."""
    config = load_config(None, ["optim.lr=3e-4", "optim.weight_decay=5e-2",
                                "trainer.run_name=0123", "data.soft_label_weight=5e-1",
                                "trainer.max_epochs=7.0", "model.dropout=1e-1"])  # fmt: skip
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)
    assert config.optim.weight_decay == 0.05 and config.data.soft_label_weight == 0.5
    assert config.trainer.run_name == "0123" and config.trainer.max_epochs == 7
    assert isinstance(config.trainer.max_epochs, int) and config.model.dropout == 0.1
    assert load_config(None, ["trainer.run_name=12:30"]).trainer.run_name == "12:30"
    assert load_config(None, ["trainer.run_name=2024"]).trainer.run_name == "2024"
    for override, message in (
        ("optim.lr=fast", "optim.lr must be float, got 'fast'"),
        ("trainer.max_epochs=2.5", "trainer.max_epochs must be int, got 2.5"),
        ("optim.lr=true", "optim.lr must be float, got the boolean True"),
        ("trainer.channels_last=1", "trainer.channels_last must be true or false, got 1"),
    ):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_config(None, [override])
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 3e-4\n  warmup_epochs: 1e0\n")
    file_config = load_config(path)
    assert file_config.optim.lr == 3e-4 and file_config.optim.warmup_epochs == 1.0
