"""``rdam predict`` image by image against ``rdam eval`` on the same FER2013 val faces.

    .venv/bin/python -m benchmarks.predict_vs_eval [--limit N] [--out benchmarks/results/predict_vs_eval.json]

Both run the shipped model under its own clip spec with the default precision: ``eval`` over
the folder (``rdam.evaluation.evaluate``), ``predict`` on each image as its own clip
(``Predictor.predict_many``, as ``rdam predict DIR`` does). The goal (issue "One definition of a
clip"): the two top-1 figures within 0.5 points; the images are the same arrays through one
reader, so they should agree but for the batch composition of bf16 kernels.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import shared_data_path, write_json

SHARED = shared_data_path()


def run(limit: int | None = None) -> dict:
    import rdam
    from rdam.evaluation.evaluate import evaluate

    val = SHARED / "fer2013" / "val"
    classes = sorted(p.name for p in val.iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "val"
        paths: list[tuple[Path, str]] = []
        for name in classes:
            (root / name).mkdir(parents=True)
            files = sorted((val / name).glob("*.jpg"))
            for path in files[: limit // len(classes)] if limit else files:
                (root / name / path.name).symlink_to(path)
                paths.append((root / name / path.name, name))
        start = time.perf_counter()
        report = evaluate(None, root)
        eval_s = time.perf_counter() - start
        predictor = rdam.load()
        start = time.perf_counter()
        predictions = predictor.predict_many([p for p, _ in paths], batch_size=64)
        predict_s = time.perf_counter() - start
        # what predict did before the clip spec: the face detector run on each face image
        detected = rdam.load(face_input="detect").predict_many([p for p, _ in paths], 64)
    labels = [name for _, name in paths]
    predicted = [p.label for p in predictions]
    accuracy = float(np.mean([a == b for a, b in zip(predicted, labels, strict=True)]))
    gap = abs(accuracy - report["accuracy"])
    return {
        "figure": "predict_vs_eval",
        "images": len(paths),
        "eval_accuracy": report["accuracy"],
        "predict_accuracy": accuracy,
        "gap_points": 100 * gap,
        "goal_points": 0.5,
        "met": gap <= 0.005,
        "face_input": sorted({p.face_input for p in predictions}),
        "failed": sum(not p.ok for p in predictions),
        "with_face_input_detect": {
            "accuracy": float(
                np.mean([p.label == n for p, n in zip(detected, labels, strict=True)])
            ),
            "no_face": float(np.mean([not p.ok for p in detected])),
        },
        "precision": report["precision"],
        "seconds": {"eval": eval_s, "predict": predict_s},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="about this many images (per class share)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/predict_vs_eval.json"))
    args = parser.parse_args()
    result = run(args.limit)
    write_json(result, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
