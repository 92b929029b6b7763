"""benchmarks/accuracy.py (figure 8's small-budget rows): a row's run directory."""

from __future__ import annotations

from pathlib import Path

from benchmarks.accuracy import run_directory


def test_a_row_on_another_training_subset_trains_in_another_directory(tmp_path: Path) -> None:
    """The subset manifest is rewritten in place for each --train-images: a run directory by
    head and seed alone took the finished runs of another subset for this one's."""
    manifest = tmp_path / "train_subset.csv"
    manifest.write_text("path,label,split\na.png,0,train\n")
    first = run_directory(tmp_path / "runs", "dual", 0, manifest)
    assert run_directory(tmp_path / "runs", "dual", 0, manifest) == first
    assert run_directory(tmp_path / "runs", "dual", 1, manifest) != first
    manifest.write_text("path,label,split\na.png,0,train\nb.png,1,train\n")
    assert run_directory(tmp_path / "runs", "dual", 0, manifest) != first
    assert first.parent == tmp_path / "runs" and first.name.startswith("dual_seed0_")
