"""Evaluation: metrics against hand-computed values, confusion matrix files, `rdam eval`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _runs import tiny_run

from rdam.cli import main
from rdam.evaluation.evaluate import evaluate
from rdam.evaluation.metrics import classification_report, save_confusion_matrix

NAMES = ["a", "b", "c", "d"]
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDS = np.array([0, 0, 1, 1, 2, 2, 2, 2, 1])


def test_classification_report_matches_hand_computed_values() -> None:
    r = classification_report(LABELS, PREDS, NAMES)
    # rows = true class, columns = predicted class
    assert r["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 1, 3, 0], [0, 0, 0, 0]]
    assert r["num_samples"] == 9
    assert r["accuracy"] == pytest.approx(6 / 9)
    pc = r["per_class"]
    # recall (= per-class accuracy): 2/3, 1/2, 3/4; precision: 2/2, 1/3, 3/4
    assert [pc[n]["accuracy"] for n in "abc"] == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert [pc[n]["precision"] for n in "abc"] == pytest.approx([1.0, 1 / 3, 3 / 4])
    assert [pc[n]["f1"] for n in "abc"] == pytest.approx([4 / 5, 2 / 5, 3 / 4])
    assert [pc[n]["support"] for n in NAMES] == [3, 2, 4, 0]
    # class d has no clips and is never predicted: no accuracy, no F1, left out of the means
    assert pc["d"] == {"accuracy": None, "precision": 0.0, "f1": None, "support": 0}
    assert r["macro_f1"] == pytest.approx((4 / 5 + 2 / 5 + 3 / 4) / 3)
    assert r["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)


def test_the_macro_averages_match_the_training_metrics_when_a_class_is_only_predicted() -> None:
    """A class predicted but absent from the labels counts in macro-F1 with F1 0 (scikit-learn,
    torchmetrics), not in the mean class accuracy (its recall is undefined): ``rdam eval`` and
    the training's ``val/`` metrics, which ``rdam report`` reads as one metric, agree."""
    from rdam.training.module import _metrics

    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    r = classification_report(labels, preds, ["a", "b", "c"])
    # F1: a 2/3 (precision 1, recall 1/2), b 1, c 0 (predicted once, never right)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["mean_class_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert r["per_class"]["c"] == {"accuracy": None, "precision": 0.0, "f1": 0.0, "support": 0}
    metrics = _metrics(3, "val/")
    metrics.update(torch.tensor(preds), torch.tensor(labels))
    got = {k: float(v) for k, v in metrics.compute().items()}
    assert got["val/acc"] == pytest.approx(r["accuracy"])
    assert got["val/macro_f1"] == pytest.approx(r["macro_f1"])
    assert got["val/mean_class_acc"] == pytest.approx(r["mean_class_accuracy"])


def test_confusion_matrix_csv_and_png(tmp_path: Path) -> None:
    report = classification_report(LABELS, PREDS, NAMES)
    csv_path, png_path = save_confusion_matrix(report, tmp_path / "out")
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["true \\ predicted", *NAMES]
    assert rows[3] == ["c", "0", "1", "3", "0"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(png_path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_evaluate_a_trained_run_reproduces_its_validation_accuracy(tmp_path: Path) -> None:
    result = tiny_run(tmp_path / "run", "dual")
    best = json.loads((tmp_path / "run" / "metrics.json").read_text())["best"]
    report = evaluate(result.model_file, out_dir=tmp_path / "run" / "eval")
    # model.safetensors holds the best checkpoint; the test split of the demo set is its val set
    assert report["accuracy"] == pytest.approx(best["score"], abs=1e-6)
    assert report["num_samples"] == 16
    written = json.loads((tmp_path / "run" / "eval" / "eval_metrics.json").read_text())
    assert written["accuracy"] == report["accuracy"]
    assert (written["data_set"], written["split"]) == ("synthetic", "val")
    assert np.asarray(written["confusion"]).sum() == 16
    assert (tmp_path / "run" / "eval" / "confusion_matrix.png").is_file()
    assert (tmp_path / "run" / "eval" / "confusion_matrix.csv").is_file()


class _Payload:
    """Would create ``marker`` if the checkpoint's pickle were ever executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_rdam_eval_refuses_a_checkpoint_with_pickled_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": _Payload(marker)}}, evil)
    code = main(["eval", "--checkpoint", str(evil)])
    err = capsys.readouterr().err
    assert code == 2
    assert "refused" in err and str(evil) in err
    assert "pickled objects" in err
    assert not marker.exists()  # refused unrun


class _Logits:
    """A runner returning the clip's first pixel values as logits (2 classes), to check the
    averaging."""

    def __call__(self, inputs, relations=False):
        from types import SimpleNamespace

        return SimpleNamespace(logits=inputs["frames"][:, 0, 0, 0, :2].float().numpy())


def test_predict_loader_averages_the_probabilities_of_a_clips_views() -> None:
    from rdam.evaluation.metrics import predict_loader

    def batch(rows, index, label, faces):
        frames = torch.zeros(len(rows), 1, 3, 2, 2)
        frames[:, 0, 0, 0, :] = torch.tensor(rows, dtype=torch.float32)
        return {
            "frames": frames,
            "mask": torch.tensor(faces, dtype=torch.bool)[:, None],  # a face in its one frame
            "label": torch.tensor(label),
            "index": torch.tensor(index),
        }

    # clip 1 has views in both batches; clip 0 one view; clip 2 two views. Clip 0 has no
    # face; clip 1 has one in its second view only, so it is not faceless
    loader = [
        batch([[0.0, 2.0], [1.0, 0.0]], [1, 0], [1, 0], [False, False]),
        batch([[3.0, 0.0], [0.0, 0.0], [0.0, 1.0]], [1, 2, 2], [1, 1, 1], [True, True, True]),
    ]
    labels, preds, probs, faceless = predict_loader(_Logits(), loader)
    assert faceless.tolist() == [False, True, False]
    sm = lambda a, b: np.exp([a, b]) / np.exp([a, b]).sum()  # noqa: E731
    expected = [(sm(0, 2) + sm(3, 0)) / 2, sm(1, 0), (sm(0, 0) + sm(0, 1)) / 2]
    np.testing.assert_allclose(probs, np.stack(expected), rtol=1e-6)
    assert labels.tolist() == [1, 0, 1]  # clips in the order they first came: 1, 0, 2
    assert preds.tolist() == [0, 0, 1]
