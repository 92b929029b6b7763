"""The training throughput options: batched augmentation, in-memory clips, channels_last and
the fused optimiser give what the plain path gives."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from _tiny import fer2013_subset, tiny_config

from rdam.config import DataConfig, load_config
from rdam.data.datasets import collate_clips
from rdam.errors import ConfigError
from rdam.training.datamodule import ClipDataModule
from rdam.training.fast_input import PreloadedClips, augment_batch
from rdam.training.module import RDAMLightningModule
from rdam.training.train import train


def _data(manifest: Path, **augment) -> DataConfig:
    return DataConfig(
        kind="csv",
        root=str(manifest),
        num_frames=1,
        frame_size=32,
        num_workers=0,
        augment={"enabled": True, "rotation_deg": 15, "color_jitter": 0.3, **augment},
    )


def _train_set(config: DataConfig, epoch: int = 0):
    dm = ClipDataModule(config, seed=0)
    dm.setup("fit")
    dataset = dm.datasets["train"]
    dataset.set_epoch(epoch)
    return dm, dataset


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    # colour blends may round one level apart (tests/data/test_batch_transforms.py)
    diff = (a.int() - b.int()).abs()
    assert int(diff.max()) <= 1
    assert float((diff == 0).float().mean()) >= 0.999


@pytest.fixture
def manifest(fer2013_dir: Path, tmp_path: Path) -> Path:
    return fer2013_subset(fer2013_dir, tmp_path / "fer.csv", {"train": 3, "val": 1})


def test_in_memory_items_equal_the_decoded_items(manifest: Path) -> None:
    _, decoded = _train_set(_data(manifest, batched=True))
    _, kept = _train_set(_data(manifest, batched=True, in_memory=True))
    assert isinstance(kept, PreloadedClips) and len(kept) == len(decoded) == 21
    for i in range(len(kept)):
        a, b = kept[i], decoded[i]
        assert set(a) == set(b) and a["index"] == b["index"]
        for key in ("frames", "mask", "label"):
            assert torch.equal(a[key], b[key]), key


def test_in_memory_needs_items_that_do_not_change(manifest: Path) -> None:
    with pytest.raises(ConfigError, match="batched"):
        _train_set(_data(manifest, in_memory=True))  # per-item augmentation


def test_batched_augmentation_draws_what_the_data_set_would(manifest: Path) -> None:
    _, per_item = _train_set(_data(manifest), epoch=2)
    dm, plain = _train_set(_data(manifest, batched=True, in_memory=True), epoch=2)
    indices = [5, 0, 17, 3, 9, 11]
    batch = collate_clips([plain[i] for i in indices])
    dm.trainer = SimpleNamespace(training=False, current_epoch=2)
    assert augment_batch(dm, batch) is batch  # validation: as is
    dm.trainer = SimpleNamespace(training=True, current_epoch=2)
    out = augment_batch(dm, batch)
    expected = collate_clips([per_item[i] for i in indices])
    assert not torch.equal(out["frames"], batch["frames"])
    _close(out["frames"], expected["frames"])
    assert torch.equal(out["label"], expected["label"])


class _Batches(L.Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append({k: v.clone() for k, v in batch.items()})


def test_training_augments_batches_in_the_loop(manifest: Path, tmp_path: Path) -> None:
    config = tiny_config(
        model={"num_classes": 7},
        data={
            "kind": "csv",
            "root": str(manifest),
            "num_frames": 1,
            "batch_size": 7,
            "augment": {"enabled": True, "batched": True, "in_memory": True},
        },
    )
    seen = _Batches()
    train(config, run_dir=tmp_path / "run", callbacks=[seen])
    assert len(seen.seen) == 3
    _, per_item = _train_set(
        _data(
            manifest,
            rotation_deg=config.data.augment.rotation_deg,
            color_jitter=config.data.augment.color_jitter,
        ),
    )
    for batch in seen.seen:
        expected = collate_clips([per_item[int(i)] for i in batch["index"]])
        _close(batch["frames"], expected["frames"])


def test_new_keys_parse_with_the_defaults() -> None:
    config = load_config(None, [])
    assert not config.data.augment.batched and not config.data.augment.in_memory
    assert config.trainer.channels_last is True and config.optim.fused is None
    config = load_config(
        None, ["data.augment.batched=true", "trainer.channels_last=false", "optim.fused=false"]
    )
    assert config.data.augment.batched and not config.trainer.channels_last
    assert config.optim.fused is False


def _module(channels_last: bool, fused: bool | None) -> RDAMLightningModule:
    config = tiny_config(trainer={"channels_last": channels_last})
    bundle = {
        "model_config": config.model.to_dict(),
        "class_names": ["a", "b"],
        "preprocessing": {},
        "metadata": {"experiment": config.to_dict()},
    }
    torch.manual_seed(0)
    optim = {**config.to_dict()["optim"], "scheduler": "none", "fused": fused}
    return RDAMLightningModule(bundle, optim=optim)


def test_channels_last_and_the_fused_optimiser_give_the_same_training_step() -> None:
    plain, fast = _module(False, False), _module(True, None)
    fast.model.load_state_dict(plain.model.state_dict())
    conv_name, conv = next(
        (n, m) for n, m in fast.model.named_modules() if isinstance(m, torch.nn.Conv2d)
    )
    conv_name += ".weight"
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    batch = {
        "frames": torch.randint(0, 256, (4, 2, 3, 32, 32), generator=g, dtype=torch.uint8),
        "mask": torch.ones(4, 2, dtype=torch.bool),
        "label": torch.tensor([0, 1, 1, 0]),
    }
    for module in (plain, fast):
        module.train()
    optimizers = [plain.configure_optimizers(), fast.configure_optimizers()]
    assert optimizers[0].param_groups[0]["fused"] is None
    assert optimizers[1].param_groups[0]["fused"] is True  # auto: CPU tensors
    losses = []
    for module in (plain, fast):
        loss, _ = module.model_step(batch)
        loss.backward()
        losses.append(float(loss.detach()))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    fast_params = dict(fast.model.named_parameters())
    grads = {n: p.grad for n, p in plain.model.named_parameters() if p.grad is not None}
    scale = max(float(g.abs().max()) for g in grads.values())
    for name, grad in grads.items():  # same gradients to float rounding (of the largest)
        torch.testing.assert_close(fast_params[name].grad, grad, atol=1e-5 * scale, rtol=1e-4)
        fast_params[name].grad = grad.clone()  # the same step from the same gradients:
    assert fast_params[conv_name].grad.stride() != fast_params[conv_name].stride()
    fast.on_before_optimizer_step(optimizers[1])  # lays hand-set gradients out like the weights
    for opt in optimizers:
        opt.step()
    for name, p in plain.model.named_parameters():
        torch.testing.assert_close(fast_params[name], p, rtol=1e-6, atol=1e-7)


class _Stop(Exception):
    pass


class _StopAtEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise _Stop


def test_a_resumed_run_with_batched_augmentation_is_exact(manifest: Path, tmp_path: Path) -> None:
    from rdam.checkpoint import read_checkpoint_file

    def config():
        return tiny_config(
            model={"num_classes": 7, "dropout": 0.2},
            data={
                "kind": "csv",
                "root": str(manifest),
                "num_frames": 1,
                "augment": {"enabled": True, "batched": True, "in_memory": True},
            },
            trainer={"max_epochs": 2},
        )

    train(config(), run_dir=tmp_path / "straight", resume=False)
    with pytest.raises(_Stop):
        train(config(), tmp_path / "resumed", resume=False, callbacks=[_StopAtEpoch()])
    train(config(), run_dir=tmp_path / "resumed", resume=True)
    a, b = (
        read_checkpoint_file(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]
        for name in ("straight", "resumed")
    )
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
