"""Measure a face model for docs/model-card.md (by default the shipped one).

    .venv/bin/python scripts/model_card.py [--model FILE] [--data ../shared/data] [--out docs/model-card]
    .venv/bin/python scripts/model_card.py --limit 20 --videos 1 --out /tmp/card   # smoke run

Every FER2013 figure comes from :func:`rdam.evaluation.evaluate`, the code of ``rdam eval``, so
each row of the card is also one ``rdam eval`` command (``commands`` in ``metrics.json``):

- ``single``: one frame per face, fp32; ``single_predict_precision``: the same at the precision
  ``rdam predict`` uses by default (bf16 autocast on CPUs with AVX512-BF16/AMX), with its top-1
  agreement with fp32;
- ``mirror_views``: the face and its mirror image as two views, probabilities averaged (what
  ``rdam predict --mirror`` does); ``ten_crop``: the five test crops and their mirrors;
- each of them also against the FER+ majority of the crowd votes (the plurality vote, and for
  the single view also the FERPlus code's rule), when ``ferplus/fer2013_votes.csv`` is there.

Then it predicts the seven Ekman-6 sample videos end to end (YuNet faces -> crops -> model), as
``rdam predict`` does. Prints JSON and writes ``metrics.json``, ``confusion_matrix.{csv,png}``
(single view, fp32) and ``ekman6_predictions.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rdam
from rdam.evaluation.evaluate import evaluate
from rdam.evaluation.metrics import save_confusion_matrix

# FER2013 class -> Ekman-6 class, for the sample videos (FER's "neutral" has no Ekman match).
FER_TO_EKMAN = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "joy",
    "sad": "sadness",
    "surprise": "surprise",
}

# row -> rdam eval options (besides the model, the data and the label sets)
ROWS: dict[str, dict[str, Any]] = {
    "single": {"precision": "fp32"},
    "single_predict_precision": {"precision": "auto"},
    "mirror_views": {"precision": "auto", "flip": True},
    "ten_crop": {"precision": "auto", "flip": True, "crops": 5},
}
FLAGS = {"flip": "--flip", "crops": "--crops {}", "precision": "--precision {}"}


def subset_folder(val: Path, limit: int, into: Path) -> Path:
    """A folder of links to the first ``limit`` images of each class folder of ``val``."""
    for class_dir in sorted(p for p in val.iterdir() if p.is_dir()):
        (into / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:limit]:
            (into / class_dir.name / image.name).symlink_to(image.resolve())
    return into


def _top1(probabilities_csv: Path) -> np.ndarray:
    with probabilities_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return np.array([np.argmax([float(v) for v in r[1:]]) for r in rows])


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    def scores(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "accuracy": r["accuracy"],
            "macro_f1": r["macro_f1"],
            "mean_class_accuracy": r["mean_class_accuracy"],
            "per_class_accuracy": {c: m["accuracy"] for c, m in r["per_class"].items()},
            "num_samples": r["num_samples"],
        }

    out = {
        **scores(report),
        "precision": report["precision"],
        "seconds": report["timing"]["seconds"],
    }
    ferplus = report.get("label_sets", {}).get("ferplus")
    if ferplus is not None:
        out["ferplus"] = {**scores(ferplus), "majority_rule": ferplus["majority_rule"]}
    return out


def _command(model: str | None, val: str, labels: str | None, options: dict[str, Any]) -> str:
    words = [".venv/bin/rdam eval", val]
    if model is not None:
        words.append(f"--checkpoint {model}")
    words += [
        FLAGS[k].format(v)
        for k, v in options.items()
        if k != "majority_rule" and not (k == "precision" and v == "auto")  # auto: the default
    ]
    if labels:
        words.append(f"--labels {labels}")
    if options.get("majority_rule"):
        words.append(f"--majority-rule {options['majority_rule']}")
    return " ".join(words)


def evaluate_fer(
    model: Path | None, data: Path, out: Path, limit: int | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The FER2013 val rows of :data:`ROWS` (and the FERPlus-rule row): ``(figures, commands)``."""
    val = data / "fer2013" / "val"
    votes = data / "ferplus" / "fer2013_votes.csv"
    labels = f"folder,ferplus:{votes}" if votes.is_file() else None
    rows = dict(ROWS)
    if labels:
        rows["single_ferplus_rule"] = {"precision": "auto", "majority_rule": "ferplus"}
    with tempfile.TemporaryDirectory() as tmp:
        scored = subset_folder(val, limit, Path(tmp) / "val") if limit else val
        figures, commands, reports = {}, {}, {}
        for name, options in rows.items():
            reports[name] = evaluate(
                model, scored, labels=labels, out_dir=Path(tmp) / name, **options
            )
            figures[name] = _summary(reports[name])
            commands[name] = _command(
                None if model is None else str(model), str(val), labels, options
            )
        agree = _top1(Path(tmp) / "single_predict_precision" / "probabilities.csv") == _top1(
            Path(tmp) / "single" / "probabilities.csv"
        )
        figures["single_predict_precision"]["top1_agreement_with_fp32"] = float(agree.mean())
    save_confusion_matrix(reports["single"], out)
    return figures, commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("RDAM_SHARED_DATA", "../shared/data"))
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=Path("docs/model-card"))
    parser.add_argument("--limit", type=int, help="only the first N FER2013 faces per class")
    parser.add_argument("--videos", type=int, help="only the first N Ekman-6 videos")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    fer, commands = evaluate_fer(args.model, args.data, args.out, limit=args.limit)
    predictor = rdam.load(args.model)
    videos = sorted((args.data / "ekman6_samples").glob("*.mp4"))[: args.videos]
    predictions = []
    for pred in predictor.predict_many([str(v) for v in videos], batch_size=1):
        d = pred.to_dict()
        truth = Path(pred.path).stem
        d["expected_ekman"] = truth if truth in FER_TO_EKMAN.values() else None
        d["predicted_ekman"] = FER_TO_EKMAN.get(pred.label or "")
        predictions.append(d)
    (args.out / "ekman6_predictions.json").write_text(json.dumps(predictions, indent=2))

    summary = {
        "model": str(args.model or rdam.inference.default_model_path()),
        "rdam_version": rdam.__version__,
        "clip_spec": predictor.spec.to_dict(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "fer2013_val": fer,
        "commands": commands,
        "ekman6_samples": [
            {
                "video": Path(p["path"]).name,
                "label": p["label"],
                "as_ekman": p["predicted_ekman"],
                "expected": p["expected_ekman"],
                "faces_found": int(sum(p["face_found"] or [])) if p.get("face_found") else None,
                "frames": len(p["timestamps"] or []),
                "seconds": round(p["timing"]["total"], 2) if p.get("timing") else None,
                "error": p["error"],
            }
            for p in predictions
        ],
    }
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
