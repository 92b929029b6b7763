"""Figure 8: accuracy of the region heads under an equal budget on FER2013 (one-frame clips).

Every row trains through the real path, :func:`rdam.training.train.train`, with a config derived
from ``configs/fer2013_face_default.yaml`` where only ``model.region_head``, ``trainer.seed``,
``trainer.max_epochs`` and the training images change: a class-stratified subset of the training
split (the same subset for every row and seed), the full validation split (3,589 images).
Accuracy is read from the *last* checkpoint (end of the budget), not the best epoch, so no row
is picked on the validation set.

Run in the background (it trains 4 heads x 3 seeds)::

    nice -n 10 .venv/bin/python -m benchmarks.accuracy --train-images 5000 --epochs 3 \
        --seeds 0 1 2 > benchmarks/results/accuracy.log 2>&1 &

Finished runs are kept in the ``--out`` JSON; a rerun skips them (resumable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO_ROOT,
    RESULTS_DIR,
    WORK_DIR,
    fer2013_root,
    figure_result,
    machine_info,
    write_json,
)

HEADS = ("average", "location", "relation", "dual")
BASE_CONFIG = REPO_ROOT / "configs" / "fer2013_face_default.yaml"
log = logging.getLogger("benchmarks.accuracy")


def write_subset_manifest(out_csv: Path, train_images: int, seed: int = 0) -> Path:
    """A CSV manifest: ``train_images`` training images drawn per class in proportion to the
    class sizes (at least one each), plus the whole validation split.

    The draw depends only on ``seed``, so every head and seed trains on the same images.
    """
    from rdam.data.layouts import image_folder_manifest
    from rdam.data.manifest import Manifest

    manifest = image_folder_manifest(fer2013_root())
    train = [r for r in manifest.records if r.split == "train"]
    val = [r for r in manifest.records if r.split == "val"]
    rng = np.random.default_rng(seed)
    chosen = []
    if train_images >= len(train):
        chosen = train
    else:
        by_class: dict[int, list] = {}
        for r in train:
            by_class.setdefault(int(r.label), []).append(r)
        for _label, records in sorted(by_class.items()):
            n = max(1, round(train_images * len(records) / len(train)))
            picks = rng.choice(len(records), size=min(n, len(records)), replace=False)
            chosen.extend(records[i] for i in sorted(picks))
    subset = Manifest(chosen + val, list(manifest.class_names))
    subset.to_csv(out_csv)
    return out_csv


def ablation_config(
    head: str,
    seed: int,
    epochs: int,
    manifest_csv: Path,
    output_dir: Path,
    extra: list[str] | None = None,
) -> Any:
    """The default FER2013 config with one head, seed, epoch count and training manifest."""
    from rdam.config import load_config

    overrides = [
        f"model.region_head={head}",
        f"trainer.seed={seed}",
        f"trainer.max_epochs={epochs}",
        "optim.swa_epochs=0",  # the short ablation runs have no room for the SWA phase
        "data.kind=csv",
        f"data.root={manifest_csv}",
        "data.name=fer2013",
        f"trainer.output_dir={output_dir}",
        f"trainer.run_name={head}_seed{seed}",
        "trainer.loggers=[csv]",
        "trainer.progress_bar=false",
        *(extra or []),
    ]
    return load_config(BASE_CONFIG, overrides), overrides


def run_directory(output_dir: Path, head: str, seed: int, manifest_csv: Path) -> Path:
    """Where a row trains: by head, seed and the training manifest's content, so a run on
    another subset (``--train-images``) is never taken for a finished run of this one (the
    manifest's path is the same, and ``data.root`` is a run setting, which a resume ignores)."""
    digest = hashlib.sha256(Path(manifest_csv).read_bytes()).hexdigest()[:10]
    return Path(output_dir) / f"{head}_seed{seed}_{digest}"


def run_one(
    head: str,
    seed: int,
    epochs: int,
    manifest_csv: Path,
    output_dir: Path,
    extra: list[str],
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Train one row and evaluate its last checkpoint on the validation split with
    :func:`rdam.evaluation.evaluate.evaluate` (what ``rdam eval`` runs: the model's clip spec,
    precision ``auto``); the run's per-epoch CSV log is copied into ``log_dir``."""
    from rdam.evaluation.evaluate import evaluate
    from rdam.training.train import train

    config, overrides = ablation_config(head, seed, epochs, manifest_csv, output_dir, extra)
    run_dir = run_directory(output_dir, head, seed, manifest_csv)
    start = time.time()
    result = train(config, run_dir=run_dir, resume=True)
    train_s = time.time() - start
    last = run_dir / "checkpoints" / "last.ckpt"
    report = evaluate(last, split="val")
    csv_log = run_dir / "logs" / "metrics.csv"
    if log_dir is not None and csv_log.is_file():
        log_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(csv_log, log_dir / f"{head}_seed{seed}_metrics.csv")
    return {
        "head": head,
        "seed": seed,
        "epochs": epochs,
        "overrides": overrides,
        "train_seconds": round(train_s, 1),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "mean_class_accuracy": report["mean_class_accuracy"],
        "per_class_accuracy": {k: v["accuracy"] for k, v in report["per_class"].items()},
        "confusion": report["confusion"],
        "class_names": report["class_names"],
        "eval_precision": report["precision"],
        "final_train_metrics": {k: v for k, v in result.metrics.items() if k.startswith("train/")},
    }


def _mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sample std over seeds per head: accuracy, macro-F1, per-class accuracy."""
    table: dict[str, Any] = {}
    for head in HEADS:
        rows = [r for r in runs if r["head"] == head]
        if not rows:
            continue
        classes = rows[0]["class_names"]
        table[head] = {
            "seeds": [r["seed"] for r in rows],
            "accuracy": _mean_std([r["accuracy"] for r in rows]),
            "macro_f1": _mean_std([r["macro_f1"] for r in rows]),
            "per_class_accuracy": {
                c: _mean_std([r["per_class_accuracy"][c] for r in rows]) for c in classes
            },
            "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rows),
        }
    return table


def accuracy_figure(
    train_images: int = 5000,
    epochs: int = 3,
    seeds: tuple[int, ...] = (0, 1, 2),
    heads: tuple[str, ...] = HEADS,
    out: Path | None = None,
    work_dir: Path | None = None,
    extra: list[str] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train every (head, seed) not yet in ``out`` and return the figure.

    ``threads`` sets ``trainer.threads`` (a speed setting, not part of the recipe: one thread
    avoids OpenMP stalls when the machine is busier than its cores). The result is
    :func:`figure_from_runs` over every finished run.
    """
    out = out or RESULTS_DIR / "accuracy_runs.json"
    work_dir = work_dir or WORK_DIR / "accuracy"
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest_csv = write_subset_manifest(
        work_dir / f"fer2013_train{train_images}.csv", train_images
    )

    state: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    recipe = {
        "base_config": str(BASE_CONFIG.relative_to(REPO_ROOT)),
        "train_images": train_images,
        "val_images": "all (3589)",
        "epochs": epochs,
        "seeds": list(seeds),
        "extra_overrides": list(extra or []),
        "evaluated_checkpoint": "last (end of budget)",
    }
    if state.get("recipe") not in (None, recipe):
        raise SystemExit(f"{out} holds runs of another recipe ({state['recipe']}); pass --out")
    state["recipe"] = recipe
    runs: list[dict[str, Any]] = state.setdefault("runs", [])
    done = {(r["head"], r["seed"]) for r in runs}
    for seed in seeds:  # seed-major: a partial result already compares every head
        for head in heads:
            if (head, seed) in done:
                continue
            log.info("training head=%s seed=%d", head, seed)
            runs.append(
                run_one(
                    head,
                    seed,
                    epochs,
                    manifest_csv,
                    work_dir / "runs",
                    [*(extra or []), *([f"trainer.threads={threads}"] if threads else [])],
                    out.parent / f"{out.stem}_logs",
                )
            )
            state["machine"] = machine_info()
            write_json(state, out)
    return figure_from_runs(runs, {"recipe": recipe, "runs_file": str(out)})


FIGURE_TITLE = "FER2013 val accuracy, region heads under an equal budget"


def figure_from_runs(
    runs: list[dict[str, Any]], details: dict[str, Any], title: str = FIGURE_TITLE
) -> dict[str, Any]:
    """Figure 8 from finished runs: the :func:`summarize` table in ``details``, and as
    ``value`` the accuracy gain of ``dual`` over ``average`` (mean over seeds, points) when
    both ran. There is no pass/fail goal: the figure reports what it measures."""
    table = summarize(runs)
    gain = None
    if "dual" in table and "average" in table:
        gain = 100 * (table["dual"]["accuracy"]["mean"] - table["average"]["accuracy"]["mean"])
    return figure_result(
        8,
        title,
        "report mean ± std over 3 seeds, whatever it shows (no pass/fail)",
        gain,
        None,
        {**details, "table": table},
        unit="accuracy points, dual minus average",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "accuracy_runs.json")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR / "accuracy")
    parser.add_argument("--threads", type=int, help="torch threads per run (speed only)")
    parser.add_argument(
        "--figure-out",
        type=Path,
        default=RESULTS_DIR / "accuracy_figure.json",
        help="the summarised figure, readable by `python -m benchmarks.report`",
    )
    parser.add_argument("overrides", nargs="*", help="extra section.key=value config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("lightning").propagate = False
    result = accuracy_figure(
        args.train_images,
        args.epochs,
        tuple(args.seeds),
        tuple(args.heads),
        args.out,
        args.work_dir,
        args.overrides,
        args.threads,
    )
    write_json({"results": [result]}, args.figure_out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
