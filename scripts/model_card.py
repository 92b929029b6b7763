"""Measure the shipped default model for docs/model-card.md.

    .venv/bin/python scripts/model_card.py [--data ../shared/data] [--out docs/model-card]
    .venv/bin/python scripts/model_card.py --limit 20 --videos 1 --out /tmp/card   # smoke run

Evaluates ``rdam/assets/default_model.safetensors`` (through ``rdam.load()``, with its sha256
check) on the FER2013 validation folder as one-frame clips, and as two-frame clips (the face
and its mirror image, fused by the model's own frame attention); then predicts the seven
Ekman-6 sample videos end to end (YuNet faces -> crops -> model). Every image becomes a clip
the way ``rdam eval`` and ``rdam predict`` make it: :func:`rdam.data.clips.read_clip` under the
model's clip spec (``rdam.data.video.read_image``, the spec's grey colour, the image taken as a
given face crop), run by :class:`rdam.runtime.TorchRunner`. Prints JSON and writes
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
from rdam.checkpoint import load_bundle
from rdam.data.clips import batch_clips, read_clip
from rdam.data.layouts import image_folder_manifest
from rdam.data.manifest import Manifest
from rdam.data.spec import ClipSpec
from rdam.evaluation.metrics import classification_report, save_confusion_matrix
from rdam.runtime import TorchRunner

# FER2013 class -> Ekman-6 class, for the sample videos (FER's "neutral" has no Ekman match).
FER_TO_EKMAN = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "joy",
    "sad": "sadness",
    "surprise": "surprise",
}


def _records(manifest: Manifest, limit: int | None) -> list:
    """The validation split's records; ``limit``: the first ``limit`` of each class."""
    records = manifest.split("val").records
    if limit is None:
        return list(records)
    kept, seen = [], {}
    for r in records:
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] <= limit:
            kept.append(r)
    return kept


def _logits(runner: TorchRunner, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.concatenate([runner(b).logits for b in batches])


def evaluate_fer(
    predictor: rdam.inference.Predictor,
    spec: ClipSpec,
    root: Path,
    batch: int = 256,
    limit: int | None = None,
) -> dict:
    manifest = image_folder_manifest(root)
    bundle_classes = predictor.class_names
    if manifest.class_names != bundle_classes:
        raise SystemExit(f"class order differs: {manifest.class_names} vs {bundle_classes}")
    records = _records(manifest, limit)
    clips = [read_clip(r.path, spec) for r in records]  # one frame each: (1, 48, 48, 3)
    labels = np.array([r.label for r in records])
    single = [batch_clips(clips[i : i + batch]) for i in range(0, len(clips), batch)]

    def mirrored(b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # the face and its mirror image as a two-frame clip
        frames = np.concatenate([b["frames"], b["frames"][..., ::-1]], axis=1)
        return {"frames": frames, "mask": np.concatenate([b["mask"], b["mask"]], axis=1)}

    # fp32 reference: a runner of its own on a fresh copy of the model (the predictor's runner
    # may have converted its copy to channels_last for bf16)
    fp32 = TorchRunner(load_bundle(None).model, precision="fp32")
    results = {}
    for name, batches in {
        "single": single,
        "flip_tta": [mirrored(b) for b in single],
    }.items():
        start = time.time()
        p = torch.from_numpy(_logits(fp32, batches)).softmax(-1).numpy()
        report = classification_report(labels, p.argmax(1), bundle_classes)
        report["_pred"] = p.argmax(1)
        report["seconds"] = time.time() - start
        results[name] = report
    # The same one-frame clips through the predictor's runner, at the precision `rdam predict`
    # uses by default (bf16 autocast on CPUs with AVX512-BF16/AMX), to check parity with fp32.
    runner = predictor.runner
    start = time.time()
    pred = _logits(runner, single).argmax(1)
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
    parser.add_argument("--limit", type=int, help="only the first N FER2013 faces per class")
    parser.add_argument("--videos", type=int, help="only the first N Ekman-6 videos")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    predictor = rdam.load()
    fer = evaluate_fer(predictor, predictor.spec, args.data / "fer2013", limit=args.limit)
    save_confusion_matrix(fer["single"], args.out)

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
        "model": str(rdam.inference.default_model_path()),
        "rdam_version": rdam.__version__,
        "clip_spec": predictor.spec.to_dict(),
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
