"""Runs that one cell of ``rdam report`` must not average as if they were seeds.

A cell is the mean ± std over the runs of one row (a method, or a ``trainer.run_name``) and one
data set, and its ``n`` reads as seeds or official splits. Two things make that wrong:

- **The same run twice**: a run directory passed under two paths, or a run beside its record.
  ``n`` and the spread would count it twice. :func:`check_no_duplicates` refuses it.
- **Other settings**: runs of one cell trained with another recipe (epochs, optimiser, soft
  labels, the model a fine-tune started from ...) or scored otherwise (split, label set, test
  views, the checkpoint file scored). :func:`mixed_settings` names each such setting with its
  value in each run, and the report prints that under its tables, loudly. It does not refuse:
  a setting whose spelling alone changed, such as a start model named by path in one run and
  as ``default`` in another, is for the reader to judge, with the values in front of them.

Runs may differ in :data:`rdam.config.RUN_SETTINGS` (where and how they ran) and in what tells
the runs of a cell apart (:data:`RUN_IDENTITY`: the seed, the official split, the run name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rdam.errors import ReportError
from rdam.evaluation.ablation import run_groups

#: The settings that make runs of one cell different runs rather than other settings.
RUN_IDENTITY = ("trainer.seed", "data.options.split_index", "trainer.run_name")


def check_no_duplicates(runs: Sequence[Any]) -> None:
    """Refuse two runs of one cell with the same settings and identity (seed, split).

    Raises:
        ReportError: naming both run directories.
    """
    for (label, dataset), members in run_groups(runs).items():
        seen: dict[str, Any] = {}
        for run in members:
            if not run.settings:  # not read from a run directory: nothing to compare
                continue
            identity = {k: run.identity.get(k) for k in RUN_IDENTITY if k != "trainer.run_name"}
            key = repr(sorted({**run.settings, **identity}.items()))
            if key in seen:
                raise ReportError(
                    f"{seen[key].run_dir} and {run.run_dir} are the same run of '{label}' on "
                    f"{dataset} (same settings, {identity}): a cell would count it twice. Pass "
                    "each run once (a run directory or its record, not both)"
                )
            seen[key] = run


def mixed_settings(runs: Sequence[Any]) -> list[str]:
    """One line per cell whose runs differ in a setting other than where and how they ran and
    what tells them apart: ``row, data set: setting: value in run, run; value in run``."""
    lines = []
    for (label, dataset), members in run_groups(runs).items():
        if len(members) < 2:
            continue
        keys = sorted({k for run in members for k in run.settings})
        differing = []
        for key in keys:
            by_value: dict[str, list[str]] = {}
            for run in members:
                value = run.settings.get(key, "(not set)")
                by_value.setdefault(repr(value), []).append(run.run_dir.name)
            if len(by_value) > 1:
                values = "; ".join(f"{v} in {', '.join(names)}" for v, names in by_value.items())
                differing.append(f"{key}: {values}")
        if differing:
            lines.append(f"- {label}, {dataset}: " + " | ".join(differing))
    return lines


def mixed_settings_note(runs: Sequence[Any]) -> str | None:
    """The report's paragraph for :func:`mixed_settings`, or ``None`` when no cell mixes."""
    lines = mixed_settings(runs)
    if not lines:
        return None
    return "\n".join(
        [
            "**Runs of one cell that differ in more than their seed** (check that these rows "
            "average what they say):",
            "",
            *lines,
        ]
    )
