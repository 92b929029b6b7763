"""benchmarks/train_rows.sh, the driver of the lever, figure 8 and long-run tables: it trains
each row x seed through ``rdam train``, scores ``last.ckpt`` with ``rdam eval``, keeps the logs
and renders the table; run again, it skips the finished rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _tiny import fer2013_subset, tiny_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.shared_data


def _row(path: Path, head: str) -> None:
    """A row config: the tiny experiment of the training tests on one-frame FER2013 clips."""
    config = tiny_config(
        model={"num_classes": 7, "region_head": head},
        data={"kind": "csv", "num_frames": 1},
        trainer={"run_name": f"row_{head}"},
    ).to_dict()
    del config["data"]["synthetic"]  # the synthetic set's options; the rows read a manifest
    path.write_text(yaml.safe_dump(config))


def test_rows_train_score_log_and_resume_by_skipping(fer2013_dir: Path, tmp_path: Path):
    manifest = fer2013_subset(fer2013_dir, tmp_path / "fer.csv", {"train": 2, "val": 1})
    configs = tmp_path / "configs"
    configs.mkdir()
    _row(configs / "average.yaml", "average")
    _row(configs / "dual.yaml", "dual")
    env = {
        **os.environ,
        "CONFIGS": str(configs),
        "RUNS": str(tmp_path / "runs"),
        "OUT": str(tmp_path / "out"),
        "PLAN": "average:0 dual:0",
        "DATA": str(manifest),
        "RDAM": f"{sys.executable} -m rdam.cli",
        "PYTHONPATH": str(REPO),
    }
    script = REPO / "benchmarks" / "train_rows.sh"
    first = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    for row in ("average", "dual"):
        run = tmp_path / "runs" / f"{row}_s0"
        scored = json.loads((run / "eval" / "eval_metrics.json").read_text())
        assert scored["num_samples"] == 7 and scored["split"] == "val"
        assert json.loads((run / "eval.json").read_text())["accuracy"] == scored["accuracy"]
        # the record: the run directory without its checkpoints, in the same layout
        record = tmp_path / "out" / "runs" / f"{row}_s0"
        assert sorted(str(p.relative_to(record)) for p in record.rglob("*") if p.is_file()) == [
            "config.yaml",
            "eval/eval_metrics.json",
            "logs/metrics.csv",
            "metrics.json",
        ]
        assert (record / "config.yaml").read_text() == (run / "config.yaml").read_text()
        header = (record / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
        assert "epoch" in header and "val/acc" in header
        assert json.loads((record / "eval" / "eval_metrics.json").read_text()) == scored
        assert json.loads((record / "metrics.json").read_text())["epochs"] == 1
        assert f"train {row} seed 0" in first.stdout and f"done {row} seed 0" in first.stdout
    report = (tmp_path / "out" / "report.md").read_text()
    assert "average" in report.lower() and "dual" in report.lower()
    # again: every row is done, nothing is trained, the table is rendered anew, and a driver
    # log kept beside the run directories (its name matching *_s*) is not taken for a run
    (tmp_path / "runs" / "driver_dual_s1.log").write_text("log\n")
    again = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train " not in again.stdout
    assert (tmp_path / "out" / "report.md").read_text() == report
    # the run directories lost with their machine: the records keep the rows (not rerun, still
    # in the table), and a new row joins them
    shutil.rmtree(tmp_path / "runs")
    _row(configs / "location.yaml", "location")
    later = subprocess.run(
        ["bash", str(script)],
        env={**env, "PLAN": "average:0 location:0"},
        capture_output=True,
        text=True,
    )
    assert later.returncode == 0, later.stderr[-3000:]
    assert "train average" not in later.stdout and "train location seed 0" in later.stdout
    table = (tmp_path / "out" / "report.md").read_text()
    assert "3 run(s)" in table
    assert all(head in table.lower() for head in ("average", "dual", "location"))


def _refused_row(tmp_path: Path, out: str, extra: str) -> subprocess.CompletedProcess:
    """train_rows.sh for the row qan:9 (no config of it in tmp_path: it must stop before
    training) with records in ``out`` and ``EXTRA=extra``."""
    env = {
        **os.environ,
        "CONFIGS": str(tmp_path),
        "RUNS": str(tmp_path / "runs"),
        "OUT": out,
        "PLAN": "qan:9",
        "EXTRA": extra,
        "RDAM": f"{sys.executable} -m rdam.cli",
        "PYTHONPATH": str(REPO),
    }
    script = REPO / "benchmarks" / "train_rows.sh"
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)


def test_a_trial_override_is_refused_for_the_committed_records(tmp_path: Path) -> None:
    """EXTRA="trainer.max_epochs=1" with OUT at the repository's records would keep a smoke
    test as the row (and a recorded row is never rerun): ``rdam train --keep-recipe`` refuses
    it before anything is trained or recorded, naming the override."""
    before = sorted(p.name for p in (REPO / "benchmarks/results/fig8_full/runs").iterdir())
    done = _refused_row(tmp_path, "benchmarks/results/fig8_full",
                        "trainer.threads=1 trainer.max_epochs=1")  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "override(s) trainer.max_epochs change the config's recipe" in done.stderr
    assert "trainer.threads" not in done.stderr.split("only where")[0]
    assert not (tmp_path / "runs" / "qan_s9").exists()
    assert sorted(p.name for p in (REPO / "benchmarks/results/fig8_full/runs").iterdir()) == before


def test_a_seed_in_extra_is_refused_the_record_is_named_by_plans(tmp_path: Path) -> None:
    """``EXTRA="trainer.seed=3"`` came after PLAN's seed on the command line, so qan_s9 would
    have been trained (and recorded) at seed 3."""
    done = _refused_row(tmp_path, str(tmp_path / "out"), "trainer.threads=1 trainer.seed=3")
    assert done.returncode == 2 and "EXTRA sets trainer.seed" in done.stderr
    assert not (tmp_path / "runs").exists()
