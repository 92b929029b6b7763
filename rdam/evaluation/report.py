"""The paper's result tables (Tables 1-5) from a set of run directories, as Markdown.

A run directory is what :func:`rdam.training.train.train` writes: ``config.yaml`` (the full
experiment config), ``metrics.json`` (training summary) and optionally ``eval_metrics.json``
from :func:`rdam.training.train.evaluate` (in the run directory or a sub-folder of it, e.g.
``run/eval/``). Each run gives one number:

- ``eval_metrics.json`` when present (an explicit evaluation of the saved model), else
- the best monitored score of training (``metrics.json`` ``best``) when it is the metric asked
  for, else
- the metric's value at the end of training (``metrics.json`` ``metrics["val/..."]``).

Runs of the same method and data set (seeds, official splits such as VideoEmotion-8's ten)
are averaged: ``mean ± std (n)``, with the sample standard deviation. The same run passed
twice is refused, and runs of one cell that differ in more than their seed (another recipe,
or scored otherwise) are named under the tables (:mod:`rdam.evaluation.mixing`).

The method of a run comes from its model config (``arch``, ``backbone``, ``region_head``,
``temporal``), the data set from ``data.name`` plus the stream (``-I`` frames, ``-F`` faces,
as MHED-I / MHED-F in the paper). Two tables are printed:

- *Region attention ablation* (Tables 1-4): single-stream RDAM rows ``+ average aggregation``,
  ``+ regional location / relationship / dual attention`` by data-set-stream columns.
- *Comparison* (Table 5): the quality-aware network, Attention Clusters and the two-stream
  RDAM ("Our method") by data-set columns.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rdam.errors import CheckpointError, ConfigError, ReportError, RunNotFinishedError

#: metric name -> (key in eval_metrics.json, key in metrics.json["metrics"])
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("accuracy", "val/acc"),
    "macro_f1": ("macro_f1", "val/macro_f1"),
    "mean_class_accuracy": ("mean_class_accuracy", "val/mean_class_acc"),
}
_HEAD_ORDER = ("average", "location", "relation", "dual")
_HEAD_TEXT = {
    "average": "average aggregation",
    "location": "regional location attention",
    "relation": "regional relationship attention",
    "dual": "regional dual attention",
}
_STREAM_SUFFIX = {"frames": "-I", "faces": "-F", "both": ""}


@dataclass(frozen=True)
class Method:
    """What a row of a table stands for; ``order`` sorts rows as the paper does."""

    label: str
    table: str  # "ablation" | "comparison"
    order: tuple[int, str]


@dataclass
class RunResult:
    """One run directory reduced to the fields the tables need."""

    run_dir: Path
    method: Method
    dataset: str  # column of the ablation table, e.g. "MHED-I"
    dataset_name: str  # column of the comparison table, e.g. "MHED"
    values: dict[str, float] = field(default_factory=dict)  # metric -> value in [0, 1]
    sources: dict[str, str] = field(default_factory=dict)  # metric -> where it came from
    seed: int | None = None
    region_head: str = ""
    frame_size: int | None = None
    per_class: dict[str, float] = field(default_factory=dict)  # eval per-class accuracy
    train_seconds: float | None = None  # metrics.json: the whole run's training time
    compute: list[dict[str, Any]] = field(default_factory=list)  # metrics.json: per fit call
    # what the run trained and was scored with (config.yaml, eval_metrics.json), bar where it
    # ran and what tells the runs of a cell apart (seed, split, run name: ``identity``)
    settings: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    run_name: str = ""  # trainer.run_name
    label_sets: dict[str, float] = field(default_factory=dict)  # eval: accuracy per label set


#: The fields of ``eval_metrics.json`` that say how a run was scored, with the value an
#: evaluation written before the field existed had (``None``: none to assume).
EVAL_SETTINGS: dict[str, Any] = {
    "data_set": None,
    "split": None,
    "labels": "folder",
    "test_views": 1,
    "test_flip": False,
    "test_crops": 1,
    "class_map": {},  # --class-map: other classes, or some left out (``excluded``)
    "overrides": {},  # --num-frames, --keyframes: another clip spec than the model's
    "face_input": "auto",
}


def backbone_label(name: str) -> str:
    """``resnet50`` -> ``ResNet-50``, ``resnet10t`` -> ``ResNet-10t``; other names unchanged."""
    if name.startswith("resnet") and name[6:7].isdigit():
        return "ResNet-" + name[6:]
    return name


def method_of(model: dict[str, Any]) -> Method:
    """The table row of a model config (a ``ModelConfig`` as a dict)."""
    arch = model.get("arch", "rdam")
    bb = backbone_label(str(model.get("backbone", "resnet50")))
    head = str(model.get("region_head", "dual"))
    temporal = str(model.get("temporal", "attention"))
    rank = _HEAD_ORDER.index(head) if head in _HEAD_ORDER else len(_HEAD_ORDER)
    if arch == "qan":
        return Method(f"Quality-aware network ({bb})", "comparison", (0, bb))
    if arch == "attention_clusters":
        return Method(f"Attention clusters ({bb})", "comparison", (1, bb))
    canonical = (head == "average") == (temporal == "average")
    text = _HEAD_TEXT.get(head, head)
    if not canonical:
        text += " + average over frames" if temporal == "average" else " + frame attention"
    if arch == "two_stream":
        if head == "dual" and temporal == "attention":
            return Method(f"Our method (two-stream RDAM, {bb})", "comparison", (10, bb))
        return Method(f"Two-stream {bb} + {text}", "comparison", (2 + rank, bb))
    return Method(f"{bb} + {text}", "ablation", (rank * 2 + (0 if canonical else 1), bb))


def _find_eval(run_dir: Path) -> Path | None:
    """The run's one ``eval_metrics.json`` (in it or a sub-folder); several are refused: which
    one a table shows (a plain test or a ten-crop one, say) must not hang on file names."""
    direct = run_dir / "eval_metrics.json"
    found = ([direct] if direct.is_file() else []) + sorted(run_dir.glob("*/eval_metrics.json"))
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(run_dir)) for p in found)
        raise ReportError(
            f"{run_dir}: several evaluations ({names}); the report takes one per run: move the "
            "others out of the run directory"
        )
    return found[0] if found else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(
            f"{path}: cannot read it as JSON ({exc}); re-run the step that wrote it"
        ) from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def has_results(run_dir: str | Path) -> bool:
    """Whether a run directory has a result file: ``metrics.json`` (its training ended) or an
    ``eval_metrics.json`` (it was scored; :func:`read_run` also checks that the score is of
    the run's end)."""
    run_dir = Path(run_dir)
    return _find_eval(run_dir) is not None or (run_dir / "metrics.json").is_file()


def _clip_spec(run_dir: Path, config: Any, evaluated: dict[str, Any]) -> dict[str, Any]:
    """The clip spec the run's model was trained with: the one its score records, else its
    model file's, else its config's (whose unset fields come from a preprocessing cache, when
    it names one, so they are left unknown)."""
    from rdam.checkpoint import read_model_header

    if isinstance(evaluated.get("clip_spec"), dict):
        return evaluated["clip_spec"]
    model_file = run_dir / "model.safetensors"
    if model_file.is_file():
        try:
            header = read_model_header(model_file)
        except CheckpointError as exc:
            raise ReportError(f"{run_dir}: {exc}") from exc
        if isinstance(header, dict) and isinstance(header.get("clip_spec"), dict):
            return header["clip_spec"]
    if config.data.cache_dir:
        return config.data.spec_fields()
    return config.data.clip_spec().to_dict()


def read_run(run_dir: str | Path) -> RunResult:
    """Read one run directory (``config.yaml`` + ``metrics.json`` / ``eval_metrics.json``).

    Raises:
        RunNotFinishedError: no metrics file at all, or only a score of a checkpoint taken
            before the last epoch of a run that has not finished.
        ReportError: no config, a malformed file, or a score of another step than the end.
    """
    from rdam.config import RUN_SETTINGS, ExperimentConfig, flat_settings
    from rdam.evaluation.mixing import RUN_IDENTITY
    from rdam.scalars import load_yaml

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise ReportError(f"{run_dir}: no config.yaml; is this a run directory of rdam train?")
    try:
        config = ExperimentConfig.from_dict(load_yaml(config_path.read_text()) or {})
    except (yaml.YAMLError, ConfigError) as exc:
        raise ReportError(f"{config_path}: not a valid rdam config ({exc})") from exc
    method = method_of(config.model.to_dict())
    eval_path = _find_eval(run_dir)
    train_path = run_dir / "metrics.json"
    if not has_results(run_dir):
        raise RunNotFinishedError(
            f"{run_dir}: neither metrics.json nor eval_metrics.json; the run did not finish "
            "(resume it with rdam train) or was never evaluated (rdam eval --out RUN_DIR)"
        )
    evaluated = _read_json(eval_path) if eval_path is not None else {}
    trained = _read_json(train_path) if train_path.is_file() else {}
    name = str(config.data.name)
    spec = _clip_spec(run_dir, config, evaluated)
    result = RunResult(
        run_dir=run_dir,
        method=method,
        dataset=name + _STREAM_SUFFIX.get(spec.get("stream"), ""),
        dataset_name=name,
        seed=config.trainer.seed,
        region_head=str(config.model.region_head),
        run_name=str(config.trainer.run_name),
        frame_size=spec.get("frame_size"),
    )
    _check_own_model(run_dir, evaluated, config)
    _check_scored_at_the_end(run_dir, evaluated, trained, config.trainer.max_epochs)
    best = trained.get("best") or {}
    final = trained.get("metrics") or {}
    # the best epoch's score is the model's only where the best checkpoint was exported
    exported_best = trained.get("exported_checkpoint", trained.get("best_checkpoint")) == (
        trained.get("best_checkpoint")
    )
    result.per_class = {  # a class with no clip in the split (accuracy None) has no figure
        name: float(row["accuracy"])
        for name, row in (evaluated.get("per_class") or {}).items()
        if isinstance(row, dict) and row.get("accuracy") is not None and row.get("support") != 0
    }
    result.label_sets = {
        name: float(scores["accuracy"])
        for name, scores in (evaluated.get("label_sets") or {}).items()
        if isinstance(scores, dict) and "accuracy" in scores
    }
    if trained.get("train_seconds") is not None:
        result.train_seconds = float(trained["train_seconds"])
    result.compute = [c for c in trained.get("compute") or [] if isinstance(c, dict)]
    flat = flat_settings(config.to_dict())
    result.identity = {k: flat.get(k) for k in RUN_IDENTITY}
    result.settings = {
        k: v for k, v in flat.items() if k not in RUN_SETTINGS and k not in RUN_IDENTITY
    }
    for key, before in EVAL_SETTINGS.items():
        value = evaluated.get(key, before) if evaluated else None
        if value is not None:
            result.settings[f"eval.{key}"] = value
    scored_on = {
        evaluated.get("labels", "folder"): evaluated,
        **(evaluated.get("label_sets") or {}),
    }
    for name, scores in scored_on.items():
        for key in ("majority_rule", "votes"):  # FER+ labels: how the votes were read, and which
            if isinstance(scores, dict) and scores.get(key) is not None:
                value = scores[key]
                result.settings[f"eval.{name}.{key}"] = (
                    Path(value).name if key == "votes" else value
                )
    if isinstance(evaluated.get("model"), str):  # last.ckpt or the exported (best) model
        result.settings["eval.model_file"] = Path(evaluated["model"]).name
    for metric, (eval_key, train_key) in METRICS.items():
        if eval_key in evaluated:
            result.values[metric] = float(evaluated[eval_key])
            labels = evaluated.get("labels", "folder")  # against what the score was taken
            against = "" if labels == "folder" else f", against {labels} labels"
            result.sources[metric] = f"eval ({eval_path.relative_to(run_dir)}{against})"
        elif (
            best.get("monitor") == train_key
            and best.get("score") is not None
            and exported_best  # (with weight averaging the model is the last average)
        ):
            result.values[metric] = float(best["score"])
            result.sources[metric] = f"best {train_key} in training"
        elif train_key in final:
            result.values[metric] = float(final[train_key])
            result.sources[metric] = f"last {train_key} in training"
    return result


def _check_own_model(run_dir: Path, evaluated: dict[str, Any], config: Any) -> None:
    """Refuse an evaluation of a model trained with another recipe (``eval_metrics.json``
    ``recipe_sha256``, :func:`rdam.config.recipe_sha256`) than the run's ``config.yaml``: an
    earlier run's score left in a directory trained anew, or ``rdam eval --out`` into another
    run's directory. Evaluations written before the record are not checked."""
    from rdam.config import recipe_sha256

    scored = evaluated.get("recipe_sha256")
    if scored is None:
        return
    own = recipe_sha256(config.to_dict())
    if scored == own:
        return
    raise ReportError(
        f"{run_dir}: its evaluation scored {evaluated.get('model', 'a model')}, trained with "
        f"another recipe (or seed) than this run's config.yaml (recipe {scored}, the run's "
        f"{own}): an earlier run's score, or another run's model. "
        f"Score this run's own model (rdam eval --checkpoint "
        f"{run_dir / 'checkpoints' / 'last.ckpt'} --out {run_dir / 'eval'}) and move the other "
        "evaluation out"
    )


def _check_scored_at_the_end(
    run_dir: Path, evaluated: dict[str, Any], trained: dict[str, Any], max_epochs: int
) -> None:
    """Refuse an evaluation of a training checkpoint (``eval_metrics.json`` ``checkpoint``)
    that may not be the run's end: ``last.ckpt`` scored at another step than the run finished
    at (a score of an earlier or a later run in the directory), or any checkpoint of a run
    that has not finished (no ``metrics.json``): checkpoints are also saved inside epochs
    (``trainer.checkpoint_every_n_steps``), so even one of the last epoch may be mid-way."""
    scored = evaluated.get("checkpoint")
    if not isinstance(scored, dict) or "global_step" not in scored:
        return  # a model file, or an evaluation written before it recorded the step
    step, epoch = int(scored["global_step"]), int(scored.get("epoch", 0))
    again = (
        f"score the run's final checkpoint again (rdam eval --checkpoint "
        f"{run_dir / 'checkpoints' / 'last.ckpt'} --out {run_dir / 'eval'})"
    )
    if trained.get("global_step") is None:
        raise RunNotFinishedError(
            f"{run_dir}: its evaluation scored a checkpoint of epoch {epoch + 1} of "
            f"{max_epochs} (step {step}) and the run has not finished (no metrics.json): when "
            f"it has, {again}"
        )
    end = int(trained["global_step"])
    if Path(str(evaluated.get("model", ""))).name == "last.ckpt" and step != end:
        raise ReportError(
            f"{run_dir}: its evaluation scored last.ckpt at step {step}, but the run "
            f"finished at step {end}: {again}"
        )


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories among ``paths``: each path is a run (has ``config.yaml``) or a folder
    whose sub-folders (any depth) are runs."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "config.yaml").is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise ReportError(f"{path}: no such run directory")
        runs = sorted(p.parent for p in path.rglob("config.yaml"))
        if not runs:
            raise ReportError(f"{path}: no run directories (folders with config.yaml) under it")
        found.extend(runs)
    return list(dict.fromkeys(found))


@dataclass
class Cell:
    """The runs of one method on one data set."""

    values: list[float]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (n - 1))

    def format(self) -> str:
        """Percent with two decimals; ``mean ± std (n=..)`` when several runs are averaged."""
        if len(self.values) == 1:
            return f"{100 * self.values[0]:.2f}"
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} (n={len(self.values)})"


def table_cells(
    runs: Sequence[RunResult], table: str, metric: str = "accuracy"
) -> tuple[list[Method], list[str], dict[tuple[str, str], Cell]]:
    """Rows, columns and ``{(row label, column): Cell}`` of one table (``ablation`` or
    ``comparison``) over ``runs``; runs without ``metric`` are left out.

    The ablation table's columns are data set and stream (``MHED-F``); the comparison table's
    the data set (``MHED``), as in the paper's Table 5, except for a method run on several
    streams of one data set: its runs keep their stream's column, so a cell never averages
    runs on frames with runs on faces."""
    chosen = [r for r in runs if r.method.table == table and metric in r.values]
    streams: dict[tuple[str, str], set[str]] = {}
    for run in chosen:
        streams.setdefault((run.method.label, run.dataset_name), set()).add(run.dataset)
    cells: dict[tuple[str, str], Cell] = {}
    rows: dict[str, Method] = {}
    columns: list[str] = []
    for run in chosen:
        mixed = len(streams[(run.method.label, run.dataset_name)]) > 1
        column = run.dataset if table == "ablation" or mixed else run.dataset_name
        rows.setdefault(run.method.label, run.method)
        if column not in columns:
            columns.append(column)
        cells.setdefault((run.method.label, column), Cell([])).values.append(run.values[metric])
    ordered = sorted(rows.values(), key=lambda m: (m.order[1], m.order[0], m.label))
    return ordered, columns, cells


def markdown_table(
    runs: Sequence[RunResult], table: str, metric: str = "accuracy", title: str | None = None
) -> str:
    """One table as Markdown (empty string when no run belongs to it)."""
    rows, columns, cells = table_cells(runs, table, metric)
    if not rows:
        return ""
    unit = "(%)"
    header = [
        "Method",
        *(f"{metric.replace('_', ' ').capitalize()} on {c} {unit}" for c in columns),
    ]
    lines = []
    if title:
        lines += [title, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in columns) + " |")
    for row in rows:
        values = [
            cells[(row.label, c)].format() if (row.label, c) in cells else "–" for c in columns
        ]
        lines.append("| " + " | ".join([row.label, *values]) + " |")
    return "\n".join(lines)


GROUPINGS = ("method", "run_name")


def grouped(runs: Sequence[RunResult], group_by: str) -> list[RunResult]:
    """The runs with their rows: by ``method`` (the model: the paper's tables), or by
    ``run_name`` (``trainer.run_name``: rows that differ in their recipe, not their model, such
    as the levers of a training recipe)."""
    if group_by not in GROUPINGS:
        raise ConfigError(f"unknown grouping {group_by!r}; valid: {', '.join(GROUPINGS)}")
    if group_by == "method":
        return list(runs)
    return [
        dataclasses.replace(run, method=Method(run.run_name, "ablation", (0, run.run_name)))
        for run in runs
    ]


def with_frame_sizes(runs: Sequence[RunResult]) -> list[RunResult]:
    """The runs, with ``" (96 px)"`` after the data set where one data set was run at several
    frame sizes (a column per size: a larger region grid is another setting, not a seed), the
    runs of one data set ordered by frame size (so its columns read 48 px, 96 px whichever run
    comes first on disk); data sets keep the order they first appear in."""
    sizes: dict[str, set[int | None]] = {}
    for run in runs:
        sizes.setdefault(run.dataset, set()).add(run.frame_size)
    first = {name: i for i, name in enumerate(sizes)}
    out = []
    for run in sorted(runs, key=lambda r: (first[r.dataset], r.frame_size or 0)):
        if len(sizes[run.dataset]) > 1:
            tag = f" ({run.frame_size} px)"
            run = dataclasses.replace(
                run, dataset=run.dataset + tag, dataset_name=run.dataset_name + tag
            )
        out.append(run)
    return out


def render_report(
    runs: Sequence[RunResult],
    metric: str = "accuracy",
    details: bool = False,
    paired: str | None = None,
    group_by: str = "method",
) -> str:
    """Both tables, then where the numbers came from; with ``details`` the table of
    :func:`~rdam.evaluation.ablation.details_table`, with ``paired`` (a region head, e.g.
    ``average``, or a row's label) that of :func:`~rdam.evaluation.ablation.paired_table`;
    rows by ``group_by`` (:func:`grouped`)."""
    from rdam.evaluation.ablation import details_table, paired_table
    from rdam.evaluation.mixing import check_no_duplicates, mixed_settings_note

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    runs = with_frame_sizes(grouped(runs, group_by))
    check_no_duplicates(runs)
    parts = []
    title = (
        "**Region attention ablation** (Tables 1-4; -I = frames stream, -F = face stream)"
        if group_by == "method"
        else "**Runs by trainer.run_name** (-I = frames stream, -F = face stream)"
    )
    ablation = markdown_table(runs, "ablation", metric, title)
    if ablation:
        parts.append(ablation)
    comparison = markdown_table(
        runs, "comparison", metric, "**Comparison with related methods** (Table 5)"
    )
    if comparison:
        parts.append(comparison)
    if not parts:
        return f"No run has a {metric} value."
    sources = sorted({run.sources[metric] for run in runs if metric in run.sources})
    counted = sum(metric in run.values for run in runs)
    parts.append(
        f"{counted} run(s); cells are mean ± sample std over runs of one method and data set "
        f"(n = runs: seeds or official splits). Values from: {'; '.join(sources)}."
    )
    mixed = mixed_settings_note(runs)
    if mixed is not None:
        parts.append(mixed)
    if details:
        parts.append(details_table(runs))
    if paired is not None:
        parts.append(paired_table(runs, paired, metric))
    return "\n\n".join(parts) + "\n"


def build_report(
    paths: Iterable[str | Path],
    metric: str = "accuracy",
    out: str | Path | None = None,
    details: bool = False,
    paired: str | None = None,
    group_by: str = "method",
    skip_unfinished: bool = False,
) -> str:
    """Read the run directories under ``paths``, render the tables (see
    :func:`render_report`), optionally write ``out``. A run without results (still training)
    is an error, or with ``skip_unfinished`` left out and named in a last line of the text."""
    paths = list(paths)
    runs: list[RunResult] = []
    unfinished: list[Path] = []
    for run_dir in find_run_dirs(paths):
        try:
            runs.append(read_run(run_dir))
        except RunNotFinishedError:
            if not skip_unfinished:
                raise
            unfinished.append(run_dir)
    if not runs:
        raise ReportError(f"no run under {', '.join(map(str, paths))} has finished yet")
    text = render_report(runs, metric, details=details, paired=paired, group_by=group_by)
    if unfinished:
        text += (
            f"\nLeft out, not finished (no metrics.json, and no evaluation of its end): "
            f"{', '.join(str(d) for d in unfinished)}\n"
        )
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
