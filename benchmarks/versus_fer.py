"""Figure 7: rdam against the ``fer`` package, on the same machine in one run.

Speed: seconds per Ekman-6 sample video. fer runs in its own virtualenv
(:mod:`benchmarks.fer_package_video`: Haar cascade faces + 64x64 mini-Xception TFLite model, every
frame or K frames). rdam runs :meth:`rdam.inference.Predictor.predict_many` (one video per call) of :func:`rdam.load`
(the model's clip spec and runner, as ``rdam predict``): K=16 segment-centre frames decoded
sparsely, one YuNet face per frame cropped to 48x48, the face-stream RDAM (resnet10t, dual head,
frame attention), softmax over the clip. The model is the shipped default model, its clip
spec read from its file. Both tools are timed warm (model loaded, the video
already read once); the cold start of each process is reported apart.

Accuracy: fer's shipped classifier on the FER2013 validation faces
(:mod:`benchmarks.fer_package_accuracy`), scored here with
:func:`rdam.evaluation.metrics.classification_report`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO_ROOT,
    WORK_DIR,
    ekman6_videos,
    fer2013_root,
    figure_result,
    machine_info,
)

FER_PYTHON = Path(os.environ.get("RDAM_FER_PYTHON", "/work/fervenv/bin/python"))


def face_spec() -> Any:
    """The shipped model's clip spec (16 grey 48-px face crops per video), read from its file."""
    from rdam.checkpoint import load_bundle

    return load_bundle(face_model_file()[0]).spec


def face_model_file() -> tuple[Path, str]:
    """The shipped default model (its absence is an error: rdam ships it)."""
    from rdam.inference import default_model_path

    return default_model_path(), "shipped default model"


def _run_fer(script: str, args: list[str], out: Path, timeout: float) -> tuple[dict, float]:
    if not FER_PYTHON.is_file():
        raise FileNotFoundError(
            f"no fer virtualenv at {FER_PYTHON}; create it (python -m venv; pip install fer) "
            "or set RDAM_FER_PYTHON"
        )
    start = time.perf_counter()
    proc = subprocess.run(
        [str(FER_PYTHON), str(REPO_ROOT / "benchmarks" / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out.read_text()), wall


def rdam_video_times(
    model: Path,
    videos: list[Path],
    repeats: int,
    settings: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Warm seconds per video of ``Predictor.predict_many([video])`` (``predict_video`` without
    raising on a faceless video) for each named setting
    (:func:`rdam.load` keyword arguments plus ``threads``, set as ``rdam predict --threads``
    does with :func:`rdam.threads.set_cpu_threads`)."""
    import cv2
    import torch

    from rdam.inference import load
    from rdam.threads import set_cpu_threads

    out: dict[str, Any] = {}
    for name, options in settings.items():
        options = dict(options)
        threads = options.pop("threads", None)
        before = torch.get_num_threads(), cv2.getNumThreads()
        if threads:
            set_cpu_threads(threads)
        try:
            start = time.perf_counter()
            predictor = load(model, **options)
            load_s = time.perf_counter() - start
            for v in videos:  # warm-up: file cache, lazy init, allocator
                predictor.predict_many([v], batch_size=1)
            rows: dict[str, Any] = {}
            for _ in range(repeats):
                for v in videos:
                    start = time.perf_counter()
                    p = predictor.predict_many([v], batch_size=1)[0]  # a faceless video is a row
                    wall = time.perf_counter() - start
                    row = rows.setdefault(
                        v.name,
                        {
                            "seconds": [],
                            "label": p.label,
                            "error": p.error_type,
                            "frames_with_face": None
                            if p.face_found is None
                            else int(sum(p.face_found)),
                            "timing": p.timing,
                        },
                    )
                    row["seconds"].append(wall)
            for row in rows.values():
                row["median_s"] = statistics.median(row["seconds"])
            out[name] = {
                "load_s": load_s,
                "options": options,
                "threads": threads,
                "precision": predictor.runner.precision,
                "clip_spec": predictor.spec.to_dict(),
                "videos": rows,
            }
        finally:
            torch.set_num_threads(before[0])
            cv2.setNumThreads(before[1])
    return out


def rdam_settings(frames: int) -> dict[str, dict[str, Any]]:
    """The two rdam settings timed: ``default`` (what ``rdam predict`` does) and bf16 at one
    thread; ``frames`` other than the model's K is a (reported) clip spec override."""
    k = {} if frames == face_spec().num_frames else {"num_frames": frames}
    return {"default": k, "bf16_1thread": {**k, "precision": "bf16", "threads": 1}}


def fer_accuracy(timeout: float = 1800) -> dict[str, Any]:
    """fer's shipped classifier(s) on FER2013 val: accuracy, per-class accuracy, macro-F1."""
    import numpy as np

    from rdam.evaluation.metrics import classification_report

    out = WORK_DIR / "fer_val_predictions.json"
    data, wall = _run_fer(
        "fer_package_accuracy.py", ["--root", str(fer2013_root() / "val")], out, timeout
    )
    labels = np.asarray(data["labels"])
    models = {}
    for name, m in data["models"].items():
        if "error" in m:
            models[name] = {"error": m["error"]}
            continue
        report = classification_report(labels, np.asarray(m["predictions"]), data["classes"])
        models[name] = {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "mean_class_accuracy": report["mean_class_accuracy"],
            "per_class_accuracy": {k: v["accuracy"] for k, v in report["per_class"].items()},
            "confusion": report["confusion"],
            "seconds": m["seconds"],
            "images_per_s": len(labels) / m["seconds"],
        }
    return {
        "fer_version": data["fer_version"],
        "images": len(labels),
        "classes": data["classes"],
        "models": models,
        "process_wall_s": wall,
    }


def versus_fer(
    repeats: int = 1,
    frames: int = 16,
    fer_every_frame: bool = True,
    accuracy: bool = True,
    videos: list[Path] | None = None,
) -> dict[str, Any]:
    """Seconds per video of fer and rdam, side by side; fer's accuracy on FER2013 val.

    ``value`` = the smallest per-video speed-up of rdam (default settings) over fer analysing
    the same number of frames (goal >= 5).
    """
    videos = videos or ekman6_videos()
    model, model_source = face_model_file()
    variants = ["k_frames"] + (["every_frame"] if fer_every_frame else [])
    fer: dict[str, Any] = {"videos": {v.name: {} for v in videos}}
    fer_wall = {}
    for variant in variants:
        # K frames: a cache-warming pass plus ``repeats``; every frame (minutes): one pass
        passes = repeats + 1 if variant == "k_frames" else 1
        data, fer_wall[variant] = _run_fer(
            "fer_package_video.py",
            [
                *map(str, videos),
                "--frames",
                str(frames),
                "--repeats",
                str(passes),
                "--variants",
                variant,
            ],
            WORK_DIR / f"fer_video_{variant}.json",
            timeout=7200,
        )
        for name, runs in data["videos"].items():
            fer["videos"][name].update(runs)
        fer.update(init_s=data["init_s"], fer_version=data["fer_version"])
    rdam = rdam_video_times(model, videos, repeats, rdam_settings(frames))
    rows = {}
    for v in videos:
        fer_v = fer["videos"][v.name]
        row: dict[str, Any] = {}
        for variant, runs in fer_v.items():
            # a first pass warms the file cache, like rdam's warm-up pass
            timed = runs[1:] if len(runs) > 1 else runs
            row[f"fer_{variant}_s"] = statistics.median(r["seconds"] for r in timed)
            row[f"fer_{variant}_frames_with_face"] = runs[0]["frames_with_face"]
            row[f"fer_{variant}_frames_analysed"] = runs[0]["frames_analysed"]
            row[f"fer_{variant}_label"] = runs[0]["top_emotion"]
        for name, r in rdam.items():
            rv = r["videos"][v.name]
            row[f"rdam_{name}_s"] = rv["median_s"]
            row[f"rdam_{name}_label"] = rv["label"] or rv["error"]
            row[f"rdam_{name}_frames_with_face"] = rv["frames_with_face"]
            row[f"rdam_{name}_stages_s"] = {k: round(t, 4) for k, t in rv["timing"].items()}
        for name in rdam:
            for variant in fer_v:
                row[f"speedup_{name}_vs_fer_{variant}"] = (
                    row[f"fer_{variant}_s"] / row[f"rdam_{name}_s"]
                )
        rows[v.name] = row
    speedups = [r["speedup_default_vs_fer_k_frames"] for r in rows.values()]
    value = min(speedups)
    details: dict[str, Any] = {
        "setting": {
            "rdam_model": f"{model_source}: {model}",
            "rdam_settings": {
                k: {**v["options"], "threads": v["threads"]} for k, v in rdam.items()
            },
            "frames": frames,
            "repeats": repeats,
            "fer_variants": variants,
        },
        "videos": rows,
        "median_speedup": {
            f"{name}_vs_fer_{variant}": statistics.median(
                r[f"speedup_{name}_vs_fer_{variant}"] for r in rows.values()
            )
            for name in rdam
            for variant in variants
        },
        "cold_start": {
            "fer_init_s": fer["init_s"],
            "fer_process_wall_s": fer_wall,
            "rdam_load_s": {k: v["load_s"] for k, v in rdam.items()},
        },
        "fer_version": fer["fer_version"],
        "machine": machine_info(),
    }
    if accuracy:
        details["fer_accuracy_fer2013_val"] = fer_accuracy()
    return figure_result(
        7,
        "rdam predict vs the fer package: seconds per Ekman-6 video (same K frames)",
        ">= 5x faster per video",
        value,
        value >= 5.0,
        details,
        unit="x (min over videos, rdam default vs fer with the same K)",
    )


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="rdam vs the fer package (figure 7).")
    parser.add_argument(
        "--rdam-only",
        action="store_true",
        help="time rdam alone (no fer virtualenv needed); with --videos N, N videos",
    )
    parser.add_argument("--videos", type=int, help="only the first N Ekman-6 videos")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    videos = ekman6_videos()[: args.videos] if args.videos else None
    if args.rdam_only:
        model, source = face_model_file()
        times = rdam_video_times(model, videos or ekman6_videos(), args.repeats, rdam_settings(16))
        print(json.dumps({"model": f"{source}: {model}", "rdam": times}, indent=2))
        return
    result = versus_fer(args.repeats, fer_every_frame=False, accuracy=False, videos=videos)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
