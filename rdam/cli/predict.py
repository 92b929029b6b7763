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


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    from rdam.data.preprocess import parse_shard
    from rdam.inference import format_predictions
    from rdam.inference.batch import failures_of, predict_all, predict_jsonl, select_inputs

    if args.stream is not None:
        return _predict_stream(args)
    if not args.paths:
        print("rdam predict: error: give at least one PATH (or --stream SOURCE)", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "jsonl" and args.explain is not None:
        print("rdam predict: error: --explain needs --format json or csv", file=sys.stderr)
        return EXIT_USAGE
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
            batch_size=args.batch_size,
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
                clips, args.batch_size, keep_arrays=True, relations=True
            ):
                predictions.append(analysis.prediction)
                report(analysis.prediction)
                yield analysis

        explain_analyses(collect(), args.explain, args.top_relations)
    else:
        predictions = predict_all(predictor, clips, args.batch_size, progress, on_result=report)
    _write_text(format_predictions(predictions, args.format), args.output)
    return _exit_code(
        "rdam predict", len(predictions), failures_of(p.error_type for p in predictions)
    )


def _predict_people(args: argparse.Namespace, predictor: Predictor, clips: list[str]) -> int:
    from rdam.inference.batch import failures_of
    from rdam.inference.people import analyze_people_many, timeline_csv

    explain = args.explain is not None
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

        for video in videos:
            out = (
                args.annotate
                if len(results) == 1
                else args.annotate / f"{Path(video.path).stem}.mp4"
            )
            annotate_video(video, predictor.class_names, out)
    if explain:
        from rdam.explain import explain_people

        explain_people(results, predictor.class_names, args.explain, args.top_relations)
    return _exit_code(
        "rdam predict",
        len(results),
        failures_of(r["error_type"] for r in results if isinstance(r, dict)),
    )


def _predict_stream(args: argparse.Namespace) -> int:
    from rdam.errors import VideoError
    from rdam.stream import predict_stream, predict_stream_people

    predictor = _load_predictor(args)
    settings = {
        "window": args.num_frames,
        "stride": args.stride,
        "sample_fps": args.sample_fps or None,
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

    predictor = _load_predictor(args, relations=True)
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
            predictor, args.paths, args.out, args.batch_size, args.top_relations, args.sequence
        )
    print(
        json.dumps(
            {
                "index": str(Path(args.out) / "index.html"),
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
        report["max_abs_diff"] = compare_with_torch(bundle.model, path, [(1, 2), (2, 5)], size)
    print(json.dumps(report, indent=2))
    return 0


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
        "a timeline strip (OUT.mp4; a folder of <name>.mp4 for several inputs)",
    )
    _add_tracking_arguments(p)
    p.add_argument(
        "--smooth",
        type=int,
        default=1,
        metavar="N",
        help="timeline: centred moving average over N sampled frames (odd; 1 = none)",
    )
    p.add_argument(
        "--format",
        choices=("json", "jsonl", "csv"),
        default="json",
        help="json: one list at the end; csv: one row per clip; jsonl: one line per clip, "
        "written as it is answered; with -o FILE a rerun skips the clips FILE already answers "
        "(same path and content) and appends",
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
    p.add_argument("--batch-size", type=int, default=8, help="clips per model call")
    p.add_argument("--explain", type=Path, metavar="DIR", help="also write HTML reports here")
    p.add_argument("--top-relations", type=int, default=5, help="relations drawn per report")
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
        default=2.0,
        help="stream: frames kept per second (0 = every frame)",
    )
    p.add_argument("--max-windows", type=int, help="stream: stop after this many windows")

    p = sub.add_parser("explain", help="HTML reports of attention maps, relations and α")
    p.add_argument("paths", nargs="+", metavar="PATH", help="video, image or folder (as predict)")
    p.add_argument("--out", required=True, type=Path, help="output folder (index.html)")
    _add_model_arguments(p)
    p.add_argument("--sequence", action="store_true", help=SEQUENCE_HELP)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--top-relations", type=int, default=5)
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
