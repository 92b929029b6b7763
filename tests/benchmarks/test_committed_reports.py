"""The tables in benchmarks/results are rendered by `rdam report` from the committed run records
(docs/benchmarks.md gives each command): on a fresh clone the same command gives the same table.
This fails when a change to rdam makes a record unreadable or refused (a new config setting that
changes every record's recipe) or changes what a table says."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdam.cli import main

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"

#: table folder -> the `rdam report` options its report.md was rendered with
TABLES = {
    "fig8_full": ["--details", "--paired", "average"],
    "long": ["--details", "--group-by", "run_name"],
    "levers": ["--details", "--group-by", "run_name", "--paired", "fer2013_lever_base"],
}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_committed_table_renders_again_from_its_records(table: str, tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    code = main(["report", str(RESULTS / table / "runs"), *TABLES[table], "--out", str(out)])
    assert code == 0
    assert out.read_text() == (RESULTS / table / "report.md").read_text()
