"""``rdam eval --labels ferplus:VOTES.csv``: the shipped model scored against the FER+
majority of real FER2013 val images, checked against a hand computation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _tiny import fer2013_subset

import rdam
from rdam.cli import main
from rdam.errors import ConfigError
from rdam.evaluation.evaluate import parse_labels

FERPLUS_TO_FER = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
}


def test_parse_labels() -> None:
    assert parse_labels(None) == [("folder", None)]
    assert parse_labels("ferplus:v.csv") == [("ferplus", "v.csv")]
    assert parse_labels("folder, ferplus:/a/v.csv") == [("folder", None), ("ferplus", "/a/v.csv")]
    assert parse_labels(["ferplus:v.csv", "folder"]) == [("ferplus", "v.csv"), ("folder", None)]
    for bad in ("ferplus", "ferplus:", "votes:v.csv", "folder,folder"):
        with pytest.raises(ConfigError, match="--labels"):
            parse_labels(bad)


def _hand_majority(votes_csv: Path) -> dict[str, str | None]:
    """Image path under fer2013/ -> the FER+ plurality label, by hand: the one column with
    the most votes if it is one of the seven FER2013 emotions, else None."""
    out: dict[str, str | None] = {}
    with votes_csv.open() as fh:
        for row in csv.DictReader(fh):
            votes = {k: int(v) for k, v in row.items() if k != "file"}
            top = max(votes.values())
            winners = [k for k, v in votes.items() if v == top]
            out[row["file"]] = FERPLUS_TO_FER.get(winners[0]) if len(winners) == 1 else None
    return out


@pytest.mark.shared_data
def test_eval_against_the_ferplus_majority_agrees_with_a_hand_computation(
    fer2013_dir: Path, votes_csv: Path, tmp_path: Path, capsys
) -> None:
    manifest = fer2013_subset(fer2013_dir, tmp_path / "val.csv", {"val": 15}, seed=1)
    paths, folder = [], []
    for line in manifest.read_text().splitlines()[2:]:
        path, label, _, _ = line.split(",")
        paths.append(Path(path))
        folder.append(label)
    args = ["eval", str(manifest), "--precision", "fp32", "--threads", "1", "--split", "val"]
    assert main([*args, "--labels", f"ferplus:{votes_csv}", "--out", str(tmp_path / "out")]) == 0
    report = json.loads(capsys.readouterr().out)

    # by hand: each image predicted alone, compared with its FER+ plurality label
    predictions = rdam.load(precision="fp32").predict_many(paths, batch_size=16)
    assert all(p.ok for p in predictions)
    majority = _hand_majority(votes_csv)
    truth = [majority.get(p.relative_to(fer2013_dir).as_posix()) for p in paths]
    scored = [(p.label, t) for p, t in zip(predictions, truth, strict=True) if t is not None]
    assert len(paths) == 105 and 85 <= len(scored) < 105
    assert report["labels"] == "ferplus" and report["majority_rule"] == "plurality"
    assert report["num_samples"] == len(scored)
    assert sum(report["no_label"].values()) == len(paths) - len(scored)
    assert report["accuracy"] == pytest.approx(np.mean([a == b for a, b in scored]), abs=1e-9)
    saved = json.loads((tmp_path / "out" / "eval_metrics.json").read_text())
    assert saved["no_label"] == report["no_label"] and saved["votes"] == str(votes_csv)

    # both label sets at once: one model pass, each scored against its own labels
    assert main([*args, "--labels", f"folder,ferplus:{votes_csv}"]) == 0
    both = json.loads(capsys.readouterr().out)
    folder_accuracy = np.mean([p.label == f for p, f in zip(predictions, folder, strict=True)])
    assert both["labels"] == "folder" and both["num_samples"] == 105
    assert both["accuracy"] == pytest.approx(folder_accuracy, abs=1e-9)
    sets = both["label_sets"]
    assert sets["folder"]["accuracy"] == both["accuracy"]
    assert sets["ferplus"]["accuracy"] == report["accuracy"]
    assert sets["ferplus"]["num_samples"] == report["num_samples"]
    assert sets["ferplus"]["no_label"] == report["no_label"]

    # the FERPlus reference rule leaves out more images (no strict majority after outliers)
    assert main([*args, "--labels", f"ferplus:{votes_csv}", "--majority-rule", "ferplus"]) == 0
    strict = json.loads(capsys.readouterr().out)
    assert strict["majority_rule"] == "ferplus"
    assert strict["num_samples"] <= report["num_samples"]


def _votes_file(tmp_path: Path, rows: dict[str, dict[str, int]]) -> Path:
    """A FER+-form vote CSV with the given rows (missing columns: 0 votes)."""
    from rdam.data.votes import FERPLUS_COLUMNS

    path = tmp_path / "votes.csv"
    lines = [",".join(("file", *FERPLUS_COLUMNS))]
    lines += [
        ",".join((name, *(str(v.get(c, 0)) for c in FERPLUS_COLUMNS))) for name, v in rows.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_model_with_ferplus_class_names_gets_every_ferplus_label(tmp_path: Path) -> None:
    """A model trained on FER+-named folders (``happiness``, ``anger`` ...) is scored on all
    of its classes, as the soft targets read the same file; before, its happiness, sadness and
    anger faces got no label (counted as ``contempt``)."""
    from rdam.data.manifest import ClipRecord
    from rdam.data.votes import VoteTable, soft_target_columns
    from rdam.evaluation.evaluate import ferplus_labels

    votes = _votes_file(
        tmp_path,
        {"a.png": {"happiness": 10}, "b.png": {"anger": 9, "unknown": 1},
         "c.png": {"contempt": 6, "neutral": 4}, "d.png": {"sadness": 7, "fear": 3}},
    )  # fmt: skip
    records = [
        ClipRecord(str(tmp_path / f), 0, "val") for f in ("a.png", "b.png", "c.png", "d.png")
    ]
    model = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    labels, info = ferplus_labels(records, votes, model)
    assert labels == [1, 4, 7, 3]
    assert info["scored"] == 4 and info["no_label"] == {}
    # the same classes as the soft targets' one-hot answers
    soft = VoteTable(votes, soft_target_columns(model)).distributions(records, model)
    assert [int(np.argmax(d)) for d in soft] == labels
    # FER2013 names still work, and contempt without a contempt class gives no label
    fer = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    labels, info = ferplus_labels(records, votes, fer)
    assert labels == [3, 0, None, 5] and info["no_label"] == {"contempt": 1}


def test_classes_merged_by_the_class_map_pool_their_votes_before_the_majority(
    tmp_path: Path,
) -> None:
    """``--class-map disgust=angry``: anger and disgust votes count as one answer, as they do
    in the soft targets, under both majority rules."""
    from rdam.data.manifest import ClipRecord
    from rdam.evaluation.evaluate import ferplus_labels

    votes = _votes_file(
        tmp_path,
        {"a.png": {"neutral": 2, "anger": 4, "disgust": 4},  # angry 8 of 10
         "b.png": {"neutral": 4, "anger": 3, "disgust": 3},  # angry 6 of 10
         "c.png": {"neutral": 5, "anger": 3, "disgust": 2},  # angry 5, neutral 5: a tie
         "d.png": {"anger": 1, "disgust": 1, "fear": 8}},  # single votes dropped by ferplus
    )  # fmt: skip
    records = [
        ClipRecord(str(tmp_path / f), 0, "val") for f in ("a.png", "b.png", "c.png", "d.png")
    ]
    model = ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    labels, info = ferplus_labels(records, votes, model, {"disgust": "angry"})
    assert labels == [0, 0, None, 1] and info["no_label"] == {"tie": 1}
    labels, info = ferplus_labels(records, votes, model, {"disgust": "angry"}, rule="ferplus")
    assert labels == [0, 0, None, 1] and info["no_label"] == {"no_majority": 1}
    # without the merge, disgust is a class the model lacks: a's 4 + 4 is a tie, b is neutral
    labels, _ = ferplus_labels(records, votes, model, {"disgust": None})
    assert labels == [None, 3, 3, 1]
