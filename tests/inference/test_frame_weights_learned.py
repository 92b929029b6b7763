"""A model trained on single images never learned its frame weights (``frame_weights_learned:
false`` in its file): every answer carries that record, from both runtimes, in JSON, CSV, the
``--people`` answers, ``Predictor.describe()`` (``/health``), the explain pages and the web
demo's answers, so uniform frame weights are not read as the model's choice of frames."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from _inference_fixtures import SquareFaceDetector, save_tiny_model, write_video
from fastapi.testclient import TestClient

import rdam
from rdam.checkpoint import frame_weights_learned, load_model
from rdam.cli import main
from rdam.explain import explain_videos, write_people_report
from rdam.explain.report import UNLEARNED_FRAME_WEIGHTS_NOTE
from rdam.export.onnx import export_onnx
from rdam.inference.formats import format_predictions
from rdam.inference.people import analyze_people
from rdam.models import ModelConfig
from rdam.serve import create_app

UNLEARNED = {"frame_weights_learned": False}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("frame_weights")
    return {
        "unlearned": save_tiny_model(root / "images.safetensors", metadata=UNLEARNED),
        "learned": save_tiny_model(
            root / "videos.safetensors", metadata={"frame_weights_learned": True}
        ),
        "unsaid": save_tiny_model(root / "old.safetensors"),
        "faces": save_tiny_model(root / "faces.safetensors", stream="faces", metadata=UNLEARNED),
        "video": write_video(root / "clip.mp4", face_frames=set(range(20))),
    }


def test_the_record_counts_only_for_models_with_learned_frame_weights():
    attention = ModelConfig(temporal="attention")
    assert frame_weights_learned(attention, UNLEARNED) is False
    assert frame_weights_learned(attention, {"frame_weights_learned": True}) is True
    assert frame_weights_learned(attention, {}) is None  # a file from before the record
    assert frame_weights_learned(attention, {"frame_weights_learned": "no"}) is None
    # frames averaged: there are no frame weights to learn, whatever the file says
    assert frame_weights_learned(ModelConfig(temporal="average"), UNLEARNED) is None
    assert frame_weights_learned(ModelConfig(arch="qan"), UNLEARNED) is False


@pytest.mark.parametrize(
    ("model", "expected"), [("unlearned", False), ("learned", True), ("unsaid", None)]
)
def test_every_answer_carries_the_models_record(files, model, expected):
    predictor = rdam.load(files[model])
    assert predictor.frame_weights_learned is expected
    assert predictor.describe()["frame_weights_learned"] is expected
    pred = predictor.predict_video(files["video"])
    assert pred.frame_weights_learned is expected
    assert json.loads(format_predictions([pred], "json"))[0]["frame_weights_learned"] is expected
    row = next(csv.DictReader(io.StringIO(format_predictions([pred], "csv"))))
    assert row["frame_weights_learned"] == {False: "false", True: "true", None: ""}[expected]


def test_an_onnx_export_keeps_the_record(files, tmp_path):
    onnx = export_onnx(load_model(files["unlearned"]), tmp_path / "m.onnx")
    predictor = rdam.load(onnx, runtime="onnx")
    assert predictor.frame_weights_learned is False
    assert predictor.predict_video(files["video"]).frame_weights_learned is False


def test_rdam_predict_and_people_answers_say_it(files, capsys):
    assert main(["predict", str(files["video"]), "--checkpoint", str(files["unlearned"])]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["frame_weights_learned"] is False
    predictor = rdam.load(files["faces"], face_detector=SquareFaceDetector(), evidence=None)
    video = analyze_people(predictor, files["video"])
    assert video.frame_weights_learned is False
    assert video.to_dict()["frame_weights_learned"] is False


def test_the_explain_pages_say_the_frame_weights_were_never_learned(files, tmp_path):
    note = UNLEARNED_FRAME_WEIGHTS_NOTE
    (entry,) = explain_videos(rdam.load(files["unlearned"]), [files["video"]], tmp_path / "a")
    text = entry.report.read_text()
    assert note in text
    assert "Every frame weighs about the same" not in text  # these weights vary
    (entry,) = explain_videos(rdam.load(files["learned"]), [files["video"]], tmp_path / "b")
    assert note not in entry.report.read_text()
    predictor = rdam.load(files["faces"], face_detector=SquareFaceDetector(), evidence=None)
    result = analyze_people(predictor, files["video"], keep_arrays=True)
    page = write_people_report(result, predictor.class_names, tmp_path / "people")
    # the people page and person 0's page
    both = page.read_text() + (page.parent / "person_0" / "report.html").read_text()
    assert both.count(note) == 2


def test_the_web_demo_answers_say_it(files):
    predictor = rdam.load(files["faces"], face_detector=SquareFaceDetector(), evidence=None)
    data = files["video"].read_bytes()
    with TestClient(create_app(predictor)) as client:
        clip = client.post("/predict", files={"file": ("clip.mp4", data, "video/mp4")})
        people = client.post("/people", files={"file": ("clip.mp4", data, "video/mp4")})
        page = client.get("/").text + client.get("/static/app.js").text
    assert clip.status_code == 200 and people.status_code == 200, clip.text + people.text
    assert clip.json()["frame_weights_learned"] is False
    assert people.json()["frame_weights_learned"] is False
    # the page shows the note, in the words of the explain pages
    assert "frame-weights-note" in page and json.dumps(UNLEARNED_FRAME_WEIGHTS_NOTE)[1:40] in page
