"""Batch runs at scale (issue 17): ``rdam predict DIR --format jsonl -o FILE`` resumes by path
and content hash, ``--shard i/N`` covers a corpus exactly once, the progress bar shows on a
terminal only. On real FER2013 images and an Ekman-6 sample video with the shipped model; the
SIGKILL test is tests/reliability/test_killed_predict.py."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rdam.cli import main
from rdam.data.preprocess import shard_of

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def corpus(fer2013_dir: Path, ekman6_dir: Path, tmp_path: Path) -> Path:
    """12 real FER2013 faces in two class folders and one Ekman-6 video."""
    root = tmp_path / "corpus"
    for cls in ("happy", "sad"):
        (root / cls).mkdir(parents=True)
        for image in sorted((fer2013_dir / "val" / cls).glob("*.jpg"))[:6]:
            shutil.copy(image, root / cls / image.name)
    shutil.copy(ekman6_dir / "joy.mp4", root / "joy.mp4")
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _by_path(rows: list[dict]) -> dict[str, dict]:
    return {r["path"]: r for r in rows}


@pytest.mark.shared_data
def test_jsonl_resume_skips_answered_files_by_path_and_content(corpus, fer2013_dir, tmp_path,
                                                               capsys):  # fmt: skip
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(out)]) == 0
    first = _lines(out)
    assert len(first) == 13 and len(_by_path(first)) == 13
    assert all(r["error"] is None and len(r["sha256"]) == 64 for r in first)
    assert capsys.readouterr().err == ""  # no bar: stderr is not a terminal
    # A rerun answers nothing again.
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(out)]) == 0
    assert _lines(out) == first
    assert "13 of 13 inputs already answered" in capsys.readouterr().err
    # A file whose content changed is predicted again and appended; a line cut short by a
    # kill is dropped; a new file is added.
    changed = corpus / "happy" / sorted(os.listdir(corpus / "happy"))[0]
    shutil.copy(sorted((fer2013_dir / "val" / "angry").glob("*.jpg"))[0], changed)
    shutil.copy(sorted((fer2013_dir / "val" / "angry").glob("*.jpg"))[1], corpus / "new.jpg")
    with open(out, "a") as fh:
        fh.write('{"path": "' + str(corpus / "joy.mp4") + '", "lab')  # no newline: killed
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(out)]) == 0
    rows = _lines(out)  # every line parses: the cut line is gone
    assert rows[:13] == first
    assert sorted(r["path"] for r in rows[13:]) == sorted([str(changed), str(corpus / "new.jpg")])
    again = _by_path(rows[13:])[str(changed)]
    assert again["sha256"] != _by_path(first)[str(changed)]["sha256"]
    assert "12 of 14 inputs already answered" in capsys.readouterr().err
    # every line names what answered it; another model or other settings never join the file
    (by,) = {r["answered_by"] for r in rows}
    assert len(by) == 16 and int(by, 16) >= 0
    before = out.read_bytes()
    for other in (["--mirror"], ["--crops", "5"]):
        argv = ["predict", str(corpus), "--format", "jsonl", "-o", str(out), *other]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "answers of another model or other settings are in this file (15 by " + by in err
        assert out.read_bytes() == before
    # lines written before lines carried it are taken as this predictor's
    legacy = tmp_path / "legacy.jsonl"
    legacy.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "answered_by"}) + "\n" for r in first
        )
    )
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(legacy)]) == 0
    assert len(_lines(legacy)) == 15  # the changed file and the new one


@pytest.mark.shared_data
def test_shards_cover_the_corpus_exactly_once(corpus, tmp_path, capsys):
    (corpus / "broken.mp4").write_bytes(b"not a video" * 100)
    whole = tmp_path / "whole.jsonl"
    assert main(["predict", str(corpus), "--format", "jsonl", "-o", str(whole)]) == 1
    parts = []
    codes = []
    for i in range(3):
        part = tmp_path / f"part{i}.jsonl"
        codes.append(main(["predict", str(corpus), "--format", "jsonl", "-o", str(part),
                           "--shard", f"{i}/3"]))  # fmt: skip
        parts.append(part)
    # the broken file is in exactly one shard, which alone exits 1
    assert sorted(codes) == [0, 0, 1]
    merged = _lines(whole.parent / "whole.jsonl")
    cat = subprocess.run(["cat", *map(str, parts)], capture_output=True, text=True, check=True)
    sharded = [json.loads(line) for line in cat.stdout.splitlines()]
    assert len(sharded) == len(merged) == 14  # exactly once each
    assert _by_path(sharded).keys() == _by_path(merged).keys()
    for path, row in _by_path(sharded).items():
        assert row["label"] == _by_path(merged)[path]["label"]
        assert row["sha256"] == _by_path(merged)[path]["sha256"]
    # the rule of rdam preprocess --shard: sorted paths, every N-th from i
    paths = sorted(_by_path(merged))
    for i, part in enumerate(parts):
        assert [r["path"] for r in _lines(part)] == shard_of(paths, (i, 3))
    err = capsys.readouterr().err
    assert "rdam predict: 1 of 5 inputs failed: 1 CorruptVideoError" in err
    # a bad shard is a usage error (2)
    assert main(["predict", str(corpus), "--shard", "3/3"]) == 2


def _on_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what it drew)."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    # a terminal of 30 rows x 120 columns (a new pty has 0 columns: tqdm would draw nothing)
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rdam.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=follower)  # fmt: skip
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return proc.wait(timeout=600), drawn.decode(errors="replace")


@pytest.mark.shared_data
def test_progress_bar_on_a_terminal_only(corpus, tmp_path):
    args = ["predict", str(corpus / "happy"), "--format", "jsonl"]
    code, drawn = _on_a_terminal(*args, "-o", str(tmp_path / "a.jsonl"), cwd=tmp_path)
    assert code == 0, drawn
    assert "6/6" in drawn and "clip/s" in drawn, drawn  # the count and the rate
    assert "<" in drawn  # tqdm's [elapsed<remaining] ETA
    code, drawn = _on_a_terminal(*args, "-o", str(tmp_path / "b.jsonl"), "--no-progress",
                                 cwd=tmp_path)  # fmt: skip
    assert code == 0 and "6/6" not in drawn and "clip/s" not in drawn, drawn
