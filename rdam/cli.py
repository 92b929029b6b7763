"""The ``rdam`` command line: parse, build objects, call library functions.

Every command is a thin wrapper over a Python function of the package; heavy imports happen
inside the command so ``rdam --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import rdam
from rdam.errors import RDAMError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


# ------------------------------------------------------------------------------------------
# training and evaluation


@command("train")
def _train(args: argparse.Namespace) -> int:
    from rdam.training.config import load_config
    from rdam.training.train import train

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
    from rdam.training.config import load_config
    from rdam.training.train import evaluate

    config = load_config(args.config, args.overrides) if args.config or args.overrides else None
    report = evaluate(args.checkpoint, config, split=args.split, out_dir=args.out)
    per_class = {k: round(v["accuracy"], 4) for k, v in report["per_class"].items()}
    print(
        json.dumps(
            {
                "accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "per_class_accuracy": per_class,
                "num_samples": report["num_samples"],
            },
            indent=2,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdam",
        description="Region Dual Attention Model for video emotion recognition.",
    )
    parser.add_argument("--version", action="version", version=f"rdam {rdam.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", "-c", type=Path, help="YAML experiment config (see configs/)")
    p.add_argument(
        "--run-dir", type=Path, help="run directory (default: trainer.output_dir/run_name)"
    )
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints/last.ckpt")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=3e-4")

    p = sub.add_parser(
        "eval", help="evaluate a checkpoint: accuracy, per-class, macro-F1, confusion"
    )
    p.add_argument("--checkpoint", required=True, type=Path, help=".ckpt or .safetensors")
    p.add_argument(
        "--config", "-c", type=Path, help="data config (default: the one in the checkpoint)"
    )
    p.add_argument("--split", help="split to evaluate (default: data.test_split or val_split)")
    p.add_argument("--out", type=Path, help="write metrics.json and confusion matrix CSV/PNG here")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    return parser


def configure_logging(verbose: bool = False) -> None:
    """Log rdam messages to stderr, and every Lightning message exactly once.

    ``import lightning`` attaches its own stderr handler to the ``lightning`` logger; with a
    root handler as well, each of its messages would print twice. The ``lightning`` logger
    therefore stops at that handler (``propagate = False``; Lightning leaves this flag alone).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("lightning").propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except RDAMError as exc:
        print(f"rdam {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
