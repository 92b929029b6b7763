"""Face crops for the face stream ("-F" in Table 5): YuNet detection (OpenCV ``FaceDetectorYN``),
one face per frame, a margin, a square crop, a fixed size.

Frames without a face are recorded as such (``mask`` False, zero crop, NaN box); they are never
replaced by a neighbour's crop or by the whole frame.

The model file is found by :func:`resolve_face_model`: an explicit path, ``$RDAM_FACE_MODEL``, a
copy packaged in ``rdam/assets``, the user cache, or a download into that cache (checked against
a pinned SHA-256).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rdam.errors import ConfigError, FaceModelError

log = logging.getLogger(__name__)

FACE_MODEL_FILENAME = "face_detection_yunet_2023mar.onnx"
FACE_MODEL_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
    "face_detection_yunet_2023mar.onnx"
)
FACE_MODEL_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
FACE_MODEL_ENV = "RDAM_FACE_MODEL"
CACHE_ENV = "RDAM_CACHE_DIR"
_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024

SELECT_MODES = ("largest", "score")

_HOW_TO_PROVIDE = (
    f"download {FACE_MODEL_URL} yourself and pass it with --face-model PATH or the environment "
    f"variable {FACE_MODEL_ENV}=PATH"
)


# ----------------------------------------------------------------------------------------------
# The model file
# ----------------------------------------------------------------------------------------------


def face_model_cache_dir() -> Path:
    """``$RDAM_CACHE_DIR`` or ``~/.cache/rdam``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rdam"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _packaged_model() -> Path | None:
    try:
        candidate = resources.files("rdam").joinpath("assets", FACE_MODEL_FILENAME)
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - broken install
        return None
    return Path(str(candidate)) if candidate.is_file() else None


def _existing(path: str | os.PathLike[str], source: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FaceModelError(
            f"face model {p} (from {source}) does not exist or is not a file; {_HOW_TO_PROVIDE}"
        )
    return p


def download_face_model(
    dest: str | os.PathLike[str],
    url: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the YuNet model to ``dest`` atomically (temporary file + rename) after checking
    its SHA-256; a partial or wrong download never appears at ``dest``.

    Args:
        dest: final file path (its folder is created).
        url: source (default :data:`FACE_MODEL_URL`; ``file://`` URLs work too).
        sha256: expected hex digest (default :data:`FACE_MODEL_SHA256`).
        timeout: seconds for the connection and each read.

    Raises:
        FaceModelError: network failure, size limit or checksum mismatch, with what to do.
    """
    url = url or FACE_MODEL_URL
    sha256 = (sha256 or FACE_MODEL_SHA256).lower()
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceModelError(
            f"cannot create the cache folder {dest.parent} ({exc}); set {CACHE_ENV} to a "
            f"writable folder or {_HOW_TO_PROVIDE}"
        ) from exc
    log.info("downloading the YuNet face model from %s to %s", url, dest)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise FaceModelError(
                        f"the download from {url} exceeds {_MAX_DOWNLOAD_BYTES} bytes; "
                        f"{_HOW_TO_PROVIDE}"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise FaceModelError(
                f"the file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected "
                f"{sha256} (changed upstream or corrupted); {_HOW_TO_PROVIDE}"
            )
        os.replace(tmp, dest)
    except FaceModelError:
        tmp.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise FaceModelError(
            f"could not download the YuNet face model from {url} ({exc}); are you offline? "
            f"{_HOW_TO_PROVIDE}"
        ) from exc
    return dest


def resolve_face_model(path: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Find the YuNet ONNX file, first match wins:

    1. ``path`` (e.g. ``--face-model``), which must exist;
    2. ``$RDAM_FACE_MODEL``, which must exist;
    3. a copy packaged at ``rdam/assets/face_detection_yunet_2023mar.onnx``;
    4. the cache ``$RDAM_CACHE_DIR`` (default ``~/.cache/rdam``), if its SHA-256 is right;
    5. with ``download``, a download from :data:`FACE_MODEL_URL` into that cache.

    Raises:
        FaceModelError: nothing found (offline, ``download=False``, bad checksum), saying how to
            provide the file.
    """
    if path is not None:
        return _existing(path, "the face model argument")
    env = os.environ.get(FACE_MODEL_ENV)
    if env:
        return _existing(env, f"${FACE_MODEL_ENV}")
    packaged = _packaged_model()
    if packaged is not None:
        return packaged
    cached = face_model_cache_dir() / FACE_MODEL_FILENAME
    if cached.is_file():
        if _sha256(cached) == FACE_MODEL_SHA256:
            return cached
        log.warning("%s has the wrong SHA-256 (corrupt cache entry); fetching it again", cached)
    if not download:
        raise FaceModelError(
            f"the YuNet face model is not in the cache ({cached}) and downloading is disabled; "
            f"{_HOW_TO_PROVIDE}"
        )
    return download_face_model(cached)


# ----------------------------------------------------------------------------------------------
# Detection
# ----------------------------------------------------------------------------------------------


@dataclass
class FaceBox:
    """One detected face in frame pixels.

    Attributes:
        x, y, w, h: top-left corner and size of the face box.
        score: detector confidence in ``[0, 1]``.
        landmarks: ``(5, 2)`` float32 (x, y) of right eye, left eye, nose tip, right and left
            mouth corners.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: np.ndarray = field(default_factory=lambda: np.full((5, 2), np.nan, np.float32))

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)


class FaceDetectorLike(Protocol):
    """Anything with ``detect(frame_rgb) -> list[FaceBox]`` can drive :func:`crop_faces`."""

    def detect(self, frame_rgb: np.ndarray) -> list[FaceBox]: ...


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ConfigError(
            f"expected an (H, W, 3) uint8 RGB frame, got shape {frame.shape} dtype {frame.dtype}"
        )
    return frame


class FaceDetector:
    """YuNet face detector (OpenCV ``cv2.FaceDetectorYN``).

    Args:
        model_path: ONNX file; ``None`` = :func:`resolve_face_model` (may download).
        score_threshold: minimum confidence of a kept face.
        nms_threshold: IoU above which overlapping boxes are suppressed.
        top_k: boxes kept before NMS.

    Not thread-safe: ``detect`` resizes the network input to each frame, mutating the native
    object; give every thread or worker process its own detector. Pickling keeps the settings
    and rebuilds the native detector on unpickling, so it can travel to DataLoader workers.

    Raises:
        FaceModelError: the model cannot be found or loaded.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
    ) -> None:
        self.model_path = resolve_face_model(model_path)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self._net: Any = None
        self._input_size: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        import cv2

        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path),
                "",
                (320, 320),
                self.score_threshold,
                self.nms_threshold,
                self.top_k,
            )
        except cv2.error as exc:
            raise FaceModelError(
                f"cannot load the face model {self.model_path} ({exc}); is it the YuNet ONNX "
                f"file? {_HOW_TO_PROVIDE}"
            ) from exc
        self._input_size = (320, 320)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_net"] = None
        state["_input_size"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()

    def detect(self, frame_rgb: np.ndarray) -> list[FaceBox]:
        """Faces in one frame, most confident first.

        Args:
            frame_rgb: ``(H, W, 3)`` uint8 RGB.

        Returns:
            list of :class:`FaceBox` in the frame's pixel coordinates (may be empty).
        """
        import cv2

        frame = _check_frame(frame_rgb)
        height, width = frame.shape[:2]
        if self._input_size != (width, height):
            self._net.setInputSize((width, height))
            self._input_size = (width, height)
        _, faces = self._net.detect(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if faces is None:
            return []
        boxes = [
            FaceBox(
                x=float(f[0]),
                y=float(f[1]),
                w=float(f[2]),
                h=float(f[3]),
                score=float(f[14]),
                landmarks=np.asarray(f[4:14], np.float32).reshape(5, 2),
            )
            for f in faces
        ]
        return sorted(boxes, key=lambda b: b.score, reverse=True)


class LazyFaceDetector:
    """A face detector built by ``factory`` on its first ``detect`` call, so that runs which
    never search a face (face crops given as images) neither load the model nor need it.
    Pickles as its factory (picklable, e.g. :func:`functools.partial`)."""

    def __init__(self, factory: Callable[[], FaceDetectorLike]) -> None:
        self.factory = factory
        self._detector: FaceDetectorLike | None = None

    def detect(self, frame_rgb: np.ndarray) -> list[FaceBox]:
        if self._detector is None:
            self._detector = self.factory()
        return self._detector.detect(frame_rgb)

    def __getstate__(self) -> dict[str, Any]:
        return {"factory": self.factory, "_detector": None}


# ----------------------------------------------------------------------------------------------
# Cropping
# ----------------------------------------------------------------------------------------------


@dataclass
class FaceCrops:
    """One face crop per frame.

    Attributes:
        crops: ``(K, S, S, 3)`` uint8 RGB; zeros where no face was found.
        mask: ``(K,)`` bool, True where a face was found.
        boxes: ``(K, 5)`` float32 ``(x, y, w, h, score)`` of the chosen face box (before the
            margin), NaN where no face was found.
        counts: ``(K,)`` int, the faces found in each frame (the chosen one and the others):
            above 1, the frames' chosen faces may be different people.
    """

    crops: np.ndarray  # (K, S, S, 3) uint8
    mask: np.ndarray  # (K,) bool
    boxes: np.ndarray  # (K, 5) float32, NaN = no face
    counts: np.ndarray | None = None  # (K,) int


def square_crop_window(box: FaceBox, margin: float) -> tuple[int, int, int]:
    """The square crop around a face: the box grown by ``margin`` x its size on every side,
    then squared on its longer side around the box centre.

    Returns:
        ``(x0, y0, side)`` in integer pixels (may extend outside the frame).
    """
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    side_px = max(1, round(side))
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return round(cx - side_px / 2.0), round(cy - side_px / 2.0), side_px


def crop_square(frame: np.ndarray, x0: int, y0: int, side: int, size: int) -> np.ndarray:
    """Cut ``frame[y0:y0+side, x0:x0+side]`` padding with zeros outside the frame, resized to
    ``(size, size, 3)`` uint8 (area filter when shrinking, bilinear when enlarging)."""
    import cv2

    height, width = frame.shape[:2]
    canvas = np.zeros((side, side, 3), np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, width), min(y0 + side, height)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    if side == size:
        return canvas
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


def crop_faces(
    frames: np.ndarray | Sequence[np.ndarray],
    detector: FaceDetectorLike,
    size: int = 112,
    margin: float = 0.2,
    select: str = "largest",
    min_score: float = 0.0,
    detections: Sequence[Sequence[FaceBox]] | None = None,
) -> FaceCrops:
    """Detect, choose and crop one face per frame.

    Args:
        frames: ``(K, H, W, 3)`` uint8 RGB.
        detector: a :class:`FaceDetector` (or anything with the same ``detect``).
        size: side ``S`` of the square output crops.
        margin: fraction of the face box size added on every side (0.2: the crop is 1.4x the
            box's longer side).
        select: ``largest`` (biggest box area) or ``score`` (most confident) face per frame.
        min_score: boxes less confident than this are ignored (on top of the detector's own
            threshold), so a clip spec's ``face_score`` holds whichever detector is used.
        detections: the detector's boxes on each frame, found already
            (:func:`rdam.data.face_search.read_and_detect`); the detector is then not called.

    Returns:
        :class:`FaceCrops` with ``crops (K, S, S, 3)``, ``mask (K,)`` and ``boxes (K, 5)``.
    """
    if select not in SELECT_MODES:
        raise ConfigError(f"unknown face selection {select!r}; valid: {', '.join(SELECT_MODES)}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ConfigError(f"face crop size must be an integer >= 1, got {size!r}")
    if not margin >= 0:
        raise ConfigError(f"face margin must be >= 0, got {margin!r}")
    k = len(frames)
    crops = np.zeros((k, size, size, 3), np.uint8)
    mask = np.zeros(k, bool)
    boxes = np.full((k, 5), np.nan, np.float32)
    counts = np.zeros(k, np.int64)
    for i in range(k):
        frame = _check_frame(frames[i])
        boxes_i = detector.detect(frame) if detections is None else detections[i]
        found = [b for b in boxes_i if b.w > 0 and b.h > 0 and b.score >= min_score]
        counts[i] = len(found)
        if not found:
            continue
        if select == "largest":
            best = max(found, key=lambda b: (b.area, b.score))
        else:
            best = max(found, key=lambda b: (b.score, b.area))
        x0, y0, side = square_crop_window(best, margin)
        crops[i] = crop_square(frame, x0, y0, side, size)
        mask[i] = True
        boxes[i] = (best.x, best.y, best.w, best.h, best.score)
    return FaceCrops(crops=crops, mask=mask, boxes=boxes, counts=counts)
