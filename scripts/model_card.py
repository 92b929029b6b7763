"""Measure the shipped default model for docs/model-card.md.

    .venv/bin/python scripts/model_card.py [--data ../shared/data] [--out docs/model-card]

Evaluates ``rdam/assets/default_model.safetensors`` (through ``rdam.load()``, with its sha256
check) on the FER2013 validation folder as one-frame clips, and as two-frame clips (the face
and its mirror image, fused by the model's own frame attention); then predicts the seven
Ekman-6 sample videos end to end (YuNet faces -> crops -> model). Prints JSON and writes
``metrics.json``, ``confusion_matrix.{csv,png}`` and ``ekman6_predictions.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import rdam
from rdam.data.frames import read_image
from rdam.data.manifest import image_folder_manifest
from rdam.evaluation.metrics import classification_report, save_confusion_matrix

# FER2013 class -> Ekman-6 class, for the sample videos (FER's "neutral" has no Ekman match).
FER_TO_EKMAN = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "joy",
    "sad": "sadness",
    "surprise": "surprise",
}


@torch.no_grad()
def evaluate_fer(predictor: rdam.inference.Predictor, root: Path, batch: int = 256) -> dict:
    manifest = image_folder_manifest(root).split("val")
    bundle_classes = predictor.class_names
    if manifest.class_names != bundle_classes:
        raise SystemExit(f"class order differs: {manifest.class_names} vs {bundle_classes}")
    model = predictor.runner.model.float()
    images = np.stack([read_image(r.path) for r in manifest.records])  # (N, 48, 48, 3)
    labels = np.array([r.label for r in manifest.records])
    clips = torch.from_numpy(images).permute(0, 3, 1, 2)[:, None]  # (N, 1, 3, 48, 48)
    results = {}
    for name, make in {
        "single": lambda x: x,
        "flip_tta": lambda x: torch.cat([x, x.flip(-1)], dim=1),
    }.items():
        start = time.time()
        probs = []
        for i in range(0, len(clips), batch):
            probs.append(model(make(clips[i : i + batch])).logits.float().softmax(-1))
        p = torch.cat(probs).numpy()
        report = classification_report(labels, p.argmax(1), bundle_classes)
        report["_pred"] = p.argmax(1)
        report["seconds"] = time.time() - start
        results[name] = report
    # The same one-frame clips through the predictor's runner, at the precision `rdam predict`
    # uses by default (bf16 autocast on CPUs with AVX512-BF16/AMX), to check parity with fp32.
    runner = predictor.runner
    start = time.time()
    logits = [
        runner(
            {
                "frames": images[i : i + batch, None],
                "mask": np.ones((len(images[i : i + batch]), 1), bool),
            }
        ).logits
        for i in range(0, len(images), batch)
    ]
    pred = np.concatenate(logits).argmax(1)
    report = classification_report(labels, pred, bundle_classes)
    report["seconds"] = time.time() - start
    report["precision"] = runner.precision
    report["top1_agreement_with_fp32"] = float((pred == results["single"]["_pred"]).mean())
    results["single_predict_precision"] = report
    for r in results.values():
        r.pop("_pred", None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("RDAM_SHARED_DATA", "../shared/data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=Path("docs/model-card"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    predictor = rdam.load()
    fer = evaluate_fer(predictor, args.data / "fer2013")
    save_confusion_matrix(fer["single"], args.out)

    videos = sorted((args.data / "ekman6_samples").glob("*.mp4"))
    predictions = []
    for pred in predictor.predict_many([str(v) for v in videos], batch_size=1):
        d = pred.to_dict()
        truth = Path(pred.path).stem
        d["expected_ekman"] = truth if truth in FER_TO_EKMAN.values() else None
        d["predicted_ekman"] = FER_TO_EKMAN.get(pred.label or "")
        predictions.append(d)
    (args.out / "ekman6_predictions.json").write_text(json.dumps(predictions, indent=2))

    summary = {
        "model": str(rdam.inference.default_model_path()),
        "rdam_version": rdam.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "fer2013_val": {
            k: {
                "accuracy": v["accuracy"],
                "macro_f1": v["macro_f1"],
                "mean_class_accuracy": v["mean_class_accuracy"],
                "per_class_accuracy": {c: m["accuracy"] for c, m in v["per_class"].items()},
                "num_samples": v["num_samples"],
                "seconds": v["seconds"],
                "precision": v.get("precision", "fp32"),
                "top1_agreement_with_fp32": v.get("top1_agreement_with_fp32"),
            }
            for k, v in fer.items()
        },
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
    (args.out / "metrics.json").write_text(
        json.dumps({**summary, "fer2013_val_full": fer}, indent=2)
    )
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
