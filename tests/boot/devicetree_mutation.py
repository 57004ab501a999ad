"""Device-tree mutation boots: QEMU's own virt tree, damaged in a fixed, seeded set of ways, each
booted once. Every boot must end in one of three acceptable ways:

  booted      the test-mode run completes ("Boot: Test mode complete, powering off") and QEMU
              powers off (or, with no usable PSCI, the kernel says so and halts);
  clear stop  a console line "Boot: device tree: ...; stopping" names the problem, then QEMU
              powers off or the vCPU halts;
  silent WFI  nothing on the console (no console could be found) and the vCPU sits in WFI with
              interrupts masked.

A spinning vCPU, a kernel panic, or any other ending fails, naming the mutation. QEMU refusing a
byte-flipped tree is counted, not failed; refusing a targeted one fails, as it hides the test.

Two ways to hand a tree to the kernel:
  dtb  QEMU's -dtb: its loader adds /chosen bootargs and the initrd, but it also rewrites the
       memory and /psci nodes and repacks the header, and refuses what libfdt cannot open;
  raw  the blob is placed in RAM byte for byte and an eight-instruction stub enters the kernel
       with x0 pointing at it, so header, memory and PSCI damage reaches the kernel as made.

Standalone: python3 tests/boot/devicetree_mutation.py [-v] [--only SUBSTRING] [--list]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import KERNEL_IMAGE, QEMU  # noqa: E402

SEED = 20240611
MACHINE = ["-M", "virt", "-cpu", "cortex-a72", "-m", "1G", "-smp", "1"]
DEADLINE = 8.0          # seconds per boot; only a failing boot runs this long
QUIET_BEFORE_SAMPLING = 0.4   # seconds without console output before the vCPU is sampled
SAMPLE_SECONDS = 0.3
JOBS = 1               # the runner boots another scenario beside this one, on two cores

# Raw delivery: where the stub, the kernel and the tree go (virt RAM starts at 0x40000000, and
# QEMU keeps its own 1 MiB tree at the bottom).
STUB_ADDRESS = 0x4018_0000
KERNEL_ADDRESS = 0x4020_0000
TREE_ADDRESS = 0x4800_0000

INITRD_SIZE = 12345
CLEAR_STOP = re.compile(r"^Boot: device tree: (.+); stopping$")
TEST_COMPLETE = "Boot: Test mode complete, powering off"
NO_POWER_OFF = "Boot: PSCI SYSTEM_OFF unavailable; halting"
WFI = 0xD503_207F
PSTATE_I_AND_F = 0xC0


# ---- Flattened device tree (Devicetree Specification v0.4, chapter 5) -------------------------

BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


@dataclass
class Node:
    name: str
    properties: list[tuple[str, bytes]] = field(default_factory=list)
    children: list["Node"] = field(default_factory=list)

    def find(self, path: str) -> "Node":
        node = self
        for component in filter(None, path.split("/")):
            node = next(child for child in node.children
                        if child.name == component or child.name.split("@")[0] == component)
        return node

    def get(self, name: str) -> bytes | None:
        return next((value for key, value in self.properties if key == name), None)

    def set(self, name: str, value: bytes) -> None:
        for index, (key, _) in enumerate(self.properties):
            if key == name:
                self.properties[index] = (name, value)
                return
        self.properties.append((name, value))

    def remove(self, name: str) -> None:
        before = len(self.properties)
        self.properties = [(key, value) for key, value in self.properties if key != name]
        assert len(self.properties) < before, f"{self.name} has no property {name}"

    def first_compatible(self, compatible: str) -> "Node | None":
        value = self.get("compatible") or b""
        if compatible.encode() in value.split(b"\0"):
            return self
        for child in self.children:
            found = child.first_compatible(compatible)
            if found:
                return found
        return None

    def copy(self) -> "Node":
        return Node(self.name, list(self.properties), [child.copy() for child in self.children])


@dataclass
class Tree:
    root: Node
    reservations: list[tuple[int, int]]
    boot_cpu: int


def parse_tree(blob: bytes) -> Tree:
    magic, _, off_struct, off_strings, off_reservations, _, _, boot_cpu, size_strings, size_struct = \
        struct.unpack(">10I", blob[:40])
    assert magic == 0xD00DFEED, "not a flattened device tree"
    reservations = []
    offset = off_reservations
    while True:
        address, size = struct.unpack(">QQ", blob[offset:offset + 16])
        offset += 16
        if address == 0 and size == 0:
            break
        reservations.append((address, size))
    strings = blob[off_strings:off_strings + size_strings]

    def name_at(offset: int) -> str:
        return strings[offset:strings.index(b"\0", offset)].decode()

    offset = off_struct
    end = off_struct + size_struct
    stack: list[Node] = []
    root = None
    while offset < end:
        (token,) = struct.unpack(">I", blob[offset:offset + 4])
        offset += 4
        if token == BEGIN_NODE:
            terminator = blob.index(b"\0", offset)
            node = Node(blob[offset:terminator].decode())
            offset = (terminator + 4) & ~3
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            stack.append(node)
        elif token == PROP:
            length, name_offset = struct.unpack(">II", blob[offset:offset + 8])
            value = bytes(blob[offset + 8:offset + 8 + length])
            stack[-1].properties.append((name_at(name_offset), value))
            offset = (offset + 8 + length + 3) & ~3
        elif token == END_NODE:
            stack.pop()
        elif token == END:
            break
    assert root is not None
    return Tree(root, reservations, boot_cpu)


@dataclass
class Blob:
    """A built tree and where its blocks are, for byte-level damage: `places` maps byte ranges
    of the blob to the node or property (or property name, in the strings block) they encode."""
    data: bytearray
    structure: range
    strings: range
    places: list[tuple[range, str]]

    def place(self, offset: int) -> str:
        return next((what for where, what in self.places if offset in where), "padding")


def build_tree(tree: Tree) -> Blob:
    strings = bytearray()
    string_offsets: dict[str, int] = {}
    structure = bytearray()
    places: list[tuple[range, str]] = []  # structure offsets first, strings offsets second

    def string_offset(name: str) -> int:
        if name not in string_offsets:
            string_offsets[name] = len(strings)
            places.append((range(len(strings), len(strings) + len(name) + 1), f"strings: the name {name}"))
            strings.extend(name.encode() + b"\0")
        return string_offsets[name]

    def pad() -> None:
        structure.extend(b"\0" * (-len(structure) % 4))

    def emit(node: Node, path: str) -> None:
        start = len(structure)
        structure.extend(struct.pack(">I", BEGIN_NODE) + node.name.encode() + b"\0")
        places.append((range(start, len(structure)), f"{path or '/'} node header"))
        pad()
        for name, value in node.properties:
            start = len(structure)
            structure.extend(struct.pack(">III", PROP, len(value), string_offset(name)) + value)
            places.append((range(start, len(structure)), f"{path or '/'} {name}"))
            pad()
        for child in node.children:
            emit(child, f"{path}/{child.name}")
        places.append((range(len(structure), len(structure) + 4), f"{path or '/'} end"))
        structure.extend(struct.pack(">I", END_NODE))

    emit(tree.root, "")
    structure.extend(struct.pack(">I", END))
    reservations = b"".join(struct.pack(">QQ", a, s) for a, s in tree.reservations) + b"\0" * 16
    off_reservations = 40
    off_struct = off_reservations + len(reservations)
    off_strings = off_struct + len(structure)
    total = (off_strings + len(strings) + 7) & ~7
    header = struct.pack(">10I", 0xD00DFEED, total, off_struct, off_strings, off_reservations, 17, 16,
                         tree.boot_cpu, len(strings), len(structure))
    data = bytearray(header + reservations + structure + strings)
    data.extend(b"\0" * (total - len(data)))
    located = [(range(where.start + (off_strings if what.startswith("strings") else off_struct),
                      where.stop + (off_strings if what.startswith("strings") else off_struct)), what)
               for where, what in places]
    return Blob(data, range(off_struct, off_strings), range(off_strings, off_strings + len(strings)), located)


def cells(*values: int) -> bytes:
    return b"".join(struct.pack(">I", value) for value in values)


def text(value: str) -> bytes:
    return value.encode() + b"\0"


# ---- Mutations ----------------------------------------------------------------------------------

@dataclass
class Mutation:
    name: str
    kind: str                    # "property", "header", "truncation", "structure flip", "strings flip"
    delivery: str                # "dtb" or "raw"
    blob: bytes
    expect: str | None = None    # an outcome this mutation must reach, when it is certain
    message: str | None = None   # a regular expression the clear-stop message must match


def qemu_tree() -> Tree:
    """QEMU's own tree for MACHINE, as its -M dumpdtb writes it."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "virt.dtb"
        subprocess.run([QEMU, *MACHINE[:1], MACHINE[1] + f",dumpdtb={path}", *MACHINE[2:], "-display", "none"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return parse_tree(path.read_bytes())


def mutations() -> list[Mutation]:
    base = qemu_tree()
    # Raw boots get no help from QEMU's loader: the test-mode command line is in the tree itself.
    raw_base = Tree(base.root.copy(), base.reservations, base.boot_cpu)
    raw_base.root.find("/chosen").set("bootargs", text("test"))
    uart = base.root.first_compatible("arm,pl011")
    gic = base.root.first_compatible("arm,cortex-a15-gic") or base.root.first_compatible("arm,gic-v3")
    timer = base.root.first_compatible("arm,armv8-timer")
    memory = next(node for node in base.root.children if node.get("device_type") == text("memory"))
    paths = {"uart": "/" + uart.name, "gic": "/" + gic.name, "timer": "/" + timer.name,
             "memory": "/" + memory.name, "psci": "/psci", "chosen": "/chosen", "cpus": "/cpus", "root": "/"}
    ram_base, ram_size = struct.unpack(">QQ", memory.get("reg") or b"")
    gic_base = struct.unpack(">Q", (gic.get("reg") or b"")[:8])[0]

    def reg(address: int, size: int) -> bytes:
        return cells(address >> 32, address & 0xFFFF_FFFF, size >> 32, size & 0xFFFF_FFFF)
    result: list[Mutation] = []

    def edit(name: str, node: str, change, delivery: str = "dtb", expect: str | None = None,
             message: str | None = None) -> None:
        tree = Tree((raw_base if delivery == "raw" else base).root.copy(), base.reservations, base.boot_cpu)
        change(tree.root.find(paths[node]))
        result.append(Mutation(name, "property", delivery, bytes(build_tree(tree).data), expect, message))

    def remove(node: str, name: str, **options) -> None:
        edit(f"{paths[node]} without {name}", node, lambda n: n.remove(name), **options)

    def empty(node: str, name: str, **options) -> None:
        edit(f"{paths[node]} with an empty {name}", node, lambda n: n.set(name, b""), **options)

    def replace(node: str, name: str, value: bytes, how: str, **options) -> None:
        edit(f"{paths[node]} {name} {how}", node, lambda n: n.set(name, value), **options)

    stop, silent, booted = "clear stop", "silent WFI", "booted"
    memory_path = re.escape(paths["memory"])
    # QEMU's loader rewrites /memory and /psci, so their damage goes in raw.
    remove("memory", "reg", delivery="raw", expect=stop, message=memory_path)
    empty("memory", "reg", delivery="raw", expect=stop, message=memory_path)
    replace("memory", "reg", reg(ram_base, ram_size)[:12], "cut to three cells", delivery="raw", expect=stop,
            message=memory_path)
    replace("memory", "reg", reg(ram_base, 0), "of size zero", delivery="raw", expect=stop, message=memory_path)
    replace("memory", "reg", reg(ram_base, 1 << 20), "too small to hold the kernel", delivery="raw", expect=stop,
            message="kernel image")
    remove("memory", "device_type", delivery="raw", expect=stop, message="memory")
    remove("psci", "method", delivery="raw", expect=booted)
    edit("/psci removed", "root", lambda n: n.children.remove(n.find("/psci")), delivery="raw", expect=booted)
    replace("root", "#address-cells", cells(3), "of 3", delivery="raw", expect=silent)
    # The console: without a usable PL011 there is nowhere to report.
    remove("uart", "reg", expect=silent)
    empty("uart", "reg", expect=silent)
    replace("uart", "reg", (uart.get("reg") or b"")[:12], "cut to three cells", expect=silent)
    remove("uart", "compatible", expect=silent)
    replace("uart", "status", text("disabled"), "disabled", expect=silent)
    # A wrong address: another PrimeCell device, RAM, nothing at all.
    for where, address in (("at the interrupt controller", gic_base), ("in RAM", ram_base + (ram_size >> 1)),
                           ("past the end of RAM", ram_base + ram_size + (16 << 20))):
        replace("uart", "reg", reg(address, 0x1000), where, expect=silent)
    replace("uart", "interrupts", cells(0, 1), "cut to two cells", expect=stop, message=re.escape(paths["uart"]))
    # Interrupt controller and timer: the console works, so the kernel must say what is wrong.
    gic_path, timer_path = re.escape(paths["gic"]), re.escape(paths["timer"])
    remove("gic", "reg", expect=stop, message=gic_path)
    empty("gic", "reg", expect=stop, message=gic_path)
    replace("gic", "reg", (gic.get("reg") or b"")[:16], "with one register block", expect=stop, message=gic_path)
    remove("gic", "compatible", expect=stop, message="interrupt controller")
    remove("gic", "#interrupt-cells", expect=stop, message=gic_path)
    remove("timer", "interrupts", expect=stop, message=timer_path)
    empty("timer", "interrupts", expect=stop, message=timer_path)
    replace("timer", "interrupts", (timer.get("interrupts") or b"")[:36], "with three of its four", expect=stop,
            message=timer_path)
    replace("timer", "interrupts", cells(7, 13, 0x104) * 4, "of an unknown type", expect=stop,
            message=timer_path)
    remove("timer", "compatible", expect=stop, message="timer")
    # What the kernel can do without.
    edit("/chosen removed (QEMU adds it back)", "root", lambda n: n.children.remove(n.find("/chosen")),
         expect=booted)
    remove("chosen", "stdout-path", expect=booted)
    replace("chosen", "stdout-path", text("/no-such-node"), "pointing nowhere", expect=booted)
    edit("/cpus removed", "root", lambda n: n.children.remove(n.find("/cpus")), expect=booted)

    raw = build_tree(raw_base)
    good = bytes(raw.data)

    def header(name: str, offset: int, value: int, expect: str | None = silent) -> None:
        blob = bytearray(good)
        blob[offset:offset + 4] = struct.pack(">I", value & 0xFFFF_FFFF)
        result.append(Mutation(f"header: {name}", "header", "raw", bytes(blob), expect))

    total, off_struct, off_strings = struct.unpack(">III", good[4:16])
    header("magic flipped", 0, 0xD00DFEED ^ 0x0100_0000)
    header("totalsize below the header", 4, 32)
    header("totalsize 4 GiB - 1", 4, 0xFFFF_FFFF)
    header("off_dt_struct past the end", 8, total + 64)
    header("off_dt_struct misaligned", 8, off_struct + 2)
    header("off_dt_strings past the end", 12, total + 4096)
    header("version 1", 20, 1)
    header("last_comp_version 18", 24, 18)

    for fraction in (0.3, 0.97):
        # What lies past the cut reads as zeros. Inside the structure block that is a bad token;
        # inside the strings block it only empties the last names, which may leave a tree that
        # still parses.
        cut = int(len(good) * fraction) & ~3
        result.append(Mutation(f"truncated to {cut} of {len(good)} bytes", "truncation", "raw", good[:cut],
                               silent if cut < off_strings else None))
    consistent = bytearray(good[:off_strings + 16])
    consistent[4:8] = struct.pack(">I", len(consistent))
    result.append(Mutation(f"truncated to {len(consistent)} bytes, totalsize to match", "truncation", "raw",
                           bytes(consistent), silent))

    # Byte flips: half through QEMU's loader, as a firmware would hand them over (a flip QEMU
    # cannot open counts as refused), half raw. Raw flips spare the command line: "test" is what
    # makes a boot end, and losing it is not what is tested here.
    generator = random.Random(SEED)
    for delivery, tree in (("dtb", base), ("raw", raw_base)):
        built = build_tree(tree)
        for kind, block, count in (("structure flip", built.structure, 6), ("strings flip", built.strings, 2)):
            for _ in range(count):
                offset = generator.randrange(block.start, block.stop)
                while built.place(offset) == "/chosen bootargs":
                    offset = generator.randrange(block.start, block.stop)
                mask = 1 << generator.randrange(8) if generator.random() < 0.7 else generator.randrange(1, 256)
                blob = bytearray(built.data)
                blob[offset] ^= mask
                name = f"{kind} at {offset - block.start} (^{mask:#04x}, {built.place(offset)})"
                result.append(Mutation(name, kind, delivery, bytes(blob)))
    return result


# ---- Booting and classifying --------------------------------------------------------------------

@dataclass
class Outcome:
    mutation: Mutation
    verdict: str                 # "booted", "clear stop", "silent WFI", "refused", or "FAIL: why"
    detail: str
    console: list[str]
    seconds: float

    @property
    def failed(self) -> bool:
        return self.verdict.startswith("FAIL")


def stub(tree_address: int, kernel_address: int) -> bytes:
    """x0 = tree, x1-x3 = 0 (the arm64 Image protocol), then branch to the kernel."""
    def movz(register: int, value: int, shift: int) -> int:
        return 0xD280_0000 | (shift // 16) << 21 | ((value >> shift) & 0xFFFF) << 5 | register

    def movk(register: int, value: int, shift: int) -> int:
        return 0xF280_0000 | (shift // 16) << 21 | ((value >> shift) & 0xFFFF) << 5 | register
    words = [movz(0, tree_address, 0), movk(0, tree_address, 16),
             movz(1, 0, 0), movz(2, 0, 0), movz(3, 0, 0),
             movz(4, kernel_address, 0), movk(4, kernel_address, 16),
             0xD61F_0000 | 4 << 5]  # br x4
    return b"".join(struct.pack("<I", word) for word in words)


class Monitor:
    """QMP, for the vCPU's thread, registers and the word at an address."""

    def __init__(self, path: Path):
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.settimeout(2.0)
        self.socket.connect(str(path))
        self.reader = self.socket.makefile("r")
        json.loads(self.reader.readline())
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments):
        message = {"execute": command, **({"arguments": arguments} if arguments else {})}
        self.socket.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = json.loads(self.reader.readline())
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")

    def human(self, command: str) -> str:
        return self.execute("human-monitor-command", **{"command-line": command})

    def registers(self) -> tuple[int, int]:
        text = self.human("info registers")
        return int(re.search(r"PC=([0-9a-f]+)", text)[1], 16), int(re.search(r"PSTATE=([0-9a-f]+)", text)[1], 16)

    def word(self, address: int) -> int | None:
        match = re.search(r":\s*0x([0-9a-f]+)", self.human(f"x /1wx {address:#x}"))
        return int(match[1], 16) if match else None

    def close(self) -> None:
        self.reader.close()
        self.socket.close()


def thread_cpu_seconds(pid: int, thread: int) -> float:
    fields = Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def halted_in_wfi(monitor: Monitor, pid: int) -> tuple[bool, str]:
    """The vCPU is asleep in WFI with IRQ and FIQ masked: the same PC twice, a WFI at or just
    before it (QEMU reports the PC after a WFI it sleeps in), and almost no CPU time used.
    QEMU 7.2's monitor has no "halted" flag, so this is how its absence is made up for."""
    thread = monitor.execute("query-cpus-fast")[0]["thread-id"]
    first_pc, pstate = monitor.registers()
    cpu_before, started = thread_cpu_seconds(pid, thread), time.monotonic()
    time.sleep(SAMPLE_SECONDS)
    busy = (thread_cpu_seconds(pid, thread) - cpu_before) / (time.monotonic() - started)
    second_pc, pstate_again = monitor.registers()
    at_wfi = WFI in (monitor.word(second_pc), monitor.word(second_pc - 4))
    masked = pstate & PSTATE_I_AND_F == PSTATE_I_AND_F and pstate_again & PSTATE_I_AND_F == PSTATE_I_AND_F
    state = (f"PC {first_pc:#x} then {second_pc:#x}, PSTATE {pstate_again:#x}, "
             f"{'at' if at_wfi else 'not at'} a WFI, vCPU thread busy {busy:.0%}")
    return first_pc == second_pc and at_wfi and masked and busy < 0.1, state


def boot_one(mutation: Mutation, scratch: Path, initrd: Path) -> Outcome:
    directory = scratch / f"m{id(mutation)}"
    directory.mkdir()
    tree = directory / "tree.dtb"
    tree.write_bytes(mutation.blob)
    qmp = directory / "qmp.sock"
    command = [QEMU, *MACHINE, "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
               "-qmp", f"unix:{qmp},server=on,wait=off"]
    if mutation.delivery == "dtb":
        command += ["-kernel", str(KERNEL_IMAGE), "-append", "test", "-initrd", str(initrd), "-dtb", str(tree)]
    else:
        (directory / "stub.bin").write_bytes(stub(TREE_ADDRESS, KERNEL_ADDRESS))
        command += ["-device", f"loader,file={KERNEL_IMAGE},addr={KERNEL_ADDRESS:#x},force-raw=on",
                    "-device", f"loader,file={tree},addr={TREE_ADDRESS:#x},force-raw=on",
                    "-device", f"loader,file={directory / 'stub.bin'},addr={STUB_ADDRESS:#x},force-raw=on,cpu-num=0"]
    started = time.monotonic()
    errors = (directory / "stderr").open("wb")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                               start_new_session=True)
    output = bytearray()
    last_output = started
    halted, state = False, ""
    monitor = None
    try:
        assert process.stdout is not None
        while time.monotonic() - started < DEADLINE:
            ready, _, _ = select.select([process.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
                last_output = time.monotonic()
                continue
            if process.poll() is not None:
                break
            if time.monotonic() - last_output >= QUIET_BEFORE_SAMPLING:
                try:
                    monitor = monitor or Monitor(qmp)
                    halted, state = halted_in_wfi(monitor, process.pid)
                    if halted:
                        # Sampled a second time: a CPU that merely paused would have moved on.
                        halted, state = halted_in_wfi(monitor, process.pid)
                        break
                except (OSError, ValueError, RuntimeError) as error:
                    # QEMU not listening yet, or exiting: its exit or the deadline decides.
                    halted, state = False, f"no sample ({type(error).__name__})"
                    if monitor:
                        monitor.close()
                        monitor = None
                if time.monotonic() - started > DEADLINE - 1:
                    break
    finally:
        if monitor:
            monitor.close()
        exit_code = process.poll()
        if exit_code is None and not halted:
            # End of output usually means QEMU is exiting; give it a moment to be reaped.
            try:
                exit_code = process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if exit_code is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        else:
            output += process.stdout.read() or b""
        errors.close()
    seconds = time.monotonic() - started
    console = output.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    console = [line for line in console if line]
    refusal = (directory / "stderr").read_text(errors="replace").strip()
    verdict, detail = classify(console, exit_code, halted, state, refusal)
    if mutation.expect and verdict == "refused":
        # A refusal would hide what the mutation is there to test: such damage goes in raw.
        verdict = "FAIL: QEMU refused a tree this test relies on"
    elif not verdict.startswith("FAIL") and mutation.expect and verdict != mutation.expect:
        verdict = f"FAIL: expected {mutation.expect}, got {verdict}"
    elif verdict == "booted" and mutation.delivery == "dtb" and not any(
            re.fullmatch(rf"Boot: Initial ramdisk at 0x[0-9a-f]{{16}} \({INITRD_SIZE} bytes\)", line) for line in console):
        # QEMU's loader writes /chosen linux,initrd-start/end into the tree it was given.
        verdict = "FAIL: booted without the initrd QEMU's loader should have added to /chosen"
    if verdict == "clear stop" and mutation.message and not re.search(mutation.message, detail):
        verdict = f"FAIL: the stop message does not name /{mutation.message}/"
    return Outcome(mutation, verdict, detail, console, seconds)


def classify(console: list[str], exit_code: int | None, halted: bool, state: str,
             refusal: str) -> tuple[str, str]:
    powered_off = exit_code == 0
    stopped = "powered off" if powered_off else ("halted in WFI" if halted else None)
    if any("Kernel panic" in line for line in console):
        return "FAIL: kernel panic", next(line for line in console if "Kernel panic" in line)
    if exit_code not in (None, 0):
        if not console:
            return "refused", refusal.splitlines()[0] if refusal else f"exit code {exit_code}"
        return f"FAIL: QEMU exited with {exit_code}", refusal
    if TEST_COMPLETE in console:
        if powered_off or (halted and NO_POWER_OFF in console):
            return "booted", "powered off" if powered_off else "halted: no PSCI to power off"
        return "FAIL: test run completed but did not stop", state
    stops = [match[1] for match in map(CLEAR_STOP.match, console) if match]
    if stops:
        if stopped:
            return "clear stop", stops[0]
        return "FAIL: clear message but the vCPU did not stop", state or "still running at the deadline"
    if not console:
        if halted:
            return "silent WFI", state
        return "FAIL: silent and not halted in WFI", state or "no sample"
    return "FAIL: stopped without naming the problem", (console[-1] + "; " + (stopped or state))


def run(selected: list[Mutation] | None = None, jobs: int = JOBS,
        report=None) -> tuple[list[Outcome], float]:
    started = time.monotonic()
    chosen = selected if selected is not None else mutations()
    with tempfile.TemporaryDirectory() as scratch:
        initrd = Path(scratch) / "initrd"
        initrd.write_bytes(random.Random(SEED).randbytes(INITRD_SIZE))
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            outcomes = []
            for outcome in pool.map(lambda m: boot_one(m, Path(scratch), initrd), chosen):
                outcomes.append(outcome)
                if report:
                    report(outcome)
    return outcomes, time.monotonic() - started


def summary(outcomes: list[Outcome]) -> list[str]:
    lines = []
    kinds: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        verdict = "FAIL" if outcome.failed else outcome.verdict
        counts = kinds.setdefault(outcome.mutation.kind, {})
        counts[verdict] = counts.get(verdict, 0) + 1
    for kind, counts in kinds.items():
        parts = ", ".join(f"{counts[v]} {v}" for v in ("booted", "clear stop", "silent WFI", "refused", "FAIL")
                          if v in counts)
        lines.append(f"{kind}: {parts}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print each boot's console")
    parser.add_argument("--only", help="boot only mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--jobs", type=int, default=JOBS)
    options = parser.parse_args()
    chosen = [m for m in mutations() if not options.only or options.only in m.name]
    if options.list:
        for mutation in chosen:
            print(f"{mutation.kind:15} {mutation.delivery:4} {mutation.name}")
        return 0

    def report(outcome: Outcome) -> None:
        print(f"{outcome.verdict:12} {outcome.seconds:4.1f} s  {outcome.mutation.delivery:4} "
              f"{outcome.mutation.name}: {outcome.detail}", flush=True)
        if options.verbose:
            print("\n".join("    | " + line for line in outcome.console[-15:]))
    outcomes, seconds = run(chosen, options.jobs, report)
    print("\n".join(summary(outcomes)))
    failures = sum(outcome.failed for outcome in outcomes)
    print(f"{len(outcomes)} boots in {seconds:.1f} s, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
