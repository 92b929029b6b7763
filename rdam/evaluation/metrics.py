"""Evaluation: top-1 accuracy (the paper's metric), per-class accuracy, macro-F1, confusion matrix."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rdam.data.clips import faceless_clips
from rdam.runtime import ModelRunner, softmax


def classification_report(
    labels: np.ndarray, predictions: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Metrics from integer labels and predictions, ``(N,)`` each.

    Returns ``accuracy``, ``macro_f1``, ``mean_class_accuracy``, ``per_class`` (accuracy =
    recall, precision, f1, support per class) and ``confusion`` (rows = true, cols = predicted).

    The macro averages follow scikit-learn and torchmetrics (so ``rdam eval`` and the
    training's ``val/`` metrics agree): ``macro_f1`` is over the classes present in the
    labels *or* the predictions (a class only predicted counts with F1 0), and
    ``mean_class_accuracy`` (balanced accuracy) over the classes present in the labels. A
    class with no clip has no accuracy (``None``: its recall is undefined, not 0), and no F1
    either unless it was predicted; precision is 0 for a class never predicted.
    """
    n = len(class_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    tp = np.diag(confusion).astype(float)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    present = support > 0
    scored = present | (predicted > 0)
    return {
        "num_samples": len(labels),
        "accuracy": float(tp.sum() / max(1, len(labels))),
        "macro_f1": float(f1[scored].mean()) if scored.any() else 0.0,
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {
                "accuracy": float(recall[i]) if present[i] else None,
                "precision": float(precision[i]),
                "f1": float(f1[i]) if scored[i] else None,
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


class LoaderPredictions(NamedTuple):
    """:func:`predict_loader`'s answer, one row per clip."""

    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    #: clips with no face in any frame of any view (:func:`rdam.data.clips.faceless_clips`):
    #: answered from the classifier's bias, where ``rdam predict`` refuses to answer
    faceless: np.ndarray


def predict_loader(runner: ModelRunner, loader: Any) -> LoaderPredictions:
    """Run a model runner (:mod:`rdam.runtime`: the one every prediction path uses) over a
    loader of collated clips: labels, predictions, probabilities and which clips had no face,
    one row per clip.

    Items that share a clip ``index`` (the views of multi-view testing, see
    ``ClipDataset(test_views=..., test_flip=...)``) are one clip: its probabilities are the
    mean of its views' softmax probabilities, and it is faceless when every view is. Clips
    come in the order of their first item.
    """
    labels, probs, indices, faceless = [], [], [], []
    for batch in loader:
        probs.append(softmax(runner(batch).logits))
        labels.append(np.asarray(batch["label"]))
        faceless.append(np.asarray(faceless_clips(batch), bool))
        if "index" in batch:
            indices.append(np.asarray(batch["index"]).reshape(-1))
    p, y, empty = np.concatenate(probs), np.concatenate(labels), np.concatenate(faceless)
    if indices:
        index = np.concatenate(indices)
        clips, first, group = np.unique(index, return_index=True, return_inverse=True)
        if len(clips) < len(index):
            sums = np.zeros((len(clips), p.shape[1]), dtype=np.float64)
            np.add.at(sums, group, p)
            counts = np.bincount(group, minlength=len(clips))[:, None]
            seen = np.bincount(group, weights=~empty, minlength=len(clips))  # views with faces
            order = np.argsort(first)  # clips in the order they first came
            p = (sums / counts)[order]
            y = y[first][order]
            empty = (seen == 0)[order]
    return LoaderPredictions(y, p.argmax(1), p, empty)


def save_confusion_matrix(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``confusion_matrix.csv`` and ``confusion_matrix.png`` (row-normalised colours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = report["class_names"]
    cm = np.asarray(report["confusion"])
    csv_path = out_dir / "confusion_matrix.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, cm):
            writer.writerow([name, *row.tolist()])
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(names), 0.8 + 0.7 * len(names)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_title(f"accuracy {report['accuracy']:.1%}, macro-F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    png_path = out_dir / "confusion_matrix.png"
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return csv_path, png_path


def write_report(report: dict[str, Any], out_dir: str | Path) -> None:
    """``eval_metrics.json`` and the confusion matrix (CSV, PNG) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval_metrics.json").write_text(json.dumps(report, indent=2))
    save_confusion_matrix(report, out_dir)
