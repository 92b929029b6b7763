"""The ``rdam`` command line: parse, build objects, call library functions.

Every command is a thin wrapper over a Python function of the package; heavy imports happen
inside the command so ``rdam --help`` stays fast. :mod:`~rdam.cli.experiments` (train, eval,
report, demo), :mod:`~rdam.cli.data` (preprocess, validate) and :mod:`~rdam.cli.predict`
(predict, explain, export, serve) register their commands in :data:`COMMANDS`;
:mod:`~rdam.cli.common` holds what they share, :mod:`~rdam.cli.predict_options` which options
of predict and explain go together.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import rdam
from rdam.cli.common import COMMANDS, EXIT_INPUTS_FAILED, EXIT_OK, EXIT_USAGE, PRECISION_CHOICES
from rdam.cli.data import _add_data_parsers
from rdam.cli.experiments import _add_experiment_parsers
from rdam.cli.predict import _add_inference_parsers
from rdam.errors import RDAMError, TrainingInterrupted

__all__ = [
    "COMMANDS",
    "EXIT_INPUTS_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PRECISION_CHOICES",
    "build_parser",
    "configure_logging",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdam",
        description="Region Dual Attention Model for video emotion recognition.",
        epilog="exit codes: 0 every input succeeded; 1 some or all inputs failed (each reported "
        "on stderr, the last line counts them by error kind); 2 nothing done (bad command "
        "line, configuration, model or checkpoint, or a model output that is not finite); "
        "143 / 130 a training run stopped by "
        "SIGTERM / Ctrl+C (run it again to resume)",
    )
    parser.add_argument("--version", action="version", version=f"rdam {rdam.__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, and other libraries' warnings and tips (hidden by default)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_experiment_parsers(sub)
    _add_data_parsers(sub)
    _add_inference_parsers(sub)
    return parser


def configure_logging(verbose: bool = False) -> None:
    """Log rdam messages to stderr, and every Lightning message exactly once; without
    ``verbose``, third-party warnings and tips stay off stderr (:mod:`rdam.quiet`).

    ``import lightning`` attaches its own stderr handler to the ``lightning`` logger; with a
    root handler as well, each of its messages would print twice. The ``lightning`` logger
    therefore stops at that handler (``propagate = False``; Lightning leaves this flag alone).
    """
    from rdam.quiet import set_quiet

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("lightning").propagate = False
    set_quiet(not verbose)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except TrainingInterrupted as exc:  # stopped by a signal: the shell's code for it
        print(f"rdam {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except RDAMError as exc:
        print(f"rdam {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
