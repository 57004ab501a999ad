"""Boot scenarios: each boots the kernel in one QEMU configuration and asserts on what it
prints. Every expectation is derived from the configuration QEMU was given (memory size, CPU
model, GIC version, entry level), so a line that merely appears is not enough."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import devicetree_mutation
import shell_scenarios
from harness import INITRD, KERNEL_IMAGE, ROOT, BootFailure, BootResult, boot, check_disk_image, disk_arguments, newc_archive, qemu_command, uefi_command, UEFI_CODE, UEFI_VARS

ROOT_BUILD = ROOT / "build"

RAM_BASE = 0x4000_0000
SIZES = {"128M": 128 << 20, "1G": 1 << 30, "2G": 2 << 30, "3G": 3 << 30, "4G": 4 << 30, "8G": 8 << 30}
CPU_NAMES = {"cortex-a53": "Cortex-A53", "cortex-a57": "Cortex-A57", "cortex-a72": "Cortex-A72",
             "max": "QEMU max"}


@dataclass
class Scenario:
    name: str
    run: Callable[[], BootResult]


def expect_standard_boot(result: BootResult, cpu: str, memory: str, gic: int, entry_level: int,
                         cpus: int = 1, conduit: str = "hvc") -> None:
    """The boot log of a test-mode boot that ends in a clean power-off."""
    result.expect_in_order(
        r"^SwiftKernel v0\.1\.0 - ARM64 Microkernel$",
        rf"^Boot: CPU primary core active \({CPU_NAMES[cpu]}, MPIDR 0x[0-9a-f]{{16}}, entered at EL{entry_level}\)$",
        r"^Boot: Device tree parsed successfully",
        r"^Boot: Memory region: ",
        r"^Boot: Console PL011 at 0x0000000009000000$",
    )
    size = SIZES[memory]
    regions = result.lines_matching(r"^Boot: Memory region: 0x([0-9a-f]{16}) - 0x([0-9a-f]{16}) \((\d+) MB\)$")
    result.expect_equal([(int(m[1], 16), int(m[2], 16), int(m[3])) for m in regions],
                        [(RAM_BASE, RAM_BASE + size, size >> 20)], "memory regions")
    if gic == 2:
        result.expect_line(r"^Boot: Interrupt controller GICv2, distributor 0x0000000008000000, CPU interface 0x0000000008010000$")
    else:
        result.expect_line(r"^Boot: Interrupt controller GICv3, distributor 0x0000000008000000, redistributors 0x00000000080a0000$")
    expect_memory_management(result, total_frames=size // 4096)
    expect_interrupts(result, gic=gic, hz=100)
    result.expect_line(rf"^Boot: PSCI \d+\.\d+ via {conduit}$")
    expect_cores_online(result, cpus)
    result.expect_line(r"^Boot: Generic timer at 62500000 Hz")
    result.expect_line(r"^Boot Test: ✓ Running at EL1 after entry at EL" + str(entry_level))
    result.expect_line(r"^Boot Test: ✓ Exception frame: 288 bytes, each ExceptionFrame accessor at its Layouts\.h offset, the SVC class and call numbers vectors\.S tests$")
    result.expect_line(r"^Boot Test: ✓ Switch context: SwitchContext is 104 bytes, link register and SP at their Layouts\.h offsets$")
    result.expect_line(r"^Boot Test: ✓ IPC message header: the Layouts\.h offsets context\.S uses match IPCMessageLayout$")
    result.expect_no_line(r"FAILED|Kernel panic")
    summary = result.expect_line(r"^Boot Test: (\d+) passed, (\d+) failed$")
    result.expect_equal(int(summary[2]), 0, "failed boot self-tests")
    result.expect_equal(int(summary[1]), len(result.lines_matching(r"^Boot Test: ✓ ")), "self-test count")
    result.expect_line(r"^Boot: Test mode complete, powering off$")
    result.expect_powered_off()


def expect_memory_management(result: BootResult, total_frames: int) -> None:
    """Frame counts agree with the device tree and add up; the MMU and heap self-tests pass."""
    line = result.expect_line(r"^FrameAllocator: (\d+) frames total, (\d+) frames free$")
    result.expect_equal(int(line[1]), total_frames, "frames total (RAM from the device tree / 4 KiB)")
    result.expect_equal(0 < int(line[2]) < total_frames, True, "some but not all frames free at start")
    result.expect_line(rf"^Memory: Physical frame allocator ready \({line[2]} free / {line[1]} total frames\)$")
    result.expect_line(r"^MMU: on; kernel runs in the linear map at 0xffff000000000000")
    usage = result.expect_line(r"^Memory: (\d+) of (\d+) frames in use \((.*)\)$")
    result.expect_equal(int(usage[2]), total_frames, "total in the usage line")
    parts = dict((name, int(count)) for name, count in
                 (re.match(r"(.*) (\d+)$", part).groups() for part in usage[3].split(", ")))
    result.expect_equal(sum(parts.values()), int(usage[1]), "frames by purpose add up to frames in use")
    image = result.expect_line(r"^Boot: Kernel image at 0x[0-9a-f]{16} - 0x[0-9a-f]{16} \((\d+) KiB\)")
    result.expect_equal(parts.get("kernel image"), int(image[1]) // 4, "kernel image frames")
    tree = result.expect_line(r"^Boot: Device tree parsed successfully \(version 17, (\d+) bytes")
    result.expect_equal(parts.get("boot data"), (int(tree[1]) + 4095) // 4096, "boot data frames (device tree)")
    tests = result.expect_line(r"^Memory Test: (\d+) passed, (\d+) failed$")
    result.expect_equal((int(tests[1]), int(tests[2])), (len(result.lines_matching(r"^Memory Test: ✓ ")), 0),
                        "memory self-tests")
    result.expect_line(r"^Memory: heap 0 blocks, 0 bytes in use")


def expect_interrupts(result: BootResult, gic: int, hz: int) -> None:
    """GIC and timer found from the device tree; every interrupt self-test passed; the
    statistics agree with the tick rate and the tests that ran."""
    result.expect_in_order(
        r"^Interrupts: Initializing ARM64 interrupt handling\.\.\.$",
        r"^Interrupts: Exception vector table at 0xffff0000[0-9a-f]{8}$",
        rf"^Interrupts: GICv{gic} with \d+ interrupt identifiers, distributor 0x0000000008000000$",
        rf"^Interrupts: Generic timer at 62500000 Hz, configured for {hz}Hz on interrupt 30$",
        r"^Interrupts: ARM64 interrupt handling initialized$")
    for name in ("Interrupts disabled", "System call handling working",
                 rf"Software-generated interrupt 1 delivered by the GICv{gic}",
                 r"Timer interrupts working \(\d+\u2192\d+", "One-shot deadline between ticks"):
        result.expect_line(r"^Interrupt Test: ✓ " + name)
    summary = result.expect_line(r"^Interrupt Test: (\d+) passed, (\d+) failed$")
    result.expect_equal((int(summary[1]), int(summary[2])), (5, 0), "interrupt self-tests")
    timer = result.expect_line(r"^Interrupt Test: ✓ Timer interrupts working \(\d+\u2192\d+: (\d+) ticks in (\d+) ms at (\d+) Hz\)$")
    result.expect_equal(int(timer[3]), hz, "tick rate")
    expected = int(timer[2]) * hz // 1000
    result.expect_equal(abs(int(timer[1]) - expected) <= 1, True, f"ticks counted ({timer[1]}) vs elapsed time ({expected})")
    result.expect_line(r"^Interrupt Test: === Interrupt Statistics ===$")
    ticks = result.expect_line(r"^Interrupt Test: Timer ticks: (\d+)$")
    handled = result.expect_line(r"^Interrupt Test: Interrupts handled: (\d+) \(timer (\d+), software (\d+)\), spurious: (\d+)$")
    result.expect_equal(int(handled[2]) >= int(ticks[1]) // 2 and int(handled[3]) == 1, True,
                        "timer interrupts and the one software interrupt counted")
    result.expect_equal(int(handled[1]), int(handled[2]) + int(handled[3]), "interrupts handled = timer + software")
    result.expect_line(r"^Interrupt Test: System calls: 3$")


def tick_rate() -> BootResult:
    result = boot(qemu_command(append="test tick=250"))
    expect_interrupts(result, gic=2, hz=250)
    result.expect_powered_off()
    # A tick as fast as the counter would leave the CPU nothing but its interrupt: refused, and
    # the kernel runs on without a tick (its interrupt self-test says so) to its end.
    fast = boot(qemu_command(append="test tick=62500000"))
    fast.expect_line(r"^Interrupts: generic timer unavailable \(tick=62500000; 1 to 10000 Hz\); running without a tick$")
    fast.expect_powered_off()
    result.checks += fast.checks
    return result


def expect_cores_online(result: BootResult, cpus: int) -> None:
    """Every core QEMU was given comes online, in the device tree's order, with the MPIDR it reads
    itself; at the end of the run each secondary core has counted timer ticks of its own."""
    online = result.lines_matching(r"^Boot: CPU (\d+) online \(MPIDR 0x([0-9a-f]{16})\)$")
    result.expect_equal([(int(m[1]), int(m[2], 16) & 0xFF_00FF_FFFF) for m in online],
                        [(index, index) for index in range(1, cpus)], "secondary cores online")
    result.expect_line(rf"^Boot: CPUs in device tree: {cpus} \({cpus} online\)$")
    result.expect_no_line(r"did not come online")
    if cpus > 1:
        ticks = result.expect_line(r"^Boot: secondary CPUs' timer ticks: (.*)$")
        counts = re.findall(r"CPU (\d+) (\d+)", ticks[1])
        result.expect_equal([int(index) for index, _ in counts], list(range(1, cpus)), "cores reporting ticks")
        result.expect_equal(all(int(count) > 0 for _, count in counts), True, "every secondary core ticked")


def standard(name: str, cpu: str, memory: str, gic: int, smp: int = 1, el2: bool = False) -> Scenario:
    def run() -> BootResult:
        machine = f"virt,gic-version={gic}" + (",virtualization=on" if el2 else "")
        result = boot(qemu_command(machine=machine, cpu=cpu, memory=memory, smp=smp))
        expect_standard_boot(result, cpu, memory, gic, entry_level=2 if el2 else 1, cpus=smp,
                             conduit="smc" if el2 else "hvc")
        return result
    return Scenario(name, run)


def numa_two_regions() -> BootResult:
    extra = ["-object", "memory-backend-ram,id=ram0,size=512M",
             "-object", "memory-backend-ram,id=ram1,size=1536M",
             "-numa", "node,nodeid=0,cpus=0,memdev=ram0", "-numa", "node,nodeid=1,cpus=1,memdev=ram1"]
    result = boot(qemu_command(memory="2G", smp=2, extra=extra))
    regions = result.lines_matching(r"^Boot: Memory region: 0x([0-9a-f]{16}) - 0x([0-9a-f]{16}) \((\d+) MB\)$")
    # QEMU writes the NUMA memory nodes last-first; the kernel reports them in tree order.
    result.expect_equal(sorted((int(m[1], 16), int(m[2], 16), int(m[3])) for m in regions),
                        [(RAM_BASE, RAM_BASE + (512 << 20), 512),
                         (RAM_BASE + (512 << 20), RAM_BASE + (2 << 30), 1536)], "memory regions")
    expect_memory_management(result, total_frames=(2 << 30) // 4096)
    result.expect_line(r"^Boot Test: \d+ passed, 0 failed$")
    result.expect_powered_off()
    return result


def initial_ramdisk() -> BootResult:
    with tempfile.TemporaryDirectory() as scratch:
        ramdisk = Path(scratch) / "initrd"
        ramdisk.write_bytes(os.urandom(12345))
        result = boot(qemu_command(extra=["-initrd", str(ramdisk)]))
    match = result.expect_line(r"^Boot: Initial ramdisk at 0x[0-9a-f]{16} \((\d+) bytes\)$")
    result.expect_equal(int(match[1]), 12345, "ramdisk size")
    usage = result.expect_line(r"^Memory: \d+ of \d+ frames in use \(.*boot data (\d+)")
    tree = result.expect_line(r"^Boot: Device tree parsed successfully \(version 17, (\d+) bytes")
    result.expect_equal(int(usage[1]), (int(tree[1]) + 4095) // 4096 + (12345 + 4095) // 4096,
                        "boot data frames (device tree and ramdisk reserved)")
    result.expect_line(r"^Boot: Command line: test$")
    result.expect_powered_off()
    return result


def panic_report() -> BootResult:
    result = boot(qemu_command(append="test selftest=panic"))
    result.expect_in_order(r"^Boot Test: \d+ passed, 0 failed$",
                           r"^Kernel panic: requested by selftest=panic$",
                           r"^  at Kernel/SelfTests\.swift:\d+$",
                           r"^  backtrace:$",
                           r"^    #0 0x[0-9a-f]{16}  runRequestedFault\(_:\)\+0x[0-9a-f]+ "
                           r"\(kernel/selftests/SelfTests\.swift:\d+\)$",
                           r"^    #1 0x[0-9a-f]{16}  kernelMainHigh\(_:_:_:\)\+0x[0-9a-f]+ \(kernel/main\.swift:\d+\)$",
                           r"^    #2 0x[0-9a-f]{16}  kernel_main_high\+0x[0-9a-f]+$",
                           r"^Kernel panic: system halted$")
    expect_frames_in_image(result)
    result.expect_powered_off()
    return result


def panic_on_every_core() -> BootResult:
    """A panic while the EL0 test suite and smpstress run threads on 4 cores (`panicafter`, from
    the boot CPU's timer interrupt): the other three stop (the stop SGI, or the lock they wait
    for) before the report ends, and nothing runs on after it."""
    result = boot(qemu_command(append="test panicafter=2500", smp=4, machine="virt,gic-version=3", initrd=INITRD), timeout=120)
    result.expect_line(r"^Boot: CPUs in device tree: 4 \(4 online\)$")
    result.expect_in_order(r"^Boot: Started init \(process 1\)",
                           r"^Kernel panic: requested by panicafter=2500$",
                           r"^  backtrace:$",
                           r"^Kernel panic: other CPUs stopped: 3 of 3$",
                           r"^Kernel panic: system halted$")
    result.expect_no_line(r"^Boot: Test mode complete")
    # The backtrace walks the kernel stack of the thread the tick interrupted, up to where the
    # exception came in from EL0.
    result.expect_in_order(r"^  backtrace:$", r"^    #0 0x[0-9a-f]{16}  .*Clock.*\+0x[0-9a-f]+",
                           r"^    #\d+ 0x[0-9a-f]{16}  .*handleIRQ.*\+0x[0-9a-f]+")
    expect_frames_in_image(result)
    result.expect_powered_off()
    return result


def panic_on_secondary_idle() -> BootResult:
    """A panic from CPU 1's timer interrupt while it idles (`panicafter` with `panicon=1`): the
    backtrace walks that CPU's own stack (in the linear map, not a thread's kernel stack) from
    the tick handler through the exception frame into the idle loop (inlined into
    `SecondaryCPUs.run`) and the secondary entry. The boot CPU may be inside a long system call
    with interrupts masked at that moment (the EL0 suite maps a gigabyte), so whether it stopped
    within the report's 100 ms is not asserted here; the 4-core panic scenario checks that."""
    result = boot(qemu_command(append="test panicafter=1500 panicon=1", smp=2, initrd=INITRD), timeout=120)
    result.expect_in_order(r"^Boot: Started init \(process 1\)",
                           r"^Kernel panic: requested by panicafter=1500 panicon=1, on CPU 1 while idle$",
                           r"^  backtrace:$",
                           r"^    #0 0x[0-9a-f]{16}  .*Clock.*\+0x[0-9a-f]+",
                           r"^    #\d+ 0x[0-9a-f]{16}  .*handleIRQ.*\+0x[0-9a-f]+",
                           r"^    #\d+ 0x[0-9a-f]{16}  exception_entry\+0x[0-9a-f]+",
                           r"^    #\d+ 0x[0-9a-f]{16}  .*(idleLoop|SecondaryCPUs\.run).*\+0x[0-9a-f]+",
                           r"^    #\d+ 0x[0-9a-f]{16}  kernel_secondary_main\+0x[0-9a-f]+",
                           r"^Kernel panic: other CPUs stopped: [01] of 1$",
                           r"^Kernel panic: system halted$")
    result.expect_no_line(r"^Boot: Test mode complete")
    expect_frames_in_image(result)
    result.expect_powered_off()
    return result


def late_cpu() -> BootResult:
    """CPU 2 of 4 checks in only after the boot CPU has given up on it (`latecpu=2`, test mode):
    it is reported as not online, finds itself given up when it arrives, says so and turns itself
    off with PSCI CPU_OFF; the EL0 test suite runs on the other three."""
    result = boot(qemu_command(append="test latecpu=2", smp=4, initrd=INITRD), timeout=180)
    result.expect_in_order(r"^Boot: CPU 1 online \(MPIDR 0x0000000080000001\)$",
                           r"^Boot: CPU 2 did not come online \(PSCI CPU_ON succeeded, no check-in within 100 ms\)$",
                           r"^Boot: CPU 3 online \(MPIDR 0x0000000080000003\)$",
                           r"^Boot: CPUs in device tree: 4 \(3 online\)$")
    result.expect_line(r"^Boot: CPU 2 came online after the boot CPU gave up on it; turning it off \(PSCI CPU_OFF\)$")
    result.expect_line(r"^tests: ✓ pinned to each of the 3 CPUs in turn")
    result.expect_line(r"^tests: \d+ passed, 0 failed$")
    ticks = result.expect_line(r"^Boot: secondary CPUs' timer ticks: (.*)$")
    result.expect_equal(re.findall(r"CPU (\d+) \d+", ticks[1]), ["1", "3"], "the CPUs that tick")
    result.expect_no_line(r"Kernel panic|FAILED")
    result.expect_line(r"^Boot: Test mode complete, powering off$")
    result.expect_powered_off()
    return result


def cpu_on_refused() -> BootResult:
    """The device tree names a third CPU, MPIDR 7, that the machine (two cores) does not have:
    PSCI CPU_ON refuses it, the kernel says so at once and leaves it out (no waiting on it), and
    the EL0 test suite runs on the two that are there."""
    with tempfile.TemporaryDirectory() as scratch:
        dump = Path(scratch) / "virt.dtb"
        subprocess.run(qemu_command(machine=f"virt,dumpdtb={dump}", smp=2, append=None, kernel=None),
                       check=True, capture_output=True)
        tree = devicetree_mutation.parse_tree(dump.read_bytes())
        cpus = tree.root.find("/cpus")
        ghost = cpus.find("cpu@1").copy()
        ghost.name = "cpu@7"
        ghost.set("reg", devicetree_mutation.cells(7))
        cpus.children.append(ghost)
        edited = Path(scratch) / "three-cpus.dtb"
        edited.write_bytes(devicetree_mutation.build_tree(tree).data)
        result = boot(qemu_command(smp=2, initrd=INITRD, extra=["-dtb", str(edited)]), timeout=180)
    result.expect_in_order(r"^Boot: CPU 1 online \(MPIDR 0x0000000080000001\)$",
                           r"^Boot: CPU 2 did not come online \(PSCI CPU_ON: INVALID_PARAMETERS\)$",
                           r"^Boot: CPUs in device tree: 3 \(2 online\)$",
                           r"^tests: ✓ pinned to each of the 2 CPUs in turn",
                           r"^tests: \d+ passed, 0 failed$",
                           r"^Boot: Test mode complete, powering off$")
    ticks = result.expect_line(r"^Boot: secondary CPUs' timer ticks: (.*)$")
    result.expect_equal(re.findall(r"CPU (\d+) \d+", ticks[1]), ["1"], "the CPUs that tick")
    result.expect_no_line(r"Kernel panic|FAILED")
    result.expect_powered_off()
    return result


DEBUG_IMAGE = ROOT_BUILD / "debug" / "kernel.img"


def debug_kernel_on_cores() -> BootResult:
    """The DEBUG=1 kernel (`make debug-kernel`): every spin lock taken is checked against the lock
    order and for being taken twice, and freed heap blocks are poisoned; the EL0 test suite and
    smpstress on 4 cores pass with none of those checks firing."""
    result = user_space_tests_with_cores(4, 3, kernel=DEBUG_IMAGE)
    result.expect_no_line(r"taken out of order|taken twice|heap corrupted")
    return result


def debug_lock_check(request: str, message: str) -> Callable[[], BootResult]:
    """The DEBUG=1 kernel booted with `selftest=<request>`, which breaks the lock rules on
    purpose: its check stops the kernel with a panic naming the lock, before the boot goes on."""
    def run() -> BootResult:
        result = boot(qemu_command(kernel=DEBUG_IMAGE, append=f"test selftest={request}"))
        result.expect_in_order(r"^Boot Test: \d+ passed, 0 failed$",
                               rf"^Kernel panic: {message}$",
                               r"^  backtrace:$",
                               r"^    #\d+ 0x[0-9a-f]{16}  runRequestedFault\(_:\)\+0x[0-9a-f]+ ",
                               r"^Kernel panic: system halted$")
        result.expect_no_line(r"was not (checked|noticed)")
        result.expect_powered_off()
        return result
    return run


def expect_frames_in_image(result: BootResult) -> None:
    """Each backtrace frame is named from the image's symbol table, and lies inside the image."""
    image = result.expect_line(r"^Boot: Kernel image at (0x[0-9a-f]{16}) - (0x[0-9a-f]{16})")
    frames = result.lines_matching(r"^    #\d+ (0x[0-9a-f]{16})  (.*)$")
    result.expect_equal(len(frames) > 0, True, "backtrace frames")
    for frame in frames:
        result.expect_equal(int(image[1], 16) <= int(frame[1], 16) < int(image[2], 16), True,
                            f"frame {frame[1]} inside the kernel image")
        result.expect_equal(re.match(r"^\S.*\+0x[0-9a-f]+( \(\S+:\d+\))?$", frame[2]) is not None, True,
                            f"frame {frame[1]} named function+offset: {frame[2]!r}")


def exception_report() -> BootResult:
    result = boot(qemu_command(append="test selftest=trap"))
    result.expect_line(r"^Kernel panic: unexpected synchronous exception from EL1: unknown reason \(undefined instruction\)$")
    match = result.expect_line(r"^  ESR (0x[0-9a-f]{16})  FAR 0x[0-9a-f]{16}  ELR (0x[0-9a-f]{16})$")
    result.expect_equal(int(match[1], 16) >> 26, 0, "exception class in ESR")
    image = result.expect_line(r"^Boot: Kernel image at (0x[0-9a-f]{16}) - (0x[0-9a-f]{16})")
    elr = int(match[2], 16)
    result.expect_equal(int(image[1], 16) <= elr < int(image[2], 16), True, "ELR inside the kernel image")
    result.expect_line(r" x29 0x[0-9a-f]{16} x30 0x[0-9a-f]{16}$")
    # The faulting instruction and the frames are named from the image's symbol table.
    result.expect_in_order(r"^  ESR ",
                           r"^  at runRequestedFault\(_:\)\+0x[0-9a-f]+ \(kernel/selftests/SelfTests\.swift:\d+\)$",
                           r"^  SPSR ",
                           r"^  backtrace:$",
                           r"^    #0 0x[0-9a-f]{16}  kernelMainHigh\(_:_:_:\)\+0x[0-9a-f]+ \(kernel/main\.swift:\d+\)$",
                           r"^Kernel panic: system halted$")
    expect_frames_in_image(result)
    result.expect_powered_off()
    return result


def interactive_idle() -> BootResult:
    """Without "test" and without a ramdisk the kernel reports and idles; no power-off, no panic."""
    result = boot(qemu_command(append=""), timeout=30, stop_at=r"Boot: No initial ramdisk; nothing to start[^\n]*\n")
    result.expect_line(r"^Boot: No initial ramdisk; nothing to start$")
    result.expect_no_line(r"Boot Test|Kernel panic")
    result.expect_equal(result.exit_code, None, "QEMU still running (kernel idling)")
    return result


def user_space_tests_on_cores(cpus: int, gic: int, one_host_core: bool = False) -> Scenario:
    """The EL0 test suite and the services' test pass with threads on `cpus` cores: a thread
    pinned to each core in turn is counted there, and smpstress (IPC, map/unmap, spawn and kill
    on every core at once) gets every count right and leaves nothing behind.

    With `one_host_core`, QEMU's threads are held to one host core (taskset), so every vCPU
    runs only while the others wait: a vCPU descheduled while it holds the big kernel lock, or
    while another waits under the lock for it, shows up as minutes instead of seconds (the whole
    run took 520 s that way while `wait` waited under the lock, and takes about 25 s)."""
    def run() -> BootResult:
        return user_space_tests_with_cores(cpus, gic, one_host_core)
    held = ", QEMU held to one host core" if one_host_core else ""
    cores = "one core" if cpus == 1 else f"{cpus} cores"
    return Scenario(f"user space: the EL0 test suite and smpstress with threads on {cores}, GICv{gic}{held}", run)


def one_host_core() -> list[str]:
    """`taskset` holding a command to one of the host cores this process may use (the last)."""
    return ["taskset", "-c", str(max(os.sched_getaffinity(0)))]


def user_space_tests_with_cores(cpus: int, gic: int, one_host_core_only: bool = False,
                                kernel: Path = KERNEL_IMAGE) -> BootResult:
    command = qemu_command(machine=f"virt,gic-version={gic}", smp=cpus, initrd=INITRD, kernel=kernel)
    if one_host_core_only:
        command = one_host_core() + command
    result = boot(command, timeout=420)
    expect_cores_online(result, cpus)
    result.expect_line(rf"^tests: ✓ pinned to each of the {cpus} CPUs in turn \(threadAffinity\), this thread's 500 "
                       r"system calls are counted on that CPU \(cpuStatistics\)$")
    stress = result.expect_line(r"^smpstress: (\d+) callers, (\d+) mappers on (\d+) CPUs: (\d+) calls answered, "
                                r"(\d+) received, 12 children killed while running, 12 exited; 0 errors$")
    result.expect_equal((int(stress[1]), int(stress[2]), int(stress[3])), (2 * cpus, cpus, cpus),
                        "smpstress threads: two callers and one mapper per core")
    result.expect_equal((int(stress[4]), int(stress[5])), (2 * cpus * 300, 2 * cpus * 300),
                        "calls answered and received: 300 per caller")
    result.expect_line(rf"^tests: ✓ smpstress on {cpus} CPUs: calls answered and counted")
    secondary_ticks = [r"^Boot: secondary CPUs' timer ticks: "] if cpus > 1 else []
    result.expect_in_order(rf"^Boot: CPUs in device tree: {cpus} \({cpus} online\)$",
                           r"^Boot: Started init \(process 1\) from the initial ramdisk",
                           r"^tests: \d+ passed, \d+ failed$",
                           r"^restarts: \d+ passed, 0 failed$",
                           r"^Boot: init ended \(exit code 0\)$",
                           *secondary_ticks,
                           r"^Boot: Test mode complete, powering off$")
    result.expect_no_line(r"FAILED|Kernel panic")
    summary = result.expect_line(r"^tests: (\d+) passed, (\d+) failed$")
    result.expect_equal((int(summary[1]), int(summary[2])), (len(result.lines_matching(r"^tests: ✓ ")), 0),
                        f"user-space tests with threads on {cpus} cores")
    return result


def user_space_tests() -> BootResult:
    """init runs the user-space test suite at EL0; crashes are reported and isolated. A disk is
    attached: the disk test writes and checks all of it, then crashes its driver 100 times under a
    copy, and the image is checked here after power-off."""
    with tempfile.TemporaryDirectory() as directory:
        image = Path(directory) / "disk.img"
        with open(image, "wb") as disk:
            disk.truncate(8 << 20)
        result = boot(qemu_command(initrd=INITRD, extra=disk_arguments(image)), timeout=180)
        check_disk_test(result, image)
    result.expect_in_order(r"^Boot: Started init \(process 1\) from the initial ramdisk \(\d+ (KiB|bytes)\)$",
                           r"^init: running at EL0 as process 1; \d+ of \d+ frames free$",
                           r"^tests: ✓ ",
                           r"^tests: \d+ passed, \d+ failed$",
                           r"^Boot: init ended \(exit code 0\)$",
                           r"^Boot: Test mode complete, powering off$")
    result.expect_no_line(r"FAILED|Kernel panic")
    # Then the services, started from the manifest in order, and their test: kills of services in use.
    result.expect_in_order(r"^tests: \d+ passed, \d+ failed$",
                           r"^init: started process-manager \(process \d+\)$",
                           r"^init: started names \(process \d+\)$",
                           r"^init: started memory-manager \(process \d+\)$",
                           r"^init: started echo \(process \d+\)$",
                           r"^restarts: ✓ the process manager lists \d+ services running$",
                           r"^restarts: \d+ passed, 0 failed$",
                           r"^Boot: init ended \(exit code 0\)$")
    soak = result.expect_line(r"^soak: (\d+) restarts, (\d+) recovered, leaked frames (\d+), leaked objects (\d+)$")
    result.expect_equal((int(soak[1]) >= 100, soak[1] == soak[2], soak[3], soak[4]), (True, True, "0", "0"),
                        "100 kills of services in use, each recovered, nothing leaked")
    summary = result.expect_line(r"^tests: (\d+) passed, (\d+) failed$")
    result.expect_equal((int(summary[1]), int(summary[2])), (len(result.lines_matching(r"^tests: ✓ ")), 0),
                        "user-space tests")
    result.expect_equal(int(summary[1]) >= 20, True, "at least 20 user-space cases ran")
    reports = result.lines_matching(r"^Process (\d+) \(crasher\) killed: (.+) at 0x[0-9a-f]{16}, ELR 0x[0-9a-f]{16}"
                                     r" in static Crasher\.(main\(\)|overflow\(_:\))\+0x[0-9a-f]+"
                                     r" \(userland/services/crasher/main\.swift:\d+\)$")
    result.expect_equal(len(reports), 20, "one report per faulting crasher (8 kinds, 3 leak-check rounds; through "
                        "process-manager: 1 spawned, 6 instances of a supervised service, 1 service faulting in a call, "
                        "1 faulting in a call on its private port)")
    result.expect_line(r"^process-manager: started flaky \(process \d+\)$")
    result.expect_in_order(*[rf"^process-manager: flaky \(process \d+\) faulted \(ESR 0x[0-9a-f]{{16}}\); restarting in {delay} ms$"
                             for delay in (10, 20, 40, 80, 160)])
    result.expect_line(r"^process-manager: flaky restarted too often; left stopped$")
    result.expect_line(r"^Process \d+ \(crasher\) killed: data abort from a lower level \(translation fault, level \d, read\) at 0x0000000000000000, ELR ")
    result.expect_line(r"^Process \d+ \(crasher\) killed: unknown reason \(undefined instruction\)")
    # The faulting function is named from the program's symbol table: the stack overflow in the
    # recursive function, the others in main.
    result.expect_line(r"^Process \d+ \(crasher\) killed: data abort from a lower level \(translation fault, level 3, write\) "
                       r"at 0x[0-9a-f]{16}, ELR 0x[0-9a-f]{16} in static Crasher\.overflow\(_:\)\+0x[0-9a-f]+ "
                       r"\(userland/services/crasher/main\.swift:\d+\)$")
    result.expect_line(r"^Process \d+ \(crasher\) killed: unknown reason \(undefined instruction\) at (0x[0-9a-f]{16}), "
                       r"ELR \1 in static Crasher\.main\(\)\+0x[0-9a-f]+ ")
    # Device access by capability. virt wires the UART to SPI 1: interrupt identifier 32 + 1.
    result.expect_line(r"^tests: ✓ deviceOpen needs the device-access capability")
    result.expect_line(r"^tests: ✓ interruptBind and interruptAcknowledge need an interrupt handle")
    result.expect_line(r"^tests: ✓ the console UART opens through the capability init passed; its interrupt 33 signals once")
    result.expect_line(r"^tests: ✓ without the bind right an interrupt handle neither binds nor acknowledges")
    result.expect_line(r"^tests: ✓ closing the last handle to the bound interrupt unbinds it")
    result.expect_line(r"^tests: ✓ a driver process given only a bind\+transfer interrupt handle")
    leak = result.expect_line(r"^tests: ✓ device access leaves nothing behind: kernel heap blocks (\d+) before, (\d+) after")
    result.expect_equal(leak[1], leak[2], "kernel heap blocks before and after the device access tests")
    # Reliability: the attacks each get their error, and memory comes back.
    result.expect_line(r"^tests: ✓ receive handles stay out of messages; ports queuing their own or each other's send handles")
    result.expect_line(r"^tests: ✓ a call to a server whose handle table is full \(\d+ handles added\) fails with handle table full, queued or handed to the waiting server")
    result.expect_line(r"^tests: ✓ unmap refuses the program's stack and text")
    result.expect_line(r"^tests: ✓ threadCreate refuses a misaligned entry and a stack that is unmapped, read-only or in the program text")
    result.expect_line(r"^tests: ✓ memory limits: 32 KiB refuses spawn; under 1 MiB a child mapped \d+ KiB, then out of memory")
    exhausted = result.expect_line(r"^tests: ✓ memory exhausted \((\d+) KiB mapped, (\d+) frames left\)")
    result.expect_equal(int(exhausted[2]), 256, "frames left when map is refused (the kernel's reserve)")
    result.expect_equal(int(exhausted[1]) > 900 * 1024, True, "most of the 1 GiB was mapped before the refusals")
    expect_prices_and_no_leak(result)
    result.expect_powered_off()
    return result


# What init's process and first thread are charged (ObjectCost.process + .thread, and a 16 KiB
# kernel stack): all that may remain charged when init ends, apart from processes still alive.
INIT_CHARGE = 8192 + 4096 + 16384



def check_disk_test(result: BootResult, image: Path) -> None:
    """The disk test's lines, and the image it left behind."""
    result.expect_in_order(r"^virtio-blk: 16384 sectors \(8 MiB\), write cache, queue of 128$",
                           r"^disktest: disk of 16384 sectors \(8 MiB\)$",
                           r"^disktest: ✓ all 16384 sectors written, flushed and read back",
                           r"^disktest: ✓ the device got each of the 257 requests once: 257 chains handed over, 257 returned$",
                           r"^disktest: ✓ refused with invalid argument",
                           r"^disktest: ✓ 3 clients made, served and closed in turn leave nothing behind in the service",
                           r"^disktest: ✓ on the public port, info answered \(16384 sectors\) and 4 of attach, read, write and flush refused with access denied$",
                           r"^disktest: 8 passed, 0 failed$")
    summary = result.expect_line(r"^disk: (\d+) crashes, (\d+) requests sent again, counter (\d+), "
                                 r"leaked frames (\d+), leaked objects (\d+)$")
    result.expect_equal((summary[1], int(summary[2]) > 0, summary[4], summary[5]), ("100", True, "0", "0"),
                        "100 driver crashes under a copy: requests sent again, nothing leaked")
    copied = int(summary[3])
    result.expect_equal(check_disk_image(image, min(copied, 16) * 64, copied), None,
                        "the image after power-off: the pattern, the copy and the counter")

def expect_prices_and_no_leak(result: BootResult) -> None:
    """Object prices cover what the heap really gives out, and at the end everything charged to
    processes is init's own or held by a process still alive."""
    price = result.expect_line(r"^Boot: init's process and thread took (\d+) heap bytes \(price (\d+)\) and (\d+) new heap pages \(bound (\d+)\)$")
    result.expect_equal(int(price[1]) <= int(price[2]) and int(price[3]) <= int(price[4]), True,
                        "a process and thread within their price")
    end = result.expect_line(r"^Memory: at the end: (\d+) kernel objects, (\d+) bytes charged to processes, (\d+) frames set aside for pages on demand$")
    alive = result.lines_matching(r"^Memory: still alive: process \d+ \([^;()]+; threads:(?: (?:running|ready|blocked|ended))*\), (\d+) kernel objects, (\d+) bytes$")
    result.expect_equal((int(end[1]), int(end[2])),
                        (2 + sum(int(m[1]) for m in alive), INIT_CHARGE + sum(int(m[2]) for m in alive)),
                        "kernel objects and bytes charged at the end (init's, and those of processes still alive)")
    # Pages on demand are set aside only for memory objects, which a process ends with: with none
    # alive, none may be left.
    if not alive:
        result.expect_equal(int(end[3]), 0, "frames set aside for pages on demand at the end")


FAULT_IMAGE = ROOT_BUILD / "faults" / "kernel.img"


def fault_injection(rate: int, seed: int) -> Scenario:
    """The kernel built with FAULTS=1 refuses one request for memory in `rate` made by the test
    suite: no panic, no hang, every failed case follows an out-of-memory result the suite got,
    and at the end nothing is left charged but init's own."""
    def run() -> BootResult:
        result = boot(qemu_command(kernel=FAULT_IMAGE, initrd=INITRD, append=f"test faults={rate} faultseed={seed}"),
                      timeout=120)
        result.expect_line(rf"^Memory: fault injection on: one request for memory in {rate} fails")
        result.expect_no_line(r"Kernel panic")
        injected = result.expect_line(r"^Memory: fault injection: (\d+) of (\d+) requests for memory failed on purpose$")
        result.expect_equal(int(injected[1]) > 0, True, "faults injected")
        summary = result.expect_line(r"^tests: (\d+) passed, (\d+) failed$")
        failures = result.lines_matching(r"^tests: ✗ FAILED: (.*)$")
        result.expect_equal(len(failures), int(summary[2]), "failed cases counted")
        unexplained = [m[1] for m in failures if not m[1].startswith("(out of memory ×")]
        result.expect_equal(unexplained, [], "failed cases without an out-of-memory result before them")
        # Init's exit code adds the services' stage to the suite's failures: under injected faults
        # the process manager (init's child) may itself be refused memory, and that stage fail.
        ended = result.expect_line(r"^Boot: init ended \(exit code (\d+)\)$")
        result.expect_equal(int(ended[1]) >= int(summary[2]), True, "init's exit code counts the suite's failures")
        expect_prices_and_no_leak(result)
        result.expect_powered_off()
        return result
    return Scenario(f"fault injection: the test suite with 1 in {rate} requests for memory refused (seed {seed})", run)


def hostile_init(name: str, archive: bytes, expected: str) -> BootResult:
    with tempfile.TemporaryDirectory() as scratch:
        ramdisk = Path(scratch) / "initrd.cpio"
        ramdisk.write_bytes(archive)
        result = boot(qemu_command(initrd=ramdisk))
    result.expect_line(rf"^Boot: Cannot start init from the initial ramdisk: {expected}$")
    result.expect_no_line(r"Kernel panic")
    result.expect_line(r"^Boot: Test mode complete, powering off$")
    result.expect_powered_off()
    return result


def corrupted_elf() -> BootResult:
    """An init whose ELF header claims another machine is refused with an error, not loaded."""
    image = bytearray((ROOT_BUILD / "initrd" / "init").read_bytes())
    image[18:20] = (62).to_bytes(2, "little")  # EM_X86_64
    return hostile_init("wrong machine", newc_archive({"init": bytes(image)}), "invalid argument")


def writable_executable_elf() -> BootResult:
    """A segment asking to be writable and executable is refused (W^X)."""
    image = bytearray((ROOT_BUILD / "initrd" / "init").read_bytes())
    program_headers = int.from_bytes(image[32:40], "little")
    flags = program_headers + 4  # first PT_LOAD: text, R+X
    image[flags:flags + 4] = (7).to_bytes(4, "little")
    return hostile_init("W+X segment", newc_archive({"init": bytes(image)}), "invalid argument")


def corrupted_ramdisk() -> BootResult:
    archive = bytearray(newc_archive({"init": b"x" * 100}))
    archive[0:6] = b"123456"
    return hostile_init("bad cpio magic", bytes(archive), "not found")


# The short EL0 fuzzing campaign, with every class of calls (FUZZ_FLAGS 0; docs/FUZZING.md says
# which bit leaves out which class).
FUZZ_CALLS = 100_000
FUZZ_SEED = 1
FUZZ_FLAGS = 0


def fuzz_campaign() -> BootResult:
    """init runs the system call fuzzer: four workers at once, about 100,000 calls in all; no
    oracle may fail, no worker hang, no frame, kernel object or process be left behind."""
    result = boot(qemu_command(append=f"test fuzz={FUZZ_CALLS} seed={FUZZ_SEED} fuzzflags={FUZZ_FLAGS}", initrd=INITRD),
                  timeout=150)
    result.expect_no_line(r"Kernel panic")
    result.expect_line(rf"^fuzz: seed {FUZZ_SEED}, {FUZZ_CALLS} calls in 4 workers, 4 at a time, flags 0x{FUZZ_FLAGS:02x}$")
    result.expect_no_line(r"^fuzz: (VIOLATION|worker)")
    summary = result.expect_line(r"^fuzz: (\d+) calls, (\d+) processes, 0 kernel panics, (\d+) hangs, "
                                 r"leaked frames (-?\d+), leaked objects (-?\d+)$")
    result.expect_equal(int(summary[1]) >= FUZZ_CALLS, True, f"at least {FUZZ_CALLS} calls made ({summary[1]})")
    result.expect_equal(int(summary[2]) > 4, True, f"children spawned besides the 4 workers ({summary[2]} processes)")
    result.expect_equal((int(summary[3]), int(summary[4]), int(summary[5])), (0, 0, 0),
                        "hangs, leaked frames, leaked objects")
    counts = result.expect_line(r"^fuzz: kernel objects (\d+) before, (\d+) after; bytes charged (\d+) before, (\d+) after$")
    result.expect_equal((counts[1], counts[3]), (counts[2], counts[4]), "kernel objects and bytes charged before and after")
    result.expect_line(r"^Boot: init ended \(exit code 0\)$")
    result.expect_powered_off()
    return result


UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
UBOOT_LOAD_ADDRESS = 0x4040_0000


def uboot_booti() -> BootResult:
    """U-Boot loads nothing itself here: QEMU's generic loader puts the Image at an address
    other than the one QEMU's -kernel uses, and U-Boot's `booti` starts it with U-Boot's own
    device tree, exercising the Image header, x0 hand-off and self-relocation."""
    extra = ["-bios", str(UBOOT),
             "-device", f"loader,file={KERNEL_IMAGE},addr={UBOOT_LOAD_ADDRESS:#x},force-raw=on"]
    command = qemu_command(kernel=None, extra=extra)
    typed = [(r"Hit any key to stop autoboot", "\n"),
             (r"=> ", "setenv bootargs test\n"),
             (r"=> ", f"booti {UBOOT_LOAD_ADDRESS:#x} - ${{fdtcontroladdr}}\n")]
    result = boot(command, timeout=90, interaction=typed)
    result.expect_line(r"^SwiftKernel v0\.1\.0 - ARM64 Microkernel$")
    result.expect_line(rf"^Boot: Kernel image at 0xffff{UBOOT_LOAD_ADDRESS:012x} - 0x[0-9a-f]{{16}} \(\d+ KiB\), loaded at 0x{UBOOT_LOAD_ADDRESS:016x}$")
    result.expect_line(rf"^Boot Test: ✓ Relocated for the linear map \(pointer in \.data reads 0xffff{UBOOT_LOAD_ADDRESS:012x}, image at 0xffff{UBOOT_LOAD_ADDRESS:012x}, loaded at 0x{UBOOT_LOAD_ADDRESS:016x}\)$")
    result.expect_line(r"^Boot: Memory region: 0x0000000040000000 - 0x0000000080000000 \(1024 MB\)$")
    result.expect_line(r"^Boot Test: \d+ passed, 0 failed$")
    result.expect_powered_off()
    return result


def device_tree_mutations() -> BootResult:
    """QEMU's own tree damaged in a fixed, seeded set of ways (devicetree_mutation.py): every boot
    completes, stops with a line naming the problem, or, with no console to name it on, halts
    silently in WFI. Never a spin, never a panic."""
    outcomes, seconds = devicetree_mutation.run()
    lines = [f"{outcome.verdict}: {outcome.mutation.name}: {outcome.detail}" for outcome in outcomes]
    result = BootResult(command=["tests/boot/devicetree_mutation.py"], lines=lines + devicetree_mutation.summary(outcomes),
                        exit_code=0, timed_out=False, seconds=seconds, checks=len(outcomes))
    failures = [outcome for outcome in outcomes if outcome.failed]
    if failures:
        report = []
        for outcome in failures:
            report.append(f"  {outcome.mutation.name} ({outcome.mutation.kind}, {outcome.mutation.delivery}): "
                          f"{outcome.verdict}; {outcome.detail}")
            report += ["    | " + line for line in outcome.console[-8:]]
        raise BootFailure(f"{len(failures)} of {len(outcomes)} mutated device trees ended badly:\n" + "\n".join(report)
                          + "\n  " + "\n  ".join(devicetree_mutation.summary(outcomes)))
    # Every acceptable ending is reached by some tree, so a harness that misreads them all fails.
    verdicts = {outcome.verdict for outcome in outcomes}
    result.expect_equal({"booted", "clear stop", "silent WFI"} <= verdicts, True, "each acceptable ending seen")
    return result


# ---- UEFI boot: edk2 starts the kernel as an EFI application (harness.uefi_command) ----------

def expect_firmware_memory_checked(result: BootResult) -> re.Match:
    """The memory self-test's line on the UEFI map's memory in RAM that the firmware keeps, its
    frames by type adding up: groups 1 frames, 2 descriptors, 3 runtime services, 4 ACPI,
    5 reserved, 6 other."""
    check = result.expect_line(r"^Memory Test: ✓ UEFI memory the firmware keeps is never free or allocated "
                               r"\((\d+) frames in (\d+) descriptors: runtime services (\d+), ACPI (\d+), "
                               r"reserved (\d+), other (\d+); all reserved\)$")
    result.expect_equal(sum(int(check[group]) for group in range(3, 7)), int(check[1]), "the kept frames by type add up")
    return check


def expect_uefi_boot(result: BootResult, memory: str) -> None:
    """A test-mode boot through edk2: started by the EFI entry, the firmware named, its memory
    map's usable frames and the frames it keeps adding up to the RAM of the device tree, every
    frame it keeps reserved (the memory self-test checks each one), and every self-test clean."""
    result.expect_in_order(r"^SwiftKernel: started as an EFI application$",
                           r"^SwiftKernel v0\.1\.0 - ARM64 Microkernel$",
                           r"^Boot: Device tree parsed successfully",
                           r"^Boot: started by UEFI firmware \(EDK II\), memory map: \d+ entries, \d+ MiB usable$",
                           r"^Boot: Console PL011 at 0x0000000009000000$")
    size = SIZES[memory]
    regions = result.lines_matching(r"^Boot: Memory region: 0x([0-9a-f]{16}) - 0x([0-9a-f]{16}) \((\d+) MB\)$")
    result.expect_equal([(int(m[1], 16), int(m[2], 16)) for m in regions], [(RAM_BASE, RAM_BASE + size)], "memory regions")
    started = result.expect_line(r"^Boot: started by UEFI firmware \(EDK II\), memory map: (\d+) entries, (\d+) MiB usable$")
    uefi = result.expect_line(r"^Memory: UEFI memory map: (\d+) frames usable, (\d+) frames of RAM kept by the firmware$")
    usable, kept = int(uefi[1]), int(uefi[2])
    result.expect_equal(usable * 4096 >> 20, int(started[2]), "MiB usable in the boot line")
    result.expect_equal(usable + kept, size // 4096, "usable and kept frames make up the RAM")
    result.expect_equal(0 < kept < size // 4096 // 8, True, "edk2 keeps some RAM (runtime services) and little of it")
    frames = result.expect_line(r"^FrameAllocator: (\d+) frames total, (\d+) frames free$")
    result.expect_equal(int(frames[1]), size // 4096, "frames total (RAM from the device tree / 4 KiB)")
    result.expect_equal(0 < int(frames[2]) < usable, True, "free frames at start are among the usable ones")
    usage = result.expect_line(r"^Memory: (\d+) of (\d+) frames in use \((.*)\)$")
    parts = dict((name, int(count)) for name, count in
                 (re.match(r"(.*) (\d+)$", part).groups() for part in usage[3].split(", ")))
    result.expect_equal(parts.get("reserved"), kept, "reserved frames are the firmware's")
    check = expect_firmware_memory_checked(result)
    result.expect_equal(0 < int(check[1]) <= kept and int(check[2]) > 0, True, "firmware frames checked")
    result.expect_equal(int(check[3]) > 0, True, "edk2 keeps runtime services memory in RAM, and all of it is checked")
    tests = result.expect_line(r"^Memory Test: (\d+) passed, (\d+) failed$")
    result.expect_equal(int(tests[2]), 0, "failed memory self-tests")
    result.expect_line(r"^Boot: Command line: test$")
    summary = result.expect_line(r"^Boot Test: (\d+) passed, (\d+) failed$")
    result.expect_equal(int(summary[2]), 0, "failed boot self-tests")
    result.expect_no_line(r"FAILED|Kernel panic")


def uefi_user_space(name: str, memory: str, gic: int, smp: int = 1) -> Scenario:
    """edk2 boots the kernel from the system partition with the initial ramdisk beside it; the
    EL0 test suite and the services' test pass."""
    def run() -> BootResult:
        with tempfile.TemporaryDirectory() as scratch:
            command = uefi_command(Path(scratch), machine=f"virt,gic-version={gic}", memory=memory, smp=smp)
            result = boot(command, timeout=240)
        expect_uefi_boot(result, memory)
        result.expect_line(rf"^Boot: Interrupt controller GICv{gic}, distributor 0x0000000008000000")
        expect_cores_online(result, smp)
        ramdisk = result.expect_line(r"^Boot: Initial ramdisk at 0x[0-9a-f]{16} \((\d+) KiB\)$")
        result.expect_equal(int(ramdisk[1]), (INITRD.stat().st_size + 1023) // 1024, "ramdisk size (initrd.cpio read from the partition)")
        result.expect_in_order(r"^Boot: Started init \(process 1\) from the initial ramdisk",
                               r"^tests: \d+ passed, 0 failed$",
                               r"^restarts: \d+ passed, 0 failed$",
                               r"^Boot: init ended \(exit code 0\)$",
                               r"^Boot: Test mode complete, powering off$")
        summary = result.expect_line(r"^tests: (\d+) passed, (\d+) failed$")
        result.expect_equal((int(summary[1]) >= 20, int(summary[2])), (True, 0), "user-space tests under UEFI")
        result.expect_powered_off()
        return result
    return Scenario(name, run)


def uefi_without_ramdisk() -> BootResult:
    """No initrd.cpio on the partition: the EFI entry says so on the firmware's console and the
    kernel starts without one."""
    with tempfile.TemporaryDirectory() as scratch:
        result = boot(uefi_command(Path(scratch), initrd=None), timeout=120)
    result.expect_line(r"^SwiftKernel: no \\initrd\.cpio on the boot volume and no initial ramdisk offered \(LoadFile2\); the kernel starts without one$")
    expect_uefi_boot(result, "1G")
    result.expect_no_line(r"^Boot: Initial ramdisk")
    result.expect_line(r"^Boot: No initial ramdisk; nothing to start$")
    result.expect_line(r"^Boot: Test mode complete, powering off$")
    result.expect_powered_off()
    return result


def uefi_without_device_tree() -> BootResult:
    """With ACPI tables edk2 publishes no device tree: the EFI entry says why on the firmware's
    console and returns to it, which goes on to its next boot option."""
    with tempfile.TemporaryDirectory() as scratch:
        message = r"SwiftKernel: the firmware publishes no device tree, which the kernel needs \(QEMU: -machine acpi=off\)"
        result = boot(uefi_command(Path(scratch), acpi=True), timeout=90, stop_at=message)
    result.expect_line(r"^SwiftKernel: started as an EFI application$")
    result.expect_line("^" + message + "$")
    result.expect_no_line(r"SwiftKernel v0\.1\.0|Kernel panic")
    return result


# A region of RAM the device tree handed to U-Boot's bootefi reserves (/memreserve/): U-Boot's
# memory map then calls it reserved (EFI_RESERVED_MEMORY_TYPE).
UBOOT_RESERVED = (0x5000_0000, 0x10_0000)
UBOOT_TREE_COPY = 0x4800_0000


def uboot_bootefi() -> BootResult:
    """U-Boot's `bootefi` starts the same image as an EFI application from memory: the command
    line arrives as load options (U-Boot passes bootargs), the device tree and memory map are
    U-Boot's, and with no boot volume there is no ramdisk, which the EFI entry says. The tree is
    a copy of U-Boot's with a /memreserve/ entry added, so the memory map holds reserved memory
    inside RAM as well as runtime services memory: none of it becomes a free frame."""
    extra = ["-bios", str(UBOOT),
             "-device", f"loader,file={KERNEL_IMAGE},addr={UBOOT_LOAD_ADDRESS:#x},force-raw=on"]
    size = KERNEL_IMAGE.stat().st_size
    start, length = UBOOT_RESERVED
    typed = [(r"Hit any key to stop autoboot", "\n"),
             (r"=> ", "setenv bootargs test\n"),
             (r"=> ", "fdt addr ${fdtcontroladdr}\n"),
             (r"=> ", f"fdt move ${{fdtcontroladdr}} {UBOOT_TREE_COPY:#x} 0x100000\n"),
             (r"=> ", f"fdt rsvmem add {start:#x} {length:#x}\n"),
             (r"=> ", f"bootefi {UBOOT_LOAD_ADDRESS:#x}:{size:#x} {UBOOT_TREE_COPY:#x}\n")]
    result = boot(qemu_command(kernel=None, extra=extra), timeout=90, interaction=typed)
    result.expect_in_order(r"^SwiftKernel: started as an EFI application$",
                           r"^SwiftKernel: no \\initrd\.cpio on the boot volume and no initial ramdisk offered \(LoadFile2\); the kernel starts without one$",
                           r"^SwiftKernel v0\.1\.0 - ARM64 Microkernel$",
                           r"^Boot: started by UEFI firmware \(Das U-Boot\), memory map: \d+ entries, \d+ MiB usable$")
    uefi = result.expect_line(r"^Memory: UEFI memory map: (\d+) frames usable, (\d+) frames of RAM kept by the firmware$")
    result.expect_equal(int(uefi[1]) + int(uefi[2]), (1 << 30) // 4096, "usable and kept frames make up the RAM")
    frames = result.expect_line(r"^FrameAllocator: (\d+) frames total, (\d+) frames free$")
    result.expect_equal(int(frames[1]), (1 << 30) // 4096, "frames total")
    check = expect_firmware_memory_checked(result)
    result.expect_equal(0 < int(check[1]) <= int(uefi[2]), True, "U-Boot keeps some RAM, all of it checked")
    result.expect_equal((int(check[3]) > 0, int(check[5]) >= length // 4096), (True, True),
                        "runtime services memory and the reserved region among the frames checked")
    result.expect_line(r"^Boot: Command line: test$")
    result.expect_line(r"^Boot Test: \d+ passed, 0 failed$")
    result.expect_no_line(r"FAILED|Kernel panic")
    result.expect_line(r"^Boot: Test mode complete, powering off$")
    result.expect_powered_off()
    return result


def uefi_kernel_loader() -> BootResult:
    """edk2 given the kernel by QEMU's -kernel, -initrd and -append starts it as an EFI
    application itself: the command line arrives as load options, the initial ramdisk through
    the LoadFile2 protocol; the EL0 test suite passes."""
    with tempfile.TemporaryDirectory() as scratch:
        variables = Path(scratch) / "vars.fd"
        variables.write_bytes(UEFI_VARS.read_bytes())
        firmware = ["-drive", f"if=pflash,format=raw,readonly=on,file={UEFI_CODE}",
                    "-drive", f"if=pflash,format=raw,file={variables}"]
        result = boot(qemu_command(machine="virt,acpi=off", initrd=INITRD, extra=firmware), timeout=240)
    result.expect_line(r"SwiftKernel: started as an EFI application$")
    result.expect_line(r"^Boot: started by UEFI firmware \(EDK II\), memory map: \d+ entries, \d+ MiB usable$")
    ramdisk = result.expect_line(r"^Boot: Initial ramdisk at 0x[0-9a-f]{16} \((\d+) KiB\)$")
    result.expect_equal(int(ramdisk[1]), (INITRD.stat().st_size + 1023) // 1024, "ramdisk size (offered through LoadFile2)")
    result.expect_line(r"^Boot: Command line: (.* )?test( .*)?$")
    result.expect_in_order(r"^Boot: Started init \(process 1\) from the initial ramdisk",
                           r"^tests: \d+ passed, 0 failed$",
                           r"^Boot: init ended \(exit code 0\)$",
                           r"^Boot: Test mode complete, powering off$")
    result.expect_no_line(r"FAILED|Kernel panic")
    result.expect_powered_off()
    return result


SCENARIOS: list[Scenario] = [
    Scenario("device tree mutations: booted, a clear stop, or silent in WFI", device_tree_mutations),
    standard("cortex-a72, 1G, GICv2", "cortex-a72", "1G", 2),
    standard("cortex-a72, 1G, GICv3, 4 cores", "cortex-a72", "1G", 3, smp=4),
    standard("cortex-a53, 128M, GICv2", "cortex-a53", "128M", 2),
    standard("cortex-a53, 1G, GICv3", "cortex-a53", "1G", 3),
    standard("cortex-a57, 1G, GICv2, 2 cores", "cortex-a57", "1G", 2, smp=2),
    standard("max, 1G, GICv2, 4 cores", "max", "1G", 2, smp=4),
    standard("cortex-a57, 3G, GICv3", "cortex-a57", "3G", 3),
    standard("max, 4G, GICv3, 2 cores", "max", "4G", 3, smp=2),
    standard("cortex-a72, 8G, GICv3, 8 cores", "cortex-a72", "8G", 3, smp=8),
    standard("cortex-a72, EL2 entry (virtualization=on), GICv3, 2 cores", "cortex-a72", "1G", 3, smp=2, el2=True),
    standard("cortex-a53, EL2 entry (virtualization=on), GICv2, 2 cores", "cortex-a53", "128M", 2, smp=2, el2=True),
    standard("max, EL2 entry (virtualization=on), 4G", "max", "4G", 3, el2=True),
    Scenario("two NUMA memory regions", numa_two_regions),
    Scenario("tick=250 on the command line; tick=62500000 refused", tick_rate),
    Scenario("initial ramdisk and command line from /chosen", initial_ramdisk),
    Scenario("panic report (selftest=panic)", panic_report),
    Scenario("exception report (selftest=trap)", exception_report),
    Scenario("a panic while threads run on 4 cores (panicafter) stops the other three", panic_on_every_core),
    Scenario("a panic on a secondary CPU's own stack (panicafter, panicon=1) names its frames", panic_on_secondary_idle),
    Scenario("a CPU that checks in after the boot CPU gave up on it turns itself off (latecpu=2 of 4)", late_cpu),
    Scenario("a CPU in the device tree that PSCI CPU_ON refuses is reported and left out (MPIDR 7 of 2 cores)",
             cpu_on_refused),
    Scenario("idle without test mode or ramdisk", interactive_idle),
    Scenario("user space: init runs the test suite at EL0", user_space_tests),
    user_space_tests_on_cores(1, 3),
    user_space_tests_on_cores(2, 2),
    user_space_tests_on_cores(2, 3),
    user_space_tests_on_cores(4, 2),
    user_space_tests_on_cores(4, 3),
    user_space_tests_on_cores(8, 2, one_host_core=True),
    user_space_tests_on_cores(8, 3),
    Scenario("DEBUG=1 kernel: the EL0 test suite and smpstress on 4 cores, GICv3, with every lock's order checked",
             debug_kernel_on_cores),
    Scenario("DEBUG=1 kernel: a lock taken against the lock order panics, naming it (selftest=lockorder)",
             debug_lock_check("lockorder", r"Heap\.lock taken out of order on CPU 0 \(locks held: 0x[0-9a-f]{3}\)")),
    Scenario("DEBUG=1 kernel: a lock taken twice panics, naming it (selftest=locktwice)",
             debug_lock_check("locktwice", r"Heap\.lock taken twice on CPU 0")),
    fault_injection(20, 1),
    fault_injection(50, 2),
    fault_injection(100, 3),
    Scenario("shell: help, ps, spawn, kill, mem, ipc, bad input, Ctrl-C and shutdown, typed with editing keys",
             shell_scenarios.shell_at_the_terminal),
    Scenario("shell: on two CPUs, programs flooding the console's public port, its terminal and the kernel "
             "log hold back neither typed input nor Ctrl-C", shell_scenarios.console_under_flood),
    Scenario("shell: 50 crashes of the console while a program prints, 50 of the memory manager while one "
             "allocates; nothing leaks", lambda: shell_scenarios.restarts_under_use(50)),
    Scenario("shell: garbage on the serial line (random bytes, long lines, cut escape sequences)",
             shell_scenarios.garbage_on_the_line),
    Scenario("shell: booted without a tick (tick=0), a program's sleep and timed wait are refused, not a kernel panic",
             shell_scenarios.without_a_tick),
    Scenario("shell: a disk that holds a read for 25 s is reset by its driver after 10 s, and the read served again",
             shell_scenarios.a_disk_that_stops_answering),
    Scenario("user space: init with a wrong-machine ELF header is refused", corrupted_elf),
    Scenario("user space: init with a writable+executable segment is refused", writable_executable_elf),
    Scenario("user space: a corrupt ramdisk is refused", corrupted_ramdisk),
    Scenario("user space: the short system call fuzzing campaign (fuzz=100000)", fuzz_campaign),
    Scenario("U-Boot booti at another load address", uboot_booti),
    uefi_user_space("UEFI: edk2 starts the kernel from its system partition, GICv2, 1G; the EL0 test suite", "1G", 2),
    uefi_user_space("UEFI: edk2, GICv3, 4G, 2 cores; the EL0 test suite", "4G", 3, smp=2),
    Scenario("UEFI: no initrd.cpio on the system partition", uefi_without_ramdisk),
    Scenario("UEFI: a firmware without a device tree (ACPI) is told why and gets control back", uefi_without_device_tree),
    Scenario("UEFI: U-Boot bootefi starts the same image, bootargs as load options; reserved and runtime memory in RAM kept", uboot_bootefi),
    Scenario("UEFI: edk2 loads the kernel from QEMU -kernel; the ramdisk through LoadFile2", uefi_kernel_loader),
]
