"""``rdam predict --people --annotate out.mp4``: the video with every person's box, id and
current emotion, and a small timeline of each person's emotions under it (PyAV, H.264).

At each frame of the video, a person's box and emotion are those of their sampled frame nearest
in time, shown while the frame lies inside the person's track span; the timeline strip of a
person is coloured by the top class of each of their sampled frames, with a cursor at the
current time. Frames are written at most ``max_side`` large.
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from rdam.explain.render import PALETTE
from rdam.inference.people import VideoPeople

STRIP = 10  # timeline strip height per person, pixels


def _nearest(times: list[float], t: float) -> int:
    return int(np.argmin(np.abs(np.asarray(times) - t)))


def _draw_frame(
    frame: np.ndarray, t: float, duration: float, video: VideoPeople, names: list[str], scale: float
) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(frame)
    height, width = out.shape[:2]
    rows = len(video.people)
    canvas = np.zeros((height + rows * STRIP, width, 3), np.uint8)
    canvas[:height] = out
    for row, person in enumerate(video.people):
        top = height + row * STRIP
        probs = person.frame_probabilities or [None] * len(person.timestamps)
        # the strip: one segment per sampled frame (from the midpoint with the previous sampled
        # frame, or the track's start, to the midpoint with the next, or its end), coloured by
        # that frame's top class
        times = person.timestamps
        edges = [person.start, *((a + b) / 2 for a, b in itertools.pairwise(times)), person.end]
        for i in range(len(times)):
            if probs[i] is None or duration <= 0:
                continue
            x0 = int(edges[i] / duration * width)
            x1 = max(int(edges[i + 1] / duration * width), x0 + 1)
            top_class = int(np.argmax([probs[i][c] for c in names]))
            canvas[top + 1 : top + STRIP - 1, x0:x1] = PALETTE[top_class % len(PALETTE)]
        cursor = min(width - 1, int(t / duration * width)) if duration > 0 else 0
        canvas[top : top + STRIP, cursor] = 255
        if not person.start <= t <= person.end:
            continue
        i = _nearest(person.timestamps, t)
        box = person.boxes[i]
        if box is None:
            continue
        x, y, w, h = (round(v * scale) for v in box[:4])
        if probs[i] is not None:
            label = max(probs[i], key=probs[i].get)
            colour = tuple(int(c) for c in PALETTE[names.index(label) % len(PALETTE)])
            text = f"{person.person}: {label} {probs[i][label]:.2f}"
        else:
            colour, text = (200, 200, 200), f"{person.person}"
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(
            canvas,
            text,
            (x, max(12, y - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            colour,
            1,
            cv2.LINE_AA,
        )
    return canvas


def annotate_video(
    video: VideoPeople,
    class_names: list[str],
    out: str | os.PathLike[str],
    max_side: int | None = 640,
) -> Path:
    """Write ``video.path`` with the per-person results drawn on it to ``out`` (mp4, H.264).

    Raises:
        VideoError (or a subclass) naming the input when it cannot be decoded.
    """
    import av

    from rdam.data.video import VideoReader
    from rdam.data.video.reader import fitted_sizes, frame_to_rgb

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.mp4")
    with VideoReader(video.path) as reader:
        info = reader.info
        (width, height), coded = fitted_sizes(info.width, info.height, info.rotation, max_side)
        scale = width / info.width if info.width else 1.0
        rows = len(video.people)
        out_w, out_h = width + width % 2, height + rows * STRIP + (height + rows * STRIP) % 2
        # the source's rate as a fraction (29.97 stays 30000/1001: rounded, the video drifted)
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps and info.fps > 0 else 25
        try:
            with av.open(str(tmp), "w") as container:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
                for t, frame in reader.iter_all_frames():
                    rgb = frame_to_rgb(frame, coded, info.rotation)
                    drawn = _draw_frame(rgb, t, info.duration, video, class_names, scale)
                    padded = np.zeros((out_h, out_w, 3), np.uint8)
                    padded[: drawn.shape[0], : drawn.shape[1]] = drawn
                    for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out
