"""Pack a folder of class folders of images (FER2013's ``train/<class>/*.jpg``, ``val/...``)
into a few ``.npz`` parts of their files' bytes, and unpack them byte for byte: how the data of
a training run travels to a lent GPU machine, where ``../shared/data`` does not go and a call
carries at most 64 MiB with the working tree (``/work/.library/device/README.md``).

The images are stored as their own files' bytes (FER2013's JPEGs are 1.8 KB each, smaller than
any lossless pixel array of them), so the unpacked folder is the very same data set.

    .venv/bin/python -m benchmarks.pack_images ../shared/data/fer2013 --out .gpu --parts 2
    python3 -m benchmarks.pack_images --unpack .gpu/images_*.npz --out /tmp/fer2013
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def pack(root: str | Path, out: str | Path, parts: int = 1) -> list[Path]:
    """Write ``out/images_<i>.npz`` (``parts`` of them, balanced by bytes), each holding the
    relative paths and bytes of its files; returns their paths."""
    root, out = Path(root), Path(out)
    files = _files(root)
    if not files:
        raise SystemExit(f"no images under {root}")
    sizes = [f.stat().st_size for f in files]
    bounds = np.searchsorted(np.cumsum(sizes), np.linspace(0, sum(sizes), parts + 1)[1:-1])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, chunk in enumerate(np.split(np.arange(len(files)), bounds)):
        blobs = [files[j].read_bytes() for j in chunk]
        names = [files[j].relative_to(root).as_posix() for j in chunk]
        path = out / f"images_{i}.npz"
        np.savez(
            path,
            data=np.frombuffer(b"".join(blobs), np.uint8),
            offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
            names=np.array(names, dtype=np.str_),
        )
        written.append(path)
    return written


def unpack(parts: list[str | Path], out: str | Path) -> int:
    """Write every file of the parts under ``out`` (their relative paths); returns the count."""
    out = Path(out)
    count = 0
    for part in parts:
        with np.load(part, allow_pickle=False) as z:
            data, offsets, names = z["data"], z["offsets"], z["names"]
            for k, name in enumerate(names):
                target = out / str(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[offsets[k] : offsets[k + 1]].tobytes())
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", help="the folder to pack")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--unpack", nargs="+", metavar="PART", help="unpack these parts instead")
    args = parser.parse_args()
    if args.unpack:
        print(f"{unpack(args.unpack, args.out)} files written under {args.out}")
    else:
        if args.root is None:
            parser.error("give the folder to pack")
        for path in pack(args.root, args.out, args.parts):
            print(f"{path} {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
