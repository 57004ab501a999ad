#!/usr/bin/env python3
"""`make bench`: boots the kernel with `-append bench` under `-icount shift=0` at each memory size
and prints its figures as `bench: NAME@MEMORY VALUE insns/op` (the block rows' virtual time as
`ns/op`). The Makefile passes the machine variables (CPU, GIC, EL2, SMP, APPEND after `bench`,
QEMU_EXTRA; MEMORY replaces the two sizes).

With -icount shift=0 QEMU advances virtual time by exactly 1 ns per guest instruction and derives
the PMU cycle counter from that clock at 1 GHz, so PMCCNTR_EL0 counts guest instructions and the
figures repeat exactly from run to run. The kernel (kernel/selftests/Benchmarks.swift) times a
loop of each operation, subtracts an empty loop of the same length, and divides by the
iterations; init then runs the user-space benchmarks (userland/services/bench), which read the
same counter from EL0. A 4 MiB disk (build/bench-disk.img) is attached for the block service's rows.

Two figures need more than one core. `bench=cores` at -smp 2 (or SMP), still under icount, gives
the instructions of a call+reply between two cores. `bench=scaling` times the same CPU-bound work in
1, 2 and 4 processes without icount, where QEMU runs each core in a host thread, once at -smp 1
and once at -smp 2; the ratio of the two wall times is reported (it depends on the host's free
cores, so nothing asserts it)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "boot"))
from harness import INITRD, ROOT, boot, disk_arguments, qemu_command  # noqa: E402

LINE = re.compile(r"^bench: (\S+) (\d+) (insns/op|ns/op)$")
SCALING = re.compile(r"^bench: scaling-(\d+) (\d+) us$")


def main() -> int:
    parser = argparse.ArgumentParser(description="`make bench` passes the machine variables (README)")
    parser.add_argument("--memory", nargs="+", default=["256M", "8G"])
    parser.add_argument("--cpu", default="cortex-a72")
    parser.add_argument("--machine", default="virt,gic-version=2")
    parser.add_argument("--smp", type=int, default=1)
    parser.add_argument("--append", default="bench", help="the kernel command line")
    parser.add_argument("extra", nargs="*", help="further QEMU arguments (after --)")
    options = parser.parse_args()
    failures = 0
    # A disk for the block service's rows; what the benchmark writes there does not matter.
    disk = ROOT / "build" / "bench-disk.img"
    if not disk.exists():
        with open(disk, "wb") as image:
            image.truncate(4 << 20)
    for memory in options.memory:
        failures += run_icount(options, memory, options.smp, options.append, disk_arguments(disk))
    words = [word for word in options.append.split() if word != "bench"]
    # The call+reply between two cores, at -smp 2 (or more, if SMP asks).
    failures += run_icount(options, options.memory[0], max(2, options.smp), " ".join(["bench=cores"] + words), [])
    failures += run_scaling(options, words)
    return 1 if failures else 0


def run_icount(options: argparse.Namespace, memory: str, smp: int, append: str, extra: list[str]) -> int:
    """One boot under icount: prints its figures as `bench: NAME@MEMORY VALUE UNIT`; 1 if it did
    not complete."""
    command = qemu_command(machine=options.machine, cpu=options.cpu, memory=memory, smp=smp, append=append,
                           initrd=INITRD, extra=["-icount", "shift=0"] + extra + options.extra)
    result = boot(command, timeout=300)
    figures = [match for match in map(LINE.match, result.lines) if match]
    if not figures or "bench: done" not in result.lines:
        print(f"bench: run of {append!r} at {memory} did not complete (exit {result.exit_code})")
        print("\n".join(result.lines[-20:]))
        return 1
    for match in figures:
        print(f"bench: {match[1]}@{memory} {match[2]} {match[3]}", flush=True)
    return 0


def run_scaling(options: argparse.Namespace, words: list[str]) -> int:
    """The same work in 1, 2 and 4 processes, timed at -smp 1 and -smp 2 without icount."""
    times: dict[int, dict[int, int]] = {}
    for cores in (1, 2):
        command = qemu_command(machine=options.machine, cpu=options.cpu, memory=options.memory[0], smp=cores,
                               append=" ".join(["bench=scaling"] + words), initrd=INITRD, extra=options.extra)
        result = boot(command, timeout=300)
        times[cores] = {int(match[1]): int(match[2]) for match in map(SCALING.match, result.lines) if match}
        if not times[cores]:
            print(f"bench: the scaling run at -smp {cores} did not complete (exit {result.exit_code})")
            print("\n".join(result.lines[-20:]))
            return 1
    for processes in sorted(set(times[1]) & set(times[2])):
        one, two = times[1][processes], times[2][processes]
        name = f"scaling-{processes}-process{'es' if processes > 1 else ''}"
        print(f"bench: {name} {one / max(two, 1):.2f}x on 2 cores ({one // 1000} ms on 1 core, {two // 1000} ms on 2; "
              "wall time, varies with the host)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
