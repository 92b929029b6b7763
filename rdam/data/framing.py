"""How a data set of face crops is framed, in the face detector's terms.

A face-stream model trained on given face crops (FER2013's 48-px faces: ``--faces given`` or
``auto``) never runs the detector in training. On a video it sees the detector's box grown by
the clip spec's ``face_margin`` and squared (:func:`~rdam.data.faces.square_crop_window`). Unless
that crop frames a face as the training crops did, every face it sees is larger or smaller in
the frame than any face it learnt from, with more or less hair, neck and background around it
(``docs/benchmarks.md``, figure 17: on FER2013 faces a margin of 0.15 where the crops measure
0.015 cost 12 to 14 points).

:func:`measure_framing` runs the detector on the crops themselves (enlarged, so that the
detector sees a face of a size it finds) and reports where its box lies in them. For a box of
``w x h`` (fractions of the crop's width and height), :func:`margin_of_box` is the margin whose
square crop is exactly the image: ``side = max(w, h) (1 + 2 m) = 1``. The median of it over
the crops is the ``face_margin`` that reproduces the data set's framing on videos; ``rdam
framing`` prints it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

from rdam.data.faces import FaceDetectorLike
from rdam.errors import ConfigError

T = TypeVar("T")

DEFAULT_MIN_SIDE = 192
"""Crops are enlarged (bicubic) to at least this longer side before detection: YuNet misses
about a quarter of FER2013's 48-px faces at their own size (figure 10) and 4 % when enlarged
to 192 px."""


EQUALIZED_GAP = 3.0
"""Crops whose grey levels histogram equalization moves by at most this much on average (median
over the crops) were equalized already: FER2013's measure 1.3, natural face crops tens."""

FRAMING_TOLERANCE = 0.05
"""How far a clip spec's ``face_margin`` may be from the training crops' measured margin before
``rdam train`` warns (FER2013's crops measure 0.015, quartiles -0.003 to 0.045)."""


def draw(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """Up to ``limit`` of ``items`` drawn at random with ``seed`` (all of them, shuffled, for
    None): the crops a framing is measured on, alike for ``rdam framing``, ``rdam train`` and
    figure 17."""
    drawn = list(items)
    random.Random(seed).shuffle(drawn)
    return drawn[:limit]


def equalization_gap(grey: np.ndarray) -> float:
    """Mean absolute change of a ``(H, W)`` uint8 grey image's levels under histogram
    equalization (``cv2.equalizeHist``): about 1 for an image equalized already."""
    import cv2

    grey = np.ascontiguousarray(grey)
    return float(np.abs(cv2.equalizeHist(grey).astype(np.int16) - grey).mean())


def margin_of_box(width: float, height: float) -> float:
    """The face margin ``m`` whose square crop around a box of ``width x height`` (fractions
    of the image's sides) is the image: ``max(width, height) * (1 + 2 m) = 1``. Negative when
    the box is larger than the image (a crop that cuts the face)."""
    side = max(width, height)
    if not side > 0:
        raise ConfigError(f"a face box needs a positive size, got {width} x {height}")
    return (1.0 / side - 1.0) / 2.0


@dataclass(frozen=True)
class CropFraming:
    """Where the detector's face box lies in a set of face crops (medians over the crops in
    which it found a face; sizes and centres as fractions of the crop's width and height).

    Attributes:
        images: crops measured.
        found: crops in which the detector found a face.
        box_width, box_height: the box's size.
        centre_x, centre_y: the box's centre (0.5: the middle of the crop).
        margin: median of :func:`margin_of_box` over the crops: the ``face_margin`` that
            frames a detected face as these crops are framed (may be negative).
        margin_quartiles: its 25th and 75th percentiles.
        equalization_gap: median over all the crops of the mean absolute change of their grey
            levels under histogram equalization (``cv2.equalizeHist``): at most
            :data:`EQUALIZED_GAP` for crops that were equalized already (FER2013's).
    """

    images: int
    found: int
    box_width: float
    box_height: float
    centre_x: float
    centre_y: float
    margin: float
    margin_quartiles: tuple[float, float]
    equalization_gap: float

    @property
    def face_margin(self) -> float:
        """:attr:`margin` rounded to 0.01 and at least 0, as a clip spec takes it."""
        return max(0.0, round(self.margin, 2))

    @property
    def equalized(self) -> bool:
        """The crops were histogram-equalized (as FER2013's were); faces found on videos are
        equalized too only under the clip spec's ``color: gray_equalized``."""
        return self.equalization_gap <= EQUALIZED_GAP

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["margin_quartiles"] = list(self.margin_quartiles)
        out["face_margin"] = self.face_margin
        out["equalized"] = self.equalized
        return out


def measure_framing(
    crops: Iterable[np.ndarray],
    detector: FaceDetectorLike,
    min_side: int = DEFAULT_MIN_SIDE,
    min_score: float = 0.0,
) -> CropFraming:
    """Measure the framing of face crops (see the module notes).

    Args:
        crops: ``(H, W, 3)`` uint8 RGB face crops (e.g. :func:`rdam.data.video.read_image`).
        detector: the face detector whose boxes the margin is for (the clip spec's: YuNet).
        min_side: each crop is enlarged (bicubic) so that its longer side is at least this.
        min_score: boxes less confident than this are ignored; the largest box of a crop
            counts, as the clip spec's ``face_select: largest`` picks it.

    Raises:
        ConfigError: the detector found a face in none of the crops (or there were none).
    """
    import cv2

    rows = []
    gaps = []
    images = 0
    for crop in crops:
        images += 1
        gaps.append(equalization_gap(cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)))
        height, width = crop.shape[:2]
        scale = max(1.0, min_side / max(height, width))
        if scale > 1.0:
            size = (round(width * scale), round(height * scale))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
        found = [b for b in detector.detect(crop) if b.w > 0 and b.h > 0 and b.score >= min_score]
        if not found:
            continue
        box = max(found, key=lambda b: (b.area, b.score))
        h, w = crop.shape[:2]
        rows.append((box.w / w, box.h / h, (box.x + box.w / 2) / w, (box.y + box.h / 2) / h))
    if not rows:
        raise ConfigError(
            f"the face detector found a face in none of {images} crops: are they face crops? "
            "(a framing needs faces to measure)"
        )
    widths, heights, xs, ys = np.asarray(rows, np.float64).T
    margins = np.array([margin_of_box(w, h) for w, h in zip(widths, heights, strict=True)])
    q25, q75 = np.percentile(margins, [25, 75])
    return CropFraming(
        images=images,
        found=len(rows),
        box_width=float(np.median(widths)),
        box_height=float(np.median(heights)),
        centre_x=float(np.median(xs)),
        centre_y=float(np.median(ys)),
        margin=float(np.median(margins)),
        margin_quartiles=(float(q25), float(q75)),
        equalization_gap=float(np.median(gaps)),
    )


def framing_mismatch(framing: CropFraming, face_margin: float) -> str | None:
    """What is wrong when a clip spec frames detected faces at ``face_margin`` while the
    training crops measure ``framing`` (more than :data:`FRAMING_TOLERANCE` apart), else None."""
    if abs(face_margin - framing.margin) <= FRAMING_TOLERANCE:
        return None
    # the box is 1 / (1 + 2 m) of the crop's side at margin m: on videos against in training
    scale = (1 + 2 * framing.margin) / (1 + 2 * face_margin)
    return (
        f"the training face crops are framed at the face detector's box + "
        f"{framing.margin:.3f} (median of {framing.found} crops) but data.face_margin is "
        f"{face_margin:g}: on videos a detected face will be {scale:.0%} of its size in the "
        f"training crops. Set data.face_margin: {framing.face_margin:g} (`rdam framing` "
        "measures it)"
    )


def equalization_note(framing: CropFraming, color: str) -> str | None:
    """A note when the training crops are histogram-equalized and ``color`` does not equalize
    the faces found on videos as well, else None. Not a warning: a model trained under ``gray``
    on FER2013 lost 0.3 to gained 2.4 points when its input was equalized (figure 17); a model
    trained under ``gray_equalized`` has not been measured yet."""
    if not framing.equalized or color == "gray_equalized":
        return None
    return (
        f"the training face crops are histogram-equalized (equalizing them again moves a grey "
        f"level by {framing.equalization_gap:.1f} on average); faces on videos are not, unless "
        f"data.color is gray_equalized (it is {color})"
    )


__all__ = [
    "DEFAULT_MIN_SIDE",
    "EQUALIZED_GAP",
    "FRAMING_TOLERANCE",
    "CropFraming",
    "draw",
    "equalization_gap",
    "equalization_note",
    "framing_mismatch",
    "margin_of_box",
    "measure_framing",
]
