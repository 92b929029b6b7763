"""Third-party warnings and tips stay off stderr unless ``-v``; rdam's own messages stay.

Through the command line in subprocesses, on real data: ``rdam predict`` on an Ekman-6 sample
(OpenCV's ``setPreferableTarget`` warning), ``rdam export`` of the shipped model (torch's
``TracerWarning``), ``rdam train`` on a few FER2013 images (Lightning's tips, its
``PossibleUserWarning`` and torch's ``_pytree`` deprecation); plus the rules themselves.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from _tiny import fer2013_subset

from rdam.quiet import is_rdam_warning, set_quiet

REPO_ROOT = Path(__file__).resolve().parent.parent
# rdam's log format ("LEVEL rdam.module: message") and its own error lines ("rdam CMD: ...").
RDAM_LINE = re.compile(r"^((DEBUG|INFO|WARNING|ERROR|CRITICAL) rdam[.:]|rdam \w+: )")
USER_SETTINGS = ("OPENCV_LOG_LEVEL", "TORCH_CPP_LOG_LEVEL", "PYTHONWARNINGS")


def rdam_cli(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    run = subprocess.run(
        [sys.executable, "-m", "rdam.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert run.returncode == code, run.stderr
    return run


def foreign_lines(stderr: str) -> list[str]:
    """stderr lines that rdam did not write."""
    return [line for line in stderr.splitlines() if line.strip() and not RDAM_LINE.match(line)]


@pytest.mark.shared_data
def test_predict_hides_opencvs_warning_and_keeps_rdams(
    ekman6_dir: Path, fer2013_dir: Path, tmp_path
):
    # A folder with a real video, a real FER2013 image and a broken video: rdam reports the
    # broken one in its own words, and nothing else reaches stderr.
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(ekman6_dir / "joy.mp4", folder / "joy.mp4")
    shutil.copy(sorted((fer2013_dir / "val" / "happy").glob("*.jpg"))[0], folder / "face.jpg")
    (folder / "zz_broken.mp4").write_bytes(b"not a video" * 100)
    quiet = rdam_cli("predict", str(folder), cwd=tmp_path, code=1)  # 1: an input failed
    results = json.loads(quiet.stdout)
    assert [r["path"] for r in results] == [
        str(folder / n) for n in ("face.jpg", "joy.mp4", "zz_broken.mp4")
    ]
    assert foreign_lines(quiet.stderr) == [], quiet.stderr
    assert "setPreferableTarget" not in quiet.stderr
    assert re.search(r"^rdam predict: .*zz_broken\.mp4: CorruptVideoError", quiet.stderr, re.M)
    last = quiet.stderr.strip().splitlines()[-1]
    assert last == "rdam predict: 1 of 3 inputs failed: 1 CorruptVideoError"

    verbose = rdam_cli("-v", "predict", str(ekman6_dir / "joy.mp4"), cwd=tmp_path)
    assert json.loads(verbose.stdout)[0]["label"] is not None
    assert "setPreferableTarget" in verbose.stderr  # OpenCV's own log, let through by -v


def test_export_hides_torchs_tracer_warning_and_keeps_rdams_info(tmp_path):
    quiet = rdam_cli("export", "--out", str(tmp_path / "model.onnx"), cwd=tmp_path)
    assert foreign_lines(quiet.stderr) == [], quiet.stderr
    assert re.search(r"^INFO rdam\.export\.onnx: exported ", quiet.stderr, re.M)
    verbose = rdam_cli("-v", "export", "--out", str(tmp_path / "again.onnx"), cwd=tmp_path)
    assert "TracerWarning" in verbose.stderr


@pytest.mark.shared_data
def test_train_hides_lightnings_tips_and_warnings(fer2013_dir: Path, tmp_path):
    manifest = fer2013_subset(fer2013_dir, tmp_path / "subset.csv", {"train": 4, "val": 2})
    args = [
        "train",
        "-c",
        str(REPO_ROOT / "configs" / "fer2013_face_default.yaml"),
        "data.kind=csv",
        f"data.root={manifest}",
        "data.name=FER2013",
        "data.frame_size=32",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "optim.swa_epochs=0",
        "trainer.threads=1",
        "trainer.loggers=[csv]",
    ]
    quiet = rdam_cli(*args, "--run-dir", str(tmp_path / "quiet"), cwd=tmp_path)
    assert (tmp_path / "quiet" / "model.safetensors").is_file()
    assert foreign_lines(quiet.stderr) == [], quiet.stderr
    for chatter in ("GPU available", "Tip", "deprecated", "log_every_n_steps"):
        assert chatter not in quiet.stderr
    verbose = rdam_cli("-v", *args, "--run-dir", str(tmp_path / "verbose"), cwd=tmp_path)
    assert "GPU available" in verbose.stderr  # Lightning's INFO lines come back with -v


def _warn_from(module: str, category: type[Warning]) -> None:
    code = compile(f"import warnings\nwarnings.warn('from {module}', category)", module, "exec")
    exec(code, {"__name__": module, "category": category})


class ForeignWarning(UserWarning):
    pass


def test_the_rules_in_process(capsys, monkeypatch):
    for name in USER_SETTINGS:  # set_quiet sets the native log levels: undone after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    shown: list[str] = []
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, category, *rest: shown.append(str(message))
            set_quiet(True)
            _warn_from("rdam.fake", UserWarning)
            _warn_from("rdam.fake", ForeignWarning)  # a category of another library
            _warn_from("somelib.module", UserWarning)
            quiet_warnings = list(shown)
            logging.getLogger("rdam.fake").warning("rdam log warning")
            logging.getLogger("somelib").warning("somelib log warning")
            logging.getLogger("somelib").error("somelib log error")
            quiet = capsys.readouterr().err
            assert os.environ["OPENCV_LOG_LEVEL"] == "ERROR"
            set_quiet(False)
            _warn_from("somelib.module", UserWarning)
            logging.getLogger("somelib").warning("somelib log warning")
            verbose = capsys.readouterr().err
    finally:
        set_quiet(False)
        root.removeHandler(handler)
    assert quiet_warnings == ["from rdam.fake"]
    assert shown[-1] == "from somelib.module"
    assert "rdam log warning" in quiet and "somelib log error" in quiet
    assert "somelib log warning" not in quiet
    assert "somelib log warning" in verbose
    assert not is_rdam_warning(UserWarning, None)
