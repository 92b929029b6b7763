"""The ``rdam`` command line: parse, build objects, call library functions.

Every command is a thin wrapper over a Python function of the package; heavy imports happen
inside the command so ``rdam --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import rdam
from rdam.data.sampling import SEGMENT_MODES
from rdam.data.spec import FACE_INPUTS, FIT_MODES, STREAMS
from rdam.errors import RDAMError

if TYPE_CHECKING:
    from rdam.inference import Analysis, Prediction, Predictor

# Exit codes of every command (README "Exit codes"):
EXIT_OK = 0  # done; every input succeeded
EXIT_INPUTS_FAILED = 1  # done, but some or all inputs failed (each one reported; see the summary)
EXIT_USAGE = 2  # nothing done: bad command line, configuration, model or checkpoint

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}

KEYFRAMES_HELP = (
    "approximate sampling: the nearest keyframe to each sampled time (decodes keyframes only; "
    "several times faster); overrides the model's clip spec"
)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")  # rdam.runtime.PRECISIONS (checked by a test)
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


# ------------------------------------------------------------------------------------------
# training and evaluation


@command("train")
def _train(args: argparse.Namespace) -> int:
    from rdam.config import load_config
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
    from rdam.evaluation.evaluate import evaluate, parse_class_map

    report = evaluate(
        args.checkpoint,
        args.dataset,
        split=args.split,
        class_map=parse_class_map(args.class_map),
        precision=args.precision,
        threads=args.threads,
        views=args.views,
        flip=args.flip,
        face_input=args.faces,
        overrides={"num_frames": args.num_frames, "keyframes": args.keyframes or None},
        batch_size=args.batch_size,
        num_workers=args.workers,
        out_dir=args.out,
        labels=args.labels,
        majority_rule=args.majority_rule,
    )
    per_class = {k: round(v["accuracy"], 4) for k, v in report["per_class"].items()}
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
    summary.update(test_views=report["test_views"], test_flip=report["test_flip"])
    summary["clip_spec"] = report["clip_spec"]
    summary["timing"] = report["timing"]
    print(json.dumps(summary, indent=2))
    return 0


@command("report")
def _report(args: argparse.Namespace) -> int:
    from rdam.evaluation.report import build_report

    sys.stdout.write(build_report(args.run_dirs, metric=args.metric, out=args.out))
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


# ------------------------------------------------------------------------------------------
# data: preprocessing cache and data-set validation


@command("preprocess")
def _preprocess(args: argparse.Namespace) -> int:
    from rdam.data.cache import PreprocessSettings
    from rdam.data.manifest import load_manifest
    from rdam.data.preprocess import parse_shard, preprocess, yunet_factory
    from rdam.data.spec import ClipSpec

    if args.checkpoint is not None:
        from rdam.checkpoint import load_bundle

        base = load_bundle(args.checkpoint).spec
    else:
        base = ClipSpec(num_frames=16, frame_size=112)
    stream = "both" if args.faces else args.stream
    changes = {
        "num_frames": args.num_frames,
        "frame_size": args.frame_size,
        "stream": stream,
        "face_margin": args.margin,
        "max_side": None if args.max_side == 0 else args.max_side,
        "fit": args.fit,
        "color": "gray" if args.gray else None,
        "keyframes": True if args.keyframes else None,
        "face_score": args.face_score,
    }
    spec = base.replace(
        **{
            k: v
            for k, v in changes.items()
            if v is not None or (k == "max_side" and args.max_side == 0)
        }
    )
    factory = None
    if spec.uses_faces:
        from rdam.data.faces import resolve_face_model

        model = resolve_face_model(args.face_model)  # fail now, not per file
        factory = yunet_factory(model, spec.face_score)
    settings = PreprocessSettings(
        spec=spec,
        mode=args.sampler,
        num_views=args.num_views,
        seed=args.seed,
        face_input=args.face_input,
    )
    report = preprocess(
        load_manifest(args.dataset),
        settings,
        args.cache,
        workers=args.workers,
        shard=parse_shard(args.shard),
        progress=not args.no_progress,
        chunk_size=args.chunk_size,
        face_detector_factory=factory,
    )
    print(report.format())
    return 0 if report.ok else 1


@command("validate")
def _validate(args: argparse.Namespace) -> int:
    from rdam.data.manifest import load_manifest
    from rdam.data.validate import validate_manifest

    report = validate_manifest(
        load_manifest(args.dataset),
        probe=not args.no_probe,
        hash_content=not args.no_hash,
        cache_root=args.cache,
        require_labels=not args.allow_unlabelled,
        progress=not args.no_progress,
    )
    print(report.format())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else 1


def _add_data_parsers(sub: argparse._SubParsersAction) -> None:
    dataset_help = "a .csv/.json manifest or kind:root, e.g. video_folder:/data/ekman6"
    p = sub.add_parser(
        "preprocess", help="decode, sample and crop once into a resumable, memory-mapped cache"
    )
    p.add_argument("dataset", help=dataset_help)
    p.add_argument("--cache", required=True, type=Path, help="cache folder")
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="make the clips under this model's clip spec (the flags below override it)",
    )
    p.add_argument("--num-frames", type=int, help="frames K stored per clip (default 16)")
    p.add_argument("--frame-size", type=int, help="side of frames and face crops (default 112)")
    p.add_argument("--stream", choices=STREAMS, help="what to store")
    p.add_argument("--faces", action="store_true", help="store frames and face crops (YuNet)")
    p.add_argument("--margin", type=float, help="face box margin (default 0.2)")
    p.add_argument("--sampler", choices=SEGMENT_MODES, default="center")
    p.add_argument("--num-views", type=int, default=1)
    p.add_argument("--max-side", type=int, help="decode size bound (default 640; 0 = none)")
    p.add_argument("--fit", choices=FIT_MODES, help="default squash")
    p.add_argument("--gray", action="store_true", help="grey frames and crops (BT.601 luma)")
    p.add_argument("--face-score", type=float, help="minimum face score (default 0.6)")
    p.add_argument("--face-input", choices=FACE_INPUT_CHOICES, default="auto", help=FACES_HELP)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keyframes", action="store_true", help=KEYFRAMES_HELP)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--shard", default="0/1", help="i/N: process the i-th of N parts")
    p.add_argument("--face-model", type=Path, help="YuNet ONNX (default: the packaged one)")
    p.add_argument("--chunk-size", type=int, default=1024)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser(
        "validate", help="list missing, unreadable, duplicate and unlabelled entries of a data set"
    )
    p.add_argument("dataset", help=dataset_help)
    p.add_argument("--no-probe", action="store_true", help="do not open every file")
    p.add_argument(
        "--no-hash", action="store_true", help="do not hash contents (duplicates by path)"
    )
    p.add_argument("--cache", type=Path, help="reuse the content hashes of this cache")
    p.add_argument("--allow-unlabelled", action="store_true")
    p.add_argument("--json", type=Path, help="also write the report as JSON")
    p.add_argument("--no-progress", action="store_true")


def _add_experiment_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the paper's tables (Markdown) from run directories")
    p.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run dirs or folders of them"
    )
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    p.add_argument(
        "--metric", choices=("accuracy", "macro_f1", "mean_class_accuracy"), default="accuracy"
    )

    p = sub.add_parser(
        "demo", help="train average vs dual attention on synthetic clips (no download, CPU)"
    )
    p.add_argument("--out", type=Path, default=Path("rdam-demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: the idle cores)")


# ------------------------------------------------------------------------------------------
# prediction, explanation, export and serving


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

    results = analyze_people_many(predictor, clips)
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
    return _exit_code(
        "rdam predict",
        len(results),
        failures_of(r["error_type"] for r in results if isinstance(r, dict)),
    )


def _predict_stream(args: argparse.Namespace) -> int:
    from rdam.errors import VideoError
    from rdam.stream import predict_stream

    predictor = _load_predictor(args)
    out = sys.stdout if args.output is None else open(args.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for window in predict_stream(
            predictor,
            args.stream,
            window=args.num_frames,
            stride=args.stride,
            sample_fps=args.sample_fps or None,
            max_windows=args.max_windows,
        ):
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
    p.add_argument("--keyframes", action="store_true", help=KEYFRAMES_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdam",
        description="Region Dual Attention Model for video emotion recognition.",
        epilog="exit codes: 0 every input succeeded; 1 some or all inputs failed (each reported "
        "on stderr, the last line counts them by error kind); 2 nothing done (bad command "
        "line, configuration, model or checkpoint)",
    )
    parser.add_argument("--version", action="version", version=f"rdam {rdam.__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, and other libraries' warnings and tips (hidden by default)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("--config", "-c", type=Path, help="YAML experiment config (see configs/)")
    p.add_argument(
        "--run-dir", type=Path, help="run directory (default: trainer.output_dir/run_name)"
    )
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints/last.ckpt")
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
        "--checkpoint", type=Path, help=".safetensors or .ckpt (default: the shipped model)"
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
    p.add_argument("--out", type=Path, help="write eval_metrics.json and confusion matrix CSV/PNG")
    p.add_argument("--views", type=int, default=1, help="multi-view test: V clips per video")
    p.add_argument("--flip", action="store_true", help="also score each view mirrored")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--faces", choices=FACE_INPUT_CHOICES, default="auto", help=FACES_HELP)
    p.add_argument("--num-frames", type=int, help="override the model's frames K per clip")
    p.add_argument("--keyframes", action="store_true", help=KEYFRAMES_HELP)
    p.add_argument("--batch-size", type=int, default=64, help="clips per model call")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
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
    except RDAMError as exc:
        print(f"rdam {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
