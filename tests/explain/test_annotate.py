"""``rdam predict --people --annotate``: the video with the people drawn on it (real sample)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rdam.cli import main
from rdam.explain.annotate import PALETTE, STRIP

pytestmark = pytest.mark.shared_data


def test_annotated_video_shows_each_persons_box_emotion_and_timeline(
    ekman6_dir: Path, tmp_path: Path, capsys
):
    video = ekman6_dir / "joy.mp4"
    out = tmp_path / "joy_annotated.mp4"
    assert main(["predict", "--people", str(video), "--annotate", str(out)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    people = result["people"]
    with av.open(str(video)) as source:
        expected_frames = sum(1 for _ in source.decode(video=0))
    with av.open(str(out)) as annotated:
        stream = annotated.streams.video[0]
        assert (stream.width, stream.height) == (640, 480 + STRIP * len(people))
        # the source's 29.97 frames per second, not 30 (rounded, the video ran fast)
        assert stream.average_rate == Fraction(30000, 1001)
        frames = [f.to_ndarray(format="rgb24") for f in annotated.decode(stream)]
    assert len(frames) == expected_frames
    # at the first sampled time of the whole-video person, its box is drawn in its class colour
    person = next(p for p in people if p["person"] == result["person"])
    t = person["timestamps"][0]
    frame = frames[round(t * 30000 / 1001)]
    x, y, _, h = (round(v) for v in person["boxes"][0][:4])  # 640x480 source: scale 1
    top_class = max(person["frame_probabilities"][0], key=person["frame_probabilities"][0].get)
    colour = PALETTE[names.index(top_class)].astype(int)
    edge = frame[y + h // 2, x - 1 : x + 2].astype(int)  # the left edge of the box
    assert np.abs(edge - colour).sum(axis=1).min() < 60, (edge, colour)
    # the timeline strip under the video: one row per person, coloured where they have faces
    strip = frames[0][480 + 2 : 480 + STRIP - 2]
    assert (strip.reshape(-1, 3).max(axis=1) > 0).mean() > 0.5


@pytest.fixture
def tiny_face_model(tmp_path: Path, monkeypatch) -> None:
    """The CLI's model: a tiny untrained face model with a stand-in detector (fast, no shared
    data needed)."""
    import importlib

    from _inference_fixtures import SquareFaceDetector, save_tiny_model

    import rdam

    model = save_tiny_model(tmp_path / "faces.safetensors", stream="faces")
    predictor = rdam.load(model, face_detector=SquareFaceDetector())
    monkeypatch.setattr(
        importlib.import_module("rdam.cli.predict"),
        "_load_predictor",
        lambda args, relations=False: predictor,
    )


@pytest.mark.usefixtures("tiny_face_model")
def test_annotated_videos_of_inputs_with_the_same_name_do_not_overwrite_each_other(
    tmp_path: Path, capsys
):
    """``--annotate DIR`` with a/x.mp4, b/x.mp4 and b/x.avi: one NNN_x.mp4 each (NNN the
    input's place, as --explain names its reports), each holding its own video's frames.
    (A tiny face model and a stand-in detector: fast, no shared data needed.)"""
    from _inference_fixtures import write_video

    lengths = {"a/x.mp4": 20, "b/x.mp4": 12, "b/x.avi": 8}
    for name, n in lengths.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_video(tmp_path / name, num_frames=n, face_frames=set(range(n)))
    inputs = [str(tmp_path / name) for name in lengths]
    out = tmp_path / "annotated"
    assert main(["predict", "--people", *inputs, "--annotate", str(out)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in results] == inputs and all(r["label"] for r in results)
    assert sorted(p.name for p in out.iterdir()) == ["001_x.mp4", "002_x.mp4", "003_x.mp4"]
    for index, n in enumerate(lengths.values(), start=1):
        with av.open(str(out / f"{index:03d}_x.mp4")) as annotated:
            assert sum(1 for _ in annotated.decode(video=0)) == n


@pytest.mark.usefixtures("tiny_face_model")
def test_annotate_into_a_folder_of_one_video_and_explain_without_an_answer(tmp_path: Path, capsys):
    """``--annotate annotated/`` for a folder holding one video writes annotated/001_x.mp4 (it
    crashed when the folder existed, and wrote a file named 'annotated' when it did not); and
    ``rdam explain --people`` of a video without an answer gives the label null, as predict
    does, not the words "no answer" (which only its index page shows)."""
    from _inference_fixtures import write_video

    folder = tmp_path / "one"
    folder.mkdir()
    write_video(folder / "x.mp4", num_frames=12, face_frames=set(range(12)))
    for out in (tmp_path / "existing", tmp_path / "new"):
        if out.name == "existing":
            out.mkdir()
        assert main(["predict", "--people", str(folder), "--annotate", str(out)]) == 0
        capsys.readouterr()
        assert [p.name for p in out.iterdir()] == ["001_x.mp4"]
    faceless = write_video(tmp_path / "none.mp4", num_frames=12)
    assert main(["explain", "--people", str(faceless), "--out", str(tmp_path / "ex")]) == 0
    (report,) = json.loads(capsys.readouterr().out)["reports"]
    assert report["label"] is None and report["error"] is None
    assert "no answer" in (tmp_path / "ex" / "index.html").read_text()
