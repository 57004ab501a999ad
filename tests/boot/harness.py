"""Boot-test harness: boots the kernel in QEMU with given arguments, collects the serial console
with a deadline, and always kills QEMU. Scenarios (scenarios.py) assert on the collected log.

Used by tests/run.py; reusable from any script:
    result = boot(["-cpu", "cortex-a53", "-m", "128M"], append="test")
    result.expect_line(r"Boot: Memory region: .* \\(128 MB\\)")
"""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL_IMAGE = ROOT / "build" / "kernel.img"
INITRD = ROOT / "build" / "initrd.cpio"
QEMU = os.environ.get("QEMU", "qemu-system-aarch64")


class BootFailure(AssertionError):
    """An expectation about a boot log did not hold; the message carries the evidence."""


@dataclass
class BootResult:
    command: list[str]
    lines: list[str]
    exit_code: int | None          # None when QEMU had to be killed
    timed_out: bool
    seconds: float
    checks: int = field(default=0)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def _fail(self, message: str) -> None:
        tail = "\n".join("    | " + line for line in self.lines[-40:])
        if self.timed_out:
            message += f"\n  (QEMU was stopped: the scenario's time ran out after {self.seconds:.0f} s)"
        # Failed checks further up than the tail, and what a failing check printed about itself.
        earlier = [line for line in self.lines[:-40]
                   if "\u2717" in line or (line.startswith("tests: ") and "\u2713" not in line and "kernel log record" not in line)]
        if earlier:
            message += "\n  failed checks before the tail:\n" + "\n".join("    | " + line for line in earlier)
        raise BootFailure(f"{message}\n  command: {' '.join(self.command)}\n  console (last 40 lines):\n{tail}")

    def expect_line(self, pattern: str) -> re.Match:
        """A line matching `pattern` (a regular expression, searched) is in the log."""
        self.checks += 1
        compiled = re.compile(pattern)
        for line in self.lines:
            match = compiled.search(line)
            if match:
                return match
        self._fail(f"no console line matches /{pattern}/")

    def expect_no_line(self, pattern: str) -> None:
        self.checks += 1
        compiled = re.compile(pattern)
        for line in self.lines:
            if compiled.search(line):
                self._fail(f"unexpected console line matching /{pattern}/: {line!r}")

    def lines_matching(self, pattern: str) -> list[re.Match]:
        compiled = re.compile(pattern)
        return [m for m in (compiled.search(line) for line in self.lines) if m]

    def expect_in_order(self, *patterns: str) -> None:
        """Each pattern matches a line after the line the previous one matched."""
        self.checks += 1
        position = 0
        for pattern in patterns:
            compiled = re.compile(pattern)
            while position < len(self.lines) and not compiled.search(self.lines[position]):
                position += 1
            if position == len(self.lines):
                self._fail(f"/{pattern}/ not found in order after the previous expectations")
            position += 1

    def expect_powered_off(self) -> None:
        """QEMU exited by itself (PSCI SYSTEM_OFF) with status 0, before the deadline."""
        self.checks += 1
        if self.timed_out or self.exit_code != 0:
            self._fail(f"QEMU did not power off cleanly (exit code {self.exit_code}, timed out {self.timed_out})")

    def expect_equal(self, actual, expected, what: str) -> None:
        self.checks += 1
        if actual != expected:
            self._fail(f"{what}: expected {expected!r}, got {actual!r}")


def qemu_command(machine: str = "virt", cpu: str = "cortex-a72", memory: str = "1G", smp: int = 1,
                 append: str | None = "test", kernel: Path | None = KERNEL_IMAGE,
                 initrd: Path | None = None, extra: list[str] | None = None) -> list[str]:
    command = [QEMU, "-M", machine, "-cpu", cpu, "-m", memory, "-smp", str(smp),
               "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
    if kernel is not None:
        command += ["-kernel", str(kernel)]
    if append is not None and kernel is not None:
        command += ["-append", append]
    if initrd is not None:
        command += ["-initrd", str(initrd)]
    return command + (extra or [])


def disk_arguments(image: Path) -> list[str]:
    """QEMU arguments attaching `image` as a modern (virtio 1.x) block device, as `make run` does."""
    return ["-global", "virtio-mmio.force-legacy=false",
            "-drive", f"if=none,format=raw,file={image},id=disk", "-device", "virtio-blk-device,drive=disk"]


SECTOR = 512


def disk_pattern_word(sector: int, index: int) -> int:
    """Word `index` (0-63) of sector `sector` as the disk test writes it (userland/services/disktest)."""
    return 0xD15C_0000_0000_0000 | sector << 8 | index


def check_disk_image(image: Path, copied_sectors: int, counter: int) -> str | None:
    """What is wrong with the image the disk test left, or None: every sector holds its pattern,
    except the copy in the second half (the pattern of the first sectors) and the last sector,
    whose first word is the counter."""
    data = image.read_bytes()
    sectors = len(data) // SECTOR
    half = sectors // 2
    for sector in range(sectors):
        block = data[sector * SECTOR:(sector + 1) * SECTOR]
        if sector == sectors - 1:
            if int.from_bytes(block[:8], "little") != counter:
                return f"the last sector's counter reads {int.from_bytes(block[:8], 'little')}, not {counter}"
            continue
        source = sector - half if half <= sector < half + copied_sectors else sector
        expected = b"".join(disk_pattern_word(source, index).to_bytes(8, "little") for index in range(64))
        if block != expected:
            return f"sector {sector} does not hold the pattern of sector {source}"
    return None


def newc_archive(files: dict[str, bytes]) -> bytes:
    """A cpio "newc" archive of regular files, as the kernel's initial ramdisk expects."""
    def entry(name: str, data: bytes, mode: int) -> bytes:
        encoded = name.encode() + b"\0"
        fields = [1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        header = b"070701" + b"".join(b"%08x" % field for field in fields)
        body = header + encoded
        body += b"\0" * (-len(body) % 4)
        return body + data + b"\0" * (-len(data) % 4)
    archive = b"".join(entry(name, data, 0o100755) for name, data in files.items())
    return archive + entry("TRAILER!!!", b"", 0)


def boot(command: list[str], timeout: float = 60.0, stop_at: str | None = None,
         interaction: list[tuple[str, str]] | None = None) -> BootResult:
    """Runs `command` until QEMU exits, `stop_at` (a regex) appears on the console, or
    `timeout` seconds pass. `interaction` is a list of (regex, text): when a console line or the
    unfinished last line matches the regex, `text` is typed on the serial input (for loaders
    with a prompt). QEMU is always killed before returning."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    output = bytearray()
    pending = list(interaction or [])
    stop = re.compile(stop_at) if stop_at else None
    typed_up_to = 0  # console text before this offset has already triggered typing
    timed_out = False
    try:
        assert process.stdout is not None and process.stdin is not None
        fd = process.stdout.fileno()
        while True:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                output += chunk
                text = output.decode("utf-8", "replace")
                while pending:
                    match = re.compile(pending[0][0]).search(text, typed_up_to)
                    if not match:
                        break
                    typed_up_to = match.end()
                    process.stdin.write(pending.pop(0)[1].encode())
                    process.stdin.flush()
                if stop and stop.search(text):
                    break
            elif process.poll() is not None:
                break
    finally:
        exit_code = process.poll()
        if exit_code is None and not timed_out and not stop:
            # End of output usually means QEMU is exiting; give it a moment to be reaped.
            try:
                exit_code = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                exit_code = None
        if exit_code is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        else:
            # Drain anything written just before exit.
            rest = process.stdout.read() if process.stdout else b""
            output += rest or b""
    text = output.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    return BootResult(command=command, lines=text.split("\n"), exit_code=exit_code,
                      timed_out=timed_out, seconds=time.monotonic() - started)


class Session:
    """An interactive boot: QEMU runs while a test types on the serial input and waits for
    console text, as a person at the terminal would. `expect` searches the console text after
    the last match (not line by line: a prompt has no newline); `close` always kills QEMU and
    returns the whole console as a BootResult. Use as a context manager."""

    def __init__(self, command: list[str], deadline: float = 120.0, env: dict[str, str] | None = None):
        self.command = command
        self.started = time.monotonic()
        self.deadline = self.started + deadline
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.output = bytearray()
        self.position = 0   # console text before this offset is already matched
        self.exit_code: int | None = None
        self.checks = 0

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def _read(self, wait: float) -> bool:
        """Reads what QEMU wrote within `wait` seconds; false once it has exited."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout.fileno()], [], [], max(0.0, wait))
        if ready:
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                self.exit_code = self.process.wait()
                return False
            self.output += chunk
        return True

    def result(self) -> BootResult:
        text = self.text.replace("\r\n", "\n").replace("\r", "\n")
        return BootResult(command=self.command, lines=text.split("\n"), exit_code=self.exit_code,
                          timed_out=False, seconds=time.monotonic() - self.started, checks=self.checks)

    def fail(self, message: str) -> None:
        self.close()
        log = ROOT / "build" / f"session-{os.getpid()}-{int(self.started)}.log"
        try:
            log.write_text(self.text)
            message += f"\n  whole console in {log}"
        except OSError:
            pass
        self.result()._fail(message)

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match:
        """Waits for `pattern` (a regex) in the console text after the previous match."""
        self.checks += 1
        compiled = re.compile(pattern)
        until = min(time.monotonic() + timeout, self.deadline)
        while True:
            match = compiled.search(self.text, self.position)
            if match:
                self.position = match.end()
                return match
            remaining = until - time.monotonic()
            if remaining <= 0:
                self.fail(f"/{pattern}/ did not appear within {timeout:.0f} s")
            if not self._read(min(remaining, 0.5)):
                match = compiled.search(self.text, self.position)
                if match:
                    self.position = match.end()
                    return match
                self.fail(f"QEMU exited (code {self.exit_code}) before /{pattern}/ appeared")

    def type(self, text: str | bytes, pause: float = 0.0) -> None:
        """Types `text` on the serial input (a pause between bytes if `pause`)."""
        assert self.process.stdin is not None
        data = text.encode("latin-1") if isinstance(text, str) else text
        try:
            if pause:
                for byte in data:
                    self.process.stdin.write(bytes([byte]))
                    self.process.stdin.flush()
                    time.sleep(pause)
            else:
                self.process.stdin.write(data)
                self.process.stdin.flush()
        except BrokenPipeError:
            self.fail("QEMU stopped reading the serial input")

    def wait_exit(self, timeout: float = 20.0) -> int | None:
        """Reads until QEMU exits by itself; its exit code (None if it did not within `timeout`)."""
        until = time.monotonic() + timeout
        while self.exit_code is None and time.monotonic() < until:
            if not self._read(min(until - time.monotonic(), 0.5)):
                break
        return self.exit_code

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        else:
            self.exit_code = self.process.returncode
        if self.process.stdout is not None and not self.process.stdout.closed:
            try:
                while True:
                    ready, _, _ = select.select([self.process.stdout.fileno()], [], [], 0)
                    if not ready:
                        break
                    chunk = os.read(self.process.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    self.output += chunk
            except OSError:
                pass


# ---- UEFI boot -------------------------------------------------------------------------------
# The kernel as an EFI application under Debian's edk2 build for QEMU (qemu-efi-aarch64): the
# firmware in flash, a fresh copy of its variable store, and a FAT system partition on a virtio
# block device, as `make run-uefi` boots it.
UEFI_CODE = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
UEFI_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.fd")


def uefi_system_partition(image: Path, files: dict[str, Path | bytes]) -> None:
    """A 16 MiB FAT image at `image` holding `files`, by their paths on it (`EFI/BOOT/BOOTAA64.EFI`)."""
    subprocess.run(["mkfs.fat", "-C", "-F", "16", "-n", "SWIFTKERNEL", str(image), "16384"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    environment = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    folders = sorted({"/".join(name.split("/")[:depth]) for name in files for depth in range(1, name.count("/") + 1)})
    for folder in folders:
        subprocess.run(["mmd", "-i", str(image), f"::/{folder}"], check=True, env=environment)
    for name, content in files.items():
        source = content
        if isinstance(content, bytes):
            source = image.with_name(name.replace("/", "_"))
            source.write_bytes(content)
        subprocess.run(["mcopy", "-i", str(image), str(source), f"::/{name}"], check=True, env=environment)


def uefi_command(scratch: Path, machine: str = "virt", cpu: str = "cortex-a72", memory: str = "1G", smp: int = 1,
                 append: str | None = "test", kernel: Path = KERNEL_IMAGE, initrd: Path | None = INITRD,
                 acpi: bool = False, extra: list[str] | None = None) -> list[str]:
    """The QEMU command of a UEFI boot, its files made in `scratch`: the kernel as the firmware's
    default for removable media, the initial ramdisk as initrd.cpio and the command line as
    cmdline.txt (each left out when None). With `acpi`, QEMU gives the firmware ACPI tables and
    the firmware then publishes no device tree."""
    files: dict[str, Path | bytes] = {"EFI/BOOT/BOOTAA64.EFI": kernel}
    if initrd is not None:
        files["initrd.cpio"] = initrd
    if append is not None:
        files["cmdline.txt"] = (append + "\n").encode()
    partition = scratch / "esp.img"
    uefi_system_partition(partition, files)
    variables = scratch / "vars.fd"
    variables.write_bytes(UEFI_VARS.read_bytes())
    firmware = ["-drive", f"if=pflash,format=raw,readonly=on,file={UEFI_CODE}",
                "-drive", f"if=pflash,format=raw,file={variables}",
                "-drive", f"if=none,format=raw,file={partition},id=esp", "-device", "virtio-blk-device,drive=esp"]
    return qemu_command(machine=machine + ("" if acpi else ",acpi=off"), cpu=cpu, memory=memory, smp=smp,
                        kernel=None, extra=firmware + (extra or []))
