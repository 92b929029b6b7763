"""`rdam demo`: the embedded default runs end to end; its attention diagnostics by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rdam.cli import main
from rdam.demo import (
    QUICK,
    demo_config,
    informative_weight_share,
    location_hit_rate,
)


def test_rdam_demo_quick_prints_a_table_and_writes_heatmaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("| Method | Accuracy (%) | Macro-F1 |")
    rows = [line for line in lines if line.startswith("| test_resnet")]
    assert len(rows) == 2
    assert "average aggregation" in rows[0] and "regional dual attention" in rows[1]
    # average has no location map nor frame attention; dual has both, measured
    assert rows[0].split(" | ")[-3:-1] == ["–", "–"]
    assert all(cell != "–" for cell in rows[1].split(" | ")[-3:-1])
    heatmaps = sorted((out / "heatmaps").glob("*.png"))
    assert len(heatmaps) == 4
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in heatmaps)
    assert (out / "table.md").read_text().startswith(lines[0])
    for variant in ("average", "dual"):
        assert (out / variant / "model.safetensors").is_file()
        assert (out / variant / "eval_metrics.json").is_file()
        assert (out / variant / "confusion_matrix.png").is_file()
    # the run directories are ordinary ones: rdam report reads them
    assert main(["report", str(out)]) == 0
    assert "Accuracy on synthetic-I" in capsys.readouterr().out


def test_demo_variants_differ_only_in_the_head() -> None:
    average = demo_config("average", QUICK, threads=1).to_dict()
    dual = demo_config("dual", QUICK, threads=1).to_dict()
    assert (average["model"]["region_head"], average["model"]["temporal"]) == ("average", "average")
    assert (dual["model"]["region_head"], dual["model"]["temporal"]) == ("dual", "attention")
    for section in ("data", "optim"):
        assert average[section] == dual[section]
    assert average["data"]["kind"] == "synthetic"
    assert average["model"]["weights"] == "none"  # no download


def test_location_hit_rate_by_hand() -> None:
    # 2 clips x 2 frames, 4x4 maps over 32 px frames (8 px per region)
    maps = np.zeros((2, 2, 4, 4))
    maps[0, 0, 1, 2] = 1  # region rows 8..16, cols 16..24
    maps[0, 1, 3, 3] = 1
    maps[1, 0, 0, 0] = 1
    maps[1, 1, 2, 1] = 1
    boxes = np.zeros((2, 2, 4), int)
    boxes[0, 0] = (10, 20, 20, 30)  # overlaps region (1, 2)
    boxes[0, 1] = (0, 0, 8, 8)  # region (3, 3) is far away
    boxes[1, 0] = (8, 8, 16, 16)  # touches region (0, 0) only at a corner: no overlap
    boxes[1, 1] = (16, 8, 24, 16)  # exactly region (2, 1)
    informative = np.array([[True, True], [True, False]])
    assert location_hit_rate(maps, informative, boxes, 32) == pytest.approx(1 / 3)
    assert location_hit_rate(maps, np.ones((2, 2), bool), boxes, 32) == pytest.approx(2 / 4)


def test_informative_weight_share_by_hand() -> None:
    weights = np.array([[0.5, 0.5, 1.0, 0.0], [0.2, 0.2, 0.2, 0.2]])
    informative = np.array([[False, False, True, True], [True, False, False, False]])
    # clip 0: 1.0 / 2.0; clip 1: 0.2 / 0.8
    assert informative_weight_share(weights, informative) == pytest.approx((0.5 + 0.25) / 2)
