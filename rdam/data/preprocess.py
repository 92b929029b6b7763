"""``rdam preprocess``: decode, sample and crop every clip of a manifest once into the cache.

Work is split into tasks: one per video or image sequence, and one per chunk of single images
(packed into one shard of the cache, so FER2013 becomes a few dozen files instead of 28k).
Tasks run in worker processes (``spawn``-safe); a failing clip is recorded with its error and
the rest go on; a worker that dies (e.g. a decoder crash) costs only the clip it was on. The
run is resumable (clips already cached are skipped) and ``shard=(i, n)`` takes a deterministic
``1/n`` of the clips so several machines can share the work.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.cache import CacheEntry, ClipCache, PreprocessSettings
from rdam.data.manifest import Manifest
from rdam.data.video.formats import clip_kind
from rdam.errors import ConfigError, RDAMError
from rdam.threads import set_cpu_threads

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1024


# --------------------------------------------------------------------------------------------
# Building one entry


def build_entry(
    path: str | Path, settings: PreprocessSettings, key: str, detector: Any = None
) -> CacheEntry:
    """Read one clip's views under the settings' clip spec (:func:`rdam.data.clips.read_views`,
    the path every other reader takes) as a cache entry.

    Args:
        path: video file, image-sequence folder or image.
        settings: what to store.
        key: the clip's content hash; seeds the ``random`` mode so reruns agree.
        detector: face detector (required when the spec detects faces).

    Raises:
        VideoError (or subclass) naming the file.
    """
    from rdam.data.clips import read_views

    path = str(path)
    rng = np.random.default_rng([settings.seed, int(key[:15], 16)])
    clips = read_views(
        path,
        settings.spec,
        mode=settings.mode,
        rng=rng,
        views=settings.num_views,
        face_input=settings.face_input,
        detector=detector,
    )
    meta: dict[str, Any] = {
        "path": path,
        "kind": clip_kind(path),
        "face_input": clips[0].face_input,
    }
    info = clips[0].info
    if meta["kind"] != "image" and info is not None:
        meta.update(
            duration=float(info.duration),
            fps=float(info.fps),
            frames_available=int(info.num_frames),
            width=int(info.width),
            height=int(info.height),
        )
    return CacheEntry.from_clips(clips, meta)


# --------------------------------------------------------------------------------------------
# Tasks and workers


@dataclass(frozen=True)
class _Task:
    """``items``: ``(key, path)`` pairs; ``packed``: one-frame clips written as one shard."""

    items: tuple[tuple[str, str], ...]
    packed: bool


@dataclass
class _TaskResult:
    written: list[str] = field(default_factory=list)  # keys
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    no_face: list[str] = field(default_factory=list)  # paths


_WORKER: dict[str, Any] = {}


def _init_worker(
    root: str,
    settings: PreprocessSettings,
    detector_factory: Callable[[], Any] | None,
    threads: int | None = None,
) -> None:
    if threads is not None:
        # Each library would otherwise start one thread per core in every worker: N workers
        # on N cores then run N*N threads that preempt one another.
        set_cpu_threads(threads)
    _WORKER.clear()
    _WORKER.update(cache=ClipCache(root, settings, create=True), factory=detector_factory)


def _detector() -> Any:
    if _WORKER.get("detector") is None:
        factory = _WORKER.get("factory")
        if factory is None:
            from rdam.data.faces import FaceDetector

            _WORKER["detector"] = FaceDetector(
                score_threshold=_WORKER["cache"].settings.spec.face_score
            )
        else:
            _WORKER["detector"] = factory()
    return _WORKER["detector"]


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, RDAMError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc} (unexpected; please report it)"


def _run_task(task: _Task) -> _TaskResult:
    cache: ClipCache = _WORKER["cache"]
    settings = cache.settings
    result = _TaskResult()
    built: list[tuple[str, str, CacheEntry]] = []
    for key, path in task.items:
        try:
            detector = _detector() if settings.spec.uses_faces else None
            entry = build_entry(path, settings, key, detector)
        except Exception as exc:  # one bad clip must not stop the others
            result.failed.append((path, _error_message(exc)))
            continue
        if entry.face_mask is not None and not entry.face_mask.any():
            result.no_face.append(path)
        if task.packed:
            built.append((key, path, entry))
        else:
            try:
                cache.put(key, entry)
                result.written.append(key)
            except Exception as exc:
                result.failed.append((path, _error_message(exc)))
    if built:
        try:
            cache.put_shard([b[0] for b in built], [b[2] for b in built])
            result.written.extend(b[0] for b in built)
        except Exception as exc:
            result.failed.extend((b[1], _error_message(exc)) for b in built)
    return result


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class PreprocessReport:
    """Outcome of one :func:`preprocess` run, counted in manifest records.

    Attributes:
        total: records in this shard of the manifest.
        done: records whose clip was written by this run.
        skipped_cached: records already in the cache.
        failed: ``(path, error message)`` of every record that could not be processed.
        no_face: paths stored without any face found (with ``faces=True``).
        cache_dir: the settings directory written.
        seconds: wall time.
    """

    total: int = 0
    done: int = 0
    skipped_cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    cache_dir: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def format(self, max_failures: int = 50) -> str:
        """Human-readable summary with the failures listed."""
        lines = [
            f"preprocessed {self.total} clips into {self.cache_dir} in {self.seconds:.1f} s: "
            f"{self.done} written, {self.skipped_cached} already cached, "
            f"{len(self.failed)} failed"
        ]
        if self.no_face:
            lines.append(f"{len(self.no_face)} clips have no face in any frame (stored, mask off)")
        if self.failed:
            lines.append("failures:")
            lines.extend(f"  {p}: {m}" for p, m in self.failed[:max_failures])
            if len(self.failed) > max_failures:
                lines.append(f"  ... and {len(self.failed) - max_failures} more")
        return "\n".join(lines)


def yunet_factory(
    model_path: str | Path | None = None, score_threshold: float = 0.6
) -> Callable[[], Any]:
    """A picklable factory of YuNet detectors using ``model_path`` (None: the default model)."""
    from rdam.data.faces import FaceDetector

    return functools.partial(FaceDetector, model_path, score_threshold)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; raises ConfigError otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"shard must look like 'i/N' (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"shard {text!r}: need 0 <= i < N")
    return i, n


def shard_of(paths: Iterable[str], shard: tuple[int, int]) -> list[str]:
    """Shard ``i`` of ``N`` of ``paths``: the distinct paths sorted, every ``N``-th from ``i``
    (so ``N`` shards cover the paths exactly once, whatever machine computes them)."""
    i, n = shard
    if not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need 0 <= i < N")
    return sorted(set(paths))[i::n]


def shard_paths(manifest: Manifest, shard: tuple[int, int]) -> list[str]:
    """This shard's distinct clip paths: sorted paths, every ``N``-th from ``i``."""
    return shard_of((r.path for r in manifest.records), shard)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="clip", dynamic_ncols=True)


def preprocess(
    manifest: Manifest,
    settings: PreprocessSettings,
    cache_root: str | Path,
    workers: int = 0,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    face_detector_factory: Callable[[], Any] | None = None,
) -> PreprocessReport:
    """Preprocess the clips of ``manifest`` (this ``shard`` of them) into the cache.

    Args:
        manifest: clips to process (labels are not used; every split is processed).
        settings: what to store.
        cache_root: cache root folder (created if needed).
        workers: worker processes; 0 runs in this process.
        shard: ``(i, N)``: process only the ``i``-th of ``N`` deterministic parts.
        progress: show a tqdm progress bar.
        chunk_size: single images packed per shard file.
        face_detector_factory: picklable zero-argument callable returning a face detector
            (default: YuNet from :func:`rdam.data.faces.resolve_face_model`; see
            :func:`yunet_factory` for a model file). The face model is not part of the
            cache key: use another cache root when changing it.

    Returns:
        A :class:`PreprocessReport`; failures are listed there, never raised.
    """
    if workers < 0 or chunk_size < 1:
        raise ConfigError(f"workers must be >= 0 and chunk_size >= 1, got {workers}, {chunk_size}")
    start = time.perf_counter()
    cache = ClipCache(cache_root, settings, create=True)
    removed = cache.clean_tmp()
    if removed:
        log.info("removed %d unfinished entries left by earlier runs", removed)
    report = PreprocessReport(cache_dir=str(cache.directory))
    paths = shard_paths(manifest, shard)
    report.total = len(paths)

    # content keys (memoised); a missing file fails here
    by_key: dict[str, list[str]] = {}
    with _progress(len(paths), progress and len(paths) > 1000, "hashing") as bar:
        for p in paths:
            try:
                by_key.setdefault(cache.content_key(p), []).append(p)
            except Exception as exc:
                report.failed.append((p, _error_message(exc)))
            bar.update(1)
    todo: dict[str, list[str]] = {}
    for key, ps in by_key.items():
        if cache.has(key):
            report.skipped_cached += len(ps)
        else:
            todo[key] = ps
    tasks = list(_make_tasks(todo, chunk_size))

    with _progress(sum(len(t.items) for t in tasks), progress, "preprocess") as bar:

        def collect(task: _Task, result: _TaskResult) -> None:
            written = set(result.written)
            report.done += sum(len(todo[k]) for k, _ in task.items if k in written)
            failed_paths = {p for p, _ in result.failed}
            for key, path in task.items:
                if path in failed_paths:
                    msg = next(m for p, m in result.failed if p == path)
                    report.failed.extend((q, msg) for q in todo[key])
            report.no_face.extend(result.no_face)
            bar.update(len(task.items))

        if workers == 0:
            _init_worker(str(cache.root), settings, face_detector_factory)
            try:
                for task in tasks:
                    collect(task, _run_task(task))
            finally:
                _WORKER.clear()
        else:
            _run_pool(tasks, workers, str(cache.root), settings, face_detector_factory, collect)
    report.failed.sort()
    report.seconds = time.perf_counter() - start
    return report


def _make_tasks(todo: dict[str, list[str]], chunk_size: int) -> Iterator[_Task]:
    images: list[tuple[str, str]] = []
    for key, ps in sorted(todo.items(), key=lambda kv: kv[1][0]):
        item = (key, ps[0])
        if clip_kind(ps[0]) == "image":
            images.append(item)
        else:
            yield _Task((item,), packed=False)
    for i in range(0, len(images), chunk_size):
        yield _Task(tuple(images[i : i + chunk_size]), packed=True)


def _run_pool(
    tasks: list[_Task],
    workers: int,
    root: str,
    settings: PreprocessSettings,
    factory: Callable[[], Any] | None,
    collect: Callable[[_Task, _TaskResult], None],
) -> None:
    """Run tasks in a spawn pool; after a worker crash, rerun the unfinished tasks one at a
    time so a crash is pinned on the one clip (or image chunk) that caused it."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = list(tasks)
    isolate = False
    while pending:
        n = 1 if isolate else min(workers, len(pending))
        batch = pending[:1] if isolate else pending
        pending = pending[1:] if isolate else []
        unfinished: list[_Task] = []
        with ProcessPoolExecutor(
            max_workers=n,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(root, settings, factory, threads),
        ) as pool:
            futures: dict[Future, _Task] = {pool.submit(_run_task, t): t for t in batch}
            not_done = set(futures)
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = futures[fut]
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        unfinished.append(task)
                        continue
                    except Exception as exc:  # e.g. a result that failed to pickle
                        msg = _error_message(exc)
                        result = _TaskResult(failed=[(p, msg) for _, p in task.items])
                    collect(task, result)
        if isolate:
            for task in unfinished:  # the crash is this task's own
                result = _TaskResult(
                    failed=[
                        (
                            p,
                            "the worker process died on this clip (decoder crash, out of memory, or workers cannot start: see the log above)",
                        )
                        for _, p in task.items
                    ]
                )
                collect(task, result)
        elif unfinished:
            log.warning(
                "a worker process crashed; retrying %d unfinished tasks one at a time",
                len(unfinished),
            )
            pending = unfinished
            isolate = True


__all__ = [
    "PreprocessReport",
    "build_entry",
    "parse_shard",
    "preprocess",
    "shard_paths",
    "yunet_factory",
]
