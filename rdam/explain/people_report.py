"""Explanation reports for every person of a video (``rdam explain --people``,
``rdam predict --people --explain DIR``).

For each video, in ``<out>/<NNN>_<name>/``:

- ``report.html``: the video's answer and the rule that chose it, one row per person (span,
  face coverage, answer or the reason for none) and each person's timeline;
- ``timeline_<id>.png``: person ``id``'s per-frame probabilities over time and, under them, the
  normalised frame weights that make their answer (``logits = Σ_i w_i (W f_i + b)``);
- ``person_<id>/``: the person's own report, as :func:`~rdam.explain.report.write_report`
  writes one for a clip: location attention on each face crop, relations, α, face boxes.

``<out>/index.html`` links every video.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rdam.explain.render import encode_png, timeline_figure
from rdam.explain.report import (
    DEFAULT_TOP_RELATIONS,
    ReportEntry,
    _data_uri,
    _page,
    _probability_table,
    face_thumbnail,
    frame_weights_note,
    overrides_note,
    report_dirname,
    write_index,
    write_report,
)
from rdam.inference.people import PersonResult, VideoPeople


def _face_thumbnail(person: PersonResult) -> str:
    """The person's face of highest frame weight, or of the most confident detection where the
    frame weights were never learned (:func:`~rdam.explain.report.face_thumbnail`), as an
    inline image (empty without arrays)."""
    analysis = person.analysis
    face = None if analysis is None else face_thumbnail(analysis, person.frame_weights)
    if face is None:
        return ""
    uri = _data_uri(encode_png(face))
    return (
        f"<img alt='person {person.person}' src='{uri}' "
        "style='width:56px;height:56px;image-rendering:pixelated'>"
    )


def _person_row(person: PersonResult, link: str | None) -> str:
    answer = (
        f"{html.escape(person.label)} ({(person.score or 0.0):.3f})"
        if person.label is not None
        else f"<span class='err'>no answer</span>: {html.escape(person.reason or '')}"
    )
    cov = person.coverage
    report = f"<a href='{html.escape(link, quote=True)}'>report</a>" if link else ""
    return (
        f"<tr><td>{_face_thumbnail(person)}</td><td>{person.person}</td>"
        f"<td>{person.start:.2f}–{person.end:.2f} s</td>"
        f"<td>{cov['frames_with_face']} / {cov['frames']}</td><td>{answer}</td>"
        f"<td>{report}</td></tr>"
    )


def write_people_report(
    video: VideoPeople,
    class_names: Sequence[str],
    out_dir: str | os.PathLike[str],
    top_n: int = DEFAULT_TOP_RELATIONS,
) -> Path:
    """Write one video's people page, timelines and per-person reports into ``out_dir``
    (created); returns the page. People carry their reports' arrays when
    :func:`~rdam.inference.people.analyze_people` ran with ``keep_arrays=True``; without them
    the page has the table and the timelines only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(video.path).name or video.path
    parts = [
        f"<h1>{html.escape(name)} · people</h1><div class='muted'>{html.escape(video.path)}</div>",
        overrides_note(video.overrides, video.model_values),
        frame_weights_note(video.frame_weights_learned),
    ]
    if video.label is not None:
        parts.append(
            f"<h2>The video: {html.escape(video.label)} (person {video.person})</h2>"
            f"<p class='muted'>Chosen by the rule: {html.escape(video.rule)}.</p>"
            + _probability_table(video.probabilities, video.label)
        )
    else:
        parts.append(
            f"<h2>The video: no answer</h2><p class='err'>{html.escape(video.reason or '')}</p>"
        )
    rules = ", ".join(f"{k} {v:g}" for k, v in video.evidence_rules.items())
    rows, timelines = [], []
    for person in video.people:
        link = None
        if person.analysis is not None:
            page = write_report(
                person.analysis,
                out / f"person_{person.person}",
                top_n,
                title=f"{name} · person {person.person} ({person.start:.2f}–{person.end:.2f} s)",
            )
            link = page.relative_to(out).as_posix()
        rows.append(_person_row(person, link))
        png = timeline_figure(
            person.timestamps,
            person.probability_matrix(list(class_names)),
            class_names,
            person.frame_weights,
            title=f"person {person.person}: per-frame probabilities and frame weights",
        )
        (out / f"timeline_{person.person}.png").write_bytes(png)
        timelines.append(
            f"<h2>Person {person.person}</h2>"
            f"<img class='wide' alt='timeline of person {person.person}' src='{_data_uri(png)}'>"
        )
    parts.append(
        f"<h2>People ({len(video.people)})</h2><p class='muted'>Each face track is a person; "
        f"an answer needs a clear face in enough sampled frames ({html.escape(rules)}). The "
        f"face search looked at {video.frames_searched} frames ({html.escape(video.search)}).</p>"
        "<table><tr><th></th><th>person</th><th>on screen</th><th>frames with a face</th>"
        "<th>answer</th><th></th></tr>" + "".join(rows) + "</table>"
    )
    parts.extend(timelines)
    timing = " · ".join(f"{k} {v * 1000:.0f} ms" for k, v in video.timing.items())
    parts.append(f"<p class='muted'>Timing: {html.escape(timing)}</p>")
    path = out / "report.html"
    path.write_text(_page(f"{name} · people", "".join(parts)), encoding="utf-8")
    return path


def explain_people(
    results: Iterable[VideoPeople | dict[str, Any]],
    class_names: Sequence[str],
    out_dir: str | os.PathLike[str],
    top_n: int = DEFAULT_TOP_RELATIONS,
) -> list[ReportEntry]:
    """A people page for each video (:func:`write_people_report`) and the index. ``results``
    as :func:`~rdam.inference.people.analyze_people_many` gives them: a video that could not
    be read is a ``{"path", "error", "error_type"}`` dict, listed with its error."""
    out = Path(out_dir)
    entries = []
    for index, result in enumerate(results, start=1):
        if isinstance(result, dict):
            entries.append(
                ReportEntry(result["path"], None, None, None, result["error"], result["error_type"])
            )
            continue
        page = write_people_report(
            result, class_names, out / report_dirname(index, result.path), top_n
        )
        score = result.probabilities.get(result.label) if result.label is not None else None
        # None without an answer, as rdam predict --people gives it (the index says "no answer")
        entries.append(ReportEntry(result.path, page, result.label, score))
    write_index(entries, out)
    return entries


__all__ = ["explain_people", "write_people_report"]
