"""The LightningDataModule: manifest -> clip data sets -> loaders, for any configured data set.

``data.kind: synthetic`` builds the embedded demo set in memory instead of reading a manifest
(:mod:`rdam.data.synthetic`), configured by ``data.synthetic``::

    synthetic: {num_train: 512, num_val: 256, num_test: 0, num_classes: 4,
                informative_frames: 2, seed: 0}

Frames are ``data.frame_size`` pixels, clips ``data.num_frames`` frames (the clip spec's). The train, val and test
sets are drawn with different seeds (``seed``, ``seed + 1``, ``seed + 2``); without ``num_test``
the test set is the validation set. Augmentation is not applied to it: its classes are stripe
orientations, which flips and rotations would change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rdam.config import DataConfig
from rdam.data.datasets import ClipDataset, collate_clips
from rdam.data.layouts import load_manifest
from rdam.data.manifest import Manifest
from rdam.data.spec import ClipSpec
from rdam.data.transforms import ClipTransform
from rdam.data.video.formats import IMAGE_EXTENSIONS
from rdam.errors import ConfigError, DatasetError
from rdam.training import fast_input
from rdam.training.resume import mid_epoch_batches

log = logging.getLogger(__name__)


def _rank_world() -> tuple[int, int]:
    """This process's DDP rank and the world size; (0, 1) outside DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffleSampler(Sampler[int]):
    """Shuffles with a generator seeded by ``(seed, epoch)`` and splits across DDP ranks.

    The order of an epoch depends on nothing but the seed and the epoch number, so a run
    resumed from a checkpoint sees the same batches as an uninterrupted one. Ranks get
    interleaved slices of one permutation. With ``pad`` (training) the slices are padded by
    wrapping so all ranks take the same number of steps; without it (validation and test)
    each clip goes to exactly one rank, so the metrics, summed over ranks by torchmetrics,
    count every clip once (padding would count up to ``world - 1`` clips twice).
    """

    def __init__(self, size: int, shuffle: bool, seed: int = 0, pad: bool = True) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.pad = pad
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, indices) of a resumed epoch

    def skip(self, epoch: int, indices: int) -> None:
        """Leave out the first ``indices`` of this rank's order in epoch ``epoch`` (the part
        of it trained before a mid-epoch checkpoint); ``__len__`` stays the epoch's length."""
        self._skip = (int(epoch), int(indices))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._skip is not None and self._skip[0] != epoch:
            self._skip = None  # the resumed epoch is over

    def __len__(self) -> int:
        rank, world = _rank_world()
        if not self.pad:
            return len(range(rank, self.size, world))
        return -(-self.size // world)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        rank, world = _rank_world()
        if self.pad:
            per_rank = len(self)
            order = (order * (1 + (per_rank * world) // max(1, self.size)))[: per_rank * world]
        order = order[rank::world]
        if self._skip is not None and self._skip[0] == self.epoch:
            order = order[self._skip[1] :]
        return iter(order)


class ClipDataModule(L.LightningDataModule):
    """Builds train/val/test :class:`ClipDataset` s from a :class:`DataConfig`.

    ``class_names`` is fixed by the training manifest and stored with every checkpoint.
    """

    def __init__(self, config: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = seed
        self._manifest: Manifest | None = None
        self.datasets: dict[str, Dataset] = {}
        self._resume: tuple[int, int] | None = None  # (epoch, batches trained) mid-epoch
        self._spec: ClipSpec | None = None
        self._cache_obj: Any = None

    @property
    def is_synthetic(self) -> bool:
        return self.config.kind == "synthetic"

    @property
    def manifest(self) -> Manifest:
        if self.is_synthetic:
            raise ConfigError("the synthetic data set (data.kind=synthetic) has no manifest")
        if self._manifest is None:
            spec: dict[str, Any] = {"kind": self.config.kind, "root": self.config.root}
            spec.update(self.config.options)
            self._manifest = load_manifest(spec)
        return self._manifest

    @property
    def class_names(self) -> list[str]:
        if self.is_synthetic:
            from rdam.data.synthetic import synthetic_class_names, synthetic_options

            return synthetic_class_names(
                int(synthetic_options(self.config.synthetic)["num_classes"])
            )
        return list(self.manifest.class_names)

    @property
    def trains_on_single_images(self) -> bool:
        """Every clip of the training split is a single image (a one-frame clip: FER2013)."""
        if self.is_synthetic:
            return False
        records = self.manifest.split(self.config.train_split).records
        return all(Path(r.path).suffix.lower() in IMAGE_EXTENSIONS for r in records)

    def given_face_crops(self, limit: int = 100, seed: int = 0) -> list[str]:
        """Up to ``limit`` training images (drawn with ``seed``) when a face-stream model trains
        on face crops given as images (FER2013): single images that ``data.face_input`` takes
        as crops (``given``, or ``auto`` for an image at most twice the frame size); else
        ``[]``. The face detector never runs on them, so nothing in training ties the clip
        spec's ``face_margin``, which frames the faces found on videos, to how they are framed
        (:mod:`rdam.data.framing`)."""
        from rdam.data.framing import draw
        from rdam.data.spec import resolve_face_input
        from rdam.data.video.images import image_size

        if not (self.spec.uses_faces and self.trains_on_single_images):
            return []
        records = self.manifest.split(self.config.train_split).records
        drawn = [r.path for r in draw(records, limit, seed)]
        for path in drawn:
            width, height = image_size(Path(path))
            face_input = self.config.face_input
            if resolve_face_input(face_input, "image", width, height, self.spec) != "given":
                return []
        return drawn

    def training_crop_framing(self, limit: int = 100) -> Any:
        """:func:`rdam.data.framing.measure_framing` of up to ``limit`` training crops when the
        model trains on face crops given as images (:meth:`given_face_crops`), with the clip
        spec's face score; None for other training data, or when the detector finds no face in
        the crops (synthetic images; logged)."""
        crops = self.given_face_crops(limit)
        if not crops:
            return None
        from rdam.data.faces import FaceDetector
        from rdam.data.framing import measure_framing
        from rdam.data.video import read_image

        detector = FaceDetector(score_threshold=self.spec.face_score)
        try:
            return measure_framing((read_image(path) for path in crops), detector)
        except ConfigError as exc:  # not faces the detector knows: nothing to measure
            log.info("the framing of the training face crops was not measured: %s", exc)
            return None

    @property
    def trains_on_one_frame_clips(self) -> bool:
        """Every training clip has one frame: single images, or ``num_frames`` 1. Learned frame
        weights get no gradient from such clips (a weighted mean of one feature is that
        feature)."""
        return self.trains_on_single_images or self.spec.num_frames == 1

    @property
    def spec(self) -> ClipSpec:
        """The clip spec of a model trained on this data: the data config's fields over the
        preprocessing cache's spec (see :meth:`DataConfig.clip_spec`). Stored in the model."""
        if self._spec is None:
            cache = self._cache()
            self._spec = self.config.clip_spec(cache.settings.spec if cache is not None else None)
        return self._spec

    def _cache(self) -> Any:
        if not self.config.cache_dir:
            return None
        if self._cache_obj is None:
            from rdam.data.cache import ClipCache

            self._cache_obj = ClipCache.open(self.config.cache_dir)
        return self._cache_obj

    def _synthetic(self, split: str) -> Dataset:
        from rdam.data.synthetic import synthetic_split

        return synthetic_split(
            self.config.synthetic, split, self.spec.num_frames, self.spec.frame_size
        )

    def _dataset(self, split: str, train: bool, test: bool = False) -> Dataset:
        c = self.config
        views = (c.test_views, c.test_flip) if test else (1, False)
        if self.is_synthetic:
            if views != (1, False):
                raise ConfigError(
                    "data.test_views/test_flip need clips from a manifest; the synthetic set "
                    "has no views to sample"
                )
            if train and c.augment.enabled:
                log.info("augmentation is off for the synthetic set (its classes are orientations)")
            return self._synthetic("train" if train else split)
        part = self.manifest.split(split)
        if len(part) == 0:
            raise DatasetError(
                f"split {split!r} of data set {c.root!r} is empty; splits found: "
                f"{self.manifest.splits}"
            )
        aug = c.augment
        transform = None
        if train and aug.enabled and not fast_input.augments_batches(aug):
            transform = ClipTransform(
                self.spec.frame_size,
                True,
                tuple(aug.scale),
                aug.hflip,
                aug.rotation_deg,
                aug.color_jitter,
            )
        dataset = ClipDataset(
            part,
            self.spec,
            mode="random" if train else "center",
            transform=transform,
            cache=self._cache(),
            seed=self.seed,
            face_input=c.face_input,
            test_views=views[0],
            test_flip=views[1],
            targets=self._soft_targets(part) if train and c.soft_labels else None,
        )
        return fast_input.train_dataset(dataset, c) if train else dataset  # data.augment.in_memory

    def _soft_targets(self, part: Manifest) -> Any:
        """The training targets of ``data.soft_labels``
        (:func:`rdam.data.votes.mixed_soft_targets`, one source or several)."""
        from rdam.data.votes import VoteTable, mixed_soft_targets, soft_target_columns

        c = self.config
        columns = soft_target_columns(part.class_names)
        named = c.soft_label_sources()
        sources = [(VoteTable(path, columns), w) for path, w in named]
        root = c.root if c.root and Path(c.root).is_dir() else None  # else suffix matching
        others = [r for r in self.manifest.records if r.split != part.records[0].split]
        for (path, _), (table, _) in zip(named, sources, strict=True):
            _check_rows_tell_splits_apart(table, part.records, others, path, root)
        targets, found = mixed_soft_targets(part.records, sources, part.class_names, root=root)
        for (path, weight), count in zip(named, found, strict=True):
            log.info(
                "soft labels: %d of %d training clips have votes in %s (weight %g); for the "
                "others that weight goes to their one-hot label",
                count,
                len(part),
                path,
                weight,
            )
            if count == 0:
                raise DatasetError(
                    f"none of the {len(part)} training clips has a row in {path}: its 'file' "
                    "column must hold the images' paths relative to the data root (e.g. "
                    "train/angry/x.jpg) or absolute"
                )
        return targets

    @property
    def test_split(self) -> str:
        """The split the ``test`` stage reads: ``data.test_split`` or else ``data.val_split``;
        for the synthetic set its own test set if ``num_test`` is set, else its val set."""
        if self.is_synthetic:
            from rdam.data.synthetic import synthetic_test_split

            return synthetic_test_split(self.config.synthetic)
        return self.config.test_split or self.config.val_split

    def setup(self, stage: str | None = None) -> None:
        c = self.config
        if stage in (None, "fit") and "train" not in self.datasets:
            if not self.is_synthetic and c.val_split:
                self._check_held_out(c.train_split, c.val_split)
            self.datasets["train"] = self._dataset(c.train_split, train=True)
        if stage in (None, "fit", "validate") and "val" not in self.datasets and c.val_split:
            split = "val" if self.is_synthetic else c.val_split
            self.datasets["val"] = self._dataset(split, train=False)
        if stage in (None, "test") and "test" not in self.datasets:
            self.datasets["test"] = self._dataset(self.test_split, train=False, test=True)

    def _check_held_out(self, train: str, val: str) -> None:
        """Validation scores must come from clips training does not see: a clip (by path) in
        both splits is refused; validating on the training split itself is said in a warning
        (val/* then measure the fit, not what the model does on new clips)."""
        if train == val:
            log.warning(
                "data.val_split is the training split %r: validation scores the clips it trains "
                "on, so val/* (and the best checkpoint) say nothing about new clips",
                train,
            )
            return
        train_paths = {r.path for r in self.manifest.records if r.split == train}
        both = sorted({r.path for r in self.manifest.records if r.split == val} & train_paths)
        if both:
            raise DatasetError(
                f"{len(both)} clip(s) are in both the training split {train!r} and the "
                f"validation split {val!r} (e.g. {both[0]}): validation would score clips it "
                "trains on. Fix the manifest or split lists (rdam validate lists duplicates)"
            )

    def _loader(self, name: str, train: bool) -> DataLoader:
        dataset = self.datasets[name]
        c = self.config
        batch = c.batch_size if train else (c.eval_batch_size or c.batch_size)
        sampler = EpochShuffleSampler(len(dataset), shuffle=train, seed=self.seed, pad=train)
        _, world = _rank_world()
        if not train and len(dataset) < world:
            raise DatasetError(
                f"the {name} split has {len(dataset)} clip(s), fewer than the {world} DDP "
                f"processes: each process needs at least one; use fewer devices or a larger split"
            )
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=c.num_workers,
            collate_fn=collate_clips,
            persistent_workers=False,
            drop_last=train and len(dataset) > batch,
            # worker seeds from the loader's own generator: iterating a loader leaves the
            # global RNG (dropout) alone, so a resumed run draws what an uninterrupted one does
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        loader = self._loader("train", train=True)
        # Lightning may create the first iterator (and spawn its workers, which copy the data
        # set) before the epoch hooks run; on a resumed run that epoch is not 0.
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        loader.sampler.set_epoch(epoch)
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        if self._resume is not None:
            epoch, batches = self._resume
            loader.sampler.skip(epoch, batches * self.config.batch_size)
        return loader

    def state_dict(self) -> dict[str, Any]:
        """In a mid-epoch checkpoint: the epoch and how many of its batches were trained."""
        done = mid_epoch_batches(self.trainer)
        if done is None:
            return {}
        return {"epoch": int(self.trainer.current_epoch), "train_batches_done": done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._resume = (int(state_dict["epoch"]), int(state_dict["train_batches_done"]))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # data.augment.batched: the training augmentation on whole batches (rdam.training.fast_input)
        return fast_input.augment_batch(self, batch)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def _check_rows_tell_splits_apart(
    table: Any, train: Sequence[Any], others: Sequence[Any], path: str, root: Any
) -> None:
    """Refuse a vote or probability file one of whose rows matches a training clip and a clip
    of another split (paths that do not tell the splits apart, as ``angry/1.jpg`` of a
    teacher scored on val matching ``train/angry/1.jpg`` and ``val/angry/1.jpg``): the
    training clip would learn another image's targets."""
    train_rows = {}
    for record, row in zip(train, table.rows(train, root), strict=True):
        if row is not None:
            train_rows.setdefault(row, record)
    for record, row in zip(others, table.rows(others, root), strict=True):
        if row in train_rows:
            raise DatasetError(
                f"{path}: its row {table.files[row]!r} matches the training clip "
                f"{train_rows[row].path} and the {record.split} clip {record.path}: its paths "
                "do not tell the splits apart, so a training clip would take another image's "
                "targets. Write the paths relative to the data root with their split folder "
                "(train/angry/x.jpg) or absolute; a teacher's probabilities for training are "
                "those of rdam eval --split train"
            )
