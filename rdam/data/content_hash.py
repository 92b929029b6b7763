"""Content hashes of clips: the SHA-256 of a file's bytes, or of an image-sequence folder's
sorted names and image hashes, and a memo of them by (path, size, mtime, ctime, inode) that
several processes share (:class:`HashIndex`). They key the preprocessing cache (:mod:`rdam.data.cache`), batch
prediction's resume (:mod:`rdam.inference.batch`) and ``rdam validate``; model files are
checked with :func:`sha256_file` too (:mod:`rdam.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import uuid
from pathlib import Path

from rdam.errors import VideoNotFoundError

log = logging.getLogger(__name__)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_files(path: str) -> list[os.DirEntry]:
    from rdam.data.video.formats import IMAGE_EXTENSIONS

    with os.scandir(path) as it:
        entries = [
            e for e in it if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        ]
    return sorted(entries, key=lambda e: e.name)


Signature = tuple[int, int, int, int]
"""(size, mtime_ns, ctime_ns, inode): what must all be unchanged for a memoised hash to stand.
Where the system keeps no change time (Windows), the third is :func:`_sample_digest`."""

HAS_CHANGE_TIME = os.name != "nt"
"""POSIX ``st_ctime`` is the time of the last change, which no user can set; Windows' is the
file's creation time, which a rewrite in place keeps."""

_SAMPLE = 1 << 16


def _sample_digest(path: str) -> int:
    """64 bits of the SHA-256 of a file's first and last 64 KiB: what stands in for the change
    time where there is none (a rewrite of a video changes its header or its index)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(_SAMPLE))
        size = fh.seek(0, os.SEEK_END)
        if size > _SAMPLE:
            fh.seek(max(_SAMPLE, size - _SAMPLE))
            h.update(fh.read(_SAMPLE))
    return int.from_bytes(h.digest()[:8], "big") >> 1  # fits a signed 64-bit JSON reader


def _signature(path: str, change_time: bool = HAS_CHANGE_TIME) -> Signature:
    """(size, mtime_ns, ctime_ns, inode) of a file; for a folder, summed sizes and the latest
    mtime and ctime of its images combined with the folder's own (a rename or a new file
    changes them), and the folder's inode.

    Size and mtime alone miss a file rewritten to the same size whose mtime was put back
    (``touch -r``, ``cp -p``, ``rsync -t``, an unpacked archive); the ctime cannot be set by a
    user and changes with any write, and a file replaced by another (``mv``) has another
    inode, so such a file is hashed again. Without a change time (``change_time`` false:
    Windows) a file's third field is :func:`_sample_digest`: a rewrite that keeps size, mtime
    and file index is then caught where it touches the first or last 64 KiB."""
    st = os.stat(path)
    if not os.path.isdir(path):
        third = st.st_ctime_ns if change_time else _sample_digest(path)
        return st.st_size, st.st_mtime_ns, third, st.st_ino
    stats = [e.stat() for e in _folder_files(path)]
    size = sum(s.st_size for s in stats) + len(stats)
    mtime = max([st.st_mtime_ns, *(s.st_mtime_ns for s in stats)])
    ctime = max([st.st_ctime_ns, *(s.st_ctime_ns for s in stats)])
    return size, mtime, ctime, st.st_ino


def content_hash(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes, or of an image folder's sorted names and hashes.

    Raises:
        VideoNotFoundError: the path does not exist.
    """
    path = str(path)
    if not os.path.exists(path):
        raise VideoNotFoundError(path, "the file does not exist; check the path")
    if not os.path.isdir(path):
        return sha256_file(path)
    h = hashlib.sha256(b"rdam-sequence\0")
    for e in _folder_files(path):
        h.update(e.name.encode() + b"\0" + sha256_file(e.path).encode() + b"\n")
    return h.hexdigest()


class HashIndex:
    """Memo of content hashes by (absolute path, size, mtime, ctime, inode), shared through
    ``<root>/hashes``.

    Every process appends to its own ``.jsonl`` file, so concurrent writers never interleave;
    a line cut short by a kill is ignored on reading.
    """

    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / "hashes"
        self._memo: dict[str, tuple[Signature, str]] = {}
        self._own: Path | None = None
        self._writable = True
        if self.folder.is_dir():
            for f in sorted(self.folder.glob("*.jsonl")):
                self._load(f)

    def _load(self, file: Path) -> None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            log.warning("cannot read hash memo %s: %s", file, exc)
            return
        for line in lines:
            try:
                row = json.loads(line)
                sig = (
                    int(row["size"]),
                    int(row["mtime_ns"]),
                    int(row["ctime_ns"]),
                    int(row["inode"]),
                )
                self._memo[row["path"]] = (sig, row["sha256"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a partial line from a killed writer, or one of an older rdam

    def _append(self, path: str, sig: Signature, digest: str) -> None:
        if not self._writable:
            return
        try:
            if self._own is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._own = self.folder / f"{writer_id()}.jsonl"
            size, mtime, ctime, inode = sig
            row = {
                "path": path,
                "size": size,
                "mtime_ns": mtime,
                "ctime_ns": ctime,
                "inode": inode,
                "sha256": digest,
            }
            with open(self._own, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
        except OSError as exc:  # a read-only cache still works; the memo stays in memory
            log.warning(
                "cannot write the hash memo in %s (%s); hashes are not kept", self.folder, exc
            )
            self._writable = False

    def hash(self, path: str | Path) -> str:
        """Content hash of ``path``, from the memo when its size, mtime, ctime and inode are
        unchanged.

        Raises:
            VideoNotFoundError: the path does not exist.
        """
        path = os.path.abspath(str(path))
        try:
            sig = _signature(path)
        except FileNotFoundError:
            raise VideoNotFoundError(path, "the file does not exist; check the path") from None
        known = self._memo.get(path)
        if known is not None and known[0] == sig:
            return known[1]
        digest = content_hash(path)
        self._memo[path] = (sig, digest)
        self._append(path, sig, digest)
        return digest


def writer_id() -> str:
    """A name no other writer uses: host, process id and a random part (for the files and
    folders each process writes alone: hash memos, entries being written)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
