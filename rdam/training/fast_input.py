"""The training input pipeline's fast path: batched augmentation and in-memory training clips.

Two options of ``data.augment`` (``docs/benchmarks.md``, figure 9):

- ``batched: true`` — the loader gives un-augmented clips and the training augmentation runs
  on whole batches in the main process, after the transfer to the device
  (:class:`~rdam.data.transforms.BatchClipTransform`). Clip ``i`` of epoch ``e`` gets the
  draw that :class:`~rdam.data.datasets.ClipDataset` would have given it (the generator of
  ``(seed, e, i)``, :func:`~rdam.data.transforms.clip_generator`), so the augmentations, a
  resumed run and any number of loader workers are as before — only cheaper: one batched pass
  instead of one torchvision call chain per item, and no loader worker is needed to hide it.
- ``in_memory: true`` — with batched augmentation the items of an image data set are fixed,
  so the training split is decoded once into one uint8 array (:class:`PreloadedClips`,
  ~200 MB for FER2013's 28,709 48-px faces) instead of decoding every JPEG every epoch.

:class:`~rdam.training.datamodule.ClipDataModule` calls :func:`augments_batches` (no
per-item augmentation then), :func:`train_dataset` and :func:`augment_batch` (its
``on_after_batch_transfer`` hook).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch.utils.data import Dataset

from rdam.config import AugmentConfig, DataConfig
from rdam.data.transforms import BatchClipTransform, ClipTransform, clip_generator
from rdam.data.video.formats import clip_kind
from rdam.errors import ConfigError

log = logging.getLogger(__name__)


def train_transform(aug: AugmentConfig, size: int) -> ClipTransform:
    """The training :class:`ClipTransform` of ``data.augment`` for frames of side ``size``."""
    return ClipTransform(
        size, True, tuple(aug.scale), aug.hflip, aug.rotation_deg, aug.color_jitter
    )


def augments_batches(aug: AugmentConfig) -> bool:
    """True when the training augmentation runs on batches (``enabled`` and ``batched``): the
    data set then applies none per item."""
    return bool(aug.enabled and aug.batched)


class PreloadedClips(Dataset):
    """All items of a data set with fixed items, decoded once and kept as stacked tensors.

    ``frames`` ``(N, K, 3, S, S)`` uint8 (clips shorter than the longest are zero-padded; each
    item gives back its own ``K``), ``mask``, ``label``, ``faces``/``face_mask`` and the soft
    ``target`` when the items carry them. Items equal the wrapped data set's items.

    Args:
        dataset: a :class:`~rdam.data.datasets.ClipDataset` whose items do not change between
            epochs: every clip an image (videos sample random frames) and a deterministic
            per-item transform (none, or an evaluation :class:`ClipTransform`).

    Raises:
        ConfigError: the items are not fixed.
    """

    def __init__(self, dataset: Any) -> None:
        transform = getattr(dataset, "transform", None)
        if transform is not None and getattr(transform, "train", True):
            raise ConfigError(
                "data.augment.in_memory needs items that do not change between epochs: use "
                "data.augment.batched=true (augmentation on batches) or augment.enabled=false"
            )
        records = dataset.manifest.records
        videos = sum(clip_kind(r.path) != "image" for r in records)
        if videos:
            raise ConfigError(
                f"data.augment.in_memory keeps decoded images; {videos} of {len(records)} "
                "training clips are videos (their frames are sampled anew every epoch)"
            )
        start = time.perf_counter()
        self.dataset = dataset
        n = len(dataset)
        first = dataset[0]
        pairs = (("frames", "mask"), ("faces", "face_mask"))
        self._streams = [(s, m) for s, m in pairs if s in first]
        items = [first] + [dataset[i] for i in range(1, n)]
        self.tensors: dict[str, torch.Tensor] = {}
        self.lengths: dict[str, list[int]] = {}
        for stream, mask_key in self._streams:
            self.lengths[stream] = [len(item[stream]) for item in items]
            k = max(self.lengths[stream])
            clips = torch.zeros((n, k, *first[stream].shape[1:]), dtype=first[stream].dtype)
            masks = torch.zeros((n, k), dtype=torch.bool)
            for i, item in enumerate(items):
                clips[i, : len(item[stream])] = item[stream]
                masks[i, : len(item[mask_key])] = item[mask_key]
            self.tensors[stream], self.tensors[mask_key] = clips, masks
        self.tensors["label"] = torch.stack([item["label"] for item in items])
        if "target" in first:  # soft targets (data.soft_labels)
            self.tensors["target"] = torch.stack([item["target"] for item in items])
        self.index = [int(item["index"]) for item in items]
        self.seconds = time.perf_counter() - start
        log.info(
            "in memory: %d training clips, %.0f MB, decoded in %.1f s",
            n,
            sum(t.numel() * t.element_size() for t in self.tensors.values()) / 1e6,
            self.seconds,
        )

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names

    @property
    def manifest(self) -> Any:
        return self.dataset.manifest

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.tensors["label"][item], "index": self.index[item]}
        if "target" in self.tensors:
            out["target"] = self.tensors["target"][item]
        for stream, mask_key in self._streams:
            k = self.lengths[stream][item]
            out[stream] = self.tensors[stream][item, :k]
            out[mask_key] = self.tensors[mask_key][item, :k]
        return out


def train_dataset(dataset: Any, config: DataConfig) -> Any:
    """The training data set: ``dataset`` itself, or with ``augment.in_memory`` its items
    decoded once into memory (:class:`PreloadedClips`)."""
    if not config.augment.in_memory:
        return dataset
    return PreloadedClips(dataset)


def augment_batch(datamodule: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """Apply the training augmentation to a transferred batch when it runs on batches
    (``augment.batched``) and the trainer is in a training step; anything else as is."""
    config: DataConfig = datamodule.config
    trainer = datamodule.trainer
    if (
        not augments_batches(config.augment)
        or config.kind == "synthetic"  # no augmentation there (see ClipDataModule)
        or trainer is None
        or not trainer.training
    ):
        return batch
    epoch = int(trainer.current_epoch)
    generators = [clip_generator(datamodule.seed, epoch, int(i)) for i in batch["index"]]
    out = dict(batch)
    # frames first, then faces, from the same generators: the per-item order of draws; the
    # data set's frames are already fitted to the spec's size, as ClipTransform gets them
    for stream in ("frames", "faces"):
        if stream in out:
            size = int(out[stream].shape[-1])
            transform = BatchClipTransform(train_transform(config.augment, size))
            out[stream] = transform(out[stream], generators)
    return out
