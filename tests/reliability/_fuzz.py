"""A seeded mutator for video files, tiny source clips, and one fuzz case run with its outcome.

The mutator knows the MP4/ISO-BMFF box layout (``size, type, payload``; containers such as
``moov/trak/mdia/minf/stbl`` nest boxes) so it can damage a file the way real files get
damaged: cut short (interrupted download), bits flipped (bad storage), ranges zeroed (sparse
files, lost blocks), boxes reordered, duplicated, dropped or renamed (broken muxers and
"repair" tools), size fields and table entries (``stsz``, ``stco``, ``stts`` ...) set to
boundary values (hostile files). Every mutation is a pure function of ``(source bytes, seed)``
so a failing case is reproduced by its seed alone.
"""

from __future__ import annotations

import random
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rdam.data.video import open_clip, probe_video
from rdam.errors import VideoError

CONTAINER_BOXES = frozenset(b"moov trak mdia minf stbl edts dinf udta mvex moof traf mfra".split())
"""Boxes whose payload is a list of boxes."""

BOUNDARY_U32 = (0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


@dataclass(frozen=True)
class Box:
    """One box: ``start`` offset of its header, ``end`` offset past its payload, ``header``
    length (8, or 16 with a 64-bit size), ``kind`` (fourcc), ``depth`` and ``parents`` (the
    indices, in the flat list, of the boxes that contain it)."""

    start: int
    end: int
    header: int
    kind: bytes
    depth: int
    parents: tuple[int, ...]


def parse_boxes(data: bytes, max_boxes: int = 4096) -> list[Box]:
    """Every box of an MP4 file, depth first, as far as the sizes make sense (a damaged
    file is parsed up to the first box that does not fit its parent)."""
    boxes: list[Box] = []

    def walk(start: int, stop: int, depth: int, parents: tuple[int, ...]) -> None:
        pos = start
        while pos + 8 <= stop and len(boxes) < max_boxes:
            size, kind = struct.unpack_from(">I4s", data, pos)
            header = 8
            if size == 1:
                if pos + 16 > stop:
                    return
                size = struct.unpack_from(">Q", data, pos + 8)[0]
                header = 16
            elif size == 0:
                size = stop - pos
            if size < header or pos + size > stop:
                return
            index = len(boxes)
            boxes.append(Box(pos, pos + size, header, kind, depth, parents))
            if kind in CONTAINER_BOXES:
                walk(pos + header, pos + size, depth + 1, (*parents, index))
            pos += size

    walk(0, len(data), 0, ())
    return boxes


def _resize_parents(data: bytearray, boxes: list[Box], box: Box, delta: int) -> None:
    """Add ``delta`` to the 32-bit size field of every box containing ``box`` (largesize
    boxes are left alone: they then disagree, which is one more kind of damage)."""
    for i in box.parents:
        parent = boxes[i]
        if parent.header == 8:
            (size,) = struct.unpack_from(">I", data, parent.start)
            struct.pack_into(">I", data, parent.start, (size + delta) & 0xFFFFFFFF)


# ---- single mutations: (rng, data, other source) -> new data ----------------------------------


def truncate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    boxes = parse_boxes(data)
    if boxes and rng.random() < 0.3:  # right at, or just around, a box boundary
        cut = rng.choice(boxes).start + rng.randint(-4, 12)
    else:
        cut = rng.randrange(len(data))
    return data[: max(0, min(cut, len(data) - 1))]


def bit_flips(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def zero_range(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    length = rng.choice((1, 4, 16, 64, 512, max(1, len(data) // 10), max(1, len(data) // 2)))
    start = rng.randrange(len(out))
    out[start : start + length] = bytes(len(out[start : start + length]))
    return bytes(out)


def random_range(rng: random.Random, data: bytes, other: bytes) -> bytes:
    out = bytearray(data)
    length = rng.choice((1, 4, 16, 64, 512))
    start = rng.randrange(len(out))
    n = len(out[start : start + length])
    out[start : start + length] = rng.randbytes(n)
    return bytes(out)


def splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """A range of another clip pasted over this one (mixed-up blocks)."""
    length = rng.choice((16, 256, 2048))
    src = rng.randrange(max(1, len(other) - length))
    dst = rng.randrange(len(data))
    return data[:dst] + other[src : src + length] + data[dst + length :]


def _top(data: bytes) -> list[Box]:
    return [b for b in parse_boxes(data) if b.depth == 0]


def reorder_boxes(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Top-level boxes in another order (``moov`` after/before ``mdat``, ``ftyp`` last ...)."""
    top = _top(data)
    if len(top) < 2:
        return bit_flips(rng, data, other)
    order = list(range(len(top)))
    while order == sorted(order):
        rng.shuffle(order)
    tail = data[top[-1].end :]
    return b"".join(data[top[i].start : top[i].end] for i in order) + tail


def swap_moov_mdat(rng: random.Random, data: bytes, other: bytes) -> bytes:
    top = _top(data)
    kinds = [b.kind for b in top]
    if b"moov" not in kinds or b"mdat" not in kinds:
        return reorder_boxes(rng, data, other)
    i, j = kinds.index(b"moov"), kinds.index(b"mdat")
    parts = [data[b.start : b.end] for b in top]
    parts[i], parts[j] = parts[j], parts[i]
    return b"".join(parts) + data[top[-1].end :]


def duplicate_box(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """A copy of a box right after it (nested ones with their parents' sizes fixed, or not)."""
    boxes = parse_boxes(data)
    if not boxes:
        return zero_range(rng, data, other)
    box = rng.choice(boxes)
    chunk = data[box.start : box.end]
    out = bytearray(data[: box.end] + chunk + data[box.end :])
    if rng.random() < 0.7:
        _resize_parents(out, boxes, box, len(chunk))
    return bytes(out)


def drop_box(rng: random.Random, data: bytes, other: bytes) -> bytes:
    boxes = parse_boxes(data)
    if len(boxes) < 2:
        return truncate(rng, data, other)
    box = rng.choice(boxes[1:])
    out = bytearray(data[: box.start] + data[box.end :])
    if rng.random() < 0.7:
        _resize_parents(out, boxes, box, -(box.end - box.start))
    return bytes(out)


def rename_box(rng: random.Random, data: bytes, other: bytes) -> bytes:
    boxes = parse_boxes(data)
    if not boxes:
        return bit_flips(rng, data, other)
    box = rng.choice(boxes)
    kinds = [b"free", b"moov", b"mdat", b"ftyp", b"trak", b"stbl", b"\0\0\0\0", rng.randbytes(4)]
    out = bytearray(data)
    out[box.start + 4 : box.start + 8] = rng.choice(kinds)
    return bytes(out)


def box_size(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """A box's size field set to a boundary value (0 = to the end, 1 = 64-bit size follows,
    less than its header, past the end of the file ...)."""
    boxes = parse_boxes(data)
    if not boxes:
        return bit_flips(rng, data, other)
    box = rng.choice(boxes)
    value = rng.choice((0, 1, 7, 8, 9, len(data) + 1, box.end - box.start + 1, *BOUNDARY_U32))
    out = bytearray(data)
    struct.pack_into(">I", out, box.start, value & 0xFFFFFFFF)
    return bytes(out)


def table_entry(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """A 32-bit word inside a leaf box (sample tables, headers, codec config) set to a
    boundary value: entry counts, sample sizes, chunk offsets, durations, widths."""
    leaves = [b for b in parse_boxes(data) if b.kind not in CONTAINER_BOXES and b.kind != b"mdat"]
    leaves = [b for b in leaves if b.end - b.start >= b.header + 4]
    if not leaves:
        return bit_flips(rng, data, other)
    box = rng.choice(leaves)
    offset = box.start + box.header + 4 * rng.randrange((box.end - box.start - box.header) // 4)
    out = bytearray(data)
    value = rng.choice((*BOUNDARY_U32, rng.getrandbits(32)))
    struct.pack_into(">I", out, offset, value)
    return bytes(out)


MUTATIONS: dict[str, Callable[[random.Random, bytes, bytes], bytes]] = {
    "truncate": truncate,
    "bit_flips": bit_flips,
    "zero_range": zero_range,
    "random_range": random_range,
    "splice": splice,
    "reorder_boxes": reorder_boxes,
    "swap_moov_mdat": swap_moov_mdat,
    "duplicate_box": duplicate_box,
    "drop_box": drop_box,
    "rename_box": rename_box,
    "box_size": box_size,
    "table_entry": table_entry,
}


BYTE_MUTATIONS = ("truncate", "bit_flips", "zero_range", "random_range", "splice")
"""The mutations that know nothing of MP4 boxes (for images)."""


def mutate(
    data: bytes, other: bytes, seed: int, names: tuple[str, ...] | None = None
) -> tuple[bytes, list[str]]:
    """``data`` damaged by 1-3 mutations (of ``names``, default all) drawn from ``seed``;
    returns the bytes and the names of the mutations applied, in order. Never returns ``data``
    unchanged or empty."""
    rng = random.Random(seed)
    names = list(names or MUTATIONS)
    out, applied = data, []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        name = rng.choice(names)
        out = MUTATIONS[name](rng, out, other) or out[:1]
        applied.append(name)
    if out == data:  # e.g. a flip of a bit and back: flip one bit for sure
        flipped = bytearray(out)
        flipped[rng.randrange(len(flipped))] ^= 0x10
        out = bytes(flipped)
        applied.append("bit_flips")
    return out, applied


# ---- tiny source clips ----------------------------------------------------------------------


def _write_clip(
    path: Path,
    codec: str,
    num_frames: int = 10,
    size: tuple[int, int] = (32, 24),
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    audio: bool = False,
    fmt: str | None = None,
) -> Path:
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format=fmt, container_options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
        stream.time_base = Fraction(1, 10)
        if options:
            stream.options = options
        sound = out.add_stream("aac", rate=8000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(num_frames):
            img = np.stack([(xx * 8 + i * 20) % 256, (yy * 8) % 256, np.full_like(xx, i * 25)], -1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            if sound is not None:
                samples = np.zeros((1, 800), np.float32)
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts = 8000, i * 800
                for packet in sound.encode(aframe):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                out.mux(packet)
    return path


X264 = {"preset": "ultrafast", "x264-params": "keyint=4:min-keyint=4:scenecut=0:bframes=2"}


def write_sources(folder: Path) -> dict[str, Path]:
    """A handful of tiny clips (1-10 KB, 32x24, 10 frames): H.264 mp4 with the index at the
    end and at the front, with an audio track, fragmented mp4, MPEG-4 Part 2 in AVI and FFV1
    in Matroska (the last two only get the byte-level mutations)."""
    folder.mkdir(parents=True, exist_ok=True)
    x264 = {**X264, "crf": "30"}
    return {
        "mp4": _write_clip(folder / "plain.mp4", "libx264", options=x264),
        "faststart": _write_clip(
            folder / "faststart.mp4",
            "libx264",
            options=x264,
            container_options={"movflags": "faststart"},
        ),
        "audio": _write_clip(folder / "audio.mp4", "libx264", options=x264, audio=True),
        "fragmented": _write_clip(
            folder / "frag.mp4",
            "libx264",
            options=x264,
            container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
        ),
        "avi": _write_clip(folder / "clip.avi", "mpeg4"),
        "mkv": _write_clip(folder / "clip.mkv", "ffv1", size=(16, 12)),
    }


def write_image_sources(folder: Path) -> dict[str, Path]:
    """Tiny images (32x24) in every format rdam reads as a frame: PNG, JPEG (colour and
    grey), WebP, BMP, TIFF, PGM."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([xx * 8 % 256, yy * 8 % 256, (xx + yy) * 4 % 256], -1).astype(np.uint8)
    out = {}
    for name, suffix, array in [
        ("png", ".png", rgb),
        ("jpg", ".jpg", rgb),
        ("gray_jpg", ".jpeg", rgb[..., 0]),
        ("webp", ".webp", rgb),
        ("bmp", ".bmp", rgb),
        ("tif", ".tif", rgb),
        ("pgm", ".pgm", rgb[..., 1]),
    ]:
        out[name] = folder / f"{name}{suffix}"
        Image.fromarray(array).save(out[name])
    return out


# ---- one case --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What reading one mutated file gave: ``result`` is ``frames`` (decoded), a typed error
    class name, or ``UNTYPED <class>`` with its traceback in ``detail``; ``seconds`` the wall
    time of probe + open + read."""

    result: str
    seconds: float
    detail: str = ""

    @property
    def typed(self) -> bool:
        return not self.result.startswith("UNTYPED")


def check_info(info: object) -> None:
    """Raise ``AssertionError`` when the metadata of a clip that opened is not sane."""
    import math

    d, fps = info.duration, info.fps  # type: ignore[attr-defined]
    assert math.isfinite(d) and d >= 0, f"duration {d}"
    assert math.isfinite(fps) and fps >= 0, f"fps {fps}"
    assert info.width >= 1 and info.height >= 1, f"size {info.width}x{info.height}"  # type: ignore[attr-defined]
    assert info.num_frames >= 1, f"num_frames {info.num_frames}"  # type: ignore[attr-defined]


def run_case(path: Path, max_side: int = 64) -> Outcome:
    """Probe ``path``, open it and read four frames spread over the clip (and past its end).

    Success means frames of the promised shape; a :class:`~rdam.errors.VideoError` is the
    only other acceptable outcome, and it must name the file.
    """
    start = time.perf_counter()
    try:
        probe_video(path)
        with open_clip(path) as reader:
            info = reader.info
            check_info(info)
            ts = np.array([0.0, 0.37, 0.71, 1.0]) * info.duration
            ts = np.append(ts, info.duration + 1.0)
            out = reader.read(ts, max_side=max_side)
            assert out.frames.shape[0] == len(ts) and out.frames.shape[-1] == 3
            assert out.frames.dtype == np.uint8 and max(out.frames.shape[1:3]) <= max_side
            assert np.all(np.isfinite(out.timestamps))
        result = "frames"
        detail = ""
    except VideoError as exc:
        result = type(exc).__name__
        detail = str(exc)
        if exc.path != str(path):
            result, detail = "UNTYPED path", f"error names {exc.path!r}, not {path}"
    except Exception as exc:  # anything else is a finding: report it with its traceback
        result = f"UNTYPED {type(exc).__name__}"
        detail = traceback.format_exc()
    return Outcome(result, time.perf_counter() - start, detail)


def run_image_case(path: Path) -> Outcome:
    """Read an image through both entry points of rdam's one image decoder: as a one-frame
    clip (:func:`open_clip`, the reader of every path) and directly
    (:func:`rdam.data.video.read_image`). Each must give ``(H, W, 3)`` uint8 or raise a
    :class:`~rdam.errors.VideoError` naming the file."""
    from rdam.data.video import read_image

    start = time.perf_counter()
    results = []
    for read in (
        lambda: open_clip(path).read([0.0], max_side=64).frames[0],
        lambda: read_image(path),
    ):
        try:
            frame = read()
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
            results.append("frames")
        except VideoError as exc:
            if exc.path != str(path):
                return Outcome("UNTYPED path", time.perf_counter() - start, str(exc))
            results.append(type(exc).__name__)
        except Exception as exc:
            return Outcome(
                f"UNTYPED {type(exc).__name__}", time.perf_counter() - start, traceback.format_exc()
            )
    return Outcome("/".join(results), time.perf_counter() - start)


def rss_bytes() -> int:
    """Resident memory of this process now (Linux ``/proc``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _page_size()


def peak_rss_bytes() -> int:
    """High-water resident memory of this process (``VmHWM``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")
