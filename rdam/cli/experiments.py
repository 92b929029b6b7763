"""``rdam train``, ``eval``, ``report`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from rdam.cli.common import (
    CROP_CHOICES,
    FACE_INPUT_CHOICES,
    FACES_HELP,
    KEYFRAMES_HELP,
    PRECISION_CHOICES,
    PRECISION_HELP,
    REPORT_GROUPINGS,
    THREADS_HELP,
    command,
)

# training and evaluation


@command("train")
def _train(args: argparse.Namespace) -> int:
    from rdam.config import check_row_overrides, load_config
    from rdam.training.train import train

    if args.keep_recipe:
        check_row_overrides(args.overrides)
    config = load_config(args.config, args.overrides)
    result = train(config, run_dir=args.run_dir, resume=not args.no_resume)
    print(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "model_file": str(result.model_file),
                "metrics": result.metrics,
            },
            indent=2,
        )
    )
    return 0


@command("eval")
def _eval(args: argparse.Namespace) -> int:
    from rdam.evaluation.evaluate import evaluate, parse_class_map

    checkpoints = args.checkpoint or [None]
    report = evaluate(
        checkpoints[0] if len(checkpoints) == 1 else checkpoints,
        args.dataset,
        split=args.split,
        class_map=parse_class_map(args.class_map),
        precision=args.precision,
        threads=args.threads,
        views=args.views,
        flip=args.flip,
        crops=args.crops,
        face_input=args.faces,
        overrides={"num_frames": args.num_frames, "keyframes": args.keyframes or None},
        batch_size=args.batch_size,
        num_workers=args.workers,
        out_dir=args.out,
        labels=args.labels,
        majority_rule=args.majority_rule,
    )
    per_class = {  # None: a class with no clip in the data set (its accuracy is undefined)
        k: None if v["accuracy"] is None else round(v["accuracy"], 4)
        for k, v in report["per_class"].items()
    }
    keys = ("model", "data_set", "split", "num_samples", "accuracy", "macro_f1")
    summary = {k: report[k] for k in keys}
    summary["per_class_accuracy"] = per_class
    if args.labels:  # the label set(s) scored against (--labels)
        summary["labels"] = report["labels"]
        for key in ("votes", "majority_rule", "no_label"):
            if key in report:
                summary[key] = report[key]
        if "label_sets" in report:
            keys = ("num_samples", "accuracy", "macro_f1", "no_label", "excluded")
            summary["label_sets"] = {
                name: {k: v for k, v in scores.items() if k in keys}
                for name, scores in report["label_sets"].items()
            }
    keys = ("excluded", "class_map", "overrides", "precision", "face_input")
    summary.update({k: report[k] for k in keys})
    summary.update(
        test_views=report["test_views"],
        test_flip=report["test_flip"],
        test_crops=report["test_crops"],
    )
    if "members" in report:  # an ensemble: each model's own figures beside the ensemble's
        summary["members"] = report["members"]
    summary["clip_spec"] = report["clip_spec"]
    summary["timing"] = report["timing"]
    print(json.dumps(summary, indent=2))
    return 0


@command("report")
def _report(args: argparse.Namespace) -> int:
    from rdam.evaluation.report import build_report

    sys.stdout.write(
        build_report(
            args.run_dirs,
            metric=args.metric,
            out=args.out,
            details=args.details,
            paired=args.paired,
            group_by=args.group_by,
            skip_unfinished=args.skip_unfinished,
        )
    )
    return 0


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from rdam.demo import run_demo

    result = run_demo(args.out, quick=args.quick, seed=args.seed, threads=args.threads)
    print(result.table)
    print(f"run directories: {', '.join(str(p) for p in result.run_dirs.values())}")
    for path in result.heatmaps:
        print(f"heatmap: {path}")
    return 0


def _add_experiment_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", "-c", type=Path, help="YAML experiment config (see configs/)")
    p.add_argument(
        "--run-dir", type=Path, help="run directory (default: trainer.output_dir/run_name)"
    )
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints/last.ckpt")
    p.add_argument(
        "--keep-recipe",
        action="store_true",
        help="refuse overrides that change what the config trains (for a table's row: only the "
        "seed and where and how it runs may change)",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=3e-4")

    p = sub.add_parser(
        "eval",
        help="score a model on a labelled data set, the way it predicts: accuracy, per-class, "
        "macro-F1, confusion",
        description="Score a model on a labelled data set. Clips are made under the model's own "
        "clip spec (from its model file) and run as `rdam predict` runs them; the data set's "
        "classes are matched to the model's by name (see --class-map).",
    )
    p.add_argument(
        "dataset",
        nargs="?",
        help="a folder of class folders (videos, images or image sequences; with or without "
        "split folders), kind:root, or a .csv/.json manifest (default: the data set the model "
        "was trained on)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        help=".safetensors or .ckpt (default: the shipped model); give it several times to "
        "score the ensemble of the models (probabilities averaged; the same classes needed)",
    )
    p.add_argument(
        "--split", help="split to score, or 'all' (default: the only split, else test or val)"
    )
    p.add_argument(
        "--class-map",
        metavar="DATA=MODEL,...",
        help="map data-set class names to the model's (anger=angry,sadness=sad); DATA= leaves "
        "a class out, reported as excluded",
    )
    p.add_argument(
        "--labels",
        metavar="SET[,SET]",
        help="score against 'folder' (the data set's labels, the default) or 'ferplus:PATH.csv' "
        "(the majority of a FER+ vote CSV; clips without a majority are left out and counted "
        "in no_label), or both: 'folder,ferplus:PATH.csv' (the first gives the top-level figures)",
    )
    p.add_argument(
        "--majority-rule",
        choices=("plurality", "ferplus"),
        default="plurality",
        help="FER+ majority: the answer with the most votes, ties none (plurality), or the FERPlus "
        "code's rule: single votes dropped, more than half of the rest (ferplus)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="write eval_metrics.json, the confusion matrix CSV/PNG and probabilities.csv (per "
        "clip; usable as data.soft_labels: a teacher's targets)",
    )
    p.add_argument("--views", type=int, default=1, help="multi-view test: V clips per video")
    p.add_argument("--flip", action="store_true", help="also score each view mirrored")
    p.add_argument(
        "--crops",
        type=int,
        choices=CROP_CHOICES,
        default=1,
        help="5: score each view as its centre and four corner crops (0.9 of the side, resized "
        "back); with --flip the ten-crop test",
    )
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--faces", choices=FACE_INPUT_CHOICES, default="auto", help=FACES_HELP)
    p.add_argument("--num-frames", type=int, help="override the model's frames K per clip")
    p.add_argument("--keyframes", action="store_true", help=KEYFRAMES_HELP)
    p.add_argument("--batch-size", type=int, default=64, help="clips per model call")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")

    p = sub.add_parser("report", help="the paper's tables (Markdown) from run directories")
    p.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run dirs or folders of them"
    )
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    p.add_argument(
        "--metric", choices=("accuracy", "macro_f1", "mean_class_accuracy"), default="accuracy"
    )
    p.add_argument(
        "--details",
        action="store_true",
        help="also a table per method and data set: seeds, accuracy and macro-F1 (mean ± std), "
        "per-class accuracy, training hours per run",
    )
    p.add_argument(
        "--paired",
        metavar="HEAD",
        help="also each method minus the region head HEAD (e.g. average), or minus the row "
        "labelled HEAD, on the same data set, seed by seed: the differences and their mean ± std",
    )
    p.add_argument(
        "--group-by",
        choices=REPORT_GROUPINGS,
        default="method",
        help="rows: one per model (method, the paper's tables) or per trainer.run_name (runs "
        "that differ in their recipe, e.g. configs/levers)",
    )
    p.add_argument(
        "--skip-unfinished",
        action="store_true",
        help="leave out runs that have no result yet (still training), naming them at the end; "
        "by default such a run is an error",
    )

    p = sub.add_parser(
        "demo", help="train average vs dual attention on synthetic clips (no download, CPU)"
    )
    p.add_argument("--out", type=Path, default=Path("rdam-demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: the idle cores)")
