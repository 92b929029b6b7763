"""Pictures of what the model attended to: heatmaps, region relations, frame weights.

Everything returns arrays or PNG bytes (matplotlib's non-interactive Agg backend, never a
window), so the HTML report, the CLI and the web demo share them.

Shapes: an attention map ``x`` is ``(h, w)`` (the region grid, Eq. 2); a relation matrix ``s``
is ``(L, L)`` with ``L = h w`` and region ``l = i w + j`` (row-major, Eq. 1); images are
``(H, W, 3)`` uint8 RGB.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: one colour per class index (RGB), repeated past ten classes: the annotated video and the
#: timelines colour a class alike
PALETTE = np.array(
    [
        (228, 26, 28),
        (152, 78, 163),
        (77, 175, 74),
        (255, 200, 0),
        (160, 160, 160),
        (55, 126, 184),
        (255, 127, 0),
        (166, 86, 40),
        (247, 129, 191),
        (0, 200, 200),
    ],
    np.uint8,
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    """A finished matplotlib figure, laid out tight, as PNG bytes."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def upsample_map(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a region map ``(h, w)`` to ``(height, width)``, scaled to
    ``[0, 1]`` by its maximum (an all-zero map stays zero). Region centres land on the
    centres of the image areas they cover (pixel-centre alignment)."""
    attention = np.asarray(attention, np.float32)
    if attention.ndim != 2:
        raise ValueError(f"expected an (h, w) attention map, got shape {attention.shape}")
    up = cv2.resize(attention, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    top = float(up.max())
    return np.clip(up / top, 0.0, 1.0) if top > 0 else np.zeros_like(up)


def overlay_heatmap(
    image: np.ndarray, attention: np.ndarray, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """The attention map upsampled over ``image`` with a colour map, blended with weight
    ``alpha`` scaled by the local attention (cold regions keep the picture visible).

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    from matplotlib import colormaps

    image = np.asarray(image, np.uint8)
    heat = upsample_map(attention, image.shape[0], image.shape[1])
    colours = colormaps[cmap](heat)[..., :3]  # (H, W, 3) in [0, 1]
    weight = alpha * (0.35 + 0.65 * heat)[..., None]
    blended = image.astype(np.float32) / 255.0 * (1.0 - weight) + colours * weight
    return (np.clip(blended, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def draw_box(
    image: np.ndarray,
    box: Sequence[float] | np.ndarray | None,
    colour: tuple[int, int, int] = (0, 255, 0),
    label: str | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the face box ``(x, y, w, h[, score])`` drawn (nothing drawn
    for ``None`` or NaN boxes)."""
    out = np.ascontiguousarray(np.asarray(image, np.uint8).copy())
    if box is None or not np.all(np.isfinite(np.asarray(box[:4], np.float64))):
        return out
    x, y, w, h = (round(float(v)) for v in box[:4])
    thickness = max(1, round(max(out.shape[:2]) / 200))
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
    if label:
        cv2.putText(
            out,
            label,
            (x, max(12, y - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            colour,
            max(1, thickness // 2),
            cv2.LINE_AA,
        )
    return out


@dataclass(frozen=True)
class Relation:
    """One entry ``s[source, target]`` of a relation matrix (row ``source`` attends to
    ``target``); ``(row, col)`` positions on the region grid."""

    source: int
    target: int
    weight: float
    source_cell: tuple[int, int]
    target_cell: tuple[int, int]


def top_relations(
    relation: np.ndarray, grid: tuple[int, int], n: int = 5, include_self: bool = False
) -> list[Relation]:
    """The ``n`` largest entries of ``s`` (``(L, L)``, ``L = h w``), strongest first; pairs of
    a region with itself are skipped unless ``include_self``."""
    s = np.asarray(relation, np.float64)
    h, w = grid
    if s.shape != (h * w, h * w):
        raise ValueError(f"relation matrix {s.shape} does not fit the {h}x{w} region grid")
    scores = s.copy()
    if not include_self:
        np.fill_diagonal(scores, -np.inf)
    flat = np.argsort(scores, axis=None)[::-1][: max(0, n)]
    out = []
    for index in flat:
        src, dst = divmod(int(index), h * w)
        if not np.isfinite(scores[src, dst]):
            break
        out.append(Relation(src, dst, float(s[src, dst]), divmod(src, w), divmod(dst, w)))
    return out


def region_centre(
    cell: tuple[int, int], grid: tuple[int, int], size: tuple[int, int]
) -> tuple[float, float]:
    """Pixel ``(x, y)`` of the centre of region ``(row, col)`` on an image of
    ``size = (height, width)`` covered by a ``grid = (h, w)`` of regions."""
    (row, col), (h, w), (height, width) = cell, grid, size
    return (col + 0.5) * width / w, (row + 0.5) * height / h


def relation_figure(
    image: np.ndarray,
    relation: np.ndarray,
    grid: tuple[int, int],
    n: int = 5,
    attention: np.ndarray | None = None,
    title: str = "",
) -> bytes:
    """PNG of ``image`` (with the location heatmap when given) and arrows from each of the
    ``n`` strongest relations' source region to its target region, thicker for stronger
    weights, numbered by rank."""
    plt = _pyplot()
    relations = top_relations(relation, grid, n)
    shown = overlay_heatmap(image, attention) if attention is not None else image
    height, width = shown.shape[:2]
    fig, ax = plt.subplots(figsize=(5, 5 * height / max(width, 1)), dpi=100)
    try:
        ax.imshow(shown)
        h, w = grid
        for r in range(1, h):
            ax.axhline(r * height / h, color="white", lw=0.3, alpha=0.4)
        for c in range(1, w):
            ax.axvline(c * width / w, color="white", lw=0.3, alpha=0.4)
        top = relations[0].weight if relations else 1.0
        for rank, rel in enumerate(relations, start=1):
            x0, y0 = region_centre(rel.source_cell, grid, (height, width))
            x1, y1 = region_centre(rel.target_cell, grid, (height, width))
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": "white",
                    "lw": 0.8 + 2.5 * rel.weight / top,
                    "shrinkA": 2,
                    "shrinkB": 2,
                },
            )
            ax.plot([x0], [y0], "o", color="yellow", ms=4)
            ax.text(x0, y0, f" {rank}", color="yellow", fontsize=8, va="bottom")
        ax.set_axis_off()
        if title:
            ax.set_title(title, fontsize=9)
        return _png(fig)
    finally:
        plt.close(fig)


def alpha_figure(
    timestamps: Sequence[float],
    weights: Sequence[float],
    face_found: Sequence[bool] | None = None,
    title: str = "frame weights α over time",
) -> bytes:
    """PNG of the frame weights ``alpha`` (Eq. 10) against time; frames without a face are
    marked with a red cross at 0."""
    plt = _pyplot()
    t = np.asarray(timestamps, np.float64)
    a = np.asarray(weights, np.float64)
    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=100)
    try:
        ax.plot(t, a, "-o", color="tab:blue", ms=4, lw=1.2, label="α")
        if len(a):
            best = int(np.argmax(a))
            ax.plot([t[best]], [a[best]], "*", color="tab:orange", ms=12, label="highest α")
        if face_found is not None:
            missing = ~np.asarray(face_found, bool)
            if missing.any():
                ax.plot(t[missing], np.zeros(missing.sum()), "x", color="red", label="no face")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("α")
        ax.set_ylim(bottom=0.0, top=max(1e-6, float(a.max()) * 1.15) if len(a) else 1.0)
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="best")
        return _png(fig)
    finally:
        plt.close(fig)


def timeline_figure(
    timestamps: Sequence[float],
    frame_probabilities: np.ndarray,
    class_names: Sequence[str],
    frame_weights: Sequence[float] | None = None,
    title: str = "emotion over time",
) -> bytes:
    """PNG of one person's emotions over time: per sampled frame the probability of each class
    (``(K, C)``, a NaN row where the frame had no face, drawn as a gap), and under it the
    normalised frame weights ``w_i = α_i / Σ α`` (how much each frame counts in the answer)."""
    plt = _pyplot()
    t = np.asarray(timestamps, np.float64)
    probs = np.asarray(frame_probabilities, np.float64).reshape(len(t), len(class_names))
    rows = 2 if frame_weights is not None else 1
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(7.2, 2.6 + 1.2 * (rows - 1)),
        dpi=100,
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1][:rows]},
    )
    try:
        ax = axes[0, 0]
        for c, name in enumerate(class_names):
            colour = PALETTE[c % len(PALETTE)] / 255.0
            ax.plot(t, probs[:, c], "-o", ms=3, lw=1.2, color=colour, label=name)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("p (per frame)")
        ax.grid(alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        if frame_weights is not None:
            w = np.asarray(frame_weights, np.float64)
            width = float(np.min(np.diff(t))) * 0.8 if len(t) > 1 else 0.1
            axes[1, 0].bar(t, w, width=max(width, 1e-3), color="tab:gray")
            axes[1, 0].set_ylabel("weight")
            axes[1, 0].grid(alpha=0.3)
        axes[-1, 0].set_xlabel("time (s)")
        return _png(fig)
    finally:
        plt.close(fig)
