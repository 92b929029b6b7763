"""Crowd votes (rdam.data.votes) on the real FER+ vote CSV and FER2013 images: soft targets,
majority labels, the matching of rows to records."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rdam.data.layouts import image_folder_manifest
from rdam.data.manifest import ClipRecord, Manifest
from rdam.data.votes import (
    FERPLUS_COLUMNS,
    VoteTable,
    mixed_soft_targets,
    reason_counts,
    soft_target_columns,
    soft_targets,
    write_vote_csv,
)
from rdam.errors import ConfigError, DatasetError

FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def table(votes_csv: Path) -> VoteTable:
    return VoteTable(votes_csv)


def _row(votes_csv: Path, name: str) -> dict[str, float]:
    for line in votes_csv.read_text().splitlines():
        if line.startswith(name + ","):
            return dict(zip(FERPLUS_COLUMNS, map(float, line.split(",")[1:]), strict=True))
    raise AssertionError(name)


def _record(fer2013_dir: Path, rel: str, label: str | None = None) -> ClipRecord:
    path = fer2013_dir / rel
    assert path.is_file(), path
    return ClipRecord(str(path), None if label is None else FER_CLASSES.index(label), "x")


def test_the_distribution_of_a_known_image_is_its_votes_normalised(
    table: VoteTable, votes_csv: Path, fer2013_dir: Path
):
    rel = "train/angry/Training_10118481.jpg"
    votes = _row(votes_csv, rel)  # neutral 2, sadness 1, anger 7
    (dist,) = table.distributions([_record(fer2013_dir, rel)], FER_CLASSES)
    expected = np.zeros(7)
    for column, name in (("neutral", "neutral"), ("sadness", "sad"), ("anger", "angry")):
        expected[FER_CLASSES.index(name)] = votes[column]
    np.testing.assert_allclose(dist, expected / expected.sum())
    assert dist.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(dist[[0, 4, 5]], [0.7, 0.2, 0.1])


def test_contempt_unknown_and_nf_votes_leave_the_distribution(
    table: VoteTable, votes_csv: Path, fer2013_dir: Path
):
    rel = "val/angry/PublicTest_27052118.jpg"  # 1,0,0,1,1,2,0,5 contempt,0,0
    record = _record(fer2013_dir, rel)
    (seven,) = table.distributions([record], FER_CLASSES)
    np.testing.assert_allclose(seven[[0, 1, 4, 5]], [0.2, 0.4, 0.2, 0.2])  # 5 of 10 dropped
    (eight,) = table.distributions([record], [*FER_CLASSES, "contempt"])  # an eighth class
    np.testing.assert_allclose(eight[[0, 1, 4, 5, 7]], [0.1, 0.2, 0.1, 0.1, 0.5])
    rel = "val/sad/PublicTest_26039746.jpg"  # neutral 2, happiness 6, surprise 1, unknown 1
    (dist,) = table.distributions([_record(fer2013_dir, rel)], FER_CLASSES)
    np.testing.assert_allclose(dist[[3, 4, 6]], [6 / 9, 2 / 9, 1 / 9])


def test_rows_match_absolute_relative_and_root_relative_paths(
    table: VoteTable, fer2013_dir: Path, tmp_path: Path, monkeypatch
):
    rel = "val/happy/" + sorted((fer2013_dir / "val" / "happy").glob("*.jpg"))[0].name
    row = table.row_of(fer2013_dir / rel)
    assert row is not None and table.files[row] == rel
    assert table.row_of(fer2013_dir / rel, root=fer2013_dir) == row
    assert table.row_of(str(fer2013_dir / "val" / ".." / rel)) == row  # not normalised
    monkeypatch.chdir(fer2013_dir.parent)
    assert table.row_of(os.path.join(fer2013_dir.name, rel)) == row  # relative to the cwd
    assert table.row_of(rel) == row
    # a FER2013 val image whose train twin has the same name would not match a train row
    assert table.row_of(tmp_path / "elsewhere" / "x.jpg") is None
    assert table.row_of(fer2013_dir / rel.replace("val/", "train/")) is None


def test_a_manifest_of_fer2013_gets_votes_for_93_percent(table: VoteTable, fer2013_dir: Path):
    manifest = image_folder_manifest(fer2013_dir).split("val")
    assert sum(r is not None for r in table.rows(manifest)) == 3483  # the README's count
    dists = table.distributions(manifest, manifest.class_names)
    have = [d for d in dists if d is not None]
    assert len(have) == 3483 and len(manifest) == 3589  # every row has an emotion vote here
    assert all(abs(d.sum() - 1) < 1e-9 for d in have)


def test_majority_labels_and_why_there_is_none(table: VoteTable, fer2013_dir: Path, tmp_path: Path):
    cases = {  # image: (plurality, ferplus rule), a class name or the reason there is none
        "train/angry/Training_10118481.jpg": ("angry", "angry"),  # 7 of 10
        "val/sad/PublicTest_36374107.jpg": ("happy", "happy"),  # 10 happiness, folder sad
        "val/angry/PublicTest_14075653.jpg": ("tie", "no_majority"),  # anger 4, unknown 4
        "val/angry/PublicTest_17614009.jpg": ("tie", "no_majority"),  # neutral 3, surprise 3
        "val/angry/PublicTest_20761396.jpg": ("unknown", "unknown"),  # unknown 4 of 10
        "val/fear/PublicTest_58756471.jpg": ("not_face", "no_majority"),  # NF 4, unknown 3
        "val/angry/PublicTest_27052118.jpg": ("contempt", "contempt"),  # contempt 5 (of 7 > 1)
        "val/angry/PublicTest_12919755.jpg": ("neutral", "no_majority"),  # 5 of 10, not > half
        # happiness 4, surprise 2, unknown 2 and two single votes: 4 of 8 after outliers
        "val/angry/PublicTest_12326319.jpg": ("happy", "no_majority"),
    }
    records = [_record(fer2013_dir, rel) for rel in cases]
    records.append(ClipRecord(str(tmp_path / "val" / "angry" / "new.jpg"), 0, "val"))
    for column, rule in enumerate(("plurality", "ferplus")):
        labels, reasons = table.majority(records, FER_CLASSES, rule=rule)
        got = [FER_CLASSES[a] if a is not None else b for a, b in zip(labels, reasons, strict=True)]
        assert got == [c[column] for c in cases.values()] + ["no_row"], rule
        assert all((a is None) != (b is None) for a, b in zip(labels, reasons, strict=True))
    labels, _ = table.majority(records[6:7], [*FER_CLASSES, "contempt"])
    assert labels == [7]  # with an eighth class contempt is a label
    assert reason_counts(["tie", None, "tie", "no_row"]) == {"no_row": 1, "tie": 2}
    with pytest.raises(ConfigError, match="majority rule"):
        table.majority(records, FER_CLASSES, rule="mode")


def test_soft_targets_mix_votes_and_labels_and_fall_back_to_one_hot(
    table: VoteTable, fer2013_dir: Path, tmp_path: Path
):
    known = _record(fer2013_dir, "train/angry/Training_10118481.jpg", "angry")
    sad = _record(fer2013_dir, "val/sad/PublicTest_36374107.jpg", "sad")
    missing = ClipRecord(str(tmp_path / "train" / "fear" / "x.jpg"), 2, "train")
    targets, found = soft_targets([known, sad, missing], table, FER_CLASSES)
    assert found == 2 and targets.dtype == np.float32 and targets.shape == (3, 7)
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(targets[1], np.eye(7)[3])  # all ten votes happy
    np.testing.assert_allclose(targets[2], np.eye(7)[2])  # no row: the one-hot label
    half, _ = soft_targets([sad, missing], table, FER_CLASSES, weight=0.25)
    np.testing.assert_allclose(half[0], 0.25 * np.eye(7)[3] + 0.75 * np.eye(7)[5])
    with pytest.raises(DatasetError, match="no label and no votes"):
        soft_targets([ClipRecord(missing.path, None, "train")], table, FER_CLASSES)
    with pytest.raises(ConfigError, match="weight"):
        soft_targets([known], table, FER_CLASSES, weight=1.5)
    with pytest.raises(ConfigError, match="none of the vote columns"):
        soft_targets(Manifest([], ["a", "b"]), table, ["a", "b"])


def test_malformed_vote_files_are_refused(tmp_path: Path):
    bad = tmp_path / "v.csv"
    with pytest.raises(DatasetError, match="does not exist"):
        VoteTable(bad)
    bad.write_text("image,neutral\nx.jpg,1\n")
    with pytest.raises(DatasetError, match="first column must be 'file'"):
        VoteTable(bad)
    bad.write_text("file,neutral,joy\nx.jpg,1,2\n")
    with pytest.raises(DatasetError, match="unknown vote column 'joy'"):
        VoteTable(bad)
    bad.write_text("file,neutral,anger\nx.jpg,1,2\nx.jpg,0,3\n")
    with pytest.raises(DatasetError, match="listed twice"):
        VoteTable(bad)
    bad.write_text("file,neutral,anger\nx.jpg,1,-2\n")
    with pytest.raises(DatasetError, match="line 2"):
        VoteTable(bad)


def test_a_probability_file_reads_back_as_soft_targets_wherever_the_data_lies(tmp_path: Path):
    """What ``rdam eval --out`` writes (``probabilities.csv``): columns named as the classes,
    paths from the folder of the scored images on (its name kept: the split), read back as
    soft targets."""
    classes = ["joy", "anger", "calm"]
    root = tmp_path / "data" / "val"
    files = [root / "joy" / "1.png", root / "anger" / "2.png", root / "calm" / "3.png"]
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    path = write_vote_csv(tmp_path / "teacher" / "probabilities.csv", files, probs, classes)
    lines = path.read_text().splitlines()
    assert lines[:2] == ["file,joy,anger,calm", "val/joy/1.png,0.7,0.2,0.1"]
    # the same images elsewhere (another machine, another data root) match by path suffix
    moved = [
        ClipRecord(str(tmp_path / "else" / f.relative_to(root.parent)), 0, "val") for f in files
    ]
    # and not the images of another split that have the same names
    train = [ClipRecord(str(tmp_path / "else" / "train" / f.relative_to(root)), 0, "train")
             for f in files]  # fmt: skip
    assert VoteTable(path, soft_target_columns(classes)).rows(train) == [None, None, None]
    table = VoteTable(path, soft_target_columns(classes))
    got = table.distributions(moved, classes)
    np.testing.assert_allclose(np.stack(got), probs, atol=1e-6)
    # the model's class order need not be the file's: columns are matched by name
    other_order = ["calm", "joy", "anger"]
    got = np.stack(
        VoteTable(path, soft_target_columns(other_order)).distributions(moved, other_order)
    )
    np.testing.assert_allclose(got, probs[:, [2, 0, 1]], atol=1e-6)
    # a column that is no class of the data set (nor a FER+ name) is refused, not dropped
    with pytest.raises(DatasetError, match="unknown vote column 'calm'"):
        VoteTable(path, soft_target_columns(["joy", "anger"]))
    with pytest.raises(ValueError, match="shape"):
        write_vote_csv(tmp_path / "x.csv", files[:2], probs, classes)


def test_several_sources_mix_by_their_weights_and_give_missing_mass_to_the_label(tmp_path: Path):
    """Votes (weight 0.5) + a teacher (weight 0.3): each source a record lacks gives its weight
    to the record's one-hot label; an unlabelled record gets its sources' weighted mean."""
    classes = ["happy", "angry", "neutral"]  # as FER+ names map (happiness -> happy ...)
    root = tmp_path / "train"
    files = {
        n: root / c / f"{n}.png" for n, c in [("a", "happy"), ("b", "angry"), ("c", "neutral")]
    }
    files["u"] = root / "happy" / "u.png"
    votes = tmp_path / "votes.csv"  # FER+-style counts: a and u have rows, b and c none
    votes.write_text(
        "file,happiness,anger,neutral,contempt\ntrain/happy/a.png,6,2,2,5\ntrain/happy/u.png,0,10,0,0\n"
    )
    teacher = write_vote_csv(
        tmp_path / "teacher.csv",
        [files["a"], files["b"], files["u"]],
        np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]),
        classes,
    )
    columns = soft_target_columns(classes)
    sources = [(VoteTable(votes, columns), 0.5), (VoteTable(teacher, columns), 0.3)]
    records = [
        ClipRecord(str(files["a"]), 0, "train"),
        ClipRecord(str(files["b"]), 1, "train"),
        ClipRecord(str(files["c"]), 2, "train"),
        ClipRecord(str(files["u"]), None, "train"),
    ]
    targets, found = mixed_soft_targets(records, sources, classes)
    assert found == [2, 3]
    expected = np.array(
        [
            # a: 0.5 x (6, 2, 2)/10 (contempt dropped) + 0.3 x teacher + 0.2 x one-hot happy
            [0.5 * 0.6 + 0.3 * 0.5 + 0.2, 0.5 * 0.2 + 0.3 * 0.25, 0.5 * 0.2 + 0.3 * 0.25],
            # b: no votes -> 0.3 x teacher + 0.7 x one-hot angry
            [0.3 * 0.1, 0.3 * 0.8 + 0.7, 0.3 * 0.1],
            # c: neither -> its label
            [0.0, 0.0, 1.0],
            # u: no label -> (0.5 x (0, 1, 0) + 0.3 x (0.2, 0.2, 0.6)) / 0.8
            [0.06 / 0.8, 0.56 / 0.8, 0.18 / 0.8],
        ]
    )
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-6)
    # one source is soft_targets itself
    one, n = soft_targets(records[:3], sources[1][0], classes, weight=0.3)
    many, counts = mixed_soft_targets(records[:3], [sources[1]], classes)
    np.testing.assert_array_equal(one, many)
    assert n == counts[0] == 2
    with pytest.raises(ConfigError, match="sum to 1.1"):
        mixed_soft_targets(records, [(sources[0][0], 0.6), (sources[1][0], 0.5)], classes)
    with pytest.raises(DatasetError, match="no label and no votes"):
        mixed_soft_targets([ClipRecord(str(root / "x.png"), None, "train")], sources, classes)
