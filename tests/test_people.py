"""``rdam predict --people``: every person of a real video, a timeline, no answer without
evidence (the shipped model, real Ekman-6 samples)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import rdam
from rdam.cli import main
from rdam.inference.people import VIDEO_RULE, analyze_people, smooth

pytestmark = pytest.mark.shared_data


def test_people_of_a_real_video_and_the_videos_answer(ekman6_dir: Path, tmp_path: Path, capsys):
    timeline = tmp_path / "timeline.csv"
    video = ekman6_dir / "joy.mp4"
    assert main(["predict", "--people", str(video), "--timeline", str(timeline)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["rule"] == VIDEO_RULE and result["reason"] is None
    people = {p["person"]: p for p in result["people"]}
    chosen = people[result["person"]]
    # the answer is the answerable person on screen longest, and it is that person's answer
    longest = max(
        (p for p in people.values() if p["reason"] is None), key=lambda p: p["end"] - p["start"]
    )
    assert chosen is longest and result["label"] == chosen["label"] == "happy"
    assert result["probabilities"] == chosen["probabilities"]
    # the person seen over the whole video gets the clip `rdam predict` reads of the video
    plain = rdam.load().predict_video(video)
    assert chosen["timestamps"] == pytest.approx(plain.timestamps)
    assert chosen["probabilities"] == pytest.approx(plain.probabilities, abs=1e-6)
    for p in people.values():
        k = len(p["timestamps"])
        assert p["coverage"]["frames"] == k == len(p["frame_weights"]) == len(p["alpha"])
        if p["coverage"]["frames_with_face"]:
            assert sum(p["frame_weights"]) == pytest.approx(1.0, abs=1e-6)  # normalised α
        found = [b is not None for b in p["boxes"]]
        assert sum(found) >= p["coverage"]["frames_with_face"]
    rows = list(csv.DictReader(io.StringIO(timeline.read_text())))
    assert len(rows) == sum(len(p["timestamps"]) for p in people.values())
    first = [r for r in rows if int(r["person"]) == chosen["person"]]
    assert [float(r["time"]) for r in first] == pytest.approx(chosen["timestamps"], abs=1e-3)
    probs = np.array([[float(r[f"p_{c}"]) for c in chosen["probabilities"]] for r in first])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # the shipped model was trained on single images: every row says its weights are unlearned
    assert {r["frame_weights_learned"] for r in rows} == {"false"}


def test_a_video_without_a_person_gives_no_answer_with_the_reason(ekman6_dir: Path, capsys):
    """disgust.mp4 shows a lizard: YuNet fires on it now and then, far below a real face."""
    assert main(["predict", "--people", str(ekman6_dir / "disgust.mp4")]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["label"] is None and result["probabilities"] == {} and result["person"] is None
    assert "no face" in result["reason"]
    assert all(p["label"] is None and p["reason"] for p in result["people"])


def test_people_needs_a_face_model(tmp_path: Path):
    from _inference_fixtures import save_tiny_model, write_video

    predictor = rdam.load(save_tiny_model(tmp_path / "frames.safetensors"))
    with pytest.raises(rdam.errors.ConfigError, match="face-stream model"):
        analyze_people(predictor, write_video(tmp_path / "v.mp4"))


def test_smoothing_is_a_centred_mean_that_skips_frames_without_a_face():
    values = np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0], [0.5, 0.5]])
    out = smooth(values, 3)
    np.testing.assert_allclose(out[0], [1.0, 0.0])
    assert np.isnan(out[1]).all()  # no face there: no probabilities from the neighbours
    np.testing.assert_allclose(out[2], [0.25, 0.75])
    assert smooth(values, 1) is values
    with pytest.raises(rdam.errors.ConfigError, match="odd"):
        smooth(values, 2)


def test_plain_predict_gives_no_answer_without_evidence(ekman6_dir: Path):
    """The face-stream path of plain ``predict`` applies the same evidence rules: the lizard
    gets no label (it used to get ``sad 0.683`` from one detection at score 0.635)."""
    predictor = rdam.load()
    (lizard,) = predictor.predict_many([ekman6_dir / "disgust.mp4"])
    assert lizard.label is None and lizard.error_type == "NoFaceError"
    assert "evidence enough" in lizard.error and "best score 0.635" in lizard.error
    lenient = rdam.load(evidence=None).predict_many([ekman6_dir / "disgust.mp4"])[0]
    assert lenient.label is not None  # what the rules prevent
    assert predictor.predict_video(ekman6_dir / "joy.mp4").label == "happy"


def test_people_follow_the_predictors_evidence_rules_and_the_cli_flags(ekman6_dir: Path, capsys):
    """One set of evidence rules: ``rdam.load(evidence=...)`` (the CLI's --min-face-* flags)
    decides for plain predict and for every person alike."""
    from rdam.data.person_clips import EvidenceRules

    video = ekman6_dir / "joy.mp4"
    strict = rdam.load(evidence=EvidenceRules(min_score=0.99, min_frames=17))
    result = analyze_people(strict, video)
    assert result.label is None and result.evidence_rules["min_frames"] == 17
    # no face of joy.mp4 scores 0.99; 17 frames of K = 16 means all of them
    assert all("at least 16 needed (score >= 0.99" in p.reason for p in result.people)
    lenient = analyze_people(rdam.load(evidence=None), video)
    assert lenient.evidence_rules == {"min_score": 0.0, "min_face_px": 0.0, "min_frames": 1}
    assert main(["predict", "--people", str(video), "--min-face-px", "1000"]) == 0
    (out,) = json.loads(capsys.readouterr().out)
    assert out["label"] is None and "face >= 1000 px" in out["reason"]
    assert main(["predict", str(video), "--min-face-score", "0.99"]) == 1  # plain predict too
    assert "evidence enough" in capsys.readouterr().err
    assert main(["predict", "--people", str(video), "--min-face-frames", "0"]) == 2
    assert "min_frames" in capsys.readouterr().err


def test_explain_people_writes_a_page_per_video_with_every_person(
    ekman6_dir: Path, tmp_path: Path, capsys
):
    """``rdam explain --people``: the video's answer, one row per person with their answer or
    the reason for none, each person's timeline, and each person's own attention report."""
    out = tmp_path / "explain"
    videos = [ekman6_dir / "joy.mp4", ekman6_dir / "disgust.mp4"]
    assert main(["explain", "--people", *map(str, videos), "--out", str(out)]) == 0
    listed = json.loads(capsys.readouterr().out)["reports"]
    assert [r["label"] for r in listed] == ["happy", None]  # null, as predict --people gives it
    joy = Path(listed[0]["report"])
    page = joy.read_text()
    assert "The video: happy (person 0)" in page and VIDEO_RULE in page
    people = analyze_people(rdam.load(), videos[0])
    for person in people.people:
        assert (joy.parent / f"timeline_{person.person}.png").stat().st_size > 1000
        report = joy.parent / f"person_{person.person}" / "report.html"
        assert f"person_{person.person}/report.html" in page
        text = report.read_text()
        assert f"person {person.person} (" in text
        if person.label is not None:
            assert f"Prediction: {person.label}" in text
            assert len(list(report.parent.glob("face_*.png"))) == len(person.timestamps)
    lizard = Path(listed[1]["report"]).read_text()
    assert "The video: no answer" in lizard and "no face" in lizard
    index = (out / "index.html").read_text()
    assert "001_joy.mp4/report.html" in index and "no answer" in index
    # predict --people --explain writes the same pages beside the JSON
    again = tmp_path / "again"
    assert main(["predict", "--people", str(videos[0]), "--explain", str(again)]) == 0
    assert (again / "001_joy.mp4" / "report.html").read_text().count("<tr>") == page.count("<tr>")


def test_a_stream_answers_for_each_person_and_keeps_their_ids(two_people: dict, capsys):
    """``rdam predict --stream --people`` over two real people side by side: every window has
    both, each with the answer their half gets alone, ids kept from window to window, and the
    boxes of each in their own half."""
    from rdam.inference.people import analyze_people

    video = two_people["side_by_side"]
    argv = ["predict", "--stream", str(video), "--people", "--sample-fps", "4"]
    assert main(argv) == 0
    windows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(windows) >= 2 and windows[-1]["end"] >= 2.5
    predictor = rdam.load()
    alone = {
        side: analyze_people(predictor, two_people[name]).label
        for side, name in ((0, "joy"), (1, "fear"))
    }
    ids_by_side: dict[int, set[int]] = {0: set(), 1: set()}
    for window in windows:
        main_people = [p for p in window["people"] if p["coverage"]["frames_with_face"] >= 3]
        assert len(main_people) == 2, window
        for person in main_people:
            xs = [b[0] + b[2] / 2 for b in person["boxes"] if b is not None]
            side = int(np.median(xs) > 320)
            assert all((x > 320) == bool(side) for x in xs), person["boxes"]  # no swap
            ids_by_side[side].add(person["person"])
            assert person["reason"] is None
            assert sum(person["frame_weights"]) == pytest.approx(1.0, abs=1e-5)
        assert window["label"] in {p["label"] for p in main_people}
    assert all(len(ids) == 1 for ids in ids_by_side.values()), ids_by_side
    last = {p["person"]: p for p in windows[-1]["people"]}
    for side, ids in ids_by_side.items():
        assert last[next(iter(ids))]["label"] == alone[side]


def test_a_stream_per_person_line_names_the_clip_spec_overrides(ekman6_dir: Path, capsys):
    """Each ``--stream --people`` line carries the clip-spec overrides in force, as a plain
    stream line and every ``rdam predict`` answer do (docs/clip-spec.md)."""
    argv = ["predict", "--stream", str(ekman6_dir / "joy.mp4"), "--people", "--max-windows", "1"]
    assert main([*argv, "--num-frames", "4"]) == 0
    (window,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model_k = rdam.load().model_spec.num_frames
    assert window["overrides"] == {"num_frames": 4} and window["model_values"] == {
        "num_frames": model_k
    }
    assert window["people"] and list(window)[-1] == "people"
    assert main(argv) == 0
    (window,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert window["overrides"] == {} and window["model_values"] == {}


def test_a_stream_of_a_frames_model_cannot_answer_per_person(tmp_path: Path):
    from _inference_fixtures import save_tiny_model, write_video

    from rdam.stream import predict_stream_people

    predictor = rdam.load(save_tiny_model(tmp_path / "frames.safetensors"))
    with pytest.raises(rdam.errors.ConfigError, match="face-stream model"):
        next(predict_stream_people(predictor, write_video(tmp_path / "v.mp4")))
