#!/usr/bin/env python3
"""`make profile ROW=NAME`: where the instructions of one `make bench` row go, function by function.

Boots the benchmarks as `make bench` does (one memory size, `-icount shift=0`) with QEMU's TCG
plugin tools/profile/instruction_profile.c loaded. The benchmarks mark each measured loop with
hint instructions (NOPs to the CPU: the runtime's `user_profile_*`, the kernel's
`aarch64_profile_*`), and each report tells its operation count the same way; the plugin counts
the executions of every translated block inside the marked loops, row by row. This script
matches the plugin's rows with the `bench: NAME N insns/op` lines in the order they were
printed, and names each instruction's function from the kernel's and the programs' symbols.

Code at the same virtual address in several programs (every program is linked at the same
address) is told apart by the block's first and last instruction words, compared with each
program's file; the kernel's blocks are checked the same way, so a wrong load address is caught
instead of naming wrong functions.

The figures count everything the CPU ran inside the loop, as the cycle counter does: the loop's
own few instructions and the counter reads too, which the bench takes off as overhead, so a
row's total here is a little above its `make bench` figure.

  python3 tools/profile.py ROW [--memory 256M] [--top 40] [--function NAME] [--list]
"""
from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "boot"))
from harness import INITRD, ROOT, boot, disk_arguments, qemu_command  # noqa: E402

BUILD = ROOT / "build"
# The kernel runs from the linear map's alias of where QEMU's -kernel loads an Image (RAM + 2 MiB).
KERNEL_BASE = 0xFFFF_0000_4020_0000
KERNEL_SPACE = 0xFFFF_0000_0000_0000
LINE = re.compile(r"^bench: (\S+) (\d+) insns/op$")


class Program:
    """An ELF's loadable bytes and function symbols, at the addresses the code runs at."""

    def __init__(self, name: str, path: Path, base: int, tools: Path) -> None:
        self.name, self.base = name, base
        data = path.read_bytes()
        self.segments: list[tuple[int, bytes]] = []
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        for index in range(phnum):
            kind, _, offset, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + index * phentsize)
            if kind == 1:  # PT_LOAD
                self.segments.append((vaddr + base, data[offset:offset + filesz]))
        listing = subprocess.run([str(tools / "llvm-nm"), "-n", "-S", "--defined-only", str(path)],
                                 capture_output=True, text=True, check=True).stdout
        self.starts: list[int] = []
        self.symbols: list[tuple[int, int, str]] = []
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2] in "tTwW":
                start = int(parts[0], 16) + base
                self.starts.append(start)
                self.symbols.append((start, int(parts[1], 16), parts[3]))
            elif len(parts) == 3 and parts[1] in "tT":
                # An assembly label, with no size: its code runs to the next symbol.
                start = int(parts[0], 16) + base
                self.starts.append(start)
                self.symbols.append((start, 0, parts[2]))
        for index, (start, size, name) in enumerate(self.symbols):
            if size == 0 and index + 1 < len(self.symbols):
                self.symbols[index] = (start, self.symbols[index + 1][0] - start, name)

    def word(self, address: int) -> int | None:
        for start, data in self.segments:
            if start <= address and address + 4 <= start + len(data):
                return int.from_bytes(data[address - start:address - start + 4], "little")
        return None

    def holds(self, address: int, instructions: int, first: int, last: int) -> bool:
        return self.word(address) == first and self.word(address + 4 * (instructions - 1)) == last

    def function(self, address: int) -> str:
        index = bisect.bisect_right(self.starts, address) - 1
        # Assembly labels have no size: their code runs to the next symbol.
        if index >= 0:
            start, size, name = self.symbols[index]
            if address < start + size:
                return name
        return f"?{address:#x}"

    def range_of(self, name: str) -> tuple[int, int] | None:
        for start, size, symbol in self.symbols:
            if symbol == name:
                return start, start + size
        return None


def demangle(names: list[str], tools: Path) -> dict[str, str]:
    result = subprocess.run([str(tools / "swift-demangle"), "--simplified"], input="\n".join(names),
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return dict(zip(names, result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", nargs="?", help="a row of make bench, without @MEMORY")
    parser.add_argument("--memory", default="256M")
    parser.add_argument("--cpu", default="cortex-a72")
    parser.add_argument("--machine", default="virt,gic-version=2")
    parser.add_argument("--append", default="bench")
    parser.add_argument("--top", type=int, default=40, help="functions listed")
    parser.add_argument("--function", help="also list this function's instructions with their counts "
                                           "(its symbol or a piece of its demangled name)")
    parser.add_argument("--callers", help="also list the calls to this function that ran in the row, by call site "
                                          "(its symbol or a piece of its demangled name, such as swift_release)")
    parser.add_argument("--list", action="store_true", help="list the rows with their totals")
    parser.add_argument("--plugin", default=str(BUILD / "instruction_profile.so"))
    parser.add_argument("--tools", default="/opt/swift/usr/bin", help="where llvm-nm and swift-demangle are")
    options = parser.parse_args()
    if not options.row and not options.list:
        parser.error("name a row (ROW=...) or ask for --list")
    tools = Path(options.tools)

    # Files of its own, so that it can run beside `make bench` (QEMU locks a disk image).
    output = BUILD / f"profile-{os.getpid()}.txt"
    disk = BUILD / "profile-disk.img"
    if not disk.exists():
        with open(disk, "wb") as image:
            image.truncate(4 << 20)
    command = qemu_command(machine=options.machine, cpu=options.cpu, memory=options.memory, smp=1,
                           append=options.append, initrd=INITRD,
                           extra=["-icount", "shift=0", "-plugin", f"{options.plugin},out={output}"]
                           + disk_arguments(disk))
    try:
        result = boot(command, timeout=600)
        text = output.read_text() if output.exists() else None
    finally:
        output.unlink(missing_ok=True)
    reported = [(match[1], int(match[2])) for match in map(LINE.match, result.lines) if match]
    if "bench: done" not in result.lines or text is None:
        print(f"profile: the bench run did not complete (exit {result.exit_code})")
        print("\n".join(result.lines[-20:]))
        return 1

    rows: list[tuple[int, list[tuple[int, int, int, int, int]]]] = []
    for line in text.splitlines():
        parts = line.split()
        if parts[0] == "row":
            rows.append((int(parts[2]), []))
        else:
            rows[-1][1].append((int(parts[0], 16), int(parts[1]), int(parts[2], 16), int(parts[3], 16), int(parts[4])))
    if len(rows) != len(reported):
        print(f"profile: {len(reported)} rows printed but {len(rows)} marked; the markers and reports disagree")
        return 1

    if options.list:
        for (name, value), (operations, blocks) in zip(reported, rows):
            counted = sum(n * executions for _, n, _, _, executions in blocks)
            print(f"profile: {name}@{options.memory} {value} insns/op, counted {counted / max(operations, 1):.1f}")
        if not options.row:
            return 0
    names = [name for name, _ in reported]
    if options.row not in names:
        print(f"profile: no row {options.row!r}; the rows: {' '.join(names)}")
        return 1
    index = names.index(options.row)
    operations, blocks = rows[index]

    kernel = Program("kernel", BUILD / "kernel.elf", KERNEL_BASE, tools)
    programs = [Program(path.stem, path, 0, tools) for path in sorted((BUILD / "user").glob("*.elf"))]
    tallies: collections.Counter[tuple[str, str]] = collections.Counter()
    per_instruction: collections.Counter[tuple[str, int]] = collections.Counter()
    unplaced = 0
    for vaddr, count, first, last, executions in blocks:
        if vaddr >= KERNEL_SPACE:
            owners = [kernel] if kernel.holds(vaddr, count, first, last) else []
        else:
            owners = [program for program in programs if program.holds(vaddr, count, first, last)]
        if not owners:
            unplaced += count * executions
            continue
        for offset in range(count):
            address = vaddr + 4 * offset
            functions = {owner.function(address) for owner in owners}
            where = owners[0].name if len(owners) == 1 else "+".join(owner.name for owner in owners) \
                if len(owners) <= 3 else f"{len(owners)} programs"
            for function in functions:
                tallies[(where, function)] += executions / len(functions)
            if len(owners) == 1:
                per_instruction[(owners[0].name, address)] += executions

    total = sum(tallies.values()) + unplaced
    in_kernel = sum(value for (where, _), value in tallies.items() if where == "kernel")
    reported_value = dict(reported)[options.row]
    per = max(operations, 1)
    print(f"profile: {options.row}@{options.memory}: {reported_value} insns/op in make bench; {operations} operations; "
          f"counted {total / per:.1f} per operation (kernel {in_kernel / per:.1f}, user {(total - in_kernel - unplaced) / per:.1f}"
          + (f", in no known program {unplaced / per:.1f}" if unplaced else "") + ")")
    top = tallies.most_common(options.top)
    readable = demangle(sorted({function for (_, function), _ in top}), tools)
    print(f"{'insns/op':>10} {'share':>6}  {'where':<12} function")
    for (where, function), value in top:
        print(f"{value / per:10.1f} {100 * value / max(total, 1):5.1f}%  {where:<12} {readable.get(function, function)[:120]}")

    if options.function:
        show_function(options.function, kernel, programs, per_instruction, per, tools)
    if options.callers:
        show_callers(options.callers, kernel, programs, per_instruction, per, tools)
    return 0


def show_callers(wanted: str, kernel: Program, programs: list[Program], counts: collections.Counter,
                 operations: int, tools: Path) -> None:
    """Each call (`bl`) to a function whose symbol is `wanted`, or whose demangled name holds it,
    that ran in the row: executions per operation, where it is, and the function it is in."""
    sites: collections.Counter[tuple[str, int]] = collections.Counter()
    for owner in [kernel] + programs:
        path = BUILD / "kernel.elf" if owner is kernel else BUILD / "user" / f"{owner.name}.elf"
        listing = subprocess.run([str(tools / "llvm-objdump"), "-d", "--no-show-raw-insn", str(path)],
                                 capture_output=True, text=True, check=True).stdout
        targets = {symbol for _, _, symbol in owner.symbols}
        readable = demangle(sorted(targets), tools)
        matching = {symbol for symbol in targets if symbol == wanted or wanted in readable[symbol]}
        for line in listing.splitlines():
            match = re.match(r"\s*([0-9a-f]+):\s*bl\s+0x[0-9a-f]+ <([^>+]+)>", line)
            if match and match[2] in matching:
                address = int(match[1], 16) + owner.base
                if counts[(owner.name, address)]:
                    sites[(owner.name, address)] += counts[(owner.name, address)]
    if not sites:
        print(f"\nprofile: no call to {wanted!r} ran in this row")
        return
    print(f"\ncalls to {wanted}:")
    owners = {owner.name: owner for owner in [kernel] + programs}
    callers = {site: owners[site[0]].function(site[1]) for site in sites}
    readable = demangle(sorted(set(callers.values())), tools)
    for site, value in sites.most_common():
        print(f"{value / operations:8.2f}  {site[0]} {site[1]:x}  {readable.get(callers[site], callers[site])[:110]}")


def show_function(wanted: str, kernel: Program, programs: list[Program], counts: collections.Counter,
                  operations: int, tools: Path) -> None:
    """Each instruction of the first function whose symbol is `wanted`, or whose demangled name holds
    it, that ran in the row: its executions per operation and its disassembly."""
    for owner in [kernel] + programs:
        names = [symbol for _, _, symbol in owner.symbols]
        readable = demangle(names, tools)
        for start, size, symbol in owner.symbols:
            if symbol != wanted and wanted not in readable[symbol]:
                continue
            if not any(counts[(owner.name, address)] for address in range(start, start + size, 4)):
                continue
            path = BUILD / "kernel.elf" if owner is kernel else BUILD / "user" / f"{owner.name}.elf"
            listing = subprocess.run([str(tools / "llvm-objdump"), "-d", "--no-show-raw-insn",
                                      f"--start-address={start - owner.base}", f"--stop-address={start + size - owner.base}",
                                      str(path)], capture_output=True, text=True, check=True).stdout
            print(f"\n{owner.name}: {readable[symbol]}")
            for line in listing.splitlines():
                match = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
                if match:
                    address = int(match[1], 16) + owner.base
                    print(f"{counts[(owner.name, address)] / operations:8.2f}  {address:x}  {match[2]}")
            return
    print(f"\nprofile: no function matching {wanted!r} ran in this row")


if __name__ == "__main__":
    sys.exit(main())
