"""An answer made with other clip-spec settings than the model file's (``--num-frames``,
``--keyframes``, ``--max-side``) says so wherever it is given: the Python API's
:class:`~rdam.inference.Prediction`, ``rdam predict``'s JSON and CSV, ``--people`` answers and
``Predictor.describe()`` (``/health``), all from one rule
(:attr:`~rdam.inference.Predictor.spec_overrides`: an override equal to the model's value is
none)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from _inference_fixtures import SquareFaceDetector, save_tiny_model, write_video

import rdam
from rdam.cli import main
from rdam.inference.formats import format_predictions
from rdam.inference.people import analyze_people


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("overrides")
    return {
        "model": save_tiny_model(root / "tiny.safetensors"),  # K = 4
        "faces": save_tiny_model(root / "faces.safetensors", stream="faces"),
        "video": write_video(root / "clip.mp4", face_frames=set(range(20))),
    }


@pytest.mark.parametrize(
    ("num_frames", "overrides", "model_values"),
    [(2, {"num_frames": 2}, {"num_frames": 4}), (None, {}, {}), (4, {}, {})],
)
def test_a_prediction_carries_the_overrides_in_force(files, num_frames, overrides, model_values):
    predictor = rdam.load(files["model"], num_frames=num_frames)
    assert predictor.spec_overrides == (overrides, model_values)
    described = predictor.describe()
    assert (described["overrides"], described["model_values"]) == (overrides, model_values)
    pred = predictor.predict_video(files["video"])
    assert len(pred.timestamps) == (num_frames or 4)
    assert (pred.overrides, pred.model_values) == (overrides, model_values)
    data = pred.to_dict()
    assert (data["overrides"], data["model_values"]) == (overrides, model_values)
    row = next(csv.DictReader(io.StringIO(format_predictions([pred], "csv"))))
    assert row["overrides"] == ("num_frames=2 (model: 4)" if overrides else "")


def test_rdam_predict_json_says_which_settings_differ(files, capsys):
    assert main(["predict", str(files["video"]), "--checkpoint", str(files["model"]),
                 "--num-frames", "2", "--format", "json"]) == 0  # fmt: skip
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["overrides"] == {"num_frames": 2} and answer["model_values"] == {"num_frames": 4}


def test_people_answers_carry_the_overrides(files):
    predictor = rdam.load(
        files["faces"], num_frames=2, face_detector=SquareFaceDetector(), evidence=None
    )
    video = analyze_people(predictor, files["video"])
    assert video.overrides == {"num_frames": 2} and video.model_values == {"num_frames": 4}
    assert video.to_dict()["overrides"] == {"num_frames": 2}


def test_a_failed_clips_answer_carries_the_settings_too(files, tmp_path):
    """A clip that fails (here: no such file) is an answer of the batch like the others: it
    carries the overrides in force and the model's frame-weights record."""
    predictor = rdam.load(files["model"], num_frames=2)
    (failed,) = predictor.predict_many([str(tmp_path / "missing.mp4")])
    assert failed.error_type == "VideoNotFoundError"
    assert (failed.overrides, failed.model_values) == ({"num_frames": 2}, {"num_frames": 4})
    assert failed.frame_weights_learned is None  # the tiny model's file does not say
    unlearned = save_tiny_model(
        tmp_path / "u.safetensors", metadata={"frame_weights_learned": False}
    )
    (failed_too,) = rdam.load(unlearned).predict_many([str(tmp_path / "missing.mp4")])
    assert (
        failed_too.error_type == "VideoNotFoundError" and failed_too.frame_weights_learned is False
    )
    row = next(csv.DictReader(io.StringIO(format_predictions([failed], "csv"))))
    assert (
        row["overrides"] == "num_frames=2 (model: 4)" and row["error_type"] == "VideoNotFoundError"
    )
