"""Run the ``fer`` package's shipped emotion classifier on FER2013 validation images.

Runs in the ``fer`` virtualenv (``/work/fervenv/bin/python``), not in rdam's: it imports only
``fer``, OpenCV and numpy, and writes its predictions as JSON for
:mod:`benchmarks.versus_fer` to score. The images are face crops already (48x48 grey), so no
face detector runs: each image goes through exactly the preprocessing ``FER.detect_emotions``
applies to a face crop (resize to the classifier's 64x64 input, ``x / 255``, then
``(x - 0.5) * 2``) and into ``FER._classify_emotions``. Both shipped models are scored: the
quantised TFLite model that ``FER()`` uses by default, and the Keras ``.hdf5`` model
(``FER(use_tflite=False)``) when it loads.

    /work/fervenv/bin/python benchmarks/fer_package_accuracy.py \
        --root ../shared/data/fer2013/val --out /tmp/fer_val_predictions.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def load_images(root: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Paths, labels ``(N,)`` (index into :data:`CLASSES`) and grey images ``(N, 48, 48)``."""
    paths, labels, images = [], [], []
    for label, name in enumerate(CLASSES):
        for path in sorted((root / name).glob("*.jpg")):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise SystemExit(f"cannot read {path}")
            paths.append(str(path.relative_to(root)))
            labels.append(label)
            images.append(image)
    if not paths:
        raise SystemExit(f"no images under {root}/<class>/*.jpg")
    return paths, np.asarray(labels), np.stack(images)


def classify(detector: object, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, float]:
    """Scores ``(N, 7)`` in fer's label order and the seconds taken."""
    size = (64, 64)
    start = time.perf_counter()
    scores = []
    for i in range(0, len(images), batch):
        faces = np.stack([cv2.resize(im, size) for im in images[i : i + batch]])
        faces = (faces.astype(np.float32) / 255.0 - 0.5) * 2.0  # as FER.detect_emotions
        out = detector._classify_emotions(faces)
        scores.append(np.asarray(out, dtype=np.float32))
    return np.concatenate(scores), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="fer2013/val folder")
    parser.add_argument("--out", type=Path, required=True, help="predictions JSON to write")
    args = parser.parse_args()

    import fer
    from fer.fer import FER

    paths, labels, images = load_images(args.root)
    result = {
        "fer_version": fer.__version__,
        "python": sys.version.split()[0],
        "classes": list(CLASSES),
        "paths": paths,
        "labels": labels.tolist(),
        "models": {},
    }
    for name, use_tflite in (("tflite_quantized_default", True), ("keras_hdf5", False)):
        try:
            detector = FER(mtcnn=False, use_tflite=use_tflite)
        except Exception as exc:  # the hdf5 model may not load under Keras 3
            result["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        fer_labels = detector._get_labels()  # index -> name, fer's own order
        scores, seconds = classify(detector, images)
        to_ours = [CLASSES.index(fer_labels[i]) for i in range(len(fer_labels))]
        predictions = [to_ours[int(i)] for i in scores.argmax(1)]
        result["models"][name] = {
            "label_order": [fer_labels[i] for i in range(len(fer_labels))],
            "predictions": predictions,
            "seconds": seconds,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
