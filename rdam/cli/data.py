"""``rdam preprocess``, ``validate`` and ``framing``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rdam.data.sampling import SEGMENT_MODES
from rdam.data.spec import COLORS, FIT_MODES, STREAMS

if TYPE_CHECKING:
    pass

from rdam.cli.common import (
    FACE_INPUT_CHOICES,
    FACES_HELP,
    KEYFRAMES_HELP,
    command,
)

# ------------------------------------------------------------------------------------------
# data: preprocessing cache and data-set validation


@command("preprocess")
def _preprocess(args: argparse.Namespace) -> int:
    from rdam.data.cache import PreprocessSettings
    from rdam.data.layouts import load_manifest
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
        "color": "gray" if args.gray else args.color,
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
    from rdam.data.layouts import load_manifest
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


@command("framing")
def _framing(args: argparse.Namespace) -> int:
    from rdam.data.faces import FaceDetector
    from rdam.data.framing import draw, measure_framing
    from rdam.data.layouts import load_manifest
    from rdam.data.video import clip_kind, read_image
    from rdam.errors import DatasetError

    if args.limit is not None and args.limit < 1:
        raise DatasetError(f"--limit must be at least 1, got {args.limit}")
    manifest = load_manifest(args.dataset)
    if args.split is not None:
        manifest = manifest.split(args.split)
    records = list(manifest)
    if not records:
        raise DatasetError(f"{args.dataset}: no images to measure")
    others = [r.path for r in records if clip_kind(r.path) != "image"]
    if others:
        raise DatasetError(
            f"{args.dataset}: {len(others)} of {len(records)} clips are videos or image "
            f"sequences (first: {others[0]}); a framing is measured on face crops given as "
            "images (a model trained on videos was trained on the detector's own crops)"
        )
    records = draw(records, args.limit, args.seed)
    detector = FaceDetector(args.face_model, score_threshold=args.face_score)
    framing = measure_framing((read_image(r.path) for r in records), detector)
    result = {"data_set": str(args.dataset), "split": args.split, **framing.to_dict()}
    print(json.dumps(result, indent=2))
    equalized = (
        "; the crops are histogram-equalized: data.color gray_equalized equalizes faces on "
        "videos too"
        if framing.equalized
        else ""
    )
    print(
        f"YuNet found a face in {framing.found} of {framing.images} crops; to frame faces found "
        f"on videos as these crops are framed, train with data.face_margin: "
        f"{framing.face_margin}{equalized}",
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


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
    colour = p.add_mutually_exclusive_group()
    colour.add_argument("--gray", action="store_true", help="grey frames and crops (BT.601 luma)")
    colour.add_argument("--color", choices=COLORS, help="colour of frames and crops")
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

    p = sub.add_parser(
        "framing",
        help="the face_margin that frames detected faces as a data set's face crops are framed",
        description="Run the face detector on a data set's face crops (images, such as "
        "FER2013's faces; enlarged to 192 px) and report where its box lies in them: the "
        "clip spec's face_margin that makes `rdam predict` crop faces from videos as the "
        "model's training crops were cropped (docs/benchmarks.md, figure 17).",
    )
    p.add_argument(
        "dataset",
        help="a folder of class folders of face images (with or without split folders), a "
        ".csv/.json manifest, or kind:root, e.g. image_folder:/data/fer2013",
    )
    p.add_argument("--split", help="the split to measure (default: every image)")
    p.add_argument(
        "--limit", type=int, default=2000, help="images measured, drawn at random (default 2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="of the draw")
    p.add_argument("--face-score", type=float, default=0.6, help="minimum face score (default 0.6)")
    p.add_argument("--face-model", type=Path, help="YuNet ONNX (default: the packaged one)")
    p.add_argument("--json", type=Path, help="also write the result as JSON")
