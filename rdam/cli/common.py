"""What every ``rdam`` command shares: exit codes, the command registry, help texts, model
arguments and output helpers."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rdam.data.spec import FACE_INPUTS

if TYPE_CHECKING:
    from rdam.data.person_clips import EvidenceRules
    from rdam.data.tracks import TrackerConfig
    from rdam.inference import Predictor

# Exit codes of every command (README "Exit codes"):
EXIT_OK = 0  # done; every input succeeded
EXIT_INPUTS_FAILED = 1  # done, but some or all inputs failed (each one reported; see the summary)
EXIT_USAGE = 2  # nothing done: bad command line, configuration, model or checkpoint
# Every RDAMError that stops a command is EXIT_USAGE (rdam.cli.main), among them a model output
# that is not finite (NonFiniteOutputError: NaN/inf logits, never answered nor scored; the
# answers a jsonl batch wrote before it stay, and a rerun with --precision fp32 resumes).

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

KEYFRAMES_HELP = (
    "approximate sampling: the nearest keyframe to each sampled time (decodes keyframes only; "
    "several times faster); overrides the model's clip spec"
)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")  # rdam.runtime.PRECISIONS (checked by a test)
CROP_CHOICES = (1, 5)  # rdam.data.transforms.TEST_CROPS (checked by a test; needs no torch)
REPORT_GROUPINGS = ("method", "run_name")  # rdam.evaluation.report.GROUPINGS (checked by a test)
PRECISION_HELP = (
    "torch runtime: autocast precision (auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX, "
    "fp32 elsewhere; fp32 gives exact float32 logits)"
)
THREADS_HELP = (
    "CPU threads for the model and the face detector (default: all cores; 1 is faster when "
    "other jobs keep the cores busy, see docs/benchmarks.md)"
)
SEQUENCE_HELP = (
    "take each folder of images as ONE image-sequence clip (its images are the frames, in name "
    "order; CK+-style) instead of one clip per image"
)
FACE_INPUT_CHOICES = FACE_INPUTS
FACES_HELP = (
    "face-stream models: how face crops are made. detect: the face detector on every frame; "
    "given: each image (or frame) is already a face crop; auto (default): given for a single "
    "image at most twice the model's frame size (such as a FER2013 face), detect otherwise"
)


def command(
    name: str,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


def _load_predictor(args: argparse.Namespace, relations: bool = False) -> Predictor:
    from rdam.inference import load
    from rdam.threads import set_cpu_threads

    if args.threads is not None:
        set_cpu_threads(args.threads)
    return load(
        args.checkpoint,
        device=args.device,
        runtime=args.runtime,
        precision=args.precision,
        num_frames=args.num_frames,
        face_model=args.face_model,
        face_input=args.faces,
        onnx_relations=relations,
        mirror=args.mirror,
        keyframes=args.keyframes or None,
        evidence=_evidence_rules(args),
        crops=args.crops,
    )


def _evidence_rules(args: argparse.Namespace) -> EvidenceRules | None:
    from rdam.data.person_clips import EvidenceRules

    if args.no_evidence:
        return None
    return EvidenceRules(
        min_score=args.min_face_score, min_face_px=args.min_face_px, min_frames=args.min_face_frames
    )


def _tracker_config(args: argparse.Namespace) -> TrackerConfig:
    from rdam.data.tracks import TrackerConfig

    return TrackerConfig(search=args.track_search, rate=args.track_rate)


def _add_tracking_arguments(p: argparse.ArgumentParser) -> None:
    from rdam.data.tracks import SEARCH_MODES, TrackerConfig

    default = TrackerConfig()
    p.add_argument(
        "--track-search",
        choices=SEARCH_MODES,
        default=default.search,
        help="with --people: adaptive (default) searches faces at the K clip frames and, where "
        "two of them differ, between them down to the tracking rate; dense searches every "
        "tracking frame of the video (slower; see docs/people.md)",
    )
    p.add_argument(
        "--track-rate",
        type=float,
        default=default.rate,
        metavar="PER_S",
        help=f"with --people: tracking frames per second (default {default.rate:g})",
    )


def _write_text(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")


def _report_failure(prediction_path: str, error_type: str | None, error: str | None) -> None:
    """One failed input on stderr (above a progress bar, if one is drawn)."""
    from tqdm import tqdm

    tqdm.write(f"rdam predict: {prediction_path}: {error_type}: {error}", file=sys.stderr)


def _exit_code(command: str, total: int, failures: Counter[str]) -> int:
    """EXIT_OK when every input succeeded; else the summary as the last stderr line and
    EXIT_INPUTS_FAILED."""
    from rdam.inference.batch import failure_summary

    summary = failure_summary(command, total, failures)
    if summary is None:
        return EXIT_OK
    print(summary, file=sys.stderr)
    return EXIT_INPUTS_FAILED


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        type=Path,
        help=".safetensors, .ckpt or (--runtime onnx) .onnx model (default: the shipped model)",
    )
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    p.add_argument("--num-frames", type=int, help="override the model's frames K per clip")
    p.add_argument("--face-model", type=Path, help="YuNet ONNX file for face-stream models")
    p.add_argument("--faces", choices=FACE_INPUT_CHOICES, default="auto", help=FACES_HELP)
    p.add_argument(
        "--mirror",
        action="store_true",
        help="also run each clip mirrored and average the two (flip test-time augmentation; "
        "twice the model time)",
    )
    p.add_argument(
        "--crops",
        type=int,
        choices=CROP_CHOICES,
        default=1,
        help="5: average each clip's centre and four corner crops (with --mirror the ten-crop "
        "test: 70.0 %% against 67.9 %% on FER2013 val with the shipped model, "
        "docs/model-card.md); heatmaps come from the whole frames; 6x the model time (12x "
        "with --mirror)",
    )
    p.add_argument("--keyframes", action="store_true", help=KEYFRAMES_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    from rdam.data.person_clips import EvidenceRules

    rules = EvidenceRules()
    evidence = p.add_argument_group(
        "evidence (face-stream models)",
        "no answer, but the reason, unless enough sampled frames show a clear face",
    )
    evidence.add_argument(
        "--min-face-score",
        type=float,
        default=rules.min_score,
        metavar="S",
        help=f"a clear face scores at least S with the detector (default {rules.min_score:g})",
    )
    evidence.add_argument(
        "--min-face-px",
        type=float,
        default=rules.min_face_px,
        metavar="PX",
        help="... and its box's shorter side is at least PX source pixels (default "
        f"{rules.min_face_px:g})",
    )
    evidence.add_argument(
        "--min-face-frames",
        type=int,
        default=rules.min_frames,
        metavar="N",
        help=f"at least N of the K sampled frames show a clear face (default {rules.min_frames})",
    )
    evidence.add_argument(
        "--no-evidence",
        action="store_true",
        help="answer whenever a face is found in any sampled frame (the rules above off)",
    )
