#!/usr/bin/env python3
"""Drop the zero padding QEMU leaves after a dumped device tree (it reports a 1 MiB totalsize)
and rewrite totalsize to match. Node, property and string layout are kept byte for byte."""
import struct
import sys

for path in sys.argv[1:]:
    blob = bytearray(open(path, "rb").read())
    magic, total, off_struct, off_strings, off_rsv, version, _, _, size_strings, size_struct = \
        struct.unpack(">10I", blob[:40])
    if magic != 0xD00DFEED:
        sys.exit(f"{path}: not a device tree")
    end = max(off_struct + size_struct, off_strings + size_strings)
    end = (end + 7) & ~7
    blob[4:8] = struct.pack(">I", end)
    open(path, "wb").write(bytes(blob[:end]))
    print(f"{path}: {total} -> {end} bytes")
