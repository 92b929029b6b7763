"""Explanation reports: PNGs per video and one self-contained HTML page per video + an index.

For each clip, in ``<out>/<NNN>_<name>/``:

- ``frame_XX.png``: frame-stream models: sampled frame ``XX`` with the location attention
  ``x`` (Eq. 2) upsampled over it; face-stream models: the decoded frame ``XX`` with the chosen
  face box;
- ``face_XX.png``: face-stream models only, the face crop of frame ``XX`` (the model's input
  size) with the location attention upsampled over it;
- ``relations.png``: the strongest relations of ``s`` (Eq. 4-5) as arrows between region
  centres, on the frame with the highest ``alpha``;
- ``alpha.png``: ``alpha`` (Eq. 10) over time;
- ``report.html``: all of the above embedded as base64 (no external URL: it opens offline).

``<out>/index.html`` links every report.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rdam.data.faces import FaceBox, crop_square, square_crop_window
from rdam.explain.render import (
    alpha_figure,
    draw_box,
    encode_png,
    overlay_heatmap,
    relation_figure,
    top_relations,
)

if TYPE_CHECKING:
    from rdam.inference import Analysis, Predictor

log = logging.getLogger(__name__)

DEFAULT_TOP_RELATIONS = 5


@dataclass
class ReportEntry:
    """One line of the index: the clip, its report (None when it failed), label and score."""

    path: str
    report: Path | None
    label: str | None
    score: float | None
    error: str | None = None
    error_type: str | None = None


def report_dirname(index: int, path: str) -> str:
    """``NNN_<file name>`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced,
    so any input name (``../x``, absolute paths, spaces) gives a safe folder name."""
    name = Path(str(path).rstrip("/\\")).name or "clip"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "clip"
    return f"{index:03d}_{safe[:60]}"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _grid_of(analysis: Analysis) -> tuple[int, int] | None:
    if analysis.location_maps is not None:
        return tuple(analysis.location_maps.shape[1:3])  # type: ignore[return-value]
    if analysis.relation_maps is not None:
        side = math.isqrt(analysis.relation_maps.shape[-1])
        if side * side == analysis.relation_maps.shape[-1]:
            return side, side
    return None


def attention_canvases(analysis: Analysis) -> list[np.ndarray]:
    """The image each frame's attention is drawn on: the face crop for face streams, the
    decoded frame when whole frames were squashed to the input (the region grid then covers
    the whole frame), else what the model saw."""
    assert analysis.inputs is not None
    if analysis.stream == "frames" and analysis.fit == "squash" and analysis.raw is not None:
        return list(analysis.raw)
    return list(analysis.inputs)


UNIFORM_ALPHA_RATIO = 1.02
"""Frame weights whose largest is at most this times their smallest count as uniform."""


def frame_weights_uniform(weights: Sequence[float], mask: Sequence[bool] | None = None) -> bool:
    """Whether the frame weights ``alpha`` of a clip's valid frames (``mask``; all when None)
    are all alike (max / min <= :data:`UNIFORM_ALPHA_RATIO`) over at least two frames: the
    model then fuses them as their average, and a report says so rather than let the frame
    of highest ``alpha`` look chosen."""
    w = np.asarray(weights, np.float64)
    valid = w[np.asarray(mask, bool)] if mask is not None else w
    if len(valid) < 2 or not np.all(valid > 0):
        return False
    return bool(valid.max() <= UNIFORM_ALPHA_RATIO * valid.min())


THUMBNAIL_MARGIN = 0.2
"""Margin (x the box size, each side) of a face cut from a decoded frame for a thumbnail
(display only: two-stream models, whose ``inputs`` are whole frames)."""


def face_thumbnail(analysis: Analysis, weights: Sequence[float]) -> np.ndarray | None:
    """The face of the frame with the highest ``weights`` among those with a face (where the
    model's frame weights were never learned, ``frame_weights_learned`` false, the frame of
    the most confident face detection instead: such weights pick a frame for no reason): the
    face crop the model saw for face-stream models; for two-stream models, whose ``inputs`` are
    the whole frames, the face box cut from the decoded frame. None without one (never a whole
    frame, which may show other people)."""
    w = np.asarray(weights, np.float64)
    if analysis.inputs is None or not len(w):
        return None
    if analysis.prediction.frame_weights_learned is False and analysis.boxes is not None:
        scores = np.asarray(analysis.boxes, np.float64)[:, 4]
        w = np.where(np.isfinite(scores), scores, -np.inf)
    if analysis.stream == "faces":
        mask = analysis.mask if analysis.mask is not None else np.ones(len(w), bool)
        if not np.any(mask):
            return None
        return np.asarray(analysis.inputs[int(np.argmax(np.where(mask, w, -np.inf)))], np.uint8)
    if analysis.raw is None or analysis.boxes is None:
        return None
    boxes = np.asarray(analysis.boxes, np.float64)
    found = np.all(np.isfinite(boxes[:, :4]), axis=1)
    if not np.any(found):
        return None
    best = int(np.argmax(np.where(found, w, -np.inf)))
    x, y, bw, bh = (float(v) for v in boxes[best, :4])
    x0, y0, side = square_crop_window(FaceBox(x, y, bw, bh, 0.0), THUMBNAIL_MARGIN)
    return crop_square(analysis.raw[best], x0, y0, side, int(analysis.inputs.shape[1]))


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1200px}
h1{font-size:20px;margin-bottom:4px} h2{font-size:16px;margin-top:28px}
.muted{color:#666;font-size:13px} .err{color:#b00020;font-weight:600}
.note{background:#fff6d6;border-left:4px solid #e0a800;padding:6px 10px;font-size:14px}
table{border-collapse:collapse} td,th{padding:3px 10px;border-bottom:1px solid #ddd;
text-align:left;font-size:14px}
.bar{background:#4a7bd0;height:12px;display:inline-block;vertical-align:middle}
.frames{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:2px solid transparent;padding:2px} figure.best{border-color:#f28c28}
figure img{width:240px;max-width:100%;display:block} figcaption{font-size:12px;color:#444}
img.wide{max-width:100%}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def overrides_note(overrides: dict[str, Any], model_values: dict[str, Any]) -> str:
    """The page's notice that an answer was made with clip-spec settings other than the model
    file's (:attr:`~rdam.inference.Predictor.spec_overrides`), as the web demo words it; ``""``
    when there are none."""
    if not overrides:
        return ""
    items = "; ".join(
        f"{k}={json.dumps(v)} (the model was trained with {json.dumps(model_values.get(k))})"
        for k, v in overrides.items()
    )
    return (
        f"<p class='note'>Not the model's settings: run with {html.escape(items)}. "
        "The answer may differ from the model's own.</p>"
    )


UNLEARNED_FRAME_WEIGHTS_NOTE = (
    "This model was trained on single images (one-frame clips), so its frame weights α were "
    "never learned: they single out no frame for a reason, and the frame of highest α is not "
    "more important than the others."
)
"""What every page says of α when the model file records ``frame_weights_learned: false``
(:func:`rdam.checkpoint.frame_weights_learned`); the web demo words it the same."""


def frame_weights_note(learned: bool | None) -> str:
    """The page's notice that the frame weights were never learned; ``""`` unless the model
    file says so."""
    if learned is not False:
        return ""
    return f"<p class='note'>{html.escape(UNLEARNED_FRAME_WEIGHTS_NOTE)}</p>"


def _probability_table(probabilities: dict[str, float], label: str | None) -> str:
    rows = []
    for name, p in sorted(probabilities.items(), key=lambda kv: -kv[1]):
        mark = " <b>← prediction</b>" if name == label else ""
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{p:.3f}</td>"
            f"<td><span class='bar' style='width:{max(1, round(240 * p))}px'></span>{mark}</td></tr>"
        )
    return "<table><tr><th>class</th><th>p</th><th></th></tr>" + "".join(rows) + "</table>"


def write_report(
    analysis: Analysis,
    out_dir: str | os.PathLike[str],
    top_n: int = DEFAULT_TOP_RELATIONS,
    title: str | None = None,
) -> Path:
    """Write the PNGs and ``report.html`` of one clip into ``out_dir`` (created).

    Args:
        analysis: from :meth:`rdam.inference.Predictor.analyze` (with arrays); a failed clip
            gives a page stating its error.
        out_dir: the clip's own folder.
        top_n: relations drawn.
        title: page heading (default: the clip's file name).

    Returns:
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pred = analysis.prediction
    heading = title or Path(pred.path).name or pred.path
    parts = [f"<h1>{html.escape(heading)}</h1><div class='muted'>{html.escape(pred.path)}</div>"]
    if not pred.ok:
        parts.append(
            f"<p class='err'>{html.escape(pred.error_type or 'Error')}: "
            f"{html.escape(pred.error or '')}</p>"
        )
        parts.append(overrides_note(pred.overrides, pred.model_values))
        path = out / "report.html"
        path.write_text(_page(heading, "".join(parts)), encoding="utf-8")
        return path
    if analysis.inputs is None:
        raise ValueError("the analysis carries no frames; use Predictor.analyze(path)")

    parts.append(
        f"<h2>Prediction: {html.escape(pred.label or '')} "
        f"({(pred.score or 0.0):.3f})</h2>"
        + overrides_note(pred.overrides, pred.model_values)
        + _probability_table(pred.probabilities, pred.label)
    )
    weights = np.asarray(pred.frame_weights, np.float64)
    best = int(np.argmax(weights)) if len(weights) else 0
    mask = analysis.mask if analysis.mask is not None else np.ones(len(weights), bool)

    alpha_png = alpha_figure(pred.timestamps, pred.frame_weights, pred.face_found)
    (out / "alpha.png").write_bytes(alpha_png)
    uniform = frame_weights_note(pred.frame_weights_learned)
    if frame_weights_uniform(weights, mask):
        valid = weights[mask]
        uniform += (
            "<p class='note'>Every frame weighs about the same here (α from "
            f"{valid.min():.3f} to {valid.max():.3f}): this model's frame weights single out "
            "no frame, and the frame of highest α below is not more important than the others. "
            "A model trained on single images (such as the shipped FER2013 face model) never "
            "learned its frame attention, and fuses the frames as their average.</p>"
        )
    parts.append(
        "<h2>Frame weights α over time</h2><p class='muted'>α (Eq. 10) decides how much each "
        "sampled frame counts in the video feature (Eq. 11).</p>"
        f"{uniform}<img class='wide' alt='alpha over time' src='{_data_uri(alpha_png)}'>"
    )

    canvases = attention_canvases(analysis)
    maps = analysis.location_maps
    # Face streams draw the attention on the face crops (face_XX.png); the decoded frames
    # with the face boxes are the frame_XX.png below.
    attention_prefix = "face" if analysis.stream == "faces" else "frame"
    figures = []
    for k, canvas in enumerate(canvases):
        if maps is not None and mask[k]:
            image = overlay_heatmap(canvas, maps[k])
        else:
            image = np.asarray(canvas, np.uint8)
        png = encode_png(image)
        (out / f"{attention_prefix}_{k:02d}.png").write_bytes(png)
        note = "" if mask[k] else " · no face"
        css = " class='best'" if k == best else ""
        figures.append(
            f"<figure{css}><img alt='frame {k}' src='{_data_uri(png)}'><figcaption>#{k} · "
            f"t = {pred.timestamps[k]:.2f} s · α = {weights[k]:.3f}{note}</figcaption></figure>"
        )
    what = "face crops" if analysis.stream == "faces" else "sampled frames"
    explain = (
        "the location attention x (Eq. 2) upsampled over each of the "
        if maps is not None
        else "(this model's region head has no location attention map) "
    )
    parts.append(
        f"<h2>Location attention</h2><p class='muted'>{explain}{what}; the frame with the "
        f"highest α is outlined.</p><div class='frames'>{''.join(figures)}</div>"
    )

    grid = _grid_of(analysis)
    if analysis.relation_maps is not None and grid is not None and mask[best]:
        relation = analysis.relation_maps[best]
        attention = maps[best] if maps is not None else None
        png = relation_figure(
            canvases[best], relation, grid, top_n, attention, f"frame #{best}, top {top_n}"
        )
        (out / "relations.png").write_bytes(png)
        rows = "".join(
            f"<tr><td>{rank}</td><td>{r.source_cell}</td><td>{r.target_cell}</td>"
            f"<td>{r.weight:.4f}</td></tr>"
            for rank, r in enumerate(top_relations(relation, grid, top_n), start=1)
        )
        parts.append(
            "<h2>Strongest region relations</h2><p class='muted'>Entries of the relation "
            f"attention s (Eq. 4-5) on the frame with the highest α (#{best}): an arrow from "
            "region A to region B means A draws on B's features. Regions are (row, column) of "
            f"the {grid[0]}×{grid[1]} grid.</p>"
            f"<img alt='relations' style='max-width:480px' src='{_data_uri(png)}'>"
            "<table><tr><th>rank</th><th>from</th><th>to</th><th>s</th></tr>"
            f"{rows}</table>"
        )
    else:
        parts.append(
            "<h2>Strongest region relations</h2><p class='muted'>Not available: the model's "
            "region head has no relation attention, the runtime does not return it (export "
            "with --relations), or the best frame has no face.</p>"
        )

    if analysis.stream == "faces" and analysis.raw is not None and analysis.boxes is not None:
        faces = []
        for k, frame in enumerate(analysis.raw):
            box = analysis.boxes[k]
            png = encode_png(draw_box(frame, box, label=f"{box[4]:.2f}" if mask[k] else None))
            (out / f"frame_{k:02d}.png").write_bytes(png)
            caption = "face" if mask[k] else "no face found"
            faces.append(
                f"<figure><img alt='face box {k}' src='{_data_uri(png)}'>"
                f"<figcaption>#{k} · t = {pred.timestamps[k]:.2f} s · {caption}</figcaption>"
                "</figure>"
            )
        parts.append(
            "<h2>Face boxes</h2><p class='muted'>The face found in each sampled frame (the crop "
            f"above is this box with a margin, squared).</p><div class='frames'>{''.join(faces)}"
            "</div>"
        )

    timing = " · ".join(f"{k} {v * 1000:.0f} ms" for k, v in pred.timing.items())
    parts.append(f"<p class='muted'>Timing: {html.escape(timing)}</p>")
    path = out / "report.html"
    path.write_text(_page(heading, "".join(parts)), encoding="utf-8")
    return path


def write_index(entries: Sequence[ReportEntry], out_dir: str | os.PathLike[str]) -> Path:
    """``<out_dir>/index.html``: one row per clip with its label, score and report link."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in entries:
        link = (
            f"<a href='{html.escape(e.report.relative_to(out).as_posix(), quote=True)}'>report</a>"
            if e.report is not None
            else ""
        )
        if e.error is None:
            score = "" if e.score is None else f"{e.score:.3f}"
            # a clip with no label (no evidence for an answer) says so, its JSON label stays None
            result = f"{html.escape(e.label or 'no answer')}</td><td>{score}"
        else:
            result = (
                f"<span class='err'>{html.escape(e.error_type or 'Error')}</span></td>"
                f"<td>{html.escape(e.error)}"
            )
        rows.append(f"<tr><td>{html.escape(e.path)}</td><td>{result}</td><td>{link}</td></tr>")
    body = (
        "<h1>rdam explanations</h1>"
        f"<p class='muted'>{len(entries)} clips</p>"
        "<table><tr><th>clip</th><th>prediction</th><th>score</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )
    path = out / "index.html"
    path.write_text(_page("rdam explanations", body), encoding="utf-8")
    return path


def explain_analyses(
    analyses: Iterable[Analysis],
    out_dir: str | os.PathLike[str],
    top_n: int = DEFAULT_TOP_RELATIONS,
) -> list[ReportEntry]:
    """Write a report for each analysis (in order) and the index."""
    out = Path(out_dir)
    entries = []
    for index, analysis in enumerate(analyses, start=1):
        pred = analysis.prediction
        report = write_report(analysis, out / report_dirname(index, pred.path), top_n)
        entries.append(
            ReportEntry(pred.path, report, pred.label, pred.score, pred.error, pred.error_type)
        )
    write_index(entries, out)
    return entries


def explain_videos(
    predictor: Predictor,
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    batch_size: int = 4,
    top_n: int = DEFAULT_TOP_RELATIONS,
    sequences: bool = False,
) -> list[ReportEntry]:
    """Predict and write explanation reports for ``paths`` (folders expanded as
    :func:`rdam.inference.expand_inputs` does, with ``sequences``) into ``out_dir``; returns
    the index entries (failed clips carry their error)."""
    from rdam.inference import expand_inputs

    analyses = predictor.analyze_many(
        expand_inputs(paths, sequences=sequences), batch_size, keep_arrays=True, relations=True
    )
    return explain_analyses(analyses, out_dir, top_n)
