"""Receiving one uploaded video safely: streamed to disk with a size limit, sniffed by content.

- The multipart body is parsed as it arrives (``python-multipart``); the file part is written
  to a fixed name inside a folder the caller owns (a ``tempfile.TemporaryDirectory``), so the
  client's file name is never used as a path; it is only echoed back, cleaned.
- The byte count is checked on every chunk: an upload larger than the limit stops being read
  at once (:class:`UploadTooLarge`), it is never first stored whole.
- :func:`sniff_container` recognises video containers by their magic bytes; anything else
  (text, images, archives ...) is refused before the decoder sees it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

UPLOAD_FIELD = "file"
UPLOAD_FILENAME = "upload.bin"
"""Name of the stored upload inside the request's temporary folder (never the client's)."""
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes allowed on top of the file size for multipart boundaries and part headers."""
_MAX_OTHER_FIELD_BYTES = 64 * 1024


class UploadError(Exception):
    """The request body is not a usable upload; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadTooLarge(UploadError):
    status = 413


class UnsupportedUpload(UploadError):
    status = 415


@dataclass
class ReceivedUpload:
    """The stored upload: ``path`` inside the caller's folder, the client's ``filename``
    (cleaned, for display only), ``size`` in bytes and the sniffed ``container``."""

    path: Path
    filename: str
    size: int
    container: str | None = None


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KB``; ``200 * 2**20`` -> ``200 MB``."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            break
        n /= 1024
    return f"{n:.0f} {unit}" if unit == "bytes" or float(n).is_integer() else f"{n:.1f} {unit}"


def display_name(raw: str | None) -> str:
    """The last path component of a client file name, without control characters, at most
    120 characters, for display only (``../../etc/passwd`` -> ``passwd``)."""
    if not raw:
        return "upload"
    name = re.split(r"[\\/]", raw)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "upload"
    return name[:120]


BMP_DIB_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
"""Sizes of the DIB headers a BMP file can have (BITMAPCOREHEADER ... BITMAPV5HEADER)."""
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
"""ISO BMFF major brands of still images (HEIF, AVIF): not read as videos."""


def sniff_container(head: bytes) -> str | None:
    """The video container announced by the first bytes of a file, or ``None``.

    Recognised: ISO BMFF (mp4, mov, m4v, 3gp), Matroska/WebM, AVI, FLV, Ogg, ASF/WMV, MPEG
    program and transport streams.
    """
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return None  # an ISO BMFF still image (an iPhone's HEIC photo, AVIF), not a video
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpeg-ts"
    return None


def sniff_image(head: bytes) -> str | None:
    """The file suffix of the still image announced by the first bytes of a file, or ``None``
    (JPEG, PNG, BMP, WebP, TIFF, PGM/PPM: the images :func:`rdam.data.video.read_image` reads).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    # "BM" and a DIB header of a size BMP defines (any body starting with "BM" passed before)
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in BMP_DIB_SIZES:
        return ".bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if head[:2] in (b"P5", b"P6") and head[2:3].isspace():
        return ".pgm" if head[:2] == b"P5" else ".ppm"
    return None


class _MultipartFileWriter:
    """python-multipart callbacks writing the ``file`` part to ``dest``, counting bytes."""

    def __init__(self, dest: Path, max_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.size = 0
        self.filename: str | None = None
        self.found = False
        self._done = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._out: BinaryIO | None = None
        self._other = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    @property
    def complete(self) -> bool:
        """The file part was found and ended with its boundary (not cut short)."""
        return self._done

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._other = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        is_file = options.get(b"name") == UPLOAD_FIELD.encode() and b"filename" in options
        if is_file and not self._done:
            self.found = True
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._out = open(self.dest, "wb")  # noqa: SIM115 - closed in on_part_end / close

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._out is None:
            self._other += n
            if self._other > _MAX_OTHER_FIELD_BYTES:
                raise UploadError("a form field other than the file is too large")
            return
        self.size += n
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"the upload exceeds the limit of {format_bytes(self.max_bytes)}")
        self._out.write(data[start:end])

    def on_part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self._done = True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    folder: str | os.PathLike[str],
    max_bytes: int,
) -> ReceivedUpload:
    """Stream a ``multipart/form-data`` body into ``folder/upload.bin``.

    Args:
        content_type: the request's ``Content-Type`` (must be multipart with a boundary).
        content_length: the request's ``Content-Length`` (checked first when present).
        body: the request body chunks (``request.stream()``).
        folder: where to write (the caller deletes it).
        max_bytes: largest accepted file.

    Raises:
        UploadTooLarge (413), UnsupportedUpload (415: not multipart, not a video container),
        UploadError (400: no ``file`` field, malformed body).
    """
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedUpload("send the video as multipart/form-data with a field named 'file'")
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise UploadError("invalid Content-Length header") from None
        if declared > max_bytes + MULTIPART_OVERHEAD:
            raise UploadTooLarge(
                f"the upload ({format_bytes(declared)}) exceeds the limit of "
                f"{format_bytes(max_bytes)}"
            )
    dest = Path(folder) / UPLOAD_FILENAME
    writer = _MultipartFileWriter(dest, max_bytes)
    parser = MultipartParser(params[b"boundary"], writer.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in body:
            total += len(chunk)
            if total > max_bytes + MULTIPART_OVERHEAD:
                raise UploadTooLarge(f"the upload exceeds the limit of {format_bytes(max_bytes)}")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UploadError(f"malformed multipart body ({exc})") from exc
    finally:
        writer.close()
    if not writer.found:
        raise UploadError(f"no file in the form; send the video in a field named '{UPLOAD_FIELD}'")
    if not writer.complete:
        # python-multipart's finalize() does not check the end of the body: without this, a
        # body cut short would be answered as if the first part of the video were all of it.
        raise UploadError(
            "the upload ended before the file did (no closing multipart boundary); the file "
            "may be cut short: send it again"
        )
    with open(dest, "rb") as fh:
        head = fh.read(512)
    upload = ReceivedUpload(dest, display_name(writer.filename), writer.size)
    if writer.size == 0:
        raise UnsupportedUpload(f"{upload.filename}: the file is empty")
    upload.container = sniff_container(head)
    image = sniff_image(head) if upload.container is None else None
    if image is not None:  # a still image is a one-frame clip (a face crop, a photo)
        upload.path = dest.rename(dest.with_suffix(image))
        upload.container = f"image{image}"
    if upload.container is None:
        raise UnsupportedUpload(
            f"{upload.filename} is not a video or an image (unrecognised content); upload an "
            "mp4, mov, mkv, webm, avi, flv, ogg, wmv or mpeg video, or a jpeg, png, bmp, webp "
            "or tiff image"
        )
    return upload
