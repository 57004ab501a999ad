#!/usr/bin/env python3
"""Packs a folder's files into the initial ramdisk's archive of programs: cpio "newc" (what
kernel/core/CPIOArchive.swift reads), in name order, with every file's bytes starting on a
4 KiB page.

The page alignment lets a program loader map a program's read-only segments straight from the
ramdisk's memory object instead of copying them (userland/runtime/ProgramLoader.swift,
`SharedSource`): a linked program keeps each segment at the same place within a page in the
file as in memory, so a file that starts on a page has its segments' pages whole in the archive.
Where a file would not start on one, a padding entry comes first: a regular file named
`.padding`, of zeros, sized to push the next file's bytes to the page. Every file is stored
with owner 0, mode 0644 (0755 if executable) and time 0, so the same inputs give the same
archive.

usage: pack-ramdisk.py FOLDER OUT
"""
from __future__ import annotations

import sys
from pathlib import Path

PAGE = 4096
HEADER_SIZE = 110
PADDING_NAME = ".padding"


def align4(value: int) -> int:
    return (value + 3) & ~3


def entry(inode: int, name: str, mode: int, data: bytes) -> bytes:
    """One newc entry: the header's thirteen 8-digit hex fields, the name with its NUL and the
    data, each padded to 4 bytes (the header starts on 4, so its offset is kept)."""
    encoded = name.encode() + b"\0"
    fields = [inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
    header = b"070701" + b"".join(b"%08X" % field for field in fields)
    assert len(header) == HEADER_SIZE
    head = header + encoded
    head += b"\0" * (align4(len(head)) - len(head))
    return head + data + b"\0" * (align4(len(data)) - len(data))


def data_offset(position: int, name: str) -> int:
    """Where the bytes of an entry for `name` at `position` (4-aligned) start."""
    return position + align4(HEADER_SIZE + len(name.encode()) + 1)


def pack(folder: Path) -> bytes:
    archive = bytearray()
    inode = 1
    for path in sorted(folder.iterdir(), key=lambda path: path.name.encode()):
        if not path.is_file():
            continue
        if data_offset(len(archive), path.name) % PAGE:
            # The padding entry's own bytes start at `start`; the file's header then goes where
            # its bytes land on the next page at or after them.
            start = data_offset(len(archive), PADDING_NAME)
            lead = data_offset(0, path.name)
            target = -(-(start + lead) // PAGE) * PAGE - lead
            archive += entry(inode, PADDING_NAME, 0o100644, bytes(target - start))
            inode += 1
        assert data_offset(len(archive), path.name) % PAGE == 0
        mode = 0o100755 if path.stat().st_mode & 0o111 else 0o100644
        archive += entry(inode, path.name, mode, path.read_bytes())
        inode += 1
    archive += entry(0, "TRAILER!!!", 0, b"")
    # As cpio(1) ends an archive: on a 512-byte block.
    archive += bytes(-len(archive) % 512)
    return bytes(archive)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    Path(sys.argv[2]).write_bytes(pack(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
