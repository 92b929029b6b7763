"""The embedded default data set: synthetic "region emotion" clips, generated in memory.

Made for ``rdam demo`` and the tests: it needs no download and it rewards exactly what RDAM adds
over average pooling. Each frame is a noisy background on a grid of cells:

* one cell per clip holds the **marker** (a yellow-bordered square, the stand-in for a face);
  it stays in that cell (with a small jitter) for the whole clip;
* in only ``informative_frames`` of the ``K`` frames the marker shows the clip's **class
  pattern** (a grating whose orientation is the class); in the other frames it is blank grey;
* in **every** frame, every class's pattern also appears once as a borderless **distractor** in
  another cell, so pattern counts are the same whatever the label.

The label is therefore readable only at one location (location attention) and only in a few
frames (frame attention); global average pooling sees every class's pattern in every frame.
Generation is vectorised numpy: a few thousand 64-pixel clips take about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from rdam.data.datasets import ClipSample
from rdam.data.manifest import ClipRecord, Manifest
from rdam.errors import ConfigError

MARKER_COLOUR = (255, 210, 0)
BLANK_VALUE = 128
_MAX_CLASSES = 15


def synthetic_class_names(num_classes: int) -> list[str]:
    """Names of the synthetic classes: the grating orientation in degrees (``stripes_045``)."""
    return [f"stripes_{round(180 * c / num_classes):03d}" for c in range(num_classes)]


def class_patterns(num_classes: int, side: int) -> np.ndarray:
    """Gratings of period 4 px, class ``c``'s stripes at ``180 * c / num_classes`` degrees
    counter-clockwise (0 = horizontal, 45 = "/" as seen on screen).

    Returns:
        ``(num_classes, side, side)`` uint8 with values 30 (dark) and 225 (light).
    """
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    yy -= (side - 1) / 2
    xx -= (side - 1) / 2
    out = np.empty((num_classes, side, side), np.uint8)
    for c in range(num_classes):
        theta = np.pi * c / num_classes
        # distance along the normal of stripes running at angle theta; square wave, period 4 px
        u = yy * np.cos(theta) + xx * np.sin(theta)
        out[c] = np.where(np.floor(u / 2 + 0.25) % 2 == 0, 225, 30)
    return out


def _grid_for(num_classes: int) -> int:
    g = 3
    while g * g - 1 < num_classes:
        g += 1
    return g


def make_synthetic_clips(
    num_clips: int,
    num_frames: int = 8,
    size: int = 64,
    num_classes: int = 4,
    informative_frames: int = 2,
    seed: int = 0,
    noise: int = 24,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Generate labelled synthetic clips (see the module docstring for what they show).

    Args:
        num_clips: ``N``; labels are balanced (``N // num_classes`` or one more per class).
        num_frames: ``K`` frames per clip.
        size: ``S``, frame side in pixels (>= 10 per grid cell, e.g. >= 30 for <= 8 classes).
        num_classes: 2..15 classes.
        informative_frames: frames per clip whose marker shows the class (1..K).
        seed: everything is determined by the seed.
        noise: amplitude of the uniform background noise (0..50).

    Returns:
        ``frames`` ``(N, K, 3, S, S)`` uint8, ``labels`` ``(N,)`` int64 and ``meta`` with
        ``class_names``, ``informative`` ``(N, K)`` bool, ``marker_boxes`` ``(N, K, 4)`` and
        ``distractor_boxes`` ``(N, K, C, 4)`` as ``(y0, x0, y1, x1)`` pixel boxes (the marker
        box includes its border; the pattern sits ``border`` pixels inside), ``patterns``
        ``(C, P, P)``, ``grid``, ``border``.
    """
    if num_clips < 1 or num_frames < 1:
        raise ConfigError(f"num_clips and num_frames must be >= 1, got {num_clips}, {num_frames}")
    if not 2 <= num_classes <= _MAX_CLASSES:
        raise ConfigError(f"num_classes must be in 2..{_MAX_CLASSES}, got {num_classes}")
    if not 1 <= informative_frames <= num_frames:
        raise ConfigError(
            f"informative_frames must be in 1..num_frames ({num_frames}), got {informative_frames}"
        )
    if not 0 <= noise <= 50:
        raise ConfigError(f"noise must be in 0..50, got {noise}")
    g = _grid_for(num_classes)
    cell = size // g
    if cell < 10:
        raise ConfigError(
            f"size {size} is too small for {num_classes} classes; use >= {10 * g} pixels"
        )
    border = max(1, size // 32)
    side = int(cell * 0.55)
    jitter = cell - side - 2 * border  # >= 0 by the choice of side
    rng = np.random.default_rng(seed)
    n, k, c = num_clips, num_frames, num_classes

    labels = np.arange(n) % c
    rng.shuffle(labels)
    patterns = class_patterns(c, side)

    # background: a per-clip tint plus uniform noise, computed in uint8 without overflow
    tint = rng.integers(50, 140, (n, 1, 3, 1, 1), dtype=np.uint8)
    frames = rng.integers(0, 2 * noise + 1, (n, k, 3, size, size), dtype=np.uint8)
    frames += tint - np.uint8(noise)

    marker_cell = rng.integers(0, g * g, n)
    informative = np.zeros((n, k), bool)
    chosen = np.argsort(rng.random((n, k)), axis=1)[:, :informative_frames]
    np.put_along_axis(informative, chosen, True, axis=1)

    # distractor cells: a random order of the cells, the marker's cell sorted last
    order_keys = rng.random((n, k, g * g))
    order_keys[np.arange(n), :, marker_cell] = 2.0
    cell_order = np.argsort(order_keys, axis=2)
    class_perm = np.argsort(rng.random((n, k, c)), axis=2)  # class drawn in the j-th free cell
    # distractor_cell[n, k, cls] = the cell showing class cls
    distractor_cell = np.empty((n, k, c), np.int64)
    np.put_along_axis(distractor_cell, class_perm, cell_order[:, :, :c], axis=2)

    offsets = rng.integers(0, jitter + 1, (n, k, g * g, 2))
    cell_y = (np.arange(g * g) // g) * cell
    cell_x = (np.arange(g * g) % g) * cell
    # top-left of the pattern in every (clip, frame, cell)
    py = cell_y[None, None] + border + offsets[..., 0]
    px = cell_x[None, None] + border + offsets[..., 1]

    nn, kk = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    ar = np.arange(side)
    ar_b = np.arange(side + 2 * border)

    def paint(ys, xs, values, span):
        """values: (M, h, w) or (M, h, w, 3) painted at (ys, xs) of the selected frames."""
        rows = (ys[:, None] + span)[:, :, None]
        cols = (xs[:, None] + span)[:, None, :]
        return rows, cols, values

    # distractors: every class once per frame
    dist_y = np.take_along_axis(py, distractor_cell, axis=2)  # (n, k, c)
    dist_x = np.take_along_axis(px, distractor_cell, axis=2)
    for cls in range(c):
        rows, cols, _ = paint(dist_y[..., cls].ravel(), dist_x[..., cls].ravel(), None, ar)
        frames[nn.ravel()[:, None, None], kk.ravel()[:, None, None], :, rows, cols] = patterns[cls][
            None, :, :, None
        ]

    # the marker: a coloured square, its interior the class pattern or blank grey
    my = py[np.arange(n), :, marker_cell]  # (n, k)
    mx = px[np.arange(n), :, marker_cell]
    rows, cols, _ = paint((my - border).ravel(), (mx - border).ravel(), None, ar_b)
    frames[nn.ravel()[:, None, None], kk.ravel()[:, None, None], :, rows, cols] = np.array(
        MARKER_COLOUR, np.uint8
    )
    interior = np.full((n, k, side, side), BLANK_VALUE, np.uint8)
    interior[informative] = patterns[np.broadcast_to(labels[:, None], (n, k))[informative]]
    rows, cols, _ = paint(my.ravel(), mx.ravel(), None, ar)
    frames[nn.ravel()[:, None, None], kk.ravel()[:, None, None], :, rows, cols] = interior.reshape(
        n * k, side, side
    )[..., None]

    marker_boxes = np.stack(
        [my - border, mx - border, my + side + border, mx + side + border], axis=-1
    )
    distractor_boxes = np.stack([dist_y, dist_x, dist_y + side, dist_x + side], axis=-1)
    meta = {
        "class_names": synthetic_class_names(c),
        "informative": informative,
        "marker_boxes": marker_boxes,
        "distractor_boxes": distractor_boxes,
        "patterns": patterns,
        "grid": g,
        "border": border,
    }
    return frames, labels.astype(np.int64), meta


#: ``data.synthetic`` options and their defaults.
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "num_train": 512,
    "num_val": 256,
    "num_test": 0,
    "num_classes": 4,
    "informative_frames": 2,
    "seed": 0,
}

SYNTHETIC_SPLITS = ("train", "val", "test")


def synthetic_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over :data:`SYNTHETIC_DEFAULTS` (unknown keys are an error)."""
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"unknown keys {unknown} in data.synthetic; valid: {sorted(SYNTHETIC_DEFAULTS)}"
        )
    return {**SYNTHETIC_DEFAULTS, **options}


def synthetic_test_split(options: dict[str, Any]) -> str:
    """The split a test reads: ``test`` when ``num_test`` is set, else ``val``."""
    return "test" if synthetic_options(options)["num_test"] else "val"


def synthetic_split(
    options: dict[str, Any], split: str, num_frames: int, size: int
) -> SyntheticClipDataset:
    """Split ``train``, ``val`` or ``test`` of the demo set described by ``options``: drawn
    with seeds ``seed``, ``seed + 1`` and ``seed + 2``."""
    o = synthetic_options(options)
    if split not in SYNTHETIC_SPLITS:
        raise ConfigError(f"the synthetic set has splits {SYNTHETIC_SPLITS}, not {split!r}")
    count = int(o[f"num_{split}"])
    if count < 1:
        raise ConfigError(f"data.synthetic.num_{split} must be >= 1, got {count}")
    return SyntheticClipDataset(
        count,
        num_frames=num_frames,
        size=size,
        num_classes=int(o["num_classes"]),
        informative_frames=int(o["informative_frames"]),
        seed=int(o["seed"]) + SYNTHETIC_SPLITS.index(split),
    )


class SyntheticClipDataset(Dataset):
    """Synthetic clips in the :class:`rdam.data.datasets.ClipDataset` item format.

    Items: ``frames`` ``(K, 3, S, S)`` uint8, ``mask`` ``(K,)`` all True, ``label``, ``index``.
    ``transform`` is called as ``transform(frames, generator)`` with a generator seeded from
    ``(seed, index, read count)``, like ClipDataset.
    """

    def __init__(
        self,
        num_clips: int,
        num_frames: int = 8,
        size: int = 64,
        num_classes: int = 4,
        informative_frames: int = 2,
        seed: int = 0,
        transform: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        frames, labels, meta = make_synthetic_clips(
            num_clips, num_frames, size, num_classes, informative_frames, seed
        )
        self.frames = torch.from_numpy(frames)
        self.labels = torch.from_numpy(labels)
        self.meta = meta
        self.seed = int(seed)
        self.transform = transform
        self.epoch = 0

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend only on ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> ClipSample:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        clip = self.frames[index]
        if self.transform is not None:
            seq = np.random.SeedSequence([self.seed, self.epoch, index])
            gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))
            clip = self.transform(clip, gen)
        return {
            "frames": clip,
            "mask": torch.ones(clip.shape[0], dtype=torch.bool),
            "label": self.labels[index].clone(),
            "index": index,
        }


def write_synthetic_videos(
    root: str | Path,
    num_clips: int,
    num_frames: int = 8,
    size: int = 64,
    num_classes: int = 4,
    informative_frames: int = 2,
    seed: int = 0,
    split: str | None = None,
    fps: int = 8,
) -> Manifest:
    """Write synthetic clips as tiny H.264 mp4 files, ``root[/split]/<class>/clip_0000.mp4``.

    Frames are encoded near-losslessly (yuv444p, crf 4) at ``fps``; a clip lasts
    ``num_frames / fps`` seconds, so centre segment sampling with ``K = num_frames`` reads
    the frames back in order.

    Returns:
        The manifest of the written files (split ``split`` or ``all``).
    """
    import av

    frames, labels, meta = make_synthetic_clips(
        num_clips, num_frames, size, num_classes, informative_frames, seed
    )
    names = meta["class_names"]
    base = Path(root) / split if split else Path(root)
    records = []
    for i in range(num_clips):
        folder = base / names[labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"clip_{i:04d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv444p"
            stream.options = {"crf": "4", "preset": "veryfast"}
            for frame in frames[i].transpose(0, 2, 3, 1):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        records.append(ClipRecord(str(path.resolve()), int(labels[i]), split or "all"))
    return Manifest(records, list(names))


__all__ = [
    "SYNTHETIC_DEFAULTS",
    "SyntheticClipDataset",
    "class_patterns",
    "make_synthetic_clips",
    "synthetic_class_names",
    "synthetic_options",
    "synthetic_split",
    "synthetic_test_split",
    "write_synthetic_videos",
]
