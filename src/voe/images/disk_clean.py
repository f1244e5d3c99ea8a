"""Capture of a disk-image persona: what makes it one machine (the files
of ``capture.MACHINE_SPECIFIC`` and ``capture.EMPTIED``) is removed from
each ext2/3/4 file system on the image, found through its MBR or GPT
partition table, without mounting it: ``debugfs -w`` (e2fsprogs) writes
the file system in place, so the controller needs neither a loop device
nor root. A qcow2 image is cleaned as raw and converted back
(``qemu-img``). A partition of another kind (NTFS, XFS, swap...) is named
in the report as not cleaned: an operator reads what was, and what was not.
"""

from __future__ import annotations

import fnmatch
import struct
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from voe.images.capture import EMPTIED, MACHINE_SPECIFIC

SECTOR = 512
EXT_MAGIC = 0xEF53
GPT_PROTECTIVE = 0xEE
EXTENDED = (0x05, 0x0F, 0x85)


class DiskCleanError(RuntimeError):
    """The image could not be read or written: the tool and its answer."""


def partitions(image: Path) -> list[int]:
    """Byte offsets of the image's partitions (MBR primary or GPT); the
    whole image (offset 0) when it has no partition table."""
    with open(image, "rb") as f:
        mbr = f.read(SECTOR)
        if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
            return [0]
        entries = [struct.unpack_from("<4xB3xII", mbr, 446 + 16 * i) for i in range(4)]
        if any(kind == GPT_PROTECTIVE for kind, _, _ in entries):
            f.seek(SECTOR)
            header = f.read(92)
            first_entry, count, size = struct.unpack_from("<QII", header, 72)
            f.seek(first_entry * SECTOR)
            table = f.read(count * size)
            starts = [struct.unpack_from("<Q", table, i * size + 32)[0] for i in range(count)
                      if table[i * size:i * size + 16] != bytes(16)]
            return [s * SECTOR for s in starts]
        return [start * SECTOR for kind, start, sectors in entries if kind and sectors and kind not in EXTENDED]


def is_ext(image: Path, offset: int) -> bool:
    with open(image, "rb") as f:
        f.seek(offset + 1024 + 56)
        return struct.unpack("<H", f.read(2) or b"\0\0")[0] == EXT_MAGIC


def _debugfs(image: Path, offset: int, commands: list[str], write: bool = False) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        r = subprocess.run(["debugfs", *(["-w"] if write else []), "-f", script.name, f"{image}?offset={offset}"],
                           capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise DiskCleanError(f"debugfs on {image} at byte {offset}: {r.stderr.strip() or r.returncode}")
    return r.stdout


REGULAR, SYMLINK, FILE_TYPE = 0o100000, 0o120000, 0o170000


def _listing(image: Path, offset: int, directory: str) -> list[tuple[str, int, int]]:
    """(name, mode, size) of each entry of ``directory``; empty when it is missing."""
    out = []
    for line in _debugfs(image, offset, [f"ls -p {directory}"]).splitlines():
        parts = line.strip().strip("/").split("/")  # /inode/mode/uid/gid/name/size/
        if len(parts) >= 6 and parts[4] not in (".", ".."):
            out.append((parts[4], int(parts[1], 8), int(parts[5] or 0)))
    return out


def _clean_fs(image: Path, offset: int) -> list[str]:
    commands, cleaned = [], []
    for pattern in MACHINE_SPECIFIC:
        directory, name = str(PurePosixPath("/", pattern).parent), PurePosixPath(pattern).name
        for entry, mode, _ in _listing(image, offset, directory):
            if fnmatch.fnmatch(entry, name) and mode & FILE_TYPE in (REGULAR, SYMLINK):
                path = f"{directory.rstrip('/')}/{entry}"
                commands.append(f"rm {path}")
                cleaned.append(path)
    with tempfile.NamedTemporaryFile() as empty:
        for rel in EMPTIED:
            path = PurePosixPath("/", rel)
            found = [(m, size) for e, m, size in _listing(image, offset, str(path.parent)) if e == path.name]
            if found and found[0][0] & FILE_TYPE == REGULAR and found[0][1]:
                commands += [f"rm {path}", f"cd {path.parent}", f"write {empty.name} {path.name}",
                             f"sif {path} mode 0100644"]
                cleaned.append(f"{path} (emptied)")
        if commands:
            _debugfs(image, offset, commands, write=True)
    return cleaned


def clean_disk(image: Path) -> list[str]:
    """Clean ``image`` in place; returns what was cleaned and what could not be."""
    if image.suffix == ".qcow2":
        with tempfile.TemporaryDirectory(dir=image.parent) as work:
            raw = Path(work) / "disk.raw"
            _qemu_img("convert", "-O", "raw", str(image), str(raw))
            cleaned = clean_disk(raw)
            _qemu_img("convert", "-O", "qcow2", str(raw), str(image))
            return cleaned
    cleaned: list[str] = []
    for n, offset in enumerate(partitions(image), start=1):
        if is_ext(image, offset):
            cleaned += _clean_fs(image, offset)
        else:
            cleaned.append(f"partition {n} (at byte {offset}): not ext2/3/4, not cleaned")
    return cleaned


def _qemu_img(*args: str) -> None:
    r = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise DiskCleanError(f"qemu-img {args[0]}: {r.stderr.strip() or r.returncode}")
