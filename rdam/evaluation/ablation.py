"""What an ablation table needs beyond its cells (``rdam report --details --paired HEAD``).

- :func:`details_table`: per method and data set, the runs (n and seeds), accuracy and macro-F1
  as mean ± sample std, the accuracy against other label sets the runs were scored on (``rdam
  eval --labels folder,ferplus:...``: the FER+ majority), the mean per-class accuracy (from
  ``rdam eval``'s report), and the training time per run (``metrics.json`` ``train_seconds``:
  the whole run over every resume), and, where a run recorded it (``metrics.json``
  ``compute``), what it trained with: Lightning's precision and the device, so rows trained on
  other machines or precisions are told apart.
- :func:`paired_table`: each method against a baseline region head on the same data set,
  seed by seed. Runs of one seed share the seed's data order and initialisation draws, so
  ``method − baseline`` per seed removes the part of the spread the seed explains. It gives
  the differences, their mean ± sample std, and how many seeds are paired. A mean smaller
  than its std is no difference at this budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from rdam.errors import ReportError
from rdam.evaluation.report import Cell, RunResult


def run_groups(runs: Sequence[RunResult]) -> dict[tuple[str, str], list[RunResult]]:
    """The runs of each table cell, by (row label, data set), in table order."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in sorted(
        runs, key=lambda r: (r.dataset, r.method.order[1], r.method.order, str(r.run_dir))
    ):
        groups.setdefault((run.method.label, run.dataset), []).append(run)
    return groups


def _cell(runs: Sequence[RunResult], metric: str) -> str:
    values = [r.values[metric] for r in runs if metric in r.values]
    return Cell(values).format() if values else "–"


def _seeds(runs: Sequence[RunResult]) -> str:
    return ", ".join("?" if r.seed is None else str(r.seed) for r in runs)


def trained_with(runs: Sequence[RunResult]) -> str:
    """The precisions and devices ``runs`` trained with, each once, in order: e.g.
    ``32-true on AMD EPYC (no native bf16)``; ``not recorded`` for runs that predate the record."""
    seen: list[str] = []
    for run in runs:
        found = [f"{c.get('precision', '?')} on {c.get('device', '?')}" for c in run.compute]
        for item in found or ["not recorded"]:
            if item not in seen:
                seen.append(item)
    return "; ".join(seen)


def details_table(runs: Sequence[RunResult]) -> str:
    """One row per method and data set (see the module notes), Markdown."""
    groups = run_groups(runs)
    classes: list[str] = []
    label_sets: list[str] = []
    for run in runs:
        classes += [c for c in run.per_class if c not in classes]
        label_sets += [s for s in run.label_sets if s not in label_sets and s != "folder"]
    header = ["Method", "Data", "n (seeds)", "Accuracy (%)", "Macro-F1 (%)"]
    header += [f"Accuracy on {s} labels (%)" for s in label_sets]
    header += [f"{c} (%)" for c in classes] + ["Training h / run"]
    recorded = any(run.compute for run in runs)
    if recorded:
        header.append("Trained with")
    lines = [
        "**Per run group** (mean ± sample std over seeds; per-class accuracy: mean over the "
        "evaluated runs; training time: mean over runs that recorded it)",
        "",
        "| " + " | ".join(header) + " |",
        "| --- | --- | --- | " + " | ".join("---:" for _ in header[3:]) + " |",
    ]
    for (label, dataset), members in groups.items():
        row = [label, dataset, f"{len(members)} ({_seeds(members)})"]
        row += [_cell(members, "accuracy"), _cell(members, "macro_f1")]
        for name in label_sets:
            values = [r.label_sets[name] for r in members if name in r.label_sets]
            row.append(Cell(values).format() if values else "–")
        for c in classes:
            values = [r.per_class[c] for r in members if c in r.per_class]
            row.append(f"{100 * sum(values) / len(values):.1f}" if values else "–")
        hours = [r.train_seconds / 3600 for r in members if r.train_seconds is not None]
        row.append(f"{sum(hours) / len(hours):.2f}" if hours else "–")
        if recorded:
            row.append(trained_with(members))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _pair_key(run: RunResult) -> tuple[int | None, object]:
    """What pairs two runs: their seed and official split (``data.options.split_index``)."""
    return run.seed, run.identity.get("data.options.split_index")


def _pair_name(key: tuple[int | None, object]) -> str:
    seed, split = key
    return str(seed) if split is None else f"{seed} (split {split})"


def paired_table(runs: Sequence[RunResult], baseline: str, metric: str = "accuracy") -> str:
    """Every method against the ablation row of region head ``baseline`` (e.g. ``average``),
    or the row labelled ``baseline``, on the same data set, paired by seed and official split
    (see the module notes), Markdown.

    Raises:
        ReportError: several rows match ``baseline`` on one data set (two backbones, say):
            which one each method is paired with must not depend on the order of the runs.
    """
    base: dict[tuple[str, tuple[int | None, object]], float] = {}
    base_label: dict[str, str] = {}
    labels = {run.method.label for run in runs}
    for run in runs:
        matches = (
            run.method.label == baseline if baseline in labels else run.region_head == baseline
        )
        if run.method.table == "ablation" and matches and metric in run.values:
            known = base_label.setdefault(run.dataset, run.method.label)
            if known != run.method.label:
                raise ReportError(
                    f"--paired {baseline!r}: several rows match it on {run.dataset} "
                    f"({known!r} and {run.method.label!r}); name one: --paired '{known}'"
                )
            key = (run.dataset, _pair_key(run))
            if key in base:
                raise ReportError(
                    f"--paired {baseline!r}: two {known!r} runs on {run.dataset} at seed "
                    f"{_pair_name(key[1])} (one is {run.run_dir}); pairs must be one to one"
                )
            base[key] = run.values[metric]
    name = metric.replace("_", " ")
    if not base:
        return f"**Paired by seed**: no {baseline!r} run with a {name} value to pair against."
    lines = [
        f"**Paired by seed**: {name} of each method minus that of the {baseline!r} row on the "
        "same data set and seed (points; mean ± sample std over the paired seeds)",
        "",
        "| Method | Against | Data | Seeds paired | Differences (points) | Mean ± std (points) |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for (label, dataset), members in run_groups(runs).items():
        if dataset not in base_label or label == base_label[dataset]:
            continue
        pairs: list[tuple[tuple[int | None, object], float]] = []
        paired: dict[tuple[int | None, object], RunResult] = {}
        for r in members:
            key = _pair_key(r)
            if metric not in r.values or (dataset, key) not in base:
                continue
            if key in paired:  # as for the baseline: one run per seed, or the std is not one
                raise ReportError(
                    f"--paired {baseline!r}: two {label!r} runs on {dataset} at seed "
                    f"{_pair_name(key)} ({paired[key].run_dir} and {r.run_dir}) would pair with "
                    f"one {base_label[dataset]!r} run; pairs must be one to one"
                )
            paired[key] = r
            pairs.append((key, 100 * (r.values[metric] - base[(dataset, key)])))
        if not pairs:
            continue
        diffs = Cell([d for _, d in pairs])
        spread = f"{diffs.mean:+.2f} ± {diffs.std:.2f}" if len(pairs) > 1 else f"{diffs.mean:+.2f}"
        lines.append(
            f"| {label} | {base_label[dataset]} | {dataset} | "
            f"{', '.join(_pair_name(k) for k, _ in pairs)} | "
            f"{', '.join(f'{d:+.2f}' for _, d in pairs)} | {spread} |"
        )
    return "\n".join(lines)


__all__ = ["details_table", "paired_table"]
