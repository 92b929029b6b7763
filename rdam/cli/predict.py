"""``rdam predict`` (files, people, streams), ``explain``, ``export`` and ``serve``."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rdam.inference import Analysis, Prediction, Predictor

from rdam.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    SEQUENCE_HELP,
    _add_model_arguments,
    _add_tracking_arguments,
    _exit_code,
    _load_predictor,
    _report_failure,
    _tracker_config,
    _write_text,
    command,
)
from rdam.cli.predict_options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TOP_RELATIONS,
    EXPLAIN_BATCH_SIZE,
    STREAM_SAMPLE_FPS,
    annotates_one_video,
    batch_size,
    people_refusal,
    refused_combination,
    track_options,
)


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from rdam.data.preprocess import parse_shard
    from rdam.inference import format_predictions
    from rdam.inference.batch import failures_of, predict_all, predict_jsonl, select_inputs

    refused = refused_combination(args)
    if refused is not None:
        print(f"rdam predict: error: {refused}", file=sys.stderr)
        return EXIT_USAGE
    if args.stream is not None:
        return _predict_stream(args)
    if not args.paths:
        print("rdam predict: error: give at least one PATH (or --stream SOURCE)", file=sys.stderr)
        return EXIT_USAGE
    args.format = args.format or "json"
    shard = parse_shard(args.shard) if args.shard is not None else None
    progress = not args.no_progress
    predictor = _load_predictor(args, relations=args.explain is not None)

    def report(p: Prediction) -> None:
        if not p.ok:
            _report_failure(p.path, p.error_type, p.error)

    if args.format == "jsonl":
        batch = predict_jsonl(
            predictor,
            args.paths,
            args.output,
            batch_size=batch_size(args),
            sequences=args.sequence,
            shard=shard or (0, 1),
            progress=progress,
            on_result=report,
        )
        if batch.skipped:
            print(
                f"rdam predict: {batch.skipped} of {batch.total} inputs already answered in "
                f"{batch.output}; {batch.predicted} predicted now",
                file=sys.stderr,
            )
        return _exit_code("rdam predict", batch.total, batch.failures)
    clips = select_inputs(args.paths, sequences=args.sequence, shard=shard)
    if args.people:
        return _predict_people(args, predictor, clips)
    if args.explain is not None:
        from rdam.explain import explain_analyses

        predictions = []

        def collect() -> Iterator[Analysis]:
            for analysis in predictor.analyze_many(
                clips, batch_size(args), keep_arrays=True, relations=True
            ):
                predictions.append(analysis.prediction)
                report(analysis.prediction)
                yield analysis

        explain_analyses(collect(), args.explain, args.top_relations)
    else:
        predictions = predict_all(predictor, clips, batch_size(args), progress, on_result=report)
    _write_text(format_predictions(predictions, args.format), args.output)
    return _exit_code(
        "rdam predict", len(predictions), failures_of(p.error_type for p in predictions)
    )


def _predict_people(args: argparse.Namespace, predictor: Predictor, clips: list[str]) -> int:
    from rdam.inference.batch import failures_of
    from rdam.inference.people import analyze_people_many, timeline_csv

    explain = args.explain is not None
    refused = people_refusal(predictor)
    if refused is not None:
        print(f"rdam predict: error: {refused}", file=sys.stderr)
        return EXIT_USAGE
    results = analyze_people_many(
        predictor, clips, _tracker_config(args), keep_arrays=explain, relations=explain
    )
    for r in results:
        if isinstance(r, dict):
            _report_failure(r["path"], r["error_type"], r["error"])
    videos = [r for r in results if not isinstance(r, dict)]
    rows = [r if isinstance(r, dict) else r.to_dict() for r in results]
    _write_text(json.dumps(rows, indent=2) + "\n", args.output)
    if args.timeline is not None:
        _write_text(timeline_csv(videos, predictor.class_names, args.smooth), args.timeline)
    if args.annotate is not None:
        from rdam.explain.annotate import annotate_video

        for index, result in enumerate(results, start=1):
            if not isinstance(result, dict):
                out = (
                    args.annotate
                    if annotates_one_video(args)  # (refused with several inputs)
                    else args.annotate / annotated_name(index, result.path)
                )
                annotate_video(result, predictor.class_names, out)
    if explain:
        from rdam.explain import explain_people

        explain_people(results, predictor.class_names, args.explain, args.top_relations)
    return _exit_code(
        "rdam predict",
        len(results),
        failures_of(r["error_type"] for r in results if isinstance(r, dict)),
    )


def annotated_name(index: int, path: str) -> str:
    """``NNN_<name>.mp4``: the annotated video of the ``index``-th input (from 1) in an
    ``--annotate`` folder; ``NNN_<name>`` is the input's report folder name of ``--explain``
    (:func:`rdam.explain.report.report_dirname`), so ``a/x.mp4``, ``b/x.mp4`` and ``x.avi``
    never share a file."""
    from rdam.explain.report import report_dirname

    return str(Path(report_dirname(index, path)).with_suffix(".mp4"))


def _predict_stream(args: argparse.Namespace) -> int:
    from rdam.errors import VideoError
    from rdam.stream import DEFAULT_SAMPLE_FPS, predict_stream, predict_stream_people

    predictor = _load_predictor(args)
    sample_fps = DEFAULT_SAMPLE_FPS if args.sample_fps is None else args.sample_fps
    settings = {
        "window": args.num_frames,
        "stride": args.stride,
        "sample_fps": sample_fps or None,  # 0: every frame
        "max_windows": args.max_windows,
    }
    if args.people:
        windows = predict_stream_people(
            predictor, args.stream, tracker=_tracker_config(args), **settings
        )
    else:
        windows = predict_stream(predictor, args.stream, **settings)
    out = sys.stdout if args.output is None else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for window in windows:
            out.write(json.dumps(window.to_dict()) + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    except VideoError as exc:  # the source could not be opened, or broke off
        _report_failure(exc.path, type(exc).__name__, exc.reason)
        return _exit_code("rdam predict", 1, Counter([type(exc).__name__]))
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK


@command("explain")
def _explain(args: argparse.Namespace) -> int:
    from rdam.explain import explain_videos
    from rdam.inference.batch import failures_of

    for flag, given in track_options(args):
        if given and not args.people:
            print(f"rdam explain: error: {flag} needs --people", file=sys.stderr)
            return EXIT_USAGE
    if args.people and args.batch_size is not None:
        print("rdam explain: error: --batch-size does not apply to --people", file=sys.stderr)
        return EXIT_USAGE
    predictor = _load_predictor(args, relations=True)
    refused = people_refusal(predictor) if args.people else None
    if refused is not None:
        print(f"rdam explain: error: {refused}", file=sys.stderr)
        return EXIT_USAGE
    if args.people:
        from rdam.explain import explain_people
        from rdam.inference.batch import select_inputs
        from rdam.inference.people import analyze_people_many

        results = analyze_people_many(
            predictor,
            select_inputs(args.paths, sequences=args.sequence),
            _tracker_config(args),
            keep_arrays=True,
            relations=True,
        )
        entries = explain_people(results, predictor.class_names, args.out, args.top_relations)
    else:
        entries = explain_videos(
            predictor,
            args.paths,
            args.out,
            batch_size(args, EXPLAIN_BATCH_SIZE),
            args.top_relations,
            args.sequence,
        )
    overrides, model_values = predictor.spec_overrides  # as every predict answer carries them
    print(
        json.dumps(
            {
                "index": str(Path(args.out) / "index.html"),
                "overrides": overrides,
                "model_values": model_values,
                "reports": [
                    {
                        "path": e.path,
                        "report": str(e.report) if e.report else None,
                        "label": e.label,
                        "error": e.error,
                        "error_type": e.error_type,
                    }
                    for e in entries
                ],
            },
            indent=2,
        )
    )
    for e in entries:
        if e.error is not None:
            print(f"rdam explain: {e.path}: {e.error_type}: {e.error}", file=sys.stderr)
    return _exit_code("rdam explain", len(entries), failures_of(e.error_type for e in entries))


@command("export")
def _export(args: argparse.Namespace) -> int:
    from rdam.checkpoint import load_bundle
    from rdam.export import compare_with_torch, export_onnx

    bundle = load_bundle(args.checkpoint)  # None: the shipped model, sha256 checked
    path = export_onnx(
        bundle, args.out, relations=args.relations, exporter=args.exporter, opset=args.opset
    )
    report: dict[str, object] = {"out": str(path), "exporter": args.exporter}
    if args.verify:
        size = bundle.spec.frame_size
        diffs = compare_with_torch(bundle.model, path, [(1, 2), (2, 5)], size)
        report["max_abs_diff"] = diffs
        report["tolerance"] = VERIFY_TOLERANCE
        off = {k: v for k, v in diffs.items() if not v <= VERIFY_TOLERANCE}
        if off:  # a graph that answers otherwise than the model is not left to be used
            Path(path).unlink()
            print(
                f"rdam export: error: the exported graph does not compute what the model "
                f"computes (largest differences {off}, tolerance {VERIFY_TOLERANCE:g}); "
                f"{path} was removed. Try the other --exporter or another --opset",
                file=sys.stderr,
            )
            return EXIT_USAGE
    print(json.dumps(report, indent=2))
    return 0


VERIFY_TOLERANCE = 1e-4
"""``rdam export --verify``: the largest absolute difference any output of the ONNX graph may
have from the torch model's (fp32; measured differences are ~1e-7)."""


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rdam.serve import create_app

    predictor = _load_predictor(args)
    app = create_app(predictor, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _add_inference_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict emotions of videos, folders, image sequences or a live stream"
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="video, image or folder; a folder gives each video and each image in it (and in "
        "its sub-folders) as a clip of its own, one result each (see --sequence)",
    )
    _add_model_arguments(p)
    p.add_argument("--sequence", action="store_true", help=SEQUENCE_HELP)
    p.add_argument(
        "--people",
        action="store_true",
        help="face-stream models: every person (face track) of each video, each with its own "
        "answer, per-frame probabilities and weights; the video's answer is the answerable "
        "person on screen longest; no answer, with the reason, without evidence enough",
    )
    p.add_argument(
        "--timeline",
        type=Path,
        metavar="CSV",
        help="with --people: the timeline, one row per "
        "person and sampled time (boxes, weights, per-frame probabilities)",
    )
    p.add_argument(
        "--annotate",
        type=Path,
        metavar="OUT",
        help="with --people: write the video with each person's box, id, current emotion and "
        "a timeline strip (OUT.mp4 for one input; any other OUT is a folder of "
        "NNN_<name>.mp4, NNN the input's place, as --explain names its reports)",
    )
    _add_tracking_arguments(p)
    p.add_argument(
        "--smooth",
        type=int,
        default=1,
        metavar="N",
        help="with --timeline: centred moving average over N sampled frames (odd; 1 = none)",
    )
    p.add_argument(
        "--format",
        choices=("json", "jsonl", "csv"),
        help="json (default): one list at the end; csv: one row per clip; jsonl: one line per "
        "clip, written as it is answered; with -o FILE a rerun skips the clips FILE already "
        "answers (same path and content) and appends. --people writes json; --stream, jsonl",
    )
    p.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    p.add_argument(
        "--shard",
        metavar="i/N",
        help="only the i-th of N parts of the clips (sorted paths, every N-th from i, as "
        "`rdam preprocess --shard`); N runs cover them exactly once; merge the JSONL outputs "
        "with cat",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (none when not a terminal)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"clips per model call (default {DEFAULT_BATCH_SIZE}; not with --people, which "
        "runs a video's people together, nor --stream, one window per call)",
    )
    p.add_argument("--explain", type=Path, metavar="DIR", help="also write HTML reports here")
    p.add_argument(
        "--top-relations",
        type=int,
        default=DEFAULT_TOP_RELATIONS,
        help="with --explain: relations drawn per report",
    )
    p.add_argument(
        "--stream",
        metavar="SOURCE",
        help="webcam index (0), URL (rtsp://...) or video file read as a stream: one JSON "
        "line per sliding window",
    )
    p.add_argument("--stride", type=int, help="stream: kept frames between windows (K // 2)")
    p.add_argument(
        "--sample-fps",
        type=float,
        help=f"stream: frames kept per second (default {STREAM_SAMPLE_FPS:g}; 0 = every frame)",
    )
    p.add_argument("--max-windows", type=int, help="stream: stop after this many windows")

    p = sub.add_parser("explain", help="HTML reports of attention maps, relations and α")
    p.add_argument("paths", nargs="+", metavar="PATH", help="video, image or folder (as predict)")
    p.add_argument("--out", required=True, type=Path, help="output folder (index.html)")
    _add_model_arguments(p)
    p.add_argument("--sequence", action="store_true", help=SEQUENCE_HELP)
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"clips per model call (default {EXPLAIN_BATCH_SIZE}; not with --people)",
    )
    p.add_argument("--top-relations", type=int, default=DEFAULT_TOP_RELATIONS)
    p.add_argument(
        "--people",
        action="store_true",
        help="face-stream models: a page per video with every person (face track): each "
        "person's answer, timeline, frame weights and own attention report",
    )
    _add_tracking_arguments(p)

    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch and frames)")
    p.add_argument(
        "--checkpoint", type=Path, help=".safetensors or .ckpt (default: the shipped model)"
    )
    p.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--relations", action="store_true", help="also output relation maps")
    p.add_argument(
        "--verify", action="store_true", help="compare with PyTorch and print the differences"
    )

    p = sub.add_parser("serve", help="web demo and HTTP API (upload a video, see the result)")
    _add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=200.0)
