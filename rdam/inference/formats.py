"""Output formats of ``rdam predict``: JSON, JSON lines and CSV of
:class:`~rdam.inference.Prediction` s (``rdam predict --format jsonl -o FILE`` writes line by line
and resumes, :func:`rdam.inference.batch.predict_jsonl`)."""

from __future__ import annotations

from collections.abc import Sequence

from rdam.errors import ConfigError
from rdam.inference.results import Prediction

OUTPUT_FORMATS = ("json", "jsonl", "csv")


def csv_flag(value: bool | None) -> str:
    """A yes/no record in a CSV cell: ``true`` / ``false``, empty where it is not known (as the
    JSON ``true`` / ``false`` / ``null``)."""
    return "" if value is None else str(value).lower()


def format_predictions(predictions: Sequence[Prediction], fmt: str = "json") -> str:
    """``json``: a list of :meth:`Prediction.to_dict`; ``jsonl``: one per line; ``csv``: one row per clip with
    ``path, label, score, error_type, error``, one ``p_<class>`` column per class (the union
    over the rows, in first-seen order), then ``frame_weights``, ``timestamps`` and
    ``face_found`` and ``faces_per_frame`` as ``;``-separated lists,
    ``frame_weights_learned`` (``true``/``false``, empty when the model does not say), the
    timings in seconds and
    ``overrides`` (the clip spec fields run otherwise than the model file's: ``field=value (model:
    value)``, ``;``-separated; empty when none)."""
    import csv
    import io
    import json

    if fmt == "json":
        return json.dumps([p.to_dict() for p in predictions], indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(p.to_dict()) + "\n" for p in predictions)
    if fmt != "csv":
        raise ConfigError(f"unknown output format {fmt!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    classes: list[str] = []
    for p in predictions:
        classes.extend(c for c in p.probabilities if c not in classes)
    timings = ["decode", "faces", "model", "total"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["path", "label", "score", "error_type", "error"]
        + [f"p_{c}" for c in classes]
        + ["frame_weights", "timestamps", "face_found", "faces_per_frame"]
        + ["frame_weights_learned"]
        + [f"{t}_s" for t in timings]
        + ["overrides"]
    )
    for p in predictions:
        writer.writerow(
            [p.path, p.label or "", "" if p.score is None else f"{p.score:.6f}"]
            + [p.error_type or "", p.error or ""]
            + [f"{p.probabilities[c]:.6f}" if c in p.probabilities else "" for c in classes]
            + [
                ";".join(f"{a:.6f}" for a in p.frame_weights),
                ";".join(f"{t:.6f}" for t in p.timestamps),
                "" if p.face_found is None else ";".join(str(int(f)) for f in p.face_found),
                "" if p.faces_per_frame is None else ";".join(map(str, p.faces_per_frame)),
                csv_flag(p.frame_weights_learned),
            ]
            + [f"{p.timing[t]:.6f}" if t in p.timing else "" for t in timings]
            + [
                ";".join(
                    f"{k}={v} (model: {p.model_values.get(k)})" for k, v in p.overrides.items()
                )
            ]
        )
    return buffer.getvalue()
