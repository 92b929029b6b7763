"""The preprocessing cache: decoded, sampled, cropped clips stored as memory-mappable uint8 arrays.

An entry is keyed by the SHA-256 of the clip's content (a file's bytes; for an image-sequence
folder, the names and hashes of its images: :mod:`rdam.data.content_hash`) and lives under the directory of one set of
:class:`PreprocessSettings` (a :class:`~rdam.data.spec.ClipSpec` and how it was sampled), so a
change of either gives a new key. An entry holds exactly the arrays
:func:`rdam.data.clips.read_views` makes for the spec. Layout::

    <root>/
      hashes/<host>-<pid>-<id>.jsonl      content-hash memo: path, size, mtime, ctime, inode -> sha256
      <settings key>/
        settings.json                     the settings this directory holds
        entries/<sha[:2]>/<sha>/          one video or sequence:
            timestamps.npy  (V, K) float64 seconds
            frames.npy      (V, K, S, S, 3) uint8    only when the spec uses whole frames
            faces.npy       (V, K, S, S, 3) uint8   } only when the spec uses face crops
            face_mask.npy   (V, K) bool              }
            face_boxes.npy  (V, K, 5) float32        }
            meta.json       source path, duration, frames available, face input
        shards/<id>/                      many one-frame clips (images) packed together:
            keys.json       row -> sha256
            frames.npy      (N, S, S, 3) uint8, and faces/face_mask/face_boxes as above,
            meta.npy        (N,) str, face input of each image (with face crops)
        tmp/<host>-<pid>-<id>/            entries being written

Every entry and shard is written complete into ``tmp/`` and then renamed into place, so a reader
never sees half an entry; a killed writer leaves only a ``tmp/`` folder, removed by the next
writer on the same host once its process is gone (or after a day from another host).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rdam.data.clips import MODES, Clip
from rdam.data.content_hash import HashIndex, writer_id
from rdam.data.spec import FACE_INPUTS, ClipSpec
from rdam.errors import CacheError, ConfigError, VideoNotFoundError

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
_ARRAYS = ("frames", "timestamps", "faces", "face_mask", "face_boxes")
_STALE_TMP_S = 24 * 3600.0


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class PreprocessSettings:
    """What preprocessing stores for a clip; part of every cache key.

    Attributes:
        spec: the clip spec the arrays are made under (:func:`rdam.data.clips.read_views`):
            ``num_frames`` frames stored per view (a data set may use fewer, picked by
            segment), whole frames when ``spec.uses_frames``, face crops when
            ``spec.uses_faces``; all at ``spec.frame_size``, in ``spec.color``.
        mode: ``center`` (segment centres: what ``eval`` and ``predict`` read) or ``random``
            (a random offset per segment, drawn from ``seed`` and the content hash, so reruns
            agree).
        num_views: ``V`` clips per video (multi-view test); each view is ``K`` frames.
        seed: seed of the ``random`` mode.
        face_input: how face crops are made (:data:`rdam.data.spec.FACE_INPUTS`).
    """

    spec: ClipSpec = field(default_factory=ClipSpec)
    mode: str = "center"
    num_views: int = 1
    seed: int = 0
    face_input: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ClipSpec):
            raise ConfigError(f"settings.spec must be a ClipSpec, got {type(self.spec).__name__}")
        if self.num_views < 1:
            raise ConfigError(f"num_views must be >= 1, got {self.num_views}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.face_input not in FACE_INPUTS:
            raise ConfigError(
                f"unknown face_input {self.face_input!r}; valid: {', '.join(FACE_INPUTS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "mode": self.mode,
            "num_views": self.num_views,
            "seed": self.seed,
            "face_input": self.face_input,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(
                f"unknown preprocessing settings {sorted(unknown)}; valid: {sorted(known)}"
            )
        data = dict(data)
        data["spec"] = ClipSpec.from_dict(dict(data.get("spec") or {}))
        return cls(**data)

    def key(self) -> str:
        """16 hex digits identifying these settings and the cache format version."""
        payload = {"version": CACHE_FORMAT_VERSION, **self.to_dict()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def stored_arrays(self) -> tuple[str, ...]:
        """The arrays every entry of these settings holds."""
        names = ["timestamps"]
        if self.spec.uses_frames:
            names.append("frames")
        if self.spec.uses_faces:
            names.extend(("faces", "face_mask", "face_boxes"))
        return tuple(names)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------
# Entries


@dataclass
class CacheEntry:
    """One preprocessed clip: ``V`` views of ``K`` frames, as :func:`rdam.data.clips.read_views`
    made them; each array is None when the settings' clip spec does not use it.

    Attributes:
        timestamps: ``(V, K)`` float64 seconds of the frames in the source.
        frames: ``(V, K, S, S, 3)`` uint8 fitted whole frames.
        faces: ``(V, K, S, S, 3)`` uint8 face crops (zeros where no face).
        face_mask: ``(V, K)`` bool, True where a face was found (or given).
        face_boxes: ``(V, K, 5)`` float32 ``x, y, w, h, score`` of the face in decoded-frame
            pixels (before the margin), NaN where no face was found or the crop was given.
        meta: JSON-able facts about the source (path, duration, frames available).
    """

    timestamps: np.ndarray
    frames: np.ndarray | None = None
    faces: np.ndarray | None = None
    face_mask: np.ndarray | None = None
    face_boxes: np.ndarray | None = None
    meta: dict[str, Any] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in _ARRAYS if getattr(self, n) is not None}

    @classmethod
    def from_clips(cls, clips: Sequence[Clip], meta: dict[str, Any] | None = None) -> CacheEntry:
        """The entry of the ``V`` views of one clip."""
        entry = cls(timestamps=np.stack([c.timestamps for c in clips]), meta=meta)
        first = clips[0]
        if first.stream != "faces":  # whole frames are stored
            entry.frames = np.stack([c.frames for c in clips])
        if first.stream != "frames":
            k = len(first.timestamps)
            entry.faces = np.stack([c.face_crops for c in clips])
            entry.face_mask = np.stack([np.asarray(c.face_found, bool) for c in clips])
            entry.face_boxes = np.stack(
                [
                    c.boxes if c.boxes is not None else np.full((k, 5), np.nan, np.float32)
                    for c in clips
                ]
            ).astype(np.float32)
        if meta is not None and entry.face_mask is not None:
            entry.meta = {**meta, "faces_found": int(entry.face_mask.sum())}
        return entry

    def clip(self, spec: ClipSpec, view: int, index: np.ndarray | slice = slice(None)) -> Clip:
        """Frames ``index`` of view ``view`` as the :class:`Clip` the model takes under
        ``spec`` (the spec these settings were made with)."""

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else np.asarray(array[view][index])

        timestamps = pick(self.timestamps)
        frames, faces, face_mask = pick(self.frames), pick(self.faces), pick(self.face_mask)
        if face_mask is not None:
            face_mask = face_mask.astype(bool)
        return Clip.from_streams(
            spec,
            timestamps,
            frames,
            faces,
            face_mask,
            path=str((self.meta or {}).get("path", "")),
            boxes=pick(self.face_boxes),
            face_input=(self.meta or {}).get("face_input") if spec.uses_faces else None,
        )


def _save_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, arr in arrays.items():
        with open(folder / f"{name}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


class ClipCache:
    """Reads and writes the entries of one settings directory under ``root``.

    Args:
        root: cache root (shared by all settings).
        settings: the preprocessing settings; their directory is ``root / settings.key()``.
        create: create the directory (writers); readers raise CacheError when it is absent.

    The object pickles without its open memory maps (DataLoader workers reopen them).
    """

    def __init__(self, root: str | Path, settings: PreprocessSettings, create: bool = False):
        self.root = Path(root).expanduser().resolve()
        self.settings = settings
        self.directory = self.root / settings.key()
        settings_file = self.directory / "settings.json"
        if create:
            (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
            if not settings_file.is_file():
                tmp = self.directory / "tmp" / f"settings-{writer_id()}.json"
                _write_json(tmp, {"version": CACHE_FORMAT_VERSION, **settings.to_dict()})
                os.replace(tmp, settings_file)
        elif not settings_file.is_file():
            raise CacheError(
                f"no cache for these settings at {self.directory}; run `rdam preprocess` "
                f"with the same settings first (settings: {settings.to_dict()})"
            )
        self._check_settings(settings_file)
        self._hashes: HashIndex | None = None
        self._shard_rows: dict[str, tuple[str, int]] | None = None
        self._maps: dict[str, dict[str, np.ndarray]] = {}

    @classmethod
    def open(cls, root: str | Path, settings: PreprocessSettings | None = None) -> ClipCache:
        """Open an existing cache; without ``settings``, the root must hold exactly one."""
        if settings is not None:
            return cls(root, settings)
        root = Path(root).expanduser()
        found = sorted(p.parent for p in root.glob("*/settings.json"))
        if len(found) != 1:
            raise CacheError(
                f"{root} holds {len(found)} preprocessed settings "
                f"({[p.name for p in found]}); say which settings to use"
            )
        data = json.loads((found[0] / "settings.json").read_text(encoding="utf-8"))
        data.pop("version", None)
        return cls(root, PreprocessSettings.from_dict(data))

    def _check_settings(self, settings_file: Path) -> None:
        try:
            stored = json.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(f"{settings_file} is unreadable: {exc}; delete the folder") from exc
        version = stored.pop("version", None)
        if version != CACHE_FORMAT_VERSION or stored != self.settings.to_dict():
            raise CacheError(
                f"{settings_file} does not match the requested settings (version {version}, "
                f"{stored}); the folder was altered, delete it and preprocess again"
            )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        state["_hashes"] = None
        return state

    # ---- keys

    @property
    def hashes(self) -> HashIndex:
        if self._hashes is None:
            self._hashes = HashIndex(self.root)
        return self._hashes

    def content_key(self, path: str | Path) -> str:
        """Content hash of a clip (memoised). Raises VideoNotFoundError if it is missing."""
        return self.hashes.hash(path)

    def _entry_dir(self, key: str) -> Path:
        return self.directory / "entries" / key[:2] / key

    def _shards(self) -> dict[str, tuple[str, int]]:
        if self._shard_rows is None:
            rows: dict[str, tuple[str, int]] = {}
            shard_root = self.directory / "shards"
            if shard_root.is_dir():
                for keys_file in sorted(shard_root.glob("*/keys.json")):
                    try:
                        keys = json.loads(keys_file.read_text(encoding="utf-8"))
                    except (OSError, json.JSONDecodeError) as exc:
                        raise CacheError(
                            f"{keys_file} is unreadable ({exc}); delete {keys_file.parent}"
                        ) from exc
                    for row, key in enumerate(keys):
                        rows.setdefault(key, (keys_file.parent.name, row))
            self._shard_rows = rows
        return self._shard_rows

    def has(self, key: str) -> bool:
        return key in self._shards() or (self._entry_dir(key) / "meta.json").is_file()

    def keys(self) -> set[str]:
        """Every content key stored for these settings."""
        out = set(self._shards())
        entries = self.directory / "entries"
        if entries.is_dir():
            out.update(p.parent.name for p in entries.glob("*/*/meta.json"))
        return out

    def lookup_keys(self, paths: Sequence[str | Path]) -> list[str | None]:
        """Content key of each path if it is cached, else None (also when the file is gone)."""
        out: list[str | None] = []
        for p in paths:
            try:
                key = self.content_key(p)
            except (OSError, VideoNotFoundError):
                out.append(None)
                continue
            out.append(key if self.has(key) else None)
        return out

    # ---- reading

    def _shard_arrays(self, shard: str) -> dict[str, np.ndarray]:
        if shard not in self._maps:
            folder = self.directory / "shards" / shard
            maps = {}
            for name in ("frames", "faces", "face_mask", "face_boxes", "meta"):
                f = folder / f"{name}.npy"
                if f.is_file():
                    try:
                        maps[name] = np.load(f, mmap_mode="r", allow_pickle=False)
                    except (OSError, ValueError) as exc:
                        raise CacheError(f"{f} is corrupt ({exc}); delete {folder}") from exc
            self._maps[shard] = maps
        return self._maps[shard]

    def get(self, key: str) -> CacheEntry:
        """The entry for ``key``; arrays are read-only memory maps (shards) or loaded arrays.

        Raises:
            CacheError: the entry is missing or damaged.
        """
        shard = self._shards().get(key)
        if shard is not None:
            maps = self._shard_arrays(shard[0])
            row = shard[1]
            entry = CacheEntry(timestamps=np.zeros((1, 1), np.float64), meta={"kind": "image"})
            if "meta" in maps:
                entry.meta = {"kind": "image", "face_input": str(maps["meta"][row])}
            for name in ("frames", "faces", "face_mask", "face_boxes"):
                if name in maps:
                    setattr(entry, name, np.asarray(maps[name][row])[None, None])
            return entry
        folder = self._entry_dir(key)
        if not (folder / "meta.json").is_file():
            raise CacheError(
                f"no cache entry {key} in {self.directory}; run `rdam preprocess` on this clip"
            )
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            arrays = {
                name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                for name in _ARRAYS
                if (folder / f"{name}.npy").is_file()
            }
        except (OSError, ValueError) as exc:
            raise CacheError(f"cache entry {folder} is damaged ({exc}); delete it") from exc
        missing = [n for n in self.settings.stored_arrays if n not in arrays]
        if missing:
            raise CacheError(f"cache entry {folder} lacks {', '.join(missing)}; delete it")
        return CacheEntry(meta=meta, **arrays)

    # ---- writing

    def _tmp_dir(self) -> Path:
        d = self.directory / "tmp" / writer_id()
        d.mkdir(parents=True)
        return d

    def _publish(self, tmp: Path, final: Path) -> bool:
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # another writer finished the same entry first
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
        return True

    def put(self, key: str, entry: CacheEntry) -> bool:
        """Store one clip atomically. Returns False if the entry already existed."""
        self._check_entry(entry)
        final = self._entry_dir(key)
        if (final / "meta.json").is_file():
            return False
        tmp = self._tmp_dir()
        try:
            _save_arrays(tmp, entry.arrays())
            _write_json(tmp / "meta.json", {"key": key, **(entry.meta or {})})
            return self._publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def put_shard(self, keys: Sequence[str], entries: Sequence[CacheEntry]) -> str | None:
        """Pack one-frame clips (``V = K = 1``) into one shard, written atomically.

        Returns the shard name, or None when there was nothing to write.
        """
        if len(keys) != len(entries):
            raise ValueError("keys and entries must have the same length")
        if not keys:
            return None
        for e in entries:
            self._check_entry(e)
            if e.timestamps.shape != (1, 1):
                raise ValueError(f"shards hold one-frame clips, got {e.timestamps.shape[1]} frames")
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20]
        final = self.directory / "shards" / name
        if (final / "keys.json").is_file():
            return name
        arrays = {
            name: np.stack([getattr(e, name)[0, 0] for e in entries])
            for name in self.settings.stored_arrays
            if name != "timestamps"
        }
        if self.settings.spec.uses_faces:
            arrays["meta"] = np.array([(e.meta or {}).get("face_input", "") for e in entries])
        tmp = self._tmp_dir()
        try:
            _save_arrays(tmp, arrays)
            _write_json(tmp / "keys.json", list(keys))
            self._publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._shard_rows = None
        return name

    def _check_entry(self, entry: CacheEntry) -> None:
        size = self.settings.spec.frame_size
        shape = entry.timestamps.shape
        for name in self.settings.stored_arrays:
            array = getattr(entry, name)
            if array is None:
                raise CacheError(f"the settings store {name} but the entry has none")
            if name in ("frames", "faces"):
                expected = (*shape, size, size, 3)
                if array.dtype != np.uint8 or array.shape != expected:
                    raise CacheError(
                        f"entry {name} {array.shape} {array.dtype} do not fit the settings "
                        f"({', '.join(map(str, expected))}) uint8"
                    )
            elif array.shape[:2] != shape:
                raise CacheError(f"{name} {array.shape} do not match timestamps {shape}")

    def clean_tmp(self) -> int:
        """Remove temporary folders left by writers that are gone. Returns how many."""
        tmp_root = self.directory / "tmp"
        if not tmp_root.is_dir():
            return 0
        host = socket.gethostname()
        removed = 0
        for d in tmp_root.iterdir():
            name = d.name.removeprefix("settings-").removesuffix(".json")
            parts = name.rsplit("-", 2)
            owner_host = parts[0] if len(parts) == 3 else ""
            pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
            if owner_host == host and pid > 0:
                stale = pid != os.getpid() and not _pid_alive(pid)
            else:
                try:
                    stale = time.time() - d.stat().st_mtime > _STALE_TMP_S
                except OSError:
                    stale = False
            if stale:
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)
                else:
                    d.unlink(missing_ok=True)
                removed += 1
        return removed


def iter_settings(root: str | Path) -> Iterable[PreprocessSettings]:
    """The settings of every directory under a cache root."""
    for f in sorted(Path(root).glob("*/settings.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        data.pop("version", None)
        yield PreprocessSettings.from_dict(data)


__all__ = [
    "CACHE_FORMAT_VERSION",
    "CacheEntry",
    "ClipCache",
    "PreprocessSettings",
    "iter_settings",
]
