"""NaN or infinite model outputs (an fp16 overflow, a corrupt weight file) are refused with
:class:`NonFiniteOutputError` naming the inputs, by ``rdam predict`` and ``rdam eval`` alike
(exit 2): argmax would take a NaN row as class 0 and the JSON would carry NaN."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _inference_fixtures import CLASS_NAMES, save_tiny_model, write_video
from PIL import Image

import rdam
from rdam.checkpoint import load_model, save_model
from rdam.cli import main
from rdam.errors import NonFiniteOutputError, RDAMError, check_finite_logits
from rdam.evaluation.evaluate import evaluate
from rdam.runtime import ModelOutputs


def _nan_model(path: Path, value: float = float("nan"), **config: Any) -> Path:
    """A tiny model file whose classifier bias is ``value`` (a corrupt weight file)."""
    tiny = save_tiny_model(path.with_name("ok_" + path.name), **config)
    bundle = load_model(tiny)
    with torch.no_grad():
        bundle.model.classifier.bias.fill_(value)
    return save_model(path, bundle.model, bundle.config, bundle.class_names, bundle.spec)


class PoisonRunner:
    """The real runner, with the logits of batch rows ``rows`` set to ``value`` in class
    ``column`` (None: every class), in its first ``calls`` calls (None: every call): an
    overflow of one clip of a batch, or of one test view."""

    def __init__(
        self, runner: Any, rows: set[int], value: float, column: int | None, calls: int | None
    ) -> None:
        self.runner = runner
        self.rows = rows
        self.value = value
        self.column = column
        self.calls = calls
        self.seen = 0
        self.provides_relations = runner.provides_relations
        self.precision = runner.precision
        self.two_stream = runner.two_stream

    def __call__(self, inputs: Mapping[str, Any], relations: bool = False) -> ModelOutputs:
        out = self.runner(inputs, relations=relations)
        self.seen += 1
        if self.calls is None or self.seen <= self.calls:
            logits = np.array(out.logits, copy=True)
            for row in self.rows:
                if self.column is None:
                    logits[row] = self.value
                else:
                    logits[row, self.column] = self.value
            out.logits = logits
        return out


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nonfinite")
    return {
        "model": save_tiny_model(root / "tiny.safetensors"),
        "nan_model": _nan_model(root / "nan.safetensors"),
        "a": write_video(root / "a.mp4", num_frames=6),
        "b": write_video(root / "b.mp4", num_frames=7),
        "c": write_video(root / "c.mp4", num_frames=8),
    }


def _poisoned(media, rows, value=float("nan"), column=None, calls=None, **options):
    predictor = rdam.load(media["model"], precision="fp32", **options)
    predictor.runner = PoisonRunner(predictor.runner, set(rows), value, column, calls)
    return predictor


def test_check_finite_logits_names_the_rows_that_are_not():
    logits = np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, np.inf], [1.0, -np.inf]])
    check_finite_logits(logits[:1], ["ok.mp4"])
    with pytest.raises(NonFiniteOutputError) as err:
        check_finite_logits(logits, ["ok.mp4", "x.mp4", "x.mp4", "y.mp4"], "fp16")
    assert err.value.inputs == ["x.mp4", "y.mp4"] and err.value.count == 3
    assert err.value.total == 4 and isinstance(err.value, RDAMError)
    message = str(err.value)
    assert message.startswith("x.mp4, y.mp4: ") and "ok.mp4" not in message
    assert "under precision fp16" in message and "--precision fp32" in message
    assert "model file" in message
    with pytest.raises(ValueError, match="2 input names for 4 rows"):
        check_finite_logits(logits, ["a", "b"])


def test_a_nan_output_is_refused_not_answered_as_class_0(media):
    predictor = _poisoned(media, rows=[0])
    with pytest.raises(NonFiniteOutputError, match="a.mp4: the model's output"):
        predictor.predict_video(media["a"])
    # an infinite logit too (softmax would give NaN, or a probability of exactly 1)
    for column in (None, 1):
        predictor = _poisoned(media, rows=[0], value=np.inf, column=column)
        with pytest.raises(NonFiniteOutputError):
            predictor.predict_video(media["a"])


def test_a_batch_names_the_clips_and_stops(media):
    """It concerns the model, not one file: the batch stops (a rerun with fp32 answers every
    clip) and the message names the clips whose outputs were not finite."""
    predictor = _poisoned(media, rows=[1])
    with pytest.raises(NonFiniteOutputError) as err:
        predictor.predict_many([media["a"], media["b"], media["c"]], batch_size=3)
    assert err.value.inputs == [str(media["b"])] and (err.value.count, err.value.total) == (1, 3)


def test_every_test_view_is_checked(media):
    """A -inf logit in one view is hidden by the average over the views (its probability is 0):
    it is refused all the same."""
    predictor = _poisoned(media, rows=[0], value=-np.inf, column=2, calls=1, mirror=True)
    with pytest.raises(NonFiniteOutputError, match="a.mp4"):
        predictor.predict_video(media["a"])


def test_predict_cli_exits_2_and_says_what_to_do(media, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(media["a"]), "--checkpoint", str(media["nan_model"]), "--format",
            "jsonl", "-o", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{media['a']}: the model's output (logits) is not finite" in err
    assert "--precision fp32" in err
    assert not out.exists() or out.read_text() == ""  # nothing answered from it
    assert main(["predict", str(media["a"]), "--checkpoint", str(media["nan_model"])]) == 2
    assert capsys.readouterr().out == ""


def _image_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


def test_eval_refuses_to_score_non_finite_outputs(tmp_path, capsys):
    model = _nan_model(tmp_path / "nan.safetensors", num_frames=1)
    data = _image_set(tmp_path / "data")
    with pytest.raises(NonFiniteOutputError) as err:
        evaluate(model, data, precision="fp32", batch_size=4)
    assert len(err.value.inputs) == 4 and all(Path(p).is_file() for p in err.value.inputs)
    assert main(["eval", str(data), "--checkpoint", str(model), "--out", str(tmp_path / "o")]) == 2
    assert "is not finite" in capsys.readouterr().err
    assert not (tmp_path / "o" / "eval_metrics.json").exists()
