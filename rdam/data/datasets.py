"""The clip data set: one dict of tensors per labelled clip, and the collate that batches them.

:class:`ClipDataset` composes a manifest (:mod:`rdam.data.manifest`) with the one clip reader
(:func:`rdam.data.clips.read_clip`, under a :class:`~rdam.data.spec.ClipSpec`) or the
preprocessing cache (:mod:`rdam.data.cache`), and returns one dict per clip;
:func:`collate_clips` pads a list of them into a batch with a mask.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from rdam.data.clips import MODES, Clip, read_clip, sample_times
from rdam.data.frames import segment_indices
from rdam.data.manifest import Manifest
from rdam.data.spec import FACE_INPUTS, ClipSpec
from rdam.data.transforms import DEFAULT_CROP_FRACTION, TEST_CROPS, test_crop
from rdam.errors import ConfigError

if TYPE_CHECKING:
    from rdam.data.cache import CacheEntry, ClipCache, PreprocessSettings

log = logging.getLogger(__name__)


def _default_face_detector(score_threshold: float) -> Any:
    from rdam.data.faces import FaceDetector

    return FaceDetector(score_threshold=score_threshold)


# --------------------------------------------------------------------------------------------
# The data set


class ClipSample(TypedDict):
    """One clip as returned by :class:`ClipDataset`."""

    frames: torch.Tensor  # (K, 3, S, S) uint8
    mask: torch.Tensor  # (K,) bool, True = a real frame (or a frame with a face)
    label: torch.Tensor  # () int64, -1 when unlabelled
    index: int
    faces: NotRequired[torch.Tensor]  # (K, 3, S, S) uint8 face crops (stream "both")
    face_mask: NotRequired[torch.Tensor]  # (K,) bool, frames where a face was found
    target: NotRequired[torch.Tensor]  # (C,) float32 soft target (data set made with targets)


class ClipBatch(TypedDict):
    """A padded batch from :func:`collate_clips`."""

    frames: torch.Tensor  # (B, K, 3, S, S) uint8, zeros where mask is False
    mask: torch.Tensor  # (B, K) bool
    label: torch.Tensor  # (B,) int64
    index: torch.Tensor  # (B,) int64
    faces: NotRequired[torch.Tensor]  # (B, K, 3, S, S) uint8 (stream "both")
    face_mask: NotRequired[torch.Tensor]  # (B, K) bool
    target: NotRequired[torch.Tensor]  # (B, C) float32 soft targets


class ClipDataset(Dataset):
    """Clips of a manifest under a clip spec, read on the fly or from the preprocessing cache.

    Each item is a :class:`ClipSample` made from the :class:`~rdam.data.clips.Clip` of
    :func:`rdam.data.clips.read_clip` (the reader ``eval`` and ``predict`` use too): ``frames``
    ``(K, 3, S, S)`` uint8 with ``K = min(spec.num_frames, frames available)`` (a single image
    gives ``K = 1``), the main input of ``spec.stream`` (whole frames, or face crops whose
    ``mask`` marks the frames with a face); ``stream="both"`` adds ``faces``/``face_mask``, the
    face crops of the same K frames. ``label`` is -1 when unlabelled.

    Args:
        manifest: the clips.
        spec: the clip spec.
        mode: ``random`` (training: a random offset per segment) or ``center``.
        transform: called as ``transform(frames (K,3,S,S) uint8, generator)`` (training
            augmentation, e.g. :class:`rdam.data.transforms.ClipTransform`); None: none.
        cache: preprocessing cache made under a compatible spec (same frame size, fit, margin,
            colour, decoding and face settings; at least ``spec.num_frames`` frames and the
            streams the spec uses); clips found there are read from it (their stored frames
            sub-sampled to ``num_frames`` by segment), the others are read from their files.
        seed: base seed; the randomness of item ``i`` depends only on ``(seed, epoch, i)``
            (call :meth:`set_epoch` each epoch — training does it with ``SetDatasetEpoch``),
            so resumed runs and any number of workers reproduce the same draws.
        face_detector_factory: picklable zero-argument callable returning a face detector,
            called once per process (default: YuNet at ``spec.face_score``).
        face_input: how face crops are made (:data:`rdam.data.spec.FACE_INPUTS`).
        test_views: multi-view testing (``center`` mode only): each clip gives ``V`` items,
            view ``v`` sampled at offset ``(v + 0.5) / V`` inside every segment (from the
            video, or from the stored frames of a cached clip; a cache preprocessed with the
            same ``num_views`` gives its stored views). Items of one clip share ``index``;
            :func:`rdam.evaluation.metrics.predict_loader` averages their probabilities.
        test_flip: also give each view mirrored (horizontal flip), doubling the items.
        test_crops: 5: also give each view as its five test crops
            (:func:`rdam.data.transforms.test_crop`, ``test_crop_fraction`` of the side) instead
            of whole; with ``test_flip`` the ten-crop test.
        targets: ``(N, C)`` per-record training targets (probability distributions, e.g.
            :func:`rdam.data.votes.soft_targets`), given as each item's ``target``; None: the
            items carry ``label`` only.
    """

    def __init__(
        self,
        manifest: Manifest,
        spec: ClipSpec,
        mode: str = "random",
        transform: Callable[..., torch.Tensor] | None = None,
        cache: ClipCache | None = None,
        seed: int = 0,
        face_detector_factory: Callable[[], Any] | None = None,
        face_input: str = "auto",
        test_views: int = 1,
        test_flip: bool = False,
        targets: np.ndarray | torch.Tensor | None = None,
        test_crops: int = 1,
        test_crop_fraction: float = DEFAULT_CROP_FRACTION,
    ) -> None:
        if test_views < 1:
            raise ConfigError(f"test_views must be >= 1, got {test_views}")
        if test_crops not in TEST_CROPS:
            raise ConfigError(f"test_crops must be one of {TEST_CROPS}, got {test_crops!r}")
        if (test_views > 1 or test_flip or test_crops > 1) and mode != "center":
            raise ConfigError(
                "test_views/test_flip/test_crops are test-time views: they need mode='center', "
                f"got {mode!r}"
            )
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if face_input not in FACE_INPUTS:
            raise ConfigError(f"unknown face_input {face_input!r}; valid: {', '.join(FACE_INPUTS)}")
        self.manifest = manifest
        self.spec = spec
        self.mode = mode
        self.transform = transform
        self.cache = cache
        self.seed = int(seed)
        self.epoch = 0
        self.face_detector_factory = face_detector_factory or functools.partial(
            _default_face_detector, spec.face_score
        )
        self.face_input = face_input
        self.test_views = int(test_views)
        self.test_flip = bool(test_flip)
        self.test_crops = int(test_crops)
        self.test_crop_fraction = float(test_crop_fraction)
        self._items_per_clip = self.test_views * self.test_crops * (2 if self.test_flip else 1)
        self.targets: torch.Tensor | None = None
        if targets is not None:
            self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
            if self.targets.ndim != 2 or len(self.targets) != len(manifest.records):
                raise ConfigError(
                    f"targets must be (clips, classes) = ({len(manifest.records)}, C), got "
                    f"{tuple(self.targets.shape)}"
                )
        self._detector: Any = None
        self._cache_keys: list[str | None] | None = None
        if cache is not None:
            check_cache_spec(cache.settings, spec, face_input)
        if cache is not None and mode == "center":
            why = _other_frames_than_centres(cache.settings, spec.num_frames, self.test_views)
            if why:
                log.warning(
                    "the cache %s holds other frames than the ones %s reads (%s): these clips are "
                    "read from their files, as rdam eval and predict read them",
                    cache.directory,
                    "validation" if self.test_views == 1 else "the multi-view test",
                    why,
                )
                self.cache = cache = None
        if cache is not None:
            self._cache_keys = cache.lookup_keys([r.path for r in manifest.records])
            misses = sum(k is None for k in self._cache_keys)
            if misses:
                log.warning(
                    "%d of %d clips are not in the cache %s and will be read from their files",
                    misses,
                    len(manifest),
                    cache.directory,
                )

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    def __len__(self) -> int:
        return len(self.manifest.records) * self._items_per_clip

    def set_epoch(self, epoch: int) -> None:
        """Make the random draws of the next pass depend on ``epoch``."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_detector"] = None  # detectors hold native handles; rebuilt in each worker
        return state

    def _rng(self, index: int) -> tuple[np.random.Generator, torch.Generator]:
        # Only (seed, epoch, index): a run resumed from a checkpoint, with any number of
        # workers, draws exactly the augmentations of an uninterrupted one.
        seq = np.random.SeedSequence([self.seed, self.epoch, index])
        rng = np.random.default_rng(seq)
        gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))
        return rng, gen

    def _detector_instance(self) -> Any:
        if self._detector is None:
            from rdam.data.faces import LazyFaceDetector

            self._detector = LazyFaceDetector(self.face_detector_factory)
        return self._detector

    def clip(self, index: int, rng: np.random.Generator | None = None, view: int = 0) -> Clip:
        """The :class:`~rdam.data.clips.Clip` of record ``index`` before augmentation: random
        segment offsets from ``rng``, else the centres (or view ``view`` of ``test_views``).

        Raises:
            VideoError (or subclass) naming the file when the clip cannot be read.
        """
        if self._cache_keys is not None and self._cache_keys[index] is not None:
            entry = self.cache.get(self._cache_keys[index])
            clip = self._from_cache(entry, rng, view)
            if clip is not None:
                return clip
        return read_clip(
            self.manifest.records[index].path,
            self.spec,
            mode="random" if rng is not None else "center",
            rng=rng,
            view=(view, self.test_views),
            face_input=self.face_input,
            detector=self._detector_instance() if self.spec.uses_faces else None,
        )

    def _from_cache(
        self, entry: CacheEntry, rng: np.random.Generator | None, test_view: int
    ) -> Clip | None:
        """The clip from a cache entry; None where the entry cannot give the frames that
        reading the file gives (then the file is read)."""
        num_views, stored = entry.timestamps.shape
        k = self.spec.num_frames
        if rng is not None:  # training: any stored view, random frames in it
            view = int(rng.integers(num_views)) if num_views > 1 else 0
            idx = segment_indices(stored, k, rng)
        elif 1 < stored < self.cache.settings.spec.num_frames:  # a short clip, stored whole
            return self._short_from_cache(entry, test_view)
        elif num_views == self.test_views:  # the cache holds exactly these views
            view, idx = test_view, segment_indices(stored, k, None)
        elif self.test_views == 1 and num_views % 2:  # the middle view is at the centres
            view, idx = num_views // 2, segment_indices(stored, k, None)
        else:
            view, idx = 0, segment_indices(stored, k, None, (test_view, self.test_views))
        return entry.clip(self.spec, view, idx)

    def _short_from_cache(self, entry: CacheEntry, test_view: int) -> Clip | None:
        """A clip with fewer frames than the cache's ``K_s`` holds each of its frames once
        (where it does not, None: the file is read). The frames read are then the ones
        :func:`~rdam.data.clips.read_clip` shows at its sampled times: at each, the last
        stored frame at or before it, as the video reader shows frames. (The centre rule for
        long clips, the middle of each group of stored centres, would pick others here.)"""
        meta = entry.meta or {}
        shown = entry.timestamps[0]
        available = meta.get("frames_available")
        if meta.get("duration") is None or len(np.unique(shown)) != available:
            return None
        times = sample_times(
            float(meta["duration"]), self.spec.num_frames, available, views=self.test_views
        )[test_view if self.test_views > 1 else 0]
        idx = np.clip(np.searchsorted(shown, times, side="right") - 1, 0, len(shown) - 1)
        return entry.clip(self.spec, 0, idx)

    def __getitem__(self, item: int) -> ClipSample:
        if not 0 <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} items")
        index, view = divmod(item, self._items_per_clip)
        view, flip = divmod(view, 2) if self.test_flip else (view, 0)
        view, crop = divmod(view, self.test_crops)
        rng, gen = self._rng(index)
        clip = self.clip(index, rng if self.mode == "random" else None, view)

        def tensor(frames: np.ndarray) -> torch.Tensor:
            out = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            # One draw per stream from the same generator: each stream is clip-consistent and
            # the draws still depend only on (seed, epoch, index).
            out = out if self.transform is None else self.transform(out, gen)
            if self.test_crops > 1:
                out = test_crop(out, crop, self.test_crop_fraction)
            return (out.flip(-1) if flip else out).contiguous()

        label = self.manifest.records[index].label
        sample: ClipSample = {
            "frames": tensor(clip.frames),
            "mask": torch.from_numpy(np.asarray(clip.mask, bool)),
            "label": torch.tensor(-1 if label is None else label, dtype=torch.int64),
            "index": index,
        }
        if clip.faces is not None:
            sample["faces"] = tensor(clip.faces)
            sample["face_mask"] = torch.from_numpy(np.asarray(clip.face_mask, bool))
        if self.targets is not None:
            sample["target"] = self.targets[index].clone()
        return sample


def _other_frames_than_centres(settings: PreprocessSettings, k: int, test_views: int) -> str:
    """Why a cache cannot give the frames the centre (or ``test_views``-view) sampling of
    ``k`` frames reads from a video (:func:`rdam.data.clips.read_clip`); "" when it can. Its
    frames are the centres when it was made in ``center`` mode with the same views (or an odd
    number of views for one: the middle one is at the centres), and its ``K_s`` stored frames
    per view hold every ``k``-segment centre: ``K_s`` an odd multiple of ``k`` for one view
    (the middle stored frame of each segment), ``K_s = k`` for several."""
    if settings.mode != "center":
        return f"made in {settings.mode!r} mode: random offsets, not the segment centres"
    views = settings.num_views
    if views != test_views and not (test_views == 1 and views % 2):
        return f"{views} views per clip, where {test_views} are read"
    stored = settings.spec.num_frames
    exact = stored == k if test_views > 1 else stored % k == 0 and (stored // k) % 2 == 1
    if not exact:
        return f"{stored} stored frames per view, which do not hold the centres of {k} segments"
    return ""


def check_cache_spec(settings: PreprocessSettings, spec: ClipSpec, face_input: str) -> None:
    """Refuse a cache whose arrays were made otherwise than ``spec`` makes them: another
    frame size, fit, margin, colour, decoding or face setting, fewer frames, or a stream the
    spec uses and the cache lacks. (Stored frames are never resized or re-cropped: that would
    give the model other pixels than ``eval`` and ``predict`` give it.)

    Raises:
        ConfigError: listing each difference and what to do.
    """
    stored = settings.spec
    problems = [
        f"{name}: cache {mine!r}, spec {theirs!r}"
        for name, (mine, theirs) in stored.differences(spec).items()
        if name not in ("num_frames", "stream")
    ]
    if stored.num_frames < spec.num_frames:
        problems.append(
            f"num_frames: the cache stores {stored.num_frames}, the spec takes {spec.num_frames}"
        )
    if spec.uses_faces and not stored.uses_faces:
        problems.append(f"stream: the cache stores no face crops (stream {stored.stream!r})")
    if spec.uses_frames and not stored.uses_frames:
        problems.append(f"stream: the cache stores no whole frames (stream {stored.stream!r})")
    if spec.uses_faces and settings.face_input != face_input:
        problems.append(f"face_input: cache {settings.face_input!r}, data set {face_input!r}")
    if problems:
        raise ConfigError(
            "the preprocessing cache was made under another clip spec: "
            + "; ".join(problems)
            + ". Preprocess again with the model's settings (`rdam preprocess --checkpoint "
            "MODEL`), or train with the cache's spec (leave those data settings unset)"
        )


def _pad_stack(
    clips: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], what: str, indices: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    k_max = max(int(c.shape[0]) for c in clips)
    shape = clips[0].shape[1:]
    for c, i in zip(clips, indices, strict=True):
        if c.shape[1:] != shape:
            raise ValueError(
                f"{what} of one batch must share (3, S, S); got {tuple(shape)} and "
                f"{tuple(c.shape[1:])} (index {i})"
            )
    out = torch.zeros((len(clips), k_max, *shape), dtype=clips[0].dtype)
    mask = torch.zeros((len(clips), k_max), dtype=torch.bool)
    for i, (c, m) in enumerate(zip(clips, masks, strict=True)):
        out[i, : c.shape[0]] = c
        mask[i, : c.shape[0]] = m
    return out, mask


def collate_clips(batch: Sequence[ClipSample]) -> ClipBatch:
    """Pad clips to the longest ``K`` of the batch: zero frames with mask False.

    Returns:
        frames ``(B, K, 3, S, S)`` uint8, mask ``(B, K)`` bool, label ``(B,)``, index ``(B,)``;
        ``faces``/``face_mask`` padded the same way when the samples carry them, and
        ``target`` ``(B, C)`` stacked when they carry soft targets.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    indices = [int(s["index"]) for s in batch]
    frames, mask = _pad_stack(
        [s["frames"] for s in batch], [s["mask"] for s in batch], "clips", indices
    )
    out: ClipBatch = {
        "frames": frames,
        "mask": mask,
        "label": torch.stack([torch.as_tensor(s["label"], dtype=torch.int64) for s in batch]),
        "index": torch.tensor(indices, dtype=torch.int64),
    }
    if "faces" in batch[0]:
        out["faces"], out["face_mask"] = _pad_stack(
            [s["faces"] for s in batch], [s["face_mask"] for s in batch], "face clips", indices
        )
    if "target" in batch[0]:
        out["target"] = torch.stack([torch.as_tensor(s["target"]) for s in batch]).float()
    return out


__all__ = [
    "ClipBatch",
    "ClipDataset",
    "ClipSample",
    "check_cache_spec",
    "collate_clips",
]
