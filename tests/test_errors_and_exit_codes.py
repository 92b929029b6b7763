"""Errors that surface (issue 17): the single-input API raises the typed errors of rdam.errors,
the batch API gives one result per file carrying its error, and ``rdam predict`` /
``rdam explain`` exit 1 when any input fails, with a last stderr line counting the failures by
kind. On real data: Ekman-6 sample videos, FER2013 images (one turned upside down, where YuNet
finds no face) and the shipped default model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import rdam
from rdam.errors import CorruptVideoError, EmptyVideoError, NoFaceError, VideoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def predictor() -> rdam.inference.Predictor:
    # faces=detect: YuNet on every input, so a face photo turned upside down has no face
    return rdam.load(face_input="detect")


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory, fer2013_dir: Path, ekman6_dir: Path
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("errors")
    face = sorted((fer2013_dir / "val" / "happy").glob("*.jpg"))[0]
    upside_down = root / "upside_down.png"
    cv2.imwrite(str(upside_down), cv2.imread(str(face))[::-1])
    (root / "broken.mp4").write_bytes(b"not a video" * 100)
    (root / "empty.mp4").write_bytes(b"")
    joy = root / "joy.mp4"
    shutil.copy(ekman6_dir / "joy.mp4", joy)
    return {
        "joy": joy,
        "face": face,
        "upside_down": upside_down,
        "broken": root / "broken.mp4",
        "empty": root / "empty.mp4",
        "missing": root / "missing.mp4",
    }


@pytest.mark.shared_data
def test_single_input_calls_raise_typed_errors(predictor, inputs):
    cases = {
        "broken": CorruptVideoError,
        "empty": EmptyVideoError,
        "missing": VideoNotFoundError,
        "upside_down": NoFaceError,
    }
    for name, error in cases.items():
        for call in (predictor.predict_video, predictor.analyze):
            with pytest.raises(error) as info:
                call(inputs[name])
            assert info.value.path == str(inputs[name])  # the error names the file
    ok = predictor.predict_video(inputs["face"])
    assert ok.ok and ok.label in predictor.class_names
    analysis = predictor.analyze(inputs["joy"], relations=False)
    assert analysis.prediction.ok and analysis.raw is not None


@pytest.mark.shared_data
def test_batch_calls_give_one_result_per_file_with_its_error(predictor, inputs):
    names = ["joy", "broken", "upside_down", "missing", "face"]
    preds = predictor.predict_many([inputs[n] for n in names], batch_size=2)
    assert [p.error_type for p in preds] == [
        None,
        "CorruptVideoError",
        "NoFaceError",
        "VideoNotFoundError",
        None,
    ]
    for p in preds:
        assert (p.label is None) == (not p.ok)
    analyses = list(predictor.analyze_many([inputs["broken"], inputs["joy"]], keep_arrays=True))
    assert [a.prediction.error_type for a in analyses] == ["CorruptVideoError", None]
    # The batch result equals the single call's.
    alone = predictor.predict_video(inputs["joy"])
    assert preds[0].probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def _rdam(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "rdam.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.mark.shared_data
def test_cli_exit_codes_and_the_failure_summary(inputs, tmp_path):
    # two of five inputs fail -> 1; every result is written; the last stderr line counts them
    args = [str(inputs[n]) for n in ("joy", "broken", "upside_down", "face")]
    run = _rdam("predict", *args, "--faces", "detect", "--format", "jsonl", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert sorted(d["error_type"] or "" for d in lines) == ["", "", "CorruptVideoError",
                                                            "NoFaceError"]  # fmt: skip
    last = run.stderr.strip().splitlines()[-1]
    assert last == "rdam predict: 2 of 4 inputs failed: 1 CorruptVideoError, 1 NoFaceError"
    # all good -> 0 and no summary
    run = _rdam("predict", str(inputs["face"]), str(inputs["joy"]), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "failed" not in run.stderr
    assert [d["error"] for d in json.loads(run.stdout)] == [None, None]
    # every input failed -> 1 too
    run = _rdam("predict", str(inputs["broken"]), str(inputs["missing"]), cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "rdam predict: 2 of 2 inputs failed: 1 CorruptVideoError, 1 VideoNotFoundError"
    )
    # nothing done -> 2: a usage error, a bad model file
    assert _rdam("predict", cwd=tmp_path).returncode == 2
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    run = _rdam("predict", str(inputs["joy"]), "--checkpoint", str(bad), cwd=tmp_path)
    assert run.returncode == 2 and "error" in run.stderr
    # a stream that cannot be opened is a failed input
    run = _rdam("predict", "--stream", str(inputs["broken"]), cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "rdam predict: 1 of 1 inputs failed: 1 CorruptVideoError"
    )


@pytest.mark.shared_data
def test_cli_explain_exit_code_and_summary(inputs, tmp_path):
    out = tmp_path / "reports"
    args = [str(inputs["face"]), str(inputs["broken"])]
    run = _rdam("explain", *args, "--out", str(out), cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    reports = json.loads(run.stdout)["reports"]
    assert [r["error_type"] for r in reports] == [None, "CorruptVideoError"]
    assert reports[0]["label"] is not None and (out / "index.html").is_file()
    last = run.stderr.strip().splitlines()[-1]
    assert last == "rdam explain: 1 of 2 inputs failed: 1 CorruptVideoError"


# -- option combinations that cannot be honoured: exit 2, nothing done ---------------------------

REFUSED = {
    "--people --format jsonl": (
        ["--people", "--format", "jsonl", "-o", "out.jsonl", "v.mp4"],
        "--people writes one JSON list",
    ),
    "--people --format csv": (
        ["--people", "--format", "csv", "-o", "out.csv", "v.mp4"],
        "--timeline CSV writes one row per person",
    ),
    "--timeline without --people": (
        ["--timeline", "t.csv", "-o", "out.json", "v.mp4"],
        "--timeline needs --people",
    ),
    "--annotate without --people": (
        ["--annotate", "a.mp4", "-o", "out.json", "v.mp4"],
        "--annotate needs --people",
    ),
    "--smooth without --timeline": (
        ["--people", "--smooth", "3", "-o", "out.json", "v.mp4"],
        "it needs --timeline CSV",
    ),
    "--smooth even": (
        ["--people", "--timeline", "t.csv", "--smooth", "2", "-o", "out.json", "v.mp4"],
        "--smooth N: the smoothing window must be an odd number >= 1, got 2",
    ),
    "--track-search without --people": (
        ["--track-search", "dense", "-o", "out.json", "v.mp4"],
        "--track-search needs --people",
    ),
    "--stream --format csv": (
        ["--stream", "v.mp4", "--format", "csv", "-o", "out.csv"],
        "leave --format out, or read the video as a file (rdam predict FILE --format csv)",
    ),
    "--stream --format json": (
        ["--stream", "v.mp4", "--format", "json", "-o", "out.json"],
        "--stream writes one JSON line per window (jsonl)",
    ),
    "--stream --explain": (
        ["--stream", "v.mp4", "--explain", "reports", "-o", "out.jsonl"],
        "--explain does not apply to --stream",
    ),
    "--stream --people --timeline": (
        ["--stream", "v.mp4", "--people", "--timeline", "t.csv", "-o", "out.jsonl"],
        "--timeline does not apply to --stream",
    ),
    "--people --batch-size": (
        ["--people", "--batch-size", "4", "-o", "out.json", "v.mp4"],
        "--batch-size does not apply to --people",
    ),
    "--stream --batch-size": (
        ["--stream", "v.mp4", "--batch-size", "4", "-o", "out.jsonl"],
        "--batch-size does not apply to --people (a video's people go through the model",
    ),
    "--people --faces given": (
        ["--people", "--faces", "given", "-o", "out.json", "v.mp4"],
        "--faces given takes each input as one face crop; --people searches every face",
    ),
    "--annotate OUT.mp4 for two inputs": (
        ["--people", "--annotate", "a.mp4", "-o", "out.json", "v.mp4", "v.mp4"],
        "--annotate a.mp4 names one video, for one input",
    ),
    "--stream --keyframes": (
        ["--stream", "v.mp4", "--keyframes", "-o", "out.jsonl"],
        "--keyframes does not apply to --stream",
    ),
    "--stream and PATHs": (
        ["--stream", "v.mp4", "w.mp4", "-o", "out.jsonl"],
        "give PATHs or --stream SOURCE, not both",
    ),
    "--sample-fps without --stream": (
        ["--sample-fps", "4", "-o", "out.json", "v.mp4"],
        "--sample-fps is a stream setting: it needs --stream SOURCE",
    ),
    "--jsonl --explain": (
        ["--format", "jsonl", "--explain", "reports", "-o", "out.jsonl", "v.mp4"],
        "--explain needs --format json or csv",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_option_combinations_that_cannot_be_honoured_are_refused(case, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    """Each used to exit 0 with an option dropped (or JSON in a .csv; an even --smooth wrote
    the whole answer, then exit 2): now exit 2 before any model is loaded, nothing written,
    and the message says what to use instead."""
    import importlib

    from rdam.cli import main

    predict_cli = importlib.import_module("rdam.cli.predict")

    def no_model(*args, **kwargs):
        raise AssertionError("a refused command line must not load a model")

    monkeypatch.setattr(predict_cli, "_load_predictor", no_model)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.mp4").write_bytes(b"")
    argv, message = REFUSED[case]
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rdam predict: error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # nothing written


def test_the_combinations_that_work_stay_accepted():
    """The README's and the tests' predict command lines pass the check (and --format jsonl
    with --stream, which is what a stream writes)."""
    from rdam.cli import build_parser
    from rdam.cli.predict_options import (
        DEFAULT_TOP_RELATIONS,
        STREAM_SAMPLE_FPS,
        refused_combination,
    )
    from rdam.explain import report
    from rdam.stream import DEFAULT_SAMPLE_FPS

    assert STREAM_SAMPLE_FPS == DEFAULT_SAMPLE_FPS  # the help's default is the stream's
    assert DEFAULT_TOP_RELATIONS == report.DEFAULT_TOP_RELATIONS  # and the reports'
    accepted = [
        "video.mp4",
        "videos/ --format csv -o out.csv",
        "frames/ --sequence",
        "video.mp4 --crops 5 --mirror",
        "video.mp4 --people --timeline timeline.csv --annotate annotated.mp4",
        "video.mp4 --people --timeline t.csv --smooth 3 --track-search dense --track-rate 2",
        "video.mp4 --people --explain reports/ --top-relations 3",
        "video.mp4 --people --format json",
        "--stream 0 --people",
        "--stream 0",
        "--stream v.mp4 --num-frames 2 --stride 3 --sample-fps 0 --max-windows 4",
        "--stream v.mp4 --people --sample-fps 4 -o out.jsonl",
        "--stream v.mp4 --format jsonl",
        "big/ --format jsonl -o out.jsonl --shard 0/4",
        "videos/ --format csv --explain reports/",
    ]
    parser = build_parser()
    for line in accepted:
        args = parser.parse_args(["predict", *line.split()])
        assert refused_combination(args) is None, line


def test_people_with_a_frames_model_is_a_usage_error_not_a_failure_per_input(tmp_path, capsys):
    """rdam predict / explain --people with a model that takes no face crops: exit 2 before
    any input is read (was exit 1, "2 of 2 inputs failed", with the JSON written anyway), and
    explain's tracking options without --people are refused as predict's are."""
    from _inference_fixtures import save_tiny_model, write_video

    from rdam.cli import main

    model = save_tiny_model(tmp_path / "frames.safetensors")
    video = write_video(tmp_path / "v.mp4")
    out = tmp_path / "out.json"
    assert main(["predict", "--people", "--checkpoint", str(model), "-o", str(out),
                 str(video), str(video)]) == 2  # fmt: skip
    assert "--people needs a face-stream model" in capsys.readouterr().err and not out.exists()
    assert main(["explain", "--people", "--checkpoint", str(model), "--out",
                 str(tmp_path / "ex"), str(video)]) == 2  # fmt: skip
    assert "--people needs a face-stream model" in capsys.readouterr().err
    assert main(["explain", "--track-rate", "9", "--checkpoint", str(model), "--out",
                 str(tmp_path / "ex2"), str(video)]) == 2  # fmt: skip
    assert "--track-rate needs --people" in capsys.readouterr().err
    assert not (tmp_path / "ex2").exists()
