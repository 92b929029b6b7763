"""`rdam predict DIR --format jsonl -o FILE` killed with SIGKILL at random points (issue 17): what
was written stays, complete line by complete line; the rerun predicts only what is missing and
appends; the final file answers every clip exactly once, as an uninterrupted run does.

Real data: FER2013 faces and the Ekman-6 sample videos, the shipped default model, one clip per
model call (``--batch-size 1``: a kill loses at most the clip in flight)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from conftest import base_seed, rdam_command, sigkill_when, trials

from rdam.cli import main

NUM_IMAGES = 20
NUM_VIDEOS = 7


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, fer2013_dir: Path, ekman6_dir: Path) -> Path:
    """The seven Ekman-6 videos (first in the order, about a second each) and 20 real FER2013
    faces over the seven classes."""
    root = tmp_path_factory.mktemp("predict_corpus")
    images = sorted(fer2013_dir.glob("val/*/*.jpg"))
    for image in random.Random(0).sample(images, NUM_IMAGES):
        (root / image.parent.name).mkdir(exist_ok=True)
        shutil.copy(image, root / image.parent.name / image.name)
    videos = sorted(ekman6_dir.glob("*.mp4"))
    assert len(videos) == NUM_VIDEOS
    for video in videos:
        shutil.copy(video, root / video.name)
    return root


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The lines of an uninterrupted run."""
    out = tmp_path_factory.mktemp("predict_reference") / "out.jsonl"
    # exit 1: disgust.mp4 shows a lizard, and gets no answer without evidence of a face
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(out), "--batch-size",
                 "1", "--no-progress"]) == 1  # fmt: skip
    lines = _complete_lines(out)
    failed = [(Path(r["path"]).name, r["error_type"]) for r in lines if r["error_type"]]
    assert failed == [("disgust.mp4", "NoFaceError")]
    return lines


def _complete_lines(path: Path) -> list[dict]:
    """The complete lines of a JSONL file (a last line without its newline is not one)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def _key(row: dict) -> tuple:
    return row["path"], row["sha256"], row["label"], row["error_type"]


@pytest.mark.shared_data
def test_killed_predict_loses_nothing_written_and_the_rerun_completes(
    corpus, reference, tmp_path, measured
):
    rng = random.Random(base_seed())
    n = trials(ci=2, large=10)
    assert len(reference) == NUM_IMAGES + NUM_VIDEOS
    kept_at_kill = []
    for trial in range(n):
        out = tmp_path / f"out{trial}.jsonl"
        command = rdam_command("predict", str(corpus), "--format", "jsonl", "-o", str(out),
                               "--batch-size", "1", "--no-progress")  # fmt: skip
        wait_for = rng.randint(1, NUM_VIDEOS - 2)  # lines on disk before the kill

        def ready(out: Path = out, wait_for: int = wait_for) -> bool:
            return out.exists() and out.read_bytes().count(b"\n") >= wait_for

        sigkill_when(command, ready, delay_s=rng.uniform(0.0, 0.3))
        # Results arrive as they are made: lines were on disk while the run went on, and
        # every one that was complete at the kill is still there and parses.
        kept = _complete_lines(out)
        assert len(kept) >= wait_for
        assert len({r["path"] for r in kept}) == len(kept)
        kept_at_kill.append(len(kept))
        for row in kept:
            assert _key(row) in {_key(r) for r in reference}
        # The rerun predicts only what is missing, and appends.
        args = ["predict", str(corpus), "--format", "jsonl", "-o", str(out), "--batch-size", "1",
                "--no-progress"]  # fmt: skip
        # 1 when the lizard's video is among the files the rerun had left to do
        assert main(args) in (0, 1)
        final = _complete_lines(out)
        assert final[: len(kept)] == kept
        assert out.read_text().endswith("\n")
        assert sorted(_key(r) for r in final) == sorted(_key(r) for r in reference)
        for a, b in zip(sorted(final, key=_key), sorted(reference, key=_key), strict=True):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
    measured("killed predict (jsonl)", trials=n, lines_kept_at_kill=kept_at_kill)
