#!/usr/bin/env python3
"""`make soak`: the test run with many kills of a service in use. The services' stage
(userland/services/restarts) kills the memory manager, the name service and the echo service in
turn while using each, and ends with "soak: N restarts, N recovered, leaked frames N, leaked
objects N". With a disk attached, the disk test (userland/services/disktest) crashes its driver as
many times under a copy. Succeeds when every restart recovered, the disk test passed and nothing
leaked."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "boot"))
import tempfile  # noqa: E402

from harness import INITRD, boot, disk_arguments, qemu_command  # noqa: E402

SUMMARY = re.compile(r"^soak: (\d+) restarts, (\d+) recovered, leaked frames (\d+), leaked objects (\d+)$")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=7200)
    options = parser.parse_args()
    # A disk too: the disk test crashes its driver as many times under a copy.
    with tempfile.TemporaryDirectory() as directory:
        image = Path(directory) / "disk.img"
        with open(image, "wb") as disk:
            disk.truncate(8 << 20)
        result = boot(qemu_command(append=f"test soak={options.restarts}", initrd=INITRD, extra=disk_arguments(image)),
                      timeout=options.timeout)
    disk = [line for line in result.lines if line.startswith("disk: ")]
    if not disk:
        print("soak: the disk test printed no summary; the last lines were:")
        print("\n".join(result.lines[-30:]))
        return 1
    print(disk[-1])
    if not any(line.startswith("disktest: 8 passed, 0 failed") for line in result.lines):
        print("soak: the disk test FAILED; its lines were:")
        print("\n".join(line for line in result.lines if line.startswith("disktest: ")))
        return 1
    summaries = [SUMMARY.match(line) for line in result.lines]
    summaries = [match for match in summaries if match]
    if not summaries:
        print("soak: no summary line; the last lines were:")
        print("\n".join(result.lines[-30:]))
        return 1
    restarts, recovered, frames, objects = (int(value) for value in summaries[-1].groups())
    print(summaries[-1][0])
    ok = restarts >= options.restarts and recovered == restarts and frames == 0 and objects == 0
    print("soak: passed" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
