"""Training on crowd-vote soft targets (data.soft_labels): the targets of real FER2013 images
from the real FER+ votes, through the per-item and the in-memory / batched input paths, into
the loss."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _inference_fixtures import save_tiny_model
from _tiny import fer2013_subset, tiny_config

from rdam.config import DataConfig, load_config
from rdam.data.datasets import collate_clips
from rdam.data.votes import VoteTable
from rdam.errors import ConfigError
from rdam.evaluation.evaluate import evaluate
from rdam.training.datamodule import ClipDataModule
from rdam.training.fast_input import PreloadedClips, augment_batch
from rdam.training.module import RDAMLightningModule
from rdam.training.train import train

pytestmark = pytest.mark.shared_data

FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


@pytest.fixture
def manifest(fer2013_dir: Path, tmp_path: Path) -> Path:
    return fer2013_subset(fer2013_dir, tmp_path / "fer.csv", {"train": 2, "val": 1})


def _data(manifest: Path, votes: Path | None, **augment) -> DataConfig:
    return DataConfig(
        kind="csv",
        root=str(manifest),
        num_frames=1,
        frame_size=32,
        num_workers=0,
        soft_labels=None if votes is None else str(votes),
        augment={"enabled": True, **augment},
    )


def _datasets(config: DataConfig) -> dict:
    dm = ClipDataModule(config, seed=0)
    dm.setup("fit")
    return dm


def _expected(dataset, votes_csv: Path, weight: float = 1.0) -> np.ndarray:
    """Each record's votes normalised (by hand from the table's raw counts), or its one-hot
    label where it has no row."""
    table = VoteTable(votes_csv)
    names = dataset.class_names
    out = []
    for record, votes in zip(
        dataset.manifest.records,
        table.class_votes(dataset.manifest.records, names),
        strict=True,
    ):
        one_hot = np.eye(len(names))[record.label]
        out.append(
            one_hot if votes is None else weight * votes / votes.sum() + (1 - weight) * one_hot
        )
    return np.asarray(out, dtype=np.float32)


def _teacher(manifest: Path, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny teacher's ``rdam eval --out`` on the training split: its ``probabilities.csv``
    and the rows of that file (path from the scored split folder on -> probabilities)."""
    teacher = save_tiny_model(
        tmp_path / "teacher.safetensors", num_frames=1, frame_size=32, class_names=FER_CLASSES
    )
    evaluate(teacher, str(manifest), split="train", precision="fp32", out_dir=tmp_path / "t")
    probs_csv = tmp_path / "t" / "probabilities.csv"
    rows = {
        line.split(",")[0]: np.asarray([float(v) for v in line.split(",")[1:]])
        for line in probs_csv.read_text().splitlines()[1:]
    }
    return probs_csv, rows


def test_the_config_keys_and_their_defaults() -> None:
    config = load_config(None, [])
    assert config.data.soft_labels is None and config.data.soft_label_weight == 1.0
    config = load_config(None, ["data.soft_labels=votes.csv", "data.soft_label_weight=0.5"])
    assert config.data.soft_labels == "votes.csv" and config.data.soft_label_weight == 0.5
    with pytest.raises(ConfigError, match="soft_label_weight"):
        load_config(None, ["data.soft_label_weight=2"])
    with pytest.raises(ConfigError, match="synthetic"):
        load_config(None, ["data.kind=synthetic", "data.soft_labels=votes.csv"])


def test_training_items_carry_the_vote_distribution(manifest: Path, votes_csv: Path) -> None:
    dm = _datasets(_data(manifest, votes_csv))
    train_set, val_set = dm.datasets["train"], dm.datasets["val"]
    expected = _expected(train_set, votes_csv)
    rows = VoteTable(votes_csv).rows(train_set.manifest.records)
    assert sum(r is not None for r in rows) >= 10  # most of the 14 images have votes
    for i in range(len(train_set)):
        item = train_set[i]
        assert item["target"].dtype == torch.float32 and item["target"].shape == (7,)
        np.testing.assert_allclose(item["target"].numpy(), expected[i], rtol=1e-6)
        assert float(item["target"].sum()) == pytest.approx(1.0, abs=1e-6)
    assert "target" not in val_set[0]  # validation scores the folder labels
    batch = collate_clips([train_set[i] for i in (3, 0, 5)])
    np.testing.assert_allclose(batch["target"].numpy(), expected[[3, 0, 5]], rtol=1e-6)
    # unset: the items are what they were, with no target
    plain = _datasets(_data(manifest, None)).datasets["train"]
    assert "target" not in plain[0] and "target" not in collate_clips([plain[0], plain[1]])
    for key in ("frames", "mask", "label"):
        assert torch.equal(plain[2][key], train_set[2][key])


def test_a_weight_mixes_the_votes_with_the_folder_label(manifest: Path, votes_csv: Path):
    config = _data(manifest, votes_csv)
    config.soft_label_weight = 0.3
    train_set = _datasets(config).datasets["train"]
    expected = _expected(train_set, votes_csv, weight=0.3)
    np.testing.assert_allclose(train_set.targets.numpy(), expected, rtol=1e-6)


def test_a_teachers_probabilities_are_the_distillation_targets(manifest: Path, tmp_path: Path):
    """``rdam eval --out`` on the training split writes the teacher's probabilities; as
    ``data.soft_labels`` they are the targets (mixed with the folder label by the weight)."""
    classes = FER_CLASSES
    probs_csv, rows = _teacher(manifest, tmp_path)
    config = _data(manifest, probs_csv)
    config.soft_label_weight = 0.5
    train_set = _datasets(config).datasets["train"]
    assert list(train_set.class_names) == classes
    assert len(rows) == len(train_set) == 14
    for record, target in zip(train_set.manifest.records, train_set.targets.numpy(), strict=True):
        probs = rows["/".join(Path(record.path).parts[-3:])]  # train/<class>/<file>
        expected = 0.5 * probs + 0.5 * np.eye(len(classes))[record.label]
        np.testing.assert_allclose(target, expected, atol=1e-5)


def test_the_list_form_takes_several_sources_each_with_its_weight() -> None:
    both = "[{path: votes.csv, weight: 0.5}, {path: teacher.csv, weight: 0.5}]"
    config = load_config(None, [f"data.soft_labels={both}"])
    assert config.data.soft_label_sources() == [("votes.csv", 0.5), ("teacher.csv", 0.5)]
    assert load_config(
        None, ["data.soft_labels=v.csv", "data.soft_label_weight=0.3"]
    ).data.soft_label_sources() == [("v.csv", 0.3)]
    assert load_config(None, []).data.soft_label_sources() == []
    for bad, match in [
        ("[{path: a.csv, weight: 0.7}, {path: b.csv, weight: 0.4}]", "sum to 1.1"),
        ("[{path: a.csv}]", "exactly 'path' and 'weight'"),
        ("[{path: a.csv, weight: 0.5, extra: 1}]", "exactly 'path' and 'weight'"),
        ("[{path: a.csv, weight: -0.1}]", r"in \[0, 1\]"),
        ("[]", "non-empty list"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, [f"data.soft_labels={bad}"])
    with pytest.raises(ConfigError, match="leave soft_label_weight at 1"):
        load_config(
            None, ["data.soft_labels=[{path: a.csv, weight: 0.5}]", "data.soft_label_weight=0.5"]
        )


def test_votes_and_a_teacher_together_are_the_weighted_sum(
    manifest: Path, votes_csv: Path, tmp_path: Path
):
    """0.5 x FER+ votes + 0.5 x a teacher's probabilities: each training image's target is the
    weighted sum, the votes' half going to the label where an image has no votes."""
    classes = FER_CLASSES
    probs_csv, rows = _teacher(manifest, tmp_path)
    config = _data(manifest, None)
    config.soft_labels = [
        {"path": str(votes_csv), "weight": 0.5},
        {"path": str(probs_csv), "weight": 0.5},
    ]
    config.__post_init__()
    train_set = _datasets(config).datasets["train"]
    votes_half = _expected(train_set, votes_csv, weight=0.5)  # 0.5 votes + 0.5 one-hot (or one-hot)
    for i, record in enumerate(train_set.manifest.records):
        probs = rows["/".join(Path(record.path).parts[-3:])]  # train/<class>/<file>
        one_hot = np.eye(len(classes))[record.label]
        # the votes' part as in the one-source case, with the teacher taking the label's half
        expected = votes_half[i] - 0.5 * one_hot + 0.5 * probs
        np.testing.assert_allclose(train_set.targets.numpy()[i], expected, atol=1e-5)
    assert sum(r is None for r in VoteTable(votes_csv).rows(train_set.manifest.records)) < len(
        train_set
    )


def test_in_memory_batched_path_keeps_the_targets(manifest: Path, votes_csv: Path) -> None:
    decoded = _datasets(_data(manifest, votes_csv, batched=True)).datasets["train"]
    dm = _datasets(_data(manifest, votes_csv, batched=True, in_memory=True))
    kept = dm.datasets["train"]
    assert isinstance(kept, PreloadedClips)
    for i in range(len(kept)):
        assert torch.equal(kept[i]["target"], decoded[i]["target"])
    indices = [4, 1, 13, 7]
    batch = collate_clips([kept[i] for i in indices])
    dm.trainer = SimpleNamespace(training=True, current_epoch=1)
    out = augment_batch(dm, batch)
    assert not torch.equal(out["frames"], batch["frames"])  # augmented ...
    assert torch.equal(out["target"], batch["target"])  # ... the targets as they were
    expected = _expected(decoded, votes_csv)[indices]
    np.testing.assert_allclose(out["target"].numpy(), expected, rtol=1e-6)


def _module(label_smoothing: float) -> RDAMLightningModule:
    config = tiny_config(model={"num_classes": 3}, optim={"label_smoothing": label_smoothing})
    bundle = {
        "model_config": config.model.to_dict(),
        "class_names": ["a", "b", "c"],
        "preprocessing": {},
        "metadata": {"experiment": config.to_dict()},
    }
    torch.manual_seed(0)
    return RDAMLightningModule(bundle, optim=config.to_dict()["optim"]).eval()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_soft_target_loss_is_the_hand_computed_cross_entropy(smoothing: float) -> None:
    module = _module(smoothing)
    g = torch.Generator().manual_seed(3)
    batch = {
        "frames": torch.randint(0, 256, (3, 2, 3, 32, 32), generator=g, dtype=torch.uint8),
        "mask": torch.ones(3, 2, dtype=torch.bool),
        "label": torch.tensor([0, 2, 1]),
        "target": torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]),
    }
    with torch.no_grad():
        loss, logits = module.model_step(batch)
        logits = logits.double().numpy()
    # by hand: smoothed target q = (1 - e) t + e / C, loss = mean_b -sum_c q log softmax
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    q = (1 - smoothing) * batch["target"].double().numpy() + smoothing / 3
    assert float(loss) == pytest.approx(float(np.mean(-(q * log_p).sum(1))), rel=1e-5)
    # a one-hot target is the hard-label loss; without a target the loss is the old one
    hard = {**batch, "target": F.one_hot(batch["label"], 3).float()}
    without = {k: v for k, v in batch.items() if k != "target"}
    with torch.no_grad():
        a, b = module.model_step(hard)[0], module.model_step(without)[0]
        c = F.cross_entropy(
            torch.from_numpy(logits).float(), batch["label"], label_smoothing=smoothing
        )
    assert float(a) == pytest.approx(float(b), rel=1e-6) and float(b) == pytest.approx(
        float(c), rel=1e-6
    )


class _Batches(L.Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append({k: v.clone() for k, v in batch.items()})


@pytest.mark.parametrize("fast", [False, True], ids=["per_item", "in_memory_batched"])
def test_two_training_steps_on_soft_labels(
    manifest: Path, votes_csv: Path, tmp_path: Path, fast: bool
) -> None:
    config = tiny_config(
        model={"num_classes": 7},
        data={
            "kind": "csv",
            "root": str(manifest),
            "num_frames": 1,
            "batch_size": 7,
            "soft_labels": str(votes_csv),
            "augment": {"enabled": True, "batched": fast, "in_memory": fast},
        },
        optim={"label_smoothing": 0.1},
    )
    seen = _Batches()
    result = train(config, run_dir=tmp_path / "run", callbacks=[seen])
    assert len(seen.seen) == 2  # 14 images, 7 a batch
    train_set = _datasets(_data(manifest, votes_csv)).datasets["train"]
    expected = _expected(train_set, votes_csv)
    for batch in seen.seen:
        assert batch["target"].shape == (7, 7)
        np.testing.assert_allclose(batch["target"].numpy(), expected[batch["index"].numpy()])
    assert np.isfinite(result.metrics["train/loss_epoch"])
    assert result.model_file is not None and result.model_file.is_file()
    saved = load_config(tmp_path / "run" / "config.yaml", [])
    assert saved.data.soft_labels == str(votes_csv)


def test_a_probability_file_that_cannot_tell_the_splits_apart_is_refused(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    """A file whose paths lack the split folder (``happy/0.jpg``, as a hand-made one or one
    written before rdam kept it) matches, with generic file names, a training image and a val
    image alike: refused, since the training image could take the val image's targets.
    ``rdam eval --out`` keeps the split folder, so its files never do this."""
    import shutil

    from rdam.data.votes import write_vote_csv
    from rdam.errors import DatasetError

    lines = ["# classes: " + ",".join(FER_CLASSES), "path,label,split,group"]
    faces = iter(sorted((fer2013_dir / "train" / "happy").glob("*.jpg")))
    for split in ("train", "val"):
        for name in ("happy", "sad"):
            for i in range(2):
                path = tmp_path / "data" / split / name / f"{i}.jpg"  # the same names in each
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(next(faces), path)
                lines.append(f"{path},{name},{split},")
    manifest = tmp_path / "clips.csv"
    manifest.write_text("\n".join(lines) + "\n")
    header = "file," + ",".join(FER_CLASSES)
    row = ",".join(["1"] + ["0"] * (len(FER_CLASSES) - 1))
    bare = tmp_path / "bare.csv"
    bare.write_text(f"{header}\nhappy/0.jpg,{row}\n")
    with pytest.raises(DatasetError, match=r"row 'happy/0.jpg' matches the training clip .*"
                       r"train/happy/0.jpg and the val clip .*val/happy/0.jpg"):  # fmt: skip
        _datasets(_data(manifest, bare))
    # what rdam eval writes keeps the split folder: a val teacher matches no training image,
    # the training split's own probabilities (rdam eval --split train) match them all
    uniform = np.full((4, len(FER_CLASSES)), 1 / len(FER_CLASSES))
    val = sorted((tmp_path / "data" / "val").rglob("*.jpg"))
    of_val = write_vote_csv(tmp_path / "val_probs.csv", val, uniform, FER_CLASSES)
    assert of_val.read_text().splitlines()[1].startswith("val/happy/0.jpg,")
    with pytest.raises(DatasetError, match="none of the 4 training clips has a row"):
        _datasets(_data(manifest, of_val))
    train = sorted((tmp_path / "data" / "train").rglob("*.jpg"))
    own = write_vote_csv(tmp_path / "train_probs.csv", train, uniform, FER_CLASSES)
    targets = _datasets(_data(manifest, own)).datasets["train"].targets
    np.testing.assert_allclose(targets.numpy(), uniform, rtol=1e-6)
