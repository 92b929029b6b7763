"""The clip data set: one dict of tensors per labelled clip, and the collate that batches them.

:class:`ClipDataset` composes a manifest (:mod:`rdam.data.manifest`) with the video reader
(:mod:`rdam.data.video`), the segment sampler (:mod:`rdam.data.sampling`), the face cropper
(:mod:`rdam.data.faces`) or the preprocessing cache (:mod:`rdam.data.cache`), and returns one
dict per clip; :func:`collate_clips` pads a list of them into a batch with a mask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from rdam.data.frames import fit_frames, read_image, segment_indices
from rdam.data.manifest import Manifest, clip_kind
from rdam.errors import (
    ConfigError,
)

if TYPE_CHECKING:
    from rdam.data.cache import CacheEntry, ClipCache

log = logging.getLogger(__name__)

STREAMS = ("frames", "faces", "both")
SAMPLER_MODES = ("random", "center")


def _default_face_detector() -> Any:
    from rdam.data.faces import FaceDetector

    return FaceDetector()


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


class ClipBatch(TypedDict):
    """A padded batch from :func:`collate_clips`."""

    frames: torch.Tensor  # (B, K, 3, S, S) uint8, zeros where mask is False
    mask: torch.Tensor  # (B, K) bool
    label: torch.Tensor  # (B,) int64
    index: torch.Tensor  # (B,) int64
    faces: NotRequired[torch.Tensor]  # (B, K, 3, S, S) uint8 (stream "both")
    face_mask: NotRequired[torch.Tensor]  # (B, K) bool


class ClipDataset(Dataset):
    """Clips of a manifest, decoded on the fly or read from the preprocessing cache.

    Each item is a :class:`ClipSample`: ``frames`` ``(K, 3, S, S)`` uint8 with
    ``K = min(num_frames, frames available)`` (a single image gives ``K = 1``), ``mask`` ``(K,)``
    (all True for ``stream="frames"``; for ``stream="faces"`` the frames are face crops and the
    mask marks frames where a face was found), ``label`` (-1 when unlabelled) and ``index``.
    ``stream="both"`` (the two-stream model, Table 5) gives whole ``frames`` with an all-True
    ``mask`` plus ``faces``/``face_mask``: the face crops of the same K sampled frames.

    Args:
        manifest: the clips.
        num_frames: ``K``, segments sampled per clip.
        frame_size: ``S``; frames are fitted to ``S x S`` (``fit``) before ``transform``.
        sampler_mode: ``random`` (training: random offset per segment) or ``center``.
        stream: ``frames`` (whole frames), ``faces`` (face crops of side ``S``) or ``both``.
        transform: called as ``transform(frames (K,3,S,S) uint8, generator)``; e.g.
            :class:`rdam.data.transforms.ClipTransform`.
        cache: preprocessing cache; clips found there are read from it (their stored frames
            are sub-sampled to ``num_frames`` by segment), the others are decoded.
        seed: base seed; the randomness of item ``i`` depends only on ``(seed, epoch, i)``
            (call :meth:`set_epoch` each epoch — training does it with ``SetDatasetEpoch``),
            so resumed runs and any number of workers reproduce the same draws.
        face_detector_factory: picklable zero-argument callable returning a face detector,
            called once per process (default: YuNet from :func:`rdam.data.faces.resolve_face_model`).
        fit: how frames are fitted to a square (see :func:`rdam.data.frames.fit_frames`).
        max_side: decode videos at most this large (longer side) before fitting / face search.
        face_margin: box margin for face crops.
        test_views: multi-view testing (``center`` sampling only): each clip gives ``V`` items,
            view ``v`` sampled at offset ``(v + 0.5) / V`` inside every segment (from the
            video, or from the stored frames of a cached clip; a cache preprocessed with the
            same ``num_views`` gives its stored views). Items of one clip share ``index``;
            :func:`rdam.evaluation.metrics.predict_loader` averages their probabilities.
        test_flip: also give each view mirrored (horizontal flip), doubling the items.
    """

    def __init__(
        self,
        manifest: Manifest,
        num_frames: int,
        frame_size: int,
        sampler_mode: str = "random",
        stream: str = "frames",
        transform: Callable[..., torch.Tensor] | None = None,
        cache: ClipCache | None = None,
        seed: int = 0,
        face_detector_factory: Callable[[], Any] | None = None,
        fit: str = "squash",
        max_side: int | None = 640,
        face_margin: float = 0.2,
        test_views: int = 1,
        test_flip: bool = False,
    ) -> None:
        if test_views < 1:
            raise ConfigError(f"test_views must be >= 1, got {test_views}")
        if (test_views > 1 or test_flip) and sampler_mode != "center":
            raise ConfigError(
                "test_views/test_flip are test-time views: they need sampler_mode='center', "
                f"got {sampler_mode!r}"
            )
        if num_frames < 1 or frame_size < 1:
            raise ConfigError(
                f"num_frames and frame_size must be >= 1, got {num_frames}, {frame_size}"
            )
        if sampler_mode not in SAMPLER_MODES:
            raise ConfigError(
                f"unknown sampler_mode {sampler_mode!r}; valid: {', '.join(SAMPLER_MODES)}"
            )
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}; valid: {', '.join(STREAMS)}")
        self.manifest = manifest
        self.num_frames = int(num_frames)
        self.frame_size = int(frame_size)
        self.sampler_mode = sampler_mode
        self.stream = stream
        self.transform = transform
        self.cache = cache
        self.seed = int(seed)
        self.epoch = 0
        self.face_detector_factory = face_detector_factory or _default_face_detector
        self.fit = fit
        self.max_side = max_side
        self.face_margin = float(face_margin)
        self.test_views = int(test_views)
        self.test_flip = bool(test_flip)
        self._items_per_clip = self.test_views * (2 if self.test_flip else 1)
        self._detector: Any = None
        self._cache_keys: list[str | None] | None = None
        if cache is not None:
            if stream in ("faces", "both") and not cache.settings.faces:
                raise ConfigError(
                    f"the cache at {cache.directory} holds no face crops (faces=False); "
                    f"preprocess with faces=True or use stream='frames' (got stream={stream!r})"
                )
            self._cache_keys = cache.lookup_keys([r.path for r in manifest.records])
            misses = sum(k is None for k in self._cache_keys)
            if misses:
                log.warning(
                    "%d of %d clips are not in the cache %s and will be decoded on the fly",
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
            self._detector = self.face_detector_factory()
        return self._detector

    def load_frames(
        self, index: int, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``(K, S, S, 3)`` uint8 and mask ``(K,)`` of clip ``index`` before transforms
        (for ``stream="both"``, the whole frames; :meth:`load_streams` gives the faces too).

        Raises:
            VideoError (or subclass) naming the file when the clip cannot be read.
        """
        streams = self.load_streams(index, rng)
        return streams["frames"], streams["mask"]

    def load_streams(
        self, index: int, rng: np.random.Generator | None, view: int = 0
    ) -> dict[str, np.ndarray]:
        """``frames``/``mask`` and, for ``stream="both"``, ``faces``/``face_mask`` of clip
        ``index`` before transforms, all of the same K sampled frames.

        Raises:
            VideoError (or subclass) naming the file when the clip cannot be read.
        """
        if self._cache_keys is not None and self._cache_keys[index] is not None:
            entry = self.cache.get(self._cache_keys[index])
            return self._from_cache(entry, rng, view)
        return self._decode(self.manifest.records[index].path, rng, view)

    def _from_cache(
        self, entry: CacheEntry, rng: np.random.Generator | None, test_view: int = 0
    ) -> dict[str, np.ndarray]:
        num_views = entry.frames.shape[0]
        if rng is not None:  # training: any stored view, random frames in it
            view = int(rng.integers(num_views)) if num_views > 1 else 0
            idx = segment_indices(entry.frames.shape[1], self.num_frames, rng)
        elif num_views == self.test_views:  # the cache holds exactly these views
            view = test_view
            idx = segment_indices(entry.frames.shape[1], self.num_frames, None)
        else:
            view = 0
            idx = segment_indices(
                entry.frames.shape[1], self.num_frames, None, (test_view, self.test_views)
            )

        def fit(stored: np.ndarray) -> np.ndarray:
            out = np.asarray(stored[idx])
            return out if out.shape[1] == self.frame_size else fit_frames(out, self.frame_size)

        if self.stream == "frames":
            return self._streams(fit(entry.frames[view]))
        faces, face_mask = fit(entry.faces[view]), np.asarray(entry.face_mask[view][idx], bool)
        frames = fit(entry.frames[view]) if self.stream == "both" else None
        return self._streams(frames, faces, face_mask)

    def _decode(
        self, path: str, rng: np.random.Generator | None, view: int = 0
    ) -> dict[str, np.ndarray]:
        if clip_kind(path) == "image":
            raw = read_image(path)[None]
        else:
            raw = decode_clip(
                path, self.num_frames, rng, self.max_side, view=(view, self.test_views)
            )
        frames = fit_frames(raw, self.frame_size, self.fit) if self.stream != "faces" else None
        if self.stream == "frames":
            return self._streams(frames)
        from rdam.data.faces import crop_faces

        crops = crop_faces(
            raw, self._detector_instance(), size=self.frame_size, margin=self.face_margin
        )
        return self._streams(frames, np.asarray(crops.crops), np.asarray(crops.mask, bool))

    def _streams(
        self,
        frames: np.ndarray | None,
        faces: np.ndarray | None = None,
        face_mask: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The model inputs of :attr:`stream` from whole frames and/or face crops of the same
        K frames: ``faces`` -> the crops as ``frames``/``mask``; ``frames`` -> the frames, all
        valid; ``both`` -> the frames plus ``faces``/``face_mask``."""
        if self.stream == "faces":
            return {"frames": faces, "mask": face_mask}
        out = {"frames": frames, "mask": np.ones(len(frames), dtype=bool)}
        if self.stream == "both":
            out.update(faces=faces, face_mask=face_mask)
        return out

    def __getitem__(self, item: int) -> ClipSample:
        if not 0 <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} items")
        index, view = divmod(item, self._items_per_clip)
        view, flip = divmod(view, 2) if self.test_flip else (view, 0)
        train = self.sampler_mode == "random"
        rng, gen = self._rng(index)
        streams = self.load_streams(index, rng if train else None, view)

        def tensor(frames: np.ndarray) -> torch.Tensor:
            clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
            # One draw per stream from the same generator: each stream is clip-consistent and
            # the draws still depend only on (seed, epoch, index).
            clip = clip if self.transform is None else self.transform(clip, gen)
            return (clip.flip(-1) if flip else clip).contiguous()

        label = self.manifest.records[index].label
        sample: ClipSample = {
            "frames": tensor(streams["frames"]),
            "mask": torch.from_numpy(streams["mask"]),
            "label": torch.tensor(-1 if label is None else label, dtype=torch.int64),
            "index": index,
        }
        if "faces" in streams:
            sample["faces"] = tensor(streams["faces"])
            sample["face_mask"] = torch.from_numpy(streams["face_mask"])
        return sample


def decode_clip(
    path: str | Path,
    num_frames: int,
    rng: np.random.Generator | None,
    max_side: int | None = None,
    view: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Decode ``min(num_frames, frames in clip)`` segment-sampled frames of a video or image
    sequence: ``(K, H, W, 3)`` uint8 RGB. Random offsets with ``rng``, segment centres without,
    or view ``v`` of ``V`` of :class:`rdam.data.sampling.MultiViewSampler` for ``view=(v, V)``.

    Raises:
        VideoError (or subclass) naming the file.
    """
    from rdam.data.sampling import MultiViewSampler, SegmentSampler
    from rdam.data.video import open_clip

    with open_clip(path) as reader:
        info = reader.info
        k = (
            num_frames
            if not info.num_frames or info.num_frames <= 0
            else min(num_frames, int(info.num_frames))
        )
        if rng is None and view[1] > 1:
            timestamps = MultiViewSampler(k, view[1]).sample(info.duration)[view[0]]
        else:
            mode = "center" if rng is None else "random"
            timestamps = SegmentSampler(k, mode=mode).sample(
                info.duration, rng if rng is not None else np.random.default_rng(0)
            )
        decoded = reader.read(timestamps, max_side=max_side)
    return np.asarray(decoded.frames)


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
        and ``faces``/``face_mask`` padded the same way when the samples carry them.
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
    return out


__all__ = [
    "ClipBatch",
    "ClipDataset",
    "ClipSample",
    "collate_clips",
    "decode_clip",
]
