"""Content hashes of clips (a file's bytes, an image folder's names and image hashes) and the
memo of them that processes share."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from rdam.data import content_hash as content_hash_module
from rdam.data.content_hash import HashIndex, content_hash, sha256_file
from rdam.errors import VideoNotFoundError


def write_image(path: Path, value: int, size: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size), value, np.uint8)
    img[: size // 2] = 255 - value
    cv2.imwrite(str(path), img)
    return path


def test_content_hash_depends_on_content_only(tmp_path: Path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"hello")
    b.write_bytes(b"hello")
    assert content_hash(a) == content_hash(b) == sha256_file(a)
    # the SHA-256 of the bytes, as published for "hello"
    assert sha256_file(a, chunk=2) == (
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    b.write_bytes(b"hellO")
    assert content_hash(a) != content_hash(b)
    seq = tmp_path / "seq"
    write_image(seq / "0.png", 1)
    h1 = content_hash(seq)
    write_image(seq / "0.png", 2)
    assert content_hash(seq) != h1
    with pytest.raises(VideoNotFoundError):
        content_hash(tmp_path / "nope")


@pytest.mark.parametrize("change_time", [True, False], ids=["posix ctime", "windows sample"])
def test_hash_index_memo_is_shared_and_invalidated_by_changes(
    tmp_path: Path, monkeypatch, change_time: bool
):
    """Also as on Windows, whose ctime is the creation time: a sample of the file's bytes
    stands in for the change time there."""
    signature = content_hash_module._signature
    monkeypatch.setattr(
        content_hash_module, "_signature", lambda p: signature(p, change_time=change_time)
    )
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"abc")
    first = HashIndex(tmp_path / "cache").hash(f)
    # a second index (another process) reads the memo instead of hashing
    with monkeypatch.context() as m:
        m.setattr(content_hash_module, "content_hash", lambda p: pytest.fail("hashed again"))
        assert HashIndex(tmp_path / "cache").hash(f) == first
    f.write_bytes(b"abcd")  # new size -> new hash
    assert HashIndex(tmp_path / "cache").hash(f) != first
    # rewritten to the same size with its mtime put back (touch -r, cp -p): hashed again
    stat = f.stat()
    before = HashIndex(tmp_path / "cache").hash(f)
    f.write_bytes(b"wxyz")
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert HashIndex(tmp_path / "cache").hash(f) == content_hash(f) != before
    # replaced by another file of the same size and mtime (mv): another inode, hashed again
    other = tmp_path / "other.mp4"
    other.write_bytes(b"1234")
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, f)
    assert HashIndex(tmp_path / "cache").hash(f) == content_hash(f)
    # a line cut short by a killed writer is ignored
    memo = next((tmp_path / "cache" / "hashes").glob("*.jsonl"))
    with open(memo, "a") as fh:
        fh.write('{"path": "/x", "si')
    assert HashIndex(tmp_path / "cache").hash(f) == content_hash(f)


def test_sample_digest_reads_the_first_and_last_64_kib(tmp_path: Path):
    from rdam.data.content_hash import _sample_digest

    f = tmp_path / "big.bin"
    data = bytearray(300_000)
    f.write_bytes(bytes(data))
    base = _sample_digest(str(f))
    assert 0 <= base < 2**63
    for at, changes in ((10, True), (299_990, True), (150_000, False)):
        changed = bytearray(data)
        changed[at] = 1
        f.write_bytes(bytes(changed))
        assert (_sample_digest(str(f)) != base) is changes, at  # the middle is not sampled
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    assert _sample_digest(str(small)) != _sample_digest(str(f))
