"""Which options of ``rdam predict`` / ``explain`` go together: each combination that would
be ignored or written otherwise than asked is refused before anything is loaded (exit 2), with
what to use instead; and the defaults those checks and the commands share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rdam.inference import Predictor

STREAM_SAMPLE_FPS = 2.0  # rdam.stream.DEFAULT_SAMPLE_FPS, for the help (checked by a test)
DEFAULT_TOP_RELATIONS = 5  # rdam.explain.report.DEFAULT_TOP_RELATIONS (checked by a test)
DEFAULT_BATCH_SIZE = 8
"""Clips per model call of ``rdam predict`` on files (``--batch-size``)."""
EXPLAIN_BATCH_SIZE = 4
"""... of ``rdam explain``, which keeps each clip's frames and maps for its report."""


def batch_size(args: argparse.Namespace, default: int = DEFAULT_BATCH_SIZE) -> int:
    return default if args.batch_size is None else args.batch_size


def annotates_one_video(args: argparse.Namespace) -> bool:
    """``--annotate OUT`` names one video (OUT.mp4, for one input); any other OUT is a folder."""
    return args.annotate is not None and args.annotate.suffix.lower() == ".mp4"


def track_options(args: argparse.Namespace) -> tuple[tuple[str, bool], ...]:
    """The face-tracking options (``--people`` only) and whether each was given."""
    from rdam.data.tracks import TrackerConfig

    tracking = TrackerConfig()
    return (
        ("--track-search", args.track_search != tracking.search),
        ("--track-rate", args.track_rate != tracking.rate),
    )


def refused_combination(args: argparse.Namespace) -> str | None:
    """Why the options of ``rdam predict`` cannot all be honoured (one of them would be
    ignored, or its output written in another format than asked), with what to use instead;
    None when they go together. Checked before anything is loaded (exit 2, nothing done)."""
    tracking = track_options(args)
    if args.stream is not None:
        if args.paths:
            return (
                "give PATHs or --stream SOURCE, not both (a video file is read as a stream "
                "with --stream FILE)"
            )
        file_options = (
            ("--explain", args.explain is not None),
            ("--timeline", args.timeline is not None),
            ("--annotate", args.annotate is not None),
            ("--smooth", args.smooth != 1),
            ("--top-relations", args.top_relations != DEFAULT_TOP_RELATIONS),
            ("--sequence", args.sequence),
            ("--shard", args.shard is not None),
        )
        for flag, given in file_options:
            if given:
                return (
                    f"{flag} does not apply to --stream: it is written for files (rdam "
                    f"predict PATH {flag} ...); a stream gives one JSON line per window (with "
                    "--people: every person's boxes and answer in it)"
                )
        if args.keyframes:
            return (
                "--keyframes does not apply to --stream: a stream's frames are decoded in order, "
                "every one, so there is no keyframe to jump to (rdam predict FILE --keyframes "
                "reads a file that way)"
            )
        if args.format not in (None, "jsonl"):
            return (
                f"--stream writes one JSON line per window (jsonl), not --format "
                f"{args.format}: leave --format out, or read the video as a file (rdam predict "
                f"FILE --format {args.format})"
            )
        for flag, given in tracking:
            if given and args.people:
                return (
                    f"{flag} sets how a video file is searched for faces; a stream searches "
                    "every kept frame (set how many with --sample-fps)"
                )
    else:
        stream_options = (
            ("--stride", args.stride is not None),
            ("--sample-fps", args.sample_fps is not None),
            ("--max-windows", args.max_windows is not None),
        )
        for flag, given in stream_options:
            if given:
                return f"{flag} is a stream setting: it needs --stream SOURCE"
    if args.batch_size is not None and (args.people or args.stream is not None):
        return (
            "--batch-size does not apply to --people (a video's people go through the model "
            "together) nor to --stream (one window per call): leave it out"
        )
    if args.people and args.faces == "given":
        return (
            "--faces given takes each input as one face crop; --people searches every face in "
            "each frame: leave --faces out with --people, or --people out for face crops"
        )
    if annotates_one_video(args) and (
        len(args.paths) > 1 or any(Path(p).is_dir() for p in args.paths)
    ):
        return (
            f"--annotate {args.annotate} names one video, for one input: with several inputs "
            "(or a folder) give a folder, --annotate annotated/"
        )
    if not args.people:
        people_options = (
            ("--timeline", args.timeline is not None),
            ("--annotate", args.annotate is not None),
            ("--smooth", args.smooth != 1),
            *tracking,
        )
        for flag, given in people_options:
            if given:
                return f"{flag} needs --people (rdam predict --people PATH {flag} ...)"
    elif args.stream is None and args.format in ("jsonl", "csv"):
        return (
            f"--people writes one JSON list, an object per video (--format json, the default), "
            f"not --format {args.format}: leave --format out; --timeline CSV writes one row per "
            "person and sampled time"
        )
    if args.smooth != 1 and args.timeline is None:
        return "--smooth N smooths the timeline: it needs --timeline CSV"
    if args.smooth < 1 or args.smooth % 2 == 0:  # checked before the videos are analysed
        return f"--smooth N: the smoothing window must be an odd number >= 1, got {args.smooth}"
    if args.top_relations != DEFAULT_TOP_RELATIONS and args.explain is None:
        return "--top-relations N is drawn in the reports: it needs --explain DIR"
    if args.format == "jsonl" and args.explain is not None:
        return "--explain needs --format json or csv"
    return None


def people_refusal(predictor: Predictor) -> str | None:
    """Why ``--people`` cannot run with this model (checked once, before any input is read:
    a usage error, not a failure of every input), or None."""
    if predictor.spec.uses_faces:
        return None
    return (
        "--people needs a face-stream model (clip spec stream 'faces' or 'both'); this model "
        f"takes {predictor.spec.stream!r}: leave --people out, or give such a --checkpoint"
    )
