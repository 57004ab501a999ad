#!/usr/bin/env python3
"""The documentation's commands, run as a reader would paste them, and its expected output,
checked against a real boot.

Extraction (README.md and docs/*.md):
- a command is a line of a fenced block marked `bash`/`sh`/`shell`, or of an unmarked block whose
  every line starts with a command (`make`, `cpio`, `python3`, `gdb-multiarch`, ...), its `# ...`
  comment dropped; or an inline code span that starts with `make`, or with another command and
  has arguments (`cpio -t < build/initrd.cpio`), or is a GDB command (`break ...`, `bt`);
- any other unmarked fenced block is expected output, or some other text (a diagram, a manifest).

Every command and every unmarked block must be in COMMANDS or BLOCKS below: run by a check (a
boot with a deadline, GDB attached, a `make -n` dry run) or listed as not run with the reason.
A new command or block in the docs that is in neither fails, as does an entry the docs no longer
hold: nothing is skipped in silence.

Expected output is compared line by line after the values that depend on the machine and the
moment are made wildcards: every decimal number and every 0x number, and runs of spaces (so a
table's column widths may change). `...` stands for lines left out. Lines of a block must each
appear in the console (in any order within the part of the session they belong to, since
processes print side by side); a line `swiftkernel> WORDS` is typed at the shell's prompt.

Prints one line per command and block, `ok`, `FAIL` or `not run: reason`, and ends with
`docs: N passed, N failed`. Run alone: `python3 tests/docs/run_doc_commands.py [-v]`."""
from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "boot"))
sys.path.insert(0, str(ROOT / "tools"))
from harness import Session  # noqa: E402
import make_help  # noqa: E402

DOCUMENTS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
COMMAND_WORDS = {"make", "cpio", "python3", "gdb-multiarch", "qemu-system-aarch64", "swift", "swiftc"}
GDB_WORDS = {"break", "bt", "continue", "stepi", "symbol-file"}
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
PROMPT = "swiftkernel> "
VERBOSE = False


# ---- Extraction ------------------------------------------------------------------------------

@dataclass
class Block:
    path: Path
    line: int                       # of the first line inside the fence
    lines: list[tuple[int, str]]    # (line number, text)

    @property
    def key(self) -> tuple[str, str]:
        first = next(text.strip() for _, text in self.lines if text.strip())
        return (self.path.name, first)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Docs:
    commands: dict[str, list[str]] = field(default_factory=dict)   # command -> its places
    blocks: dict[tuple[str, str], Block] = field(default_factory=dict)
    code_examples: int = 0


def first_word(text: str) -> str:
    words = [word for word in text.split() if not re.match(r"^[A-Z_][A-Z0-9_]*=", word)]
    return words[0] if words else ""


def is_command(text: str) -> bool:
    word = first_word(text)
    return word in COMMAND_WORDS or word.startswith(("build/", "tools/", "./"))


def is_inline_command(span: str) -> bool:
    word = first_word(span)
    if word in GDB_WORDS and span.split()[0] == word:
        return True
    return word == "make" or (is_command(span) and len(span.split()) > 1)


def extract() -> Docs:
    docs = Docs()

    def add(command: str, path: Path, line: int) -> None:
        docs.commands.setdefault(command, []).append(f"{path.relative_to(ROOT)}:{line}")

    for path in DOCUMENTS:
        lines = path.read_text().splitlines()
        prose = list(lines)         # the text outside fenced blocks, for inline code spans
        number = 0
        while number < len(lines):
            fence = re.match(r"^\s*```(\S*)\s*$", lines[number])
            if fence:
                language = fence[1]
                start = number + 1
                end = start
                while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
                    end += 1
                body = [(index + 1, lines[index]) for index in range(start, end)]
                texts = [(line, re.sub(r"\s+#\s.*$", "", text).strip()) for line, text in body]
                texts = [(line, text) for line, text in texts if text and not text.startswith("#")]
                if language in SHELL_LANGUAGES or (not language and texts and all(is_command(t) for _, t in texts)):
                    for line, text in texts:
                        add(text, path, line)
                elif language:
                    docs.code_examples += 1
                elif texts:
                    block = Block(path, start + 1, body)
                    docs.blocks[block.key] = block
                prose[number:end + 1] = [""] * (min(end + 1, len(lines)) - number)
                number = end + 1
                continue
            number += 1
        # A span may run over a line break within a paragraph.
        text = "\n".join(prose)
        for span in re.finditer(r"`([^`]+)`", text):
            words = " ".join(span[1].split())
            if "\n\n" not in span[1] and is_inline_command(words):
                add(words, path, text.count("\n", 0, span.start()) + 1)
    return docs


# ---- Running commands -------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


# Where the commands' disk images go; removed when the runner ends.
SCRATCH = tempfile.mkdtemp(prefix="doc-disks-")
atexit.register(shutil.rmtree, SCRATCH, True)


def own_disk() -> dict[str, str]:
    """The environment for one command: a disk image of its own in DISK (16 MiB of zeros, like
    the one `make run` makes), removed at the end. Commands run in parallel here, and QEMU lets
    only one machine write an image."""
    descriptor, name = tempfile.mkstemp(prefix="disk-", suffix=".img", dir=SCRATCH)
    os.ftruncate(descriptor, 16 << 20)
    os.close(descriptor)
    return {**os.environ, "DISK": name}


def run(command: str | list[str], timeout: float, stdin: str | None = None, shell: bool = False) -> tuple[int | None, str]:
    """Runs a command in the repository with a deadline; its exit code (None if killed) and its
    output. The whole process group is killed at the deadline."""
    process = subprocess.Popen(command, cwd=ROOT, shell=shell, text=True, start_new_session=True, env=own_disk(),
                               stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(stdin, timeout=timeout)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return None, output


def require(condition: bool, message: str, output: str = "") -> None:
    if not condition:
        tail = "\n".join("      | " + line for line in output.splitlines()[-25:])
        raise CheckFailed(message + ("\n" + tail if tail else ""))


def make_session(arguments: list[str], deadline: float) -> Session:
    session = Session(["make", "-s", "-C", str(ROOT)] + arguments, deadline=deadline, env=own_disk())
    return session


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def console_lines(text: str) -> list[str]:
    text = ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


TOKEN = re.compile(r"(?<![\w.])0x[0-9a-fA-F]+|(?<!\w)\d+(?:\.\d+)*|\s+")


def line_pattern(line: str) -> re.Pattern:
    """A documented console line as a pattern: numbers and hex values are wildcards, runs of
    spaces any run of spaces."""
    parts, position = [], 0
    for token in TOKEN.finditer(line.strip()):
        parts.append(re.escape(line.strip()[position:token.start()]))
        text = token[0]
        parts.append(r"\s+" if text.isspace() else r"0x[0-9a-fA-F]+" if text.startswith("0x") else r"\d+(?:\.\d+)*")
        position = token.end()
    parts.append(re.escape(line.strip()[position:]))
    return re.compile(r"^\s*" + "".join(parts) + r"\s*$")


def match_lines(expected: list[tuple[int, str]], console: list[str], where: Path) -> list[str]:
    """Each expected line matches a console line of its own; the ones that do not, described."""
    used: set[int] = set()
    missing = []
    for number, text in expected:
        pattern = line_pattern(text)
        for index, line in enumerate(console):
            if index not in used and pattern.match(line):
                used.add(index)
                if VERBOSE and " ".join(line.split()) != " ".join(text.split()):
                    print(f"    values differ, {where.relative_to(ROOT)}:{number}: doc {text.strip()!r}, console {line.strip()!r}")
                break
        else:
            missing.append(f"{where.relative_to(ROOT)}:{number}: no console line like {text.strip()!r}")
    return missing


def segments(block: Block) -> list[tuple[str | None, list[tuple[int, str]]]]:
    """A transcript cut at the shell's prompts: (what is typed, the lines it prints)."""
    result: list[tuple[str | None, list[tuple[int, str]]]] = [(None, [])]
    for number, text in block.lines:
        if text.startswith(PROMPT.rstrip()):
            typed = text[len(PROMPT.rstrip()):].strip()
            if typed:
                result.append((typed, []))
        elif text.strip() and text.strip() != "...":
            result[-1][1].append((number, text))
    return [segment for segment in result if segment[0] is not None or segment[1]]


def replay(session: Session, blocks: list[Block]) -> list[str]:
    """Types each block's commands at the prompt, then checks that every line each one printed
    in the docs appeared in the console after it was typed."""
    checks: list[tuple[int, Block, list[tuple[int, str]]]] = []
    for block in blocks:
        for typed, expected in segments(block):
            if typed is not None:
                session.expect(re.escape(PROMPT), timeout=60)
                session.type(typed + "\r")
            checks.append((len(session.text), block, expected))
    # Let the last command finish: the next prompt, or QEMU powering off.
    session.expect(re.escape(PROMPT) + "|powering off", timeout=60)
    if "powering off" in session.text[session.position - 20:]:
        session.wait_exit(30)
    else:
        time.sleep(1.0)
        session._read(0.5)
    failures = []
    for offset, block, expected in checks:
        failures += match_lines(expected, console_lines(session.text[offset:]), block.path)
    return failures


# ---- Checks of the boots ------------------------------------------------------------------------

CPU_NAMES = {"cortex-a53": "Cortex-A53", "cortex-a57": "Cortex-A57", "cortex-a72": "Cortex-A72", "max": "QEMU max"}


def make_words(command: str) -> tuple[list[str], dict[str, str]]:
    """`make run CPU=max APPEND="test x"` as its goals and variables."""
    words = shlex.split(command)[1:]
    variables = dict(word.split("=", 1) for word in words if "=" in word)
    return [word for word in words if "=" not in word], variables


def memory_megabytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([MG])", size).groups()
    return int(number) * (1024 if unit == "G" else 1)


def expect_machine(lines: list[str], variables: dict[str, str], output: str) -> None:
    """The boot log shows the machine the variables describe."""
    def has(pattern: str, what: str) -> None:
        require(any(re.search(pattern, line) for line in lines), f"{what}: no console line /{pattern}/", output)
    cpu = variables.get("CPU", "cortex-a72")
    entry = 2 if variables.get("EL2") == "1" else 1
    has(rf"^Boot: CPU primary core active \({re.escape(CPU_NAMES[cpu])}, .*entered at EL{entry}\)", "CPU and EL2")
    has(rf"^Boot: Memory region: .* \({memory_megabytes(variables.get('MEMORY', '1G'))} MB\)$", "MEMORY")
    has(rf"^Boot: Interrupt controller GICv{variables.get('GIC', '2')},", "GIC")
    has(rf"^Boot: CPUs in device tree: {variables.get('SMP', '1')} ", "SMP")
    has(rf"^Boot: Command line: {re.escape(variables.get('APPEND', ''))}$" if variables.get("APPEND") else r".", "APPEND")


def check_make_run_test_mode(command: str) -> Callable[[Docs], None]:
    """`make run ... APPEND="test ..."`: a test-mode boot that shows the machine asked for and
    ends as documented: every self-test summary clean, or the requested panic report, then a
    power-off that ends make."""
    def check(docs: Docs) -> None:
        _, variables = make_words(command)
        code, output = run(shlex.split(command), timeout=240)
        lines = console_lines(output)
        require(code == 0, f"exit code {code} (0 after the power-off)", output)
        expect_machine(lines, variables, output)
        words = variables.get("APPEND", "").split()
        if "selftest=panic" in words:
            expected = [r"^Kernel panic: requested by selftest=panic$", r"^  backtrace:$", r"^Kernel panic: system halted$"]
        elif any(word.startswith("panicafter=") for word in words):
            others = int(variables.get("SMP", "1")) - 1
            expected = [r"^Kernel panic: requested by panicafter=\d+$", r"^  backtrace:$",
                        rf"^Kernel panic: other CPUs stopped: {others} of {others}$", r"^Kernel panic: system halted$"]
        elif "selftest=trap" in words:
            expected = [r"^Kernel panic: unexpected synchronous exception from EL1", r"^  ESR 0x[0-9a-f]{16}  FAR"]
        else:
            expected = [r"^Memory Test: \d+ passed, 0 failed$", r"^Interrupt Test: \d+ passed, 0 failed$",
                        r"^Boot Test: \d+ passed, 0 failed$", r"^tests: \d+ passed, 0 failed$",
                        r"^Boot: Test mode complete, powering off$"]
            bad = [line for line in lines if "Kernel panic" in line or "FAILED" in line]
            # The lines themselves, not only the console's tail: a failed check may be far above it.
            require(not bad, "\n    ".join(["a panic or a failed test:"] + bad[:10]), output)
        for pattern in expected:
            require(any(re.search(pattern, line) for line in lines), f"no console line /{pattern}/", output)
        for wanted, key in (("make run APPEND=test", ("README.md", TEST_MODE_BLOCK)),
                            ('make run APPEND="test selftest=panic"', ("README.md", PANIC_BLOCK)),
                            ("make run-uefi APPEND=test", ("README.md", UEFI_BLOCK)),
                            ("make run-uefi APPEND=test", ("ARCHITECTURE.md", UEFI_ARCHITECTURE_BLOCK))):
            block = docs.blocks.get(key)
            if block is not None and command == wanted:
                missing = match_lines([(n, t) for n, t in block.lines if t.strip() not in ("", "...")], lines, block.path)
                require(not missing, "\n    ".join([f"README's output of {wanted}:"] + missing))
    return check


TEST_MODE_BLOCK = ("Memory Test: ✓ Heap allocation working correctly (48 blocks of 1-8999 bytes, alignments to 4 KiB, "
                   "patterns verified; Swift array of 1000 elements; all freed)")
PANIC_BLOCK = "Kernel panic: requested by selftest=panic"
BOOT_BLOCK = "SwiftKernel v0.1.0 - ARM64 Microkernel"
SHELL_BLOCK = "swiftkernel> spawn hello"
SHELL_MD_BLOCK = "shell: SwiftKernel shell; type help for the commands"
UEFI_BLOCK = "SwiftKernel: started as an EFI application"
UEFI_ARCHITECTURE_BLOCK = "Boot: started by UEFI firmware (EDK II), memory map: 29 entries, 1017 MiB usable"


def check_run_transcripts(*keys: tuple[str, str]) -> Callable[[Docs], None]:
    """`make run`: boots to the prompt, checks the blocks' lines and types their commands."""
    def check(docs: Docs) -> None:
        blocks = [docs.blocks[key] for key in keys if key in docs.blocks]
        require(len(blocks) == len(keys), f"blocks missing from the docs: {[k for k in keys if k not in docs.blocks]}")
        with make_session(["run"], deadline=150) as session:
            try:
                failures = replay(session, blocks)
            except AssertionError as error:
                raise CheckFailed(str(error))
            session.close()
            code = session.exit_code
        require(not failures, "\n    ".join(["expected output not seen:"] + failures), session.text)
        if "powering off" in session.text:
            require(code == 0, f"make run ended with {code} after the power-off", session.text)
    return check


def check_ctrl_a_x(docs: Docs) -> None:
    """`make run` prints the QEMU line it runs, reaches the prompt, and Ctrl-A X quits QEMU."""
    with make_session(["run"], deadline=90) as session:
        try:
            booting = session.expect(r"Booting SwiftKernel: (qemu-system-aarch64 -M virt\S* .*-nographic.*)\(Ctrl-A X quits\)")
            session.expect(re.escape(PROMPT), timeout=60)
            session.type("\x01x")
            code = session.wait_exit(15)
        except AssertionError as error:
            raise CheckFailed(str(error))
    require(code is not None, "QEMU still running 15 s after Ctrl-A X", session.text)
    require("-initrd build/initrd.cpio" in booting[1], f"the ramdisk is not passed: {booting[1]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def debug_with_gdb(gdb_variables: list[str], gdb_input: str) -> str:
    """`make debug` in one process group, `make gdb` fed `gdb_input` on its standard input;
    returns GDB's output. The documented port is used when it is free, else GDB_PORT names another."""
    with DEBUG_SESSIONS:
        # If another program takes the port between the look and QEMU, once more on a free one.
        for port_words in ([] if port_free(1234) else [f"GDB_PORT={free_port()}"], [f"GDB_PORT={free_port()}"]):
            port = port_words[0].split("=")[1] if port_words else "1234"
            with make_session(["debug"] + port_words, deadline=60) as session:
                try:
                    session.expect(rf"QEMU is halted, waiting for GDB on port {port}")
                except AssertionError as error:
                    raise CheckFailed(str(error))
                output = ""
                for _ in range(20):     # until QEMU listens
                    time.sleep(0.5)
                    code, output = run(["make", "-s", "gdb"] + port_words + gdb_variables, timeout=60, stdin=gdb_input)
                    if "Connection refused" not in output:
                        break
                session._read(0.2)
                if "Failed to find an available port" not in session.text:
                    return output
        return output


DEBUG_SESSIONS = threading.Lock()   # one at a time: each wants the documented port


def check_gdb_symbols(docs: Docs) -> None:
    """`make debug`, then `make gdb`: QEMU waits before its first instruction; `break
    kernel_main_high`, `bt` and source lines work at the default LOAD_ADDRESS."""
    line = next(number for number, text in enumerate((ROOT / "kernel" / "main.swift").read_text().splitlines(), 1)
                if "func kernelMainHigh(" in text) + 1
    output = debug_with_gdb([], f"p/x $pc\nbreak kernel_main_high\ncontinue\nbt\np/x $pc\n"
                                f"break main.swift:{line}\ncontinue\nbt\n")
    values = re.findall(r"^(?:\(gdb\) )*\$\d+ = (0x[0-9a-f]+)$", output, re.MULTILINE)
    require(len(values) == 2, "GDB printed no $pc", output)
    require(int(values[0], 16) == 0x4000_0000, f"QEMU did not wait at its first instruction (0x40000000): $pc {values[0]}", output)
    require(re.search(r"^Breakpoint 1, (0x[0-9a-f]+ in )?kernel_main_high ", output, re.MULTILINE) is not None,
            "the breakpoint at kernel_main_high was not hit", output)
    require(int(values[1], 16) >> 32 == 0xffff0000, f"kernel_main_high not in the linear map: {values[1]}", output)
    require(re.search(r"^(?:\(gdb\) )*#0\s+.*kernel_main_high", output, re.MULTILINE) is not None, "bt shows no kernel_main_high", output)
    # GDB moves the breakpoint to the first line with code, and wraps long lines.
    stop = re.search(r"^Breakpoint 2, .*?kernelMainHigh.*?\sat kernel/main\.swift:(\d+)\n(\d+)\s", output, re.MULTILINE | re.DOTALL)
    require(stop is not None and line <= int(stop[1]) == int(stop[2]) < line + 10,
            f"no source line: the breakpoint at main.swift:{line} was not hit with its line", output)
    require(re.search(rf"^#1\s+.*kernel_main_high", output, re.MULTILINE) is not None,
            "bt from Swift code does not reach kernel_main_high", output)


def check_gdb_load_address(docs: Docs) -> None:
    """`make gdb LOAD_ADDRESS=0x40200000`: symbols where QEMU loads the image; the first kernel
    instruction is at 0x40200000 and GDB names it."""
    output = debug_with_gdb(["LOAD_ADDRESS=0x40200000"], "break *0x40200000\ncontinue\np/x $pc\ninfo symbol $pc\n")
    values = re.findall(r"^(?:\(gdb\) )*\$\d+ = (0x[0-9a-f]+)$", output, re.MULTILINE)
    require(values == ["0x40200000"], f"$pc at the kernel's first instruction: {values}", output)
    require(re.search(r"^(?:\(gdb\) )*_start(_of_image)? in section \.text", output, re.MULTILINE) is not None,
            "GDB does not name the image's first instruction", output)


def check_cpio(docs: Docs) -> None:
    code, output = run("cpio -t < build/initrd.cpio", timeout=30, shell=True)
    names = set(output.split())
    programs = {path.name for path in (ROOT / "userland" / "services").iterdir() if path.is_dir()}
    require(code == 0, f"exit code {code}", output)
    require(programs | {"manifest"} <= names, f"missing from the ramdisk: {sorted(programs | {'manifest'} - names)}", output)


def check_help(docs: Docs) -> None:
    """`make help` prints the targets and variables; README's two tables hold the same rows."""
    code, output = run(["make", "-s", "help"], timeout=30)
    require(code == 0, f"exit code {code}", output)
    targets, variables = make_help.read()
    printed = output.splitlines()
    for target in targets:
        require(any(line.split()[:1] == [target.name] for line in printed if line.startswith("  ")),
                f"make help does not list {target.name}", output)
    for variable in variables:
        require(any(line.split()[:2] == [variable.name, variable.default] for line in printed),
                f"make help does not list {variable.name}", output)
    readme = (ROOT / "README.md").read_text()
    expected = make_help.markdown(targets, variables)
    for row in expected.splitlines():
        require(row in readme.splitlines(), "README's tables differ from make help: the row\n      " + row
                + "\n    is not in README (python3 tools/make_help.py --markdown prints both tables)")
    rows = [line for line in readme.splitlines() if re.match(r"^\| `[a-zA-Z][\w-]*` \|", line)]
    extra = [row for row in rows if row not in expected.splitlines() and
             re.match(r"^\| `([a-z-]+|[A-Z_]+)` \| ", row) and
             (row.split("`")[1] in {t.name for t in targets} or row.split("`")[1].isupper())
             and row.count("|") in (3, 5)]
    require(not extra, "README's tables have rows make help does not print:\n      " + "\n      ".join(extra))


# A value for each documented variable, and the text that shows it reached a target's commands.
VARIABLE_SAMPLES = {
    "CPU": ("cortex-a53", "cortex-a53"), "MEMORY": ("2G", "2G"), "SMP": ("3", "smp 3"), "GIC": ("3", "gic-version=3"),
    "EL2": ("1", "virtualization=on"), "APPEND": ("tick=250", "tick=250"), "QEMU_EXTRA": ("-d guest_errors", "-d guest_errors"),
    "GDB_PORT": ("4321", "4321"), "QEMU": ("echo", "echo -M virt"), "SWIFT_BIN": ("/opt/swift/usr/../usr/bin", "/opt/swift/usr/../usr/bin/swiftc"),
    "DEBUG": ("1", "-D KERNEL_DEBUG"), "FAULTS": ("1", "-D KERNEL_FAULT_INJECTION"), "FUZZ_CALLS": ("1234", "fuzz=1234"),
    "FUZZ_SEED": ("77", "seed=77"), "FUZZ_FLAGS": ("5", "fuzzflags=5"), "FUZZ_TIMEOUT": ("99", "timeout 99"),
    "SOAK_RESTARTS": ("55", "--restarts 55"), "SOAK_TIMEOUT": ("66", "--timeout 66"), "LOAD_ADDRESS": ("0x40200000", "-o 0x40200000"),
    "GDB_ARGS": ("-batch", "-batch"), "FUZZ_SECONDS": ("3", "--seconds 3"),
    "ROW": ("yield-switch", "profile.py yield-switch"), "TOP": ("7", "--top 7"), "FUNCTION": ("Scheduler", "--function 'Scheduler'"),
    "CALLERS": ("swift_release", "--callers 'swift_release'"),
    "DISK": ("build/sample-disk.img", "file=build/sample-disk.img"),
}


def check_variables(docs: Docs) -> None:
    """Each variable of the table reaches the commands of each target the table says uses it (a
    dry run shows them; targets whose boots are Python's get QEMU=echo, which makes the boot print
    the QEMU line it was given), and make test and make soak say which machine variables they do
    not use."""
    _, variables = make_help.read()
    require({v.name for v in variables} == set(VARIABLE_SAMPLES),
            f"VARIABLE_SAMPLES and the table differ: {sorted({v.name for v in variables} ^ set(VARIABLE_SAMPLES))}")
    for variable in variables:
        value, shown = VARIABLE_SAMPLES[variable.name]
        for target in variable.used_by.split():
            if target in ("test", "soak") and variable.name == "QEMU":
                if target == "test":
                    continue    # the same harness as soak's and bench's, checked there
                words = ["make", "-s", target, "QEMU=echo", "SOAK_TIMEOUT=30"]
            elif variable.name == "QEMU" and target in ("bench", "profile"):
                words = ["make", "-s", target, "QEMU=echo"]
            else:
                with tempfile.TemporaryDirectory() as scratch:
                    build = [f"BUILD={scratch}/build"] if target == "build" else []
                    words = ["make", "-n", target, f"{variable.name}={value}"] + build
                    code, output = run(words, timeout=120)
                require(code == 0, f"{' '.join(words)}: exit code {code}", output)
                require(shown in output, f"{variable.name}: {' '.join(words)} does not show {shown!r}", output)
                continue
            code, output = run(words, timeout=120)
            require(code != 0 and "-M virt" in output, f"{variable.name}: {' '.join(words)} did not run the QEMU it names", output)
    for target in ("test", "soak"):
        code, output = run(["make", "-n", target, "CPU=max", "EL2=1"], timeout=120)
        require(f"note: CPU EL2 not used by make {target}" in output, f"make {target} takes CPU and EL2 in silence", output)


def check_bench(docs: Docs) -> None:
    """`make bench`: one figure per line at each size; README's lines among them."""
    code, output = run(["make", "-s", "bench"], timeout=400)
    require(code == 0, f"exit code {code}", output)
    lines = output.splitlines()
    for size in ("256M", "8G"):
        require(any(re.match(rf"^bench: \S+@{size} \d+ insns/op$", line) for line in lines), f"no figures at {size}", output)
    block = docs.blocks[("README.md", "bench: null-syscall-el1@256M 133 insns/op")]
    missing = match_lines([(n, t) for n, t in block.lines if t.strip() not in ("", "...")], lines, block.path)
    require(not missing, "\n    ".join(["README's figures:"] + missing), output)


PROFILE_BLOCK = "profile: null-syscall-el0@256M: 77 insns/op in make bench; 2000 operations; counted 77.0 per operation (kernel 71.0, user 6.0)"


def check_profile(docs: Docs) -> None:
    """`make profile`: every row of the bench is listed, and the instructions counted inside its
    loop agree with its figure (within the loop's own instructions and the counter reads, which
    the bench takes off: at most 25 per operation, or 2 %); a row broken down as
    docs/BENCHMARKS.md shows, its functions summing to its count."""
    code, output = run(["make", "-s", "profile"], timeout=300)
    require(code == 0, f"make profile: exit code {code}", output)
    rows = re.findall(r"^profile: (\S+)@256M (\d+) insns/op, counted ([\d.]+)$", output, re.MULTILINE)
    require(len(rows) >= 20, f"make profile listed {len(rows)} rows", output)
    for name, figure, counted in rows:
        require(abs(float(counted) - int(figure)) <= max(25, 0.02 * int(figure)),
                f"make profile: {name} counted {counted} per operation against {figure} in make bench", output)
    words = ["make", "-s", "profile", "ROW=null-syscall-el0", "FUNCTION=system_call_dispatch"]
    code, output = run(words, timeout=300)
    require(code == 0, f"{' '.join(words)}: exit code {code}", output)
    block = docs.blocks[("BENCHMARKS.md", PROFILE_BLOCK)]
    missing = match_lines([(n, t) for n, t in block.lines if t.strip() not in ("", "...")], output.splitlines(), block.path)
    require(not missing, "\n    ".join(["docs/BENCHMARKS.md's profile:"] + missing), output)
    total = float(re.search(r"counted ([\d.]+) per operation", output)[1])
    listed = sum(float(value) for value in re.findall(r"^\s+([\d.]+)\s+[\d.]+%\s+\S+\s+\S", output, re.MULTILINE))
    require(abs(listed - total) < 1, f"{' '.join(words)}: its functions sum to {listed}, not {total}", output)
    executed = re.findall(r"^\s+([\d.]+)\s+ffff[0-9a-f]+\s+\S", output, re.MULTILINE)
    require(any(float(value) > 0 for value in executed), f"{' '.join(words)}: no instruction of the function counted", output)
    words = ["make", "-s", "profile", "ROW=ipc-call-reply-registers-0"]
    code, output = run(words, timeout=300)
    require(code == 0 and "profile: ipc-call-reply-registers-0@256M: " in output, f"{' '.join(words)}: exit code {code}", output)


# The campaigns the docs show, with FUZZ_CALLS made small: each runs through make and its log.
FUZZ_SMALL = "500"


def check_fuzz(docs: Docs) -> None:
    """`make fuzz` with the documented variables, FUZZ_CALLS made small; one after another, since
    each writes build/fuzz.log. The summary has the form docs/FUZZING.md shows."""
    summary = docs.blocks[("FUZZING.md", "fuzz: 100494 calls, 696 processes, 0 kernel panics, 0 hangs, leaked frames 0, leaked objects 0")]
    for command in sorted(FUZZ_COMMANDS):
        _, variables = make_words(command)
        variables["FUZZ_CALLS"] = FUZZ_SMALL
        words = ["make", "-s", "fuzz"] + [f"{name}={value}" for name, value in variables.items()]
        code, output = run(words, timeout=180)
        require(code == 0, f"{' '.join(words)}: exit code {code}", output)
        seed, flags = variables.get("FUZZ_SEED", "1"), int(variables.get("FUZZ_FLAGS", "0"))
        require(f"Fuzzing: {FUZZ_SMALL} calls from seed {seed}, flags {flags}" in output,
                f"{' '.join(words)}: its first line does not repeat the variables", output)
        require(re.search(rf"^fuzz: seed {seed}, {FUZZ_SMALL} calls in \d+ workers?, .* flags 0x{flags:02x}$", output, re.MULTILINE)
                is not None, f"{' '.join(words)}: the fuzzer did not get the variables", output)
        missing = match_lines([(n, t) for n, t in summary.lines if t.strip()], output.splitlines(), summary.path)
        require(not missing, "\n    ".join([f"{' '.join(words)}:"] + missing), output)


FUZZ_COMMANDS = {"make fuzz", "make fuzz FUZZ_CALLS=200000 FUZZ_SEED=7", "make fuzz FUZZ_FLAGS=127",
                 "make fuzz FUZZ_CALLS=1000000 FUZZ_SEED=7"}


def check_fuzz_host(docs: Docs) -> None:
    """The host fuzzing commands, each target for 1 s instead of a minute or ten, then a saved
    input replayed as docs/FUZZING.md shows."""
    runs = [(["make", "-s", "fuzz-host", "FUZZ_SECONDS=1"], {"device-tree", "elf", "cpio", "manifest"}),
            (["make", "-s", "fuzz-host-regress"], {"device-tree", "elf", "cpio", "manifest"}),
            (["python3", "fuzz/host/run.py", "--seconds", "1", "--targets", "elf,cpio", "--jobs", "1"], {"elf", "cpio"})]
    for words, targets in runs:
        code, output = run(words, timeout=300)
        require(code == 0, f"{' '.join(words)}: exit code {code}", output)
        seen = set(re.findall(r"^fuzz-host (\S+): ok", output, re.MULTILINE))
        require(seen == targets, f"{' '.join(words)}: targets ok {sorted(seen)}, expected {sorted(targets)}", output)
    sample = sorted((ROOT / "tests" / "fixtures" / "elf").iterdir())[0]
    code, output = run(f"SWIFT_BACKTRACE=enable=no build/fuzz-host/elf {shlex.quote(str(sample.relative_to(ROOT)))}",
                       timeout=60, shell=True)
    require(code == 0, f"build/fuzz-host/elf on {sample.name}: exit code {code}", output)


def dry_run(arguments: list[str], *expected: str, scratch_build: bool = False) -> Callable[[Docs], None]:
    """`make -n`: the target exists and its recipe holds `expected`. With `scratch_build` the
    build goes to an empty folder, so every compile line is printed (and nothing is built)."""
    def check(docs: Docs) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            words = ["make", "-n"] + arguments + ([f"BUILD={scratch}/build"] if scratch_build else [])
            code, output = run(words, timeout=120)
        require(code == 0, f"{' '.join(words)}: exit code {code}", output)
        for text in expected:
            require(text in output, f"{' '.join(words)} does not show {text!r}", output)
    return check


def check_manifest_lines(docs: Docs) -> None:
    block = docs.blocks[("SHELL.md", "service console program=console after=names,memory-manager restart=always devices=console memory=1M")]
    manifest = (ROOT / "userland" / "manifest").read_text().splitlines()
    for number, text in block.lines:
        require(text.strip() in (line.strip() for line in manifest),
                f"{block.where()}: line {number} is not in userland/manifest: {text.strip()!r}")


def check_fuzz_host_flags(docs: Docs) -> None:
    """The compile flags docs/FUZZING.md gives are those fuzz/host/run.py uses."""
    source = (ROOT / "fuzz" / "host" / "run.py").read_text()
    flags = re.search(r"^SWIFT_FLAGS = \[(.*?)\]", source, re.MULTILINE | re.DOTALL)
    require(flags is not None, "fuzz/host/run.py has no SWIFT_FLAGS list")
    used = re.findall(r'"([^"]+)"', flags[1])
    documented = FUZZ_HOST_FLAGS.split()[1:]
    require(all(flag in used for flag in documented), f"fuzz/host/run.py compiles with {used}, the docs say {documented}")


FUZZ_HOST_FLAGS = "swiftc -parse-as-library -O -assert-config Debug -g -sanitize=fuzzer,address"


def check_build(docs: Docs) -> None:
    """`make` and `make build` (which make test has just run: nothing to do); then `make` in an
    empty folder, dry, builds what README says: the kernel and the ramdisk of every program."""
    for words in (["make", "-s"], ["make", "-s", "build"]):
        code, output = run(words, timeout=1800)
        require(code == 0, f"{' '.join(words)}: exit code {code}", output)
    with tempfile.TemporaryDirectory() as scratch:
        code, output = run(["make", "-n", f"BUILD={scratch}/build"], timeout=120)
    require(code == 0, f"make -n: exit code {code}", output)
    for product in (f"{scratch}/build/kernel.img", f"{scratch}/build/user/hello.elf",
                    f"tools/pack-ramdisk.py {scratch}/build/initrd {scratch}/build/initrd.cpio"):
        require(product in output, f"make does not build {product}", output)


# ---- What is run, and what is not ---------------------------------------------------------------

class Check:
    """Run by these checks (names in CHECKS)."""

    def __init__(self, *names: str):
        self.names = names


@dataclass
class NotRun:
    reason: str
    dry: str | None = None      # a check (name in CHECKS) that runs instead: a dry run, a look


CHECKS: dict[str, Callable[[Docs], None]] = {
    "make and make build (the build the other commands use)": check_build,
    "make run: README's boot log, then its shell session typed": check_run_transcripts(("README.md", BOOT_BLOCK), ("README.md", SHELL_BLOCK)),
    "make run: docs/SHELL.md's session typed": check_run_transcripts(("SHELL.md", SHELL_MD_BLOCK)),
    "make run: the QEMU line it prints, and Ctrl-A X quits": check_ctrl_a_x,
    "make run APPEND=test, and README's test-mode output": check_make_run_test_mode("make run APPEND=test"),
    "make run CPU=max MEMORY=4G SMP=4 GIC=3 EL2=1 APPEND=test": check_make_run_test_mode("make run CPU=max MEMORY=4G SMP=4 GIC=3 EL2=1 APPEND=test"),
    'make run APPEND="test selftest=panic"': check_make_run_test_mode('make run APPEND="test selftest=panic"'),
    "make run-uefi APPEND=test, and the UEFI boot lines of README and docs/ARCHITECTURE.md": check_make_run_test_mode("make run-uefi APPEND=test"),
    'make run APPEND="test selftest=trap"': check_make_run_test_mode('make run APPEND="test selftest=trap"'),
    'make run SMP=4 APPEND="test panicafter=2500"': check_make_run_test_mode('make run SMP=4 APPEND="test panicafter=2500"'),
    "make debug, make gdb: break kernel_main_high, bt, source lines": check_gdb_symbols,
    "make debug, make gdb LOAD_ADDRESS=0x40200000: the first instruction": check_gdb_load_address,
    "cpio -t lists every program and the manifest": check_cpio,
    "make help and README's tables": check_help,
    "each variable reaches the targets the table names": check_variables,
    "make bench, and README's figures": check_bench,
    "make profile: every row accounted for, and docs/BENCHMARKS.md's breakdown": check_profile,
    f"make fuzz with FUZZ_CALLS={FUZZ_SMALL}, and the summary docs/FUZZING.md shows": check_fuzz,
    "the host fuzzing commands, 1 s per target": check_fuzz_host,
    "make -n test": dry_run(["test"], "python3 tests/run.py"),
    "make -n test-host": dry_run(["test-host"], "python3 tests/run.py --host-only"),
    "make -n test-boot": dry_run(["test-boot"], "python3 tests/run.py --boot-only"),
    "make -n test-docs": dry_run(["test-docs"], "python3 tests/run.py --docs-only"),
    "make -n clean": dry_run(["clean"], "rm -rf build .build"),
    "make -n run-uefi": dry_run(["run-uefi"], "mcopy -o -i build/esp.img build/cmdline.txt ::/cmdline.txt"),
    "make -n fixtures": dry_run(["fixtures"], "tools/dump-device-trees.sh"),
    "make -n soak": dry_run(["soak"], "python3 tools/soak.py --restarts 10000"),
    "make -n build DEBUG=1 (in an empty folder): the flag reaches the compiler": dry_run(["build", "DEBUG=1"], "-D KERNEL_DEBUG", scratch_build=True),
    "make -n FAULTS=1 (in an empty folder): the flag reaches the compiler": dry_run(["FAULTS=1"], "-D KERNEL_FAULT_INJECTION", scratch_build=True),
    "make -n debug-kernel (in an empty folder): the flag reaches the compiler": dry_run(["debug-kernel"], "-D KERNEL_DEBUG", scratch_build=True),
    "make -n build (in an empty folder): the compiler flags docs/ARCHITECTURE.md names": dry_run(
        ["build"], "swiftc -target aarch64-none-none-elf -enable-experimental-feature Embedded -wmo", scratch_build=True),
    "the manifest lines docs/SHELL.md shows are userland/manifest's": check_manifest_lines,
    "the host fuzzers' compile flags are fuzz/host/run.py's": check_fuzz_host_flags,
}

RUN_TRANSCRIPTS = ("make run: README's boot log, then its shell session typed", "make run: docs/SHELL.md's session typed",
                   "make run: the QEMU line it prints, and Ctrl-A X quits")
GDB_CHECKS = ("make debug, make gdb: break kernel_main_high, bt, source lines",
              "make debug, make gdb LOAD_ADDRESS=0x40200000: the first instruction")
FUZZ_CHECK = f"make fuzz with FUZZ_CALLS={FUZZ_SMALL}, and the summary docs/FUZZING.md shows"
UEFI_CHECK = "make run-uefi APPEND=test, and the UEFI boot lines of README and docs/ARCHITECTURE.md"

COMMANDS: dict[str, Check | NotRun] = {
    "make": Check("make and make build (the build the other commands use)"),
    "make build": Check("make and make build (the build the other commands use)"),
    "make run": Check(*RUN_TRANSCRIPTS),
    "make run APPEND=test": Check("make run APPEND=test, and README's test-mode output"),
    "make run CPU=max MEMORY=4G SMP=4 GIC=3 EL2=1 APPEND=test": Check("make run CPU=max MEMORY=4G SMP=4 GIC=3 EL2=1 APPEND=test"),
    'make run APPEND="test selftest=panic"': Check('make run APPEND="test selftest=panic"'),
    "make run-uefi APPEND=test": Check(UEFI_CHECK),
    "make run-uefi": NotRun("the boot of make run-uefi APPEND=test, which is run, ending at the shell's prompt instead of a "
                            "power-off", "make -n run-uefi"),
    'make run APPEND="test selftest=trap"': Check('make run APPEND="test selftest=trap"'),
    'make run SMP=4 APPEND="test panicafter=2500"': Check('make run SMP=4 APPEND="test panicafter=2500"'),
    "qemu-system-aarch64 -M virt ... -nographic": Check("make run: the QEMU line it prints, and Ctrl-A X quits"),
    "make debug": Check(*GDB_CHECKS),
    "make gdb": Check(GDB_CHECKS[0]),
    "break kernel_main_high": Check(GDB_CHECKS[0]),
    "bt": Check(GDB_CHECKS[0]),
    "make gdb LOAD_ADDRESS=0x40200000": Check(GDB_CHECKS[1]),
    "cpio -t < build/initrd.cpio": Check("cpio -t lists every program and the manifest"),
    "make help": Check("make help and README's tables", "each variable reaches the targets the table names"),
    "make bench": Check("make bench, and README's figures"),
    "make profile": Check("make profile: every row accounted for, and docs/BENCHMARKS.md's breakdown"),
    "make profile ROW=null-syscall-el0 FUNCTION=system_call_dispatch":
        Check("make profile: every row accounted for, and docs/BENCHMARKS.md's breakdown"),
    "make profile ROW=ipc-call-reply-registers-0": Check("make profile: every row accounted for, and docs/BENCHMARKS.md's breakdown"),
    **{command: Check(FUZZ_CHECK) for command in FUZZ_COMMANDS},
    "make fuzz-host": Check("the host fuzzing commands, 1 s per target"),
    "make fuzz-host FUZZ_SECONDS=600": Check("the host fuzzing commands, 1 s per target"),
    "make fuzz-host-regress": Check("the host fuzzing commands, 1 s per target"),
    "python3 fuzz/host/run.py --seconds 60 --targets elf,cpio --jobs 1": Check("the host fuzzing commands, 1 s per target"),
    "SWIFT_BACKTRACE=enable=no build/fuzz-host/<target> <input>": Check("the host fuzzing commands, 1 s per target"),
    "make test": NotRun("it runs this suite: it would start itself", "make -n test"),
    "make test-host": NotRun("its suites are part of make test, which counts them", "make -n test-host"),
    "make test-boot": NotRun("its suites are part of make test, which counts them", "make -n test-boot"),
    "make test-docs": NotRun("it is this suite", "make -n test-docs"),
    "make clean": NotRun("it deletes build/, which the other suites are using", "make -n clean"),
    "make fixtures": NotRun("it rewrites the tracked fixtures in tests/fixtures/dtb", "make -n fixtures"),
    "make soak": NotRun("a long campaign (9 minutes for its 10,000 kills of services and 10,000 crashes of the disk "
                        "driver, and the whole test suite before them even when small); the boot tests run the same "
                        "paths with 100 of each", "make -n soak"),
    "make build DEBUG=1": NotRun("it needs make clean first and would replace the build the other suites use",
                                 "make -n build DEBUG=1 (in an empty folder): the flag reaches the compiler"),
    "make FAULTS=1": NotRun("it would replace the build the other suites use; make test builds this kernel in build/faults "
                            "and boots it three times", "make -n FAULTS=1 (in an empty folder): the flag reaches the compiler"),
    "make debug-kernel": NotRun("make test builds it (its prerequisite debug-kernel) and boots it in three scenarios",
                                "make -n debug-kernel (in an empty folder): the flag reaches the compiler"),
    "swift test": NotRun("the host suite of make test runs it"),
    "swift build": NotRun("the host suite of make test builds the same package (swift test)"),
    "swiftc -target aarch64-none-none-elf -enable-experimental-feature Embedded -wmo": NotRun(
        "a fragment: the flags of the kernel's compile line", "make -n build (in an empty folder): the compiler flags docs/ARCHITECTURE.md names"),
    FUZZ_HOST_FLAGS: NotRun("a fragment: the flags fuzz/host/run.py compiles each target with",
                            "the host fuzzers' compile flags are fuzz/host/run.py's"),
    "python3 tests/boot/devicetree_mutation.py -v": NotRun(
        "about sixty boots; the boot suite runs the same mutations as one scenario and reports each failure"),
}

BLOCKS: dict[tuple[str, str], Check | NotRun] = {
    ("README.md", BOOT_BLOCK): Check(RUN_TRANSCRIPTS[0]),
    ("README.md", SHELL_BLOCK): Check(RUN_TRANSCRIPTS[0]),
    ("README.md", TEST_MODE_BLOCK): Check("make run APPEND=test, and README's test-mode output"),
    ("README.md", "bench: null-syscall-el1@256M 133 insns/op"): Check("make bench, and README's figures"),
    ("BENCHMARKS.md", PROFILE_BLOCK): Check("make profile: every row accounted for, and docs/BENCHMARKS.md's breakdown"),
    ("README.md", PANIC_BLOCK): Check('make run APPEND="test selftest=panic"'),
    ("README.md", UEFI_BLOCK): Check(UEFI_CHECK),
    ("ARCHITECTURE.md", UEFI_ARCHITECTURE_BLOCK): Check(UEFI_CHECK),
    ("ARCHITECTURE.md", PANIC_BLOCK):
        NotRun("a panic report and a user program's fault report side by side, from two boots; README's panic "
               "block is checked against make run APPEND=\"test selftest=panic\", and the boot suite's crasher "
               "scenario checks the named fault reports"),
    ("README.md", "Package.swift              the portable kernel core as a host library, with its unit tests"):
        NotRun("the source tree's layout, not output"),
    ("ARCHITECTURE.md", "kernel/main.swift   boot sequence (BootReport.swift: what the boot log"):
        NotRun("a diagram of the layers, not output"),
    ("ARCHITECTURE.md", "Boot: device tree: /memory@40000000 has no usable reg; stopping"):
        NotRun("lines of boots on damaged device trees; the boot suite's device tree mutations check them"),
    ("ARCHITECTURE.md", "service names program=names restart=always memory=1M"):
        NotRun("an example of the manifest's syntax, not of userland/manifest"),
    ("FUZZING.md", "fuzz: 100494 calls, 696 processes, 0 kernel panics, 0 hangs, leaked frames 0, leaked objects 0"): Check(FUZZ_CHECK),
    ("FUZZING.md", "fuzz: worker seed 610563 (25000 calls) hung at call 22501: call(0x0000000100000002, 0x000010000001d000, ...); "
                   "replay: fuzz=25000 seed=610563 fuzzflags=2171"):
        NotRun("the report of a hang, which a sound kernel does not give"),
    ("SHELL.md", SHELL_MD_BLOCK): Check(RUN_TRANSCRIPTS[1]),
    ("SHELL.md", "service console program=console after=names,memory-manager restart=always devices=console memory=1M"):
        Check("the manifest lines docs/SHELL.md shows are userland/manifest's"),
}

# Longest first, so that the two cores stay busy to the end.
ORDER = ["make run CPU=max MEMORY=4G SMP=4 GIC=3 EL2=1 APPEND=test", "make run APPEND=test, and README's test-mode output",
         "make bench, and README's figures", FUZZ_CHECK]


def main() -> int:
    global VERBOSE
    parser = argparse.ArgumentParser()
    parser.add_argument("-v", "--verbose", action="store_true", help="show lines whose values differ from the docs")
    parser.add_argument("--jobs", type=int, default=max(1, min(3, os.cpu_count() or 1)))
    options = parser.parse_args()
    VERBOSE = options.verbose
    started = time.monotonic()
    # The commands run as a reader would paste them: not with the variables or flags of a make
    # that started this runner (`make test CPU=max` exports CPU, and MAKEFLAGS carries it).
    _, variables = make_help.read()
    for name in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"] + [variable.name for variable in variables]:
        os.environ.pop(name, None)
    docs = extract()

    # What the docs hold against what this runner knows.
    problems = []
    for command, places in docs.commands.items():
        if command not in COMMANDS:
            problems.append(f"{', '.join(places)}: the command `{command}` is neither run nor listed as not run "
                            f"(tests/docs/run_doc_commands.py, COMMANDS)")
    for key, block in docs.blocks.items():
        if key not in BLOCKS:
            problems.append(f"{block.where()}: a block starting {key[1][:60]!r} is neither checked nor listed "
                            f"(tests/docs/run_doc_commands.py, BLOCKS)")
    for command in COMMANDS:
        if command not in docs.commands:
            problems.append(f"COMMANDS lists `{command}`, which no document shows any more")
    for key in BLOCKS:
        if key not in docs.blocks:
            problems.append(f"BLOCKS lists a block of {key[0]} starting {key[1][:60]!r}, which is not there any more")

    entries = list(COMMANDS.items()) + list(BLOCKS.items())
    needed = {name for _, entry in entries for name in (entry.names if isinstance(entry, Check) else
                                                          (entry.dry,) if entry.dry else ())}
    needed = [name for name in CHECKS if name in needed]
    print(f"== documentation: {len(docs.commands)} commands and {len(docs.blocks)} blocks in "
          f"{len(DOCUMENTS)} documents, {len(needed)} checks, {options.jobs} at a time", flush=True)

    outcome: dict[str, str | None] = {}
    timing: dict[str, float] = {}

    def attempt(name: str) -> tuple[str, str | None]:
        begun = time.monotonic()
        try:
            CHECKS[name](docs)
            failure = None
        except CheckFailed as error:
            failure = str(error)
        except Exception as error:  # a runner bug is a failure too, never a pass
            failure = f"{type(error).__name__}: {error}"
        timing[name] = time.monotonic() - begun
        return name, failure

    # The build first and alone: the commands after it depend on it and must not build at once.
    name, failure = attempt(needed[0])
    outcome[name] = failure
    rest = sorted(needed[1:], key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for name, failure in pool.map(attempt, rest):
            outcome[name] = failure
            if VERBOSE:
                print(f"    ({name}: {timing[name]:.0f} s)", flush=True)

    passed = failed = 0
    for what, entry in entries:
        label = f"`{what}`" if isinstance(what, str) else f"block {what[0]}: {what[1][:50]!r}"
        places = ", ".join(docs.commands.get(what, [])) if isinstance(what, str) else \
            (docs.blocks[what].where() if what in docs.blocks else "")
        if what not in docs.commands and what not in docs.blocks:
            continue
        if isinstance(entry, NotRun):
            note = f"; checked instead: {entry.dry}" if entry.dry else ""
            if entry.dry and outcome.get(entry.dry):
                failed += 1
                print(f"  FAIL {label} ({places}): {entry.dry}:\n    {outcome[entry.dry]}")
            else:
                passed += 1 if entry.dry else 0
                print(f"  {'ok  ' if entry.dry else 'skip'} {label} ({places}): not run: {entry.reason}{note}")
            continue
        failures = [(name, outcome[name]) for name in entry.names if outcome.get(name)]
        if failures:
            failed += 1
            print(f"  FAIL {label} ({places}): does not do what the docs say")
            for name, failure in failures:
                print(f"    {name}:\n    {failure}")
        else:
            passed += 1
            print(f"  ok   {label} ({places})")
    for problem in problems:
        failed += 1
        print(f"  FAIL {problem}")
    if docs.code_examples:
        print(f"  ({docs.code_examples} code blocks in a programming language are examples, not commands)")
    print(f"  docs: {passed} passed, {failed} failed ({time.monotonic() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
