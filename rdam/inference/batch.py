"""Prediction over many files: results as they arrive, resumable JSONL, shards, progress.

- :func:`predict_jsonl`: one JSON line per clip (:meth:`Prediction.to_dict` plus its content
  hash ``sha256``), written and flushed as each result arrives. Rerun on the same output, it
  skips every clip already answered there (same path AND same content hash; a changed file is
  predicted again and its new line appended) and appends the rest: a run killed even with
  SIGKILL loses at most the clips in flight (one model batch, ``batch_size`` clips). A line cut
  short by the kill is dropped on the rerun. Answers with an error count as answers (delete
  their lines to retry them); a missing file is asked again. Each line also carries
  ``answered_by``, the predictor's :attr:`~rdam.inference.predictor.Predictor.fingerprint`
  (model file and settings); an output holding answers of another model or other settings is
  refused, resumed or not, so one file never mixes two models' answers.
- ``shard=(i, N)``: the clips of shard ``i`` of ``N`` (:func:`rdam.data.preprocess.shard_of`,
  the rule of ``rdam preprocess --shard``: the distinct paths sorted, every ``N``-th from
  ``i``), so ``N`` processes or machines cover a corpus exactly once; the merged result is the
  ``cat`` of their JSONL files.
- a tqdm progress bar (count, rate, ETA) on stderr when it is a terminal.

Content hashes are :func:`rdam.data.content_hash.content_hash`, remembered by (path, size, mtime, ctime, inode) in a
:class:`rdam.data.content_hash.HashIndex` beside the output (``.<name>.rdam/hashes``, safe to delete)
so a rerun does not read every file again.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rdam.data.content_hash import HashIndex, content_hash
from rdam.data.preprocess import shard_of
from rdam.errors import ConfigError, VideoError
from rdam.inference.inputs import expand_inputs
from rdam.inference.predictor import Predictor
from rdam.inference.results import Prediction

ALL = (0, 1)


def select_inputs(
    paths: Iterable[str | os.PathLike[str]],
    sequences: bool = False,
    shard: tuple[int, int] | None = None,
) -> list[str]:
    """The clips ``paths`` stand for (:func:`expand_inputs`); with ``shard``, only shard
    ``i`` of ``N`` of them (distinct, sorted: :func:`rdam.data.preprocess.shard_of`)."""
    clips = expand_inputs(paths, sequences=sequences)
    return clips if shard is None else shard_of(clips, shard)


def progress_bar(total: int, enabled: bool = True, initial: int = 0, desc: str = "predict") -> Any:
    """A tqdm bar on stderr with the count, the rate and the ETA; silent when ``enabled`` is
    false or stderr is not a terminal (tqdm's ``disable=None``)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=None if enabled else True,
        desc=desc,
        unit="clip",
        dynamic_ncols=True,
        file=sys.stderr,
    )


def failure_summary(command: str, total: int, failures: Counter[str]) -> str | None:
    """``"rdam predict: 2 of 5 inputs failed: 1 CorruptVideoError, 1 NoFaceError"`` (most
    frequent kind first), or ``None`` when nothing failed."""
    failed = sum(failures.values())
    if not failed:
        return None
    kinds = sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))
    return f"{command}: {failed} of {total} inputs failed: " + ", ".join(
        f"{count} {kind}" for kind, count in kinds
    )


def failures_of(error_types: Iterable[str | None]) -> Counter[str]:
    """Error kind -> count over results (``None``: a success)."""
    return Counter(t for t in error_types if t is not None)


@dataclass
class BatchReport:
    """What one batch run did: ``total`` clips of this shard, ``predicted`` in this run,
    ``skipped`` (answered earlier in the output), ``failures`` (error kind -> count over all
    ``total`` clips, earlier answers included)."""

    total: int = 0
    predicted: int = 0
    skipped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    output: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self, command: str = "rdam predict") -> str | None:
        return failure_summary(command, self.total, self.failures)


def predict_all(
    predictor: Predictor,
    clips: Sequence[str],
    batch_size: int = 8,
    progress: bool = False,
    on_result: Callable[[Prediction], None] | None = None,
) -> list[Prediction]:
    """Every clip's :class:`Prediction` (failures carry their error), with a progress bar."""
    out = []
    with progress_bar(len(clips), progress) as bar:
        for analysis in predictor.analyze_many(clips, batch_size):
            out.append(analysis.prediction)
            if on_result is not None:
                on_result(analysis.prediction)
            bar.update(1)
    return out


def _read_answers(path: Path, answered_by: str) -> dict[tuple[str, str | None], str | None]:
    """(path, sha256) -> error type of every complete line of an earlier run's output; a last
    line cut short by a kill is cut off the file, so appended lines start on a line of their
    own.

    Raises:
        ConfigError: a line was answered by another predictor than ``answered_by`` (another
            model file or other settings).
    """
    answered: dict[tuple[str, str | None], str | None] = {}
    if not path.is_file():
        return answered
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
    others: Counter[str] = Counter()
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
            key = (str(row["path"]), row.get("sha256"))
            by = row.get("answered_by")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            continue  # not one of ours; kept in the file, ignored
        if by is not None and by != answered_by:
            others[str(by)] += 1
            continue
        answered[key] = row.get("error_type")  # by None: written before lines carried it
    if others:
        seen = ", ".join(f"{n} by {by}" for by, n in others.most_common())
        raise ConfigError(
            f"{path}: answers of another model or other settings are in this file ({seen}; "
            f"this run is {answered_by}); one output holds one model's answers: give this run "
            "an output of its own, or delete that file to answer everything again"
        )
    return answered


def _lock(fh: IO[Any], path: Path) -> None:
    """One writer per output file: two runs appending to one file would duplicate work."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigError(
            f"{path}: another rdam predict is writing this file; give each run (each --shard) "
            "an output of its own"
        ) from None


def predict_jsonl(
    predictor: Predictor,
    paths: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    batch_size: int = 8,
    sequences: bool = False,
    shard: tuple[int, int] = ALL,
    resume: bool = True,
    progress: bool = True,
    on_result: Callable[[Prediction], None] | None = None,
) -> BatchReport:
    """Predict the clips of ``paths`` (shard ``i/N`` of them) into a JSONL file, line by line.

    Args:
        predictor: from :func:`rdam.load`.
        paths: files and folders, as ``rdam predict`` takes them (:func:`expand_inputs`).
        output: the ``.jsonl`` file (appended to); ``None``: stdout, nothing skipped.
        batch_size: clips per model call (also the most a kill can lose).
        sequences: a folder of images is one image-sequence clip.
        shard: ``(i, N)``: only shard ``i`` of ``N`` (see the module docs).
        resume: skip the clips the output already answers (path and content hash).
        progress: a progress bar on stderr when it is a terminal.
        on_result: called with each new :class:`Prediction` (after its line is written).

    Returns:
        a :class:`BatchReport`; its ``failures`` count this shard's failed clips, those
        answered by earlier runs included.
    """
    clips = shard_of(expand_inputs(paths, sequences=sequences), shard)
    report = BatchReport(total=len(clips), output=None if output is None else str(output))
    if output is None:
        return _predict_lines(predictor, clips, sys.stdout, {}, content_hash, report,
                              batch_size, progress, on_result)  # fmt: skip
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        _lock(fh, out)
        answered = _read_answers(out, predictor.fingerprint)  # refuses another model's file
        if not resume:
            answered = {}
        hashes = HashIndex(out.parent / f".{out.name}.rdam")
        return _predict_lines(predictor, clips, fh, answered, hashes.hash, report,
                              batch_size, progress, on_result)  # fmt: skip


def _predict_lines(
    predictor: Predictor,
    clips: list[str],
    fh: IO[str],
    answered: dict[tuple[str, str | None], str | None],
    hash_of: Callable[[str], str],
    report: BatchReport,
    batch_size: int,
    progress: bool,
    on_result: Callable[[Prediction], None] | None,
) -> BatchReport:
    digests: deque[str | None] = deque()
    with progress_bar(len(clips), progress) as bar:

        def todo() -> Iterator[str]:
            for path in clips:
                try:
                    digest: str | None = hash_of(path)
                except (VideoError, OSError):  # missing or unreadable: the reader says why
                    digest = None
                key = (path, digest)
                if key in answered:
                    report.skipped += 1
                    if answered[key] is not None:
                        report.failures[str(answered[key])] += 1
                    bar.update(1)
                    continue
                digests.append(digest)
                yield path

        for analysis in predictor.analyze_many(todo(), batch_size):
            pred = analysis.prediction
            row = pred.to_dict()
            row["sha256"] = digests.popleft()
            row["answered_by"] = predictor.fingerprint
            fh.write(json.dumps(row) + "\n")
            fh.flush()  # on disk (in the OS) before the next clip: a kill loses nothing written
            report.predicted += 1
            if pred.error_type is not None:
                report.failures[pred.error_type] += 1
            if on_result is not None:
                on_result(pred)
            bar.update(1)
    return report
