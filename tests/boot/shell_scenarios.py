"""Boot scenarios of the default run (`make run`): the console driver and the shell, driven as a
person would through QEMU's serial input, with real keystrokes (backspace, cursor keys, history),
restarts of the console and the memory manager while programs use them, and garbage on the line.
Every check reads what the shell printed."""
from __future__ import annotations

import atexit
import os
import random
import re
import tempfile
import time

from harness import INITRD, BootResult, Session, disk_arguments, qemu_command
from stalling_disk import StallingDisk

PROMPT = r"swiftkernel> "
LEFT, RIGHT, UP, DOWN = "\x1b[D", "\x1b[C", "\x1b[A", "\x1b[B"
BACKSPACE, CTRL_C, CTRL_U, CTRL_BACKSLASH = "\x7f", "\x03", "\x15", "\x1c"


def default_session(deadline: float = 120.0, smp: int = 1, append: str = "") -> Session:
    """`make run`'s machine (with `smp` CPUs): no command line unless `append`, and a fresh 4 MiB
    disk (removed at exit)."""
    descriptor, name = tempfile.mkstemp(suffix=".img")
    os.ftruncate(descriptor, 4 << 20)
    os.close(descriptor)
    atexit.register(os.remove, name)
    return Session(qemu_command(append=append, initrd=INITRD, smp=smp, extra=disk_arguments(name)), deadline=deadline)


def command(session: Session, text: str, *patterns: str, timeout: float = 20.0) -> list[re.Match]:
    """Types `text` at the prompt (waited for first), then waits for each pattern in turn."""
    session.expect(PROMPT, timeout)
    session.type(text)
    return [session.expect(pattern, timeout) for pattern in patterns]


def figures(session: Session) -> dict[str, int]:
    """The kernel's figures from `mem`, once two readings in a row agree (a process that just
    ended may still be being torn down): kernel objects other than closed ports still named (from
    `ipc`: a long-lived client keeps its send right to a service instance that has ended until it
    next reaches for the service, and whether it has yet depends on timing), bytes charged, and
    free frames counted with the pages the kernel heap holds (which it takes and gives back as it
    needs)."""
    previous: dict[str, int] = {}
    for _ in range(6):
        frames, objects, heap = command(session, "mem\r", r"mem: frames (\d+) free of (\d+)",
                                        r"mem: kernel objects (\d+), (\d+) bytes charged to processes",
                                        r"mem: kernel heap \d+ blocks in (\d+) pages")
        ports, = command(session, "ipc\r", r"ipc: ports (\d+), of them (\d+) closed but still named\r?\n")
        reading = {"free frames": int(frames[1]) + int(heap[1]), "objects": int(objects[1]) - int(ports[2]),
                   "charged": int(objects[2])}
        if reading == previous:
            break
        previous = reading
    return previous


def ipc_counters(session: Session) -> tuple[int, int]:
    """The kernel's message and call counters from `ipc`; its port census must be sane: every
    service has a port, and the closed ones still named are among the ports alive."""
    counters, ports = command(session, "ipc\r", r"ipc: messages delivered (\d+), calls (\d+)\r?\n",
                              r"ipc: ports (\d+), of them (\d+) closed but still named\r?\n")
    session.checks += 1
    if not (int(ports[1]) >= 5 and int(ports[2]) <= int(ports[1])):
        session.fail(f"ipc's port census: {ports[1]} ports alive, {ports[2]} of them closed")
    return int(counters[1]), int(counters[2])


def background(session: Session, text: str, name: str) -> int:
    started, = command(session, text, rf"\[(\d+)\] {name} running in the background")
    return int(started[1])


def ctrl_c_ends_spinner(session: Session) -> None:
    """A spinner in the foreground, and Ctrl-C typed a second later: the shell ends it."""
    command(session, "spawn spinner\r")
    time.sleep(1.0)
    session.type(CTRL_C)
    ended = session.expect(r"shell: Ctrl-C: ending process (\d+)\r?\n")
    session.expect(rf"\[{ended[1]}\] spinner was killed")


def shell_at_the_terminal() -> BootResult:
    """Boot to the prompt; help, ps, spawn, kill, jobs, mem, ipc, uptime, bench, bad input,
    Ctrl-C, a program reading lines, a restart of the shell itself and shutdown, typed with
    backspace, cursor keys and history."""
    with default_session() as session:
        services = {m[1]: int(m[2]) for m in (session.expect(rf"init: started ({name}) \(process (\d+)\)")
                                              for name in ("names", "memory-manager", "echo", "console", "block", "shell"))}
        command(session, "help\r", r"  ps +the processes", r"  shutdown +stop the services and power off", r"  keys: ")
        # ps lists every service, running, with the id init reported.
        session.expect(PROMPT)
        session.type("ps\r")
        for name, pid in services.items():
            session.expect(rf"(?m)^ +{pid} +\d+  running +[1-9]\d* KiB +[1-9]\d* +\d+  service  {name}\r?\n")
        # Then the one CPU's figures: it has ticked, switched threads and taken system calls, and
        # its idle share is a percentage.
        cpu = session.expect(r"(?m)^ +0 +(\d+) +(\d+)% +(\d+) +(\d+) +(\d+) +(\d+)\r?\n")
        ticks, idle, switches, calls, interrupts = (int(cpu[index]) for index in range(1, 6))
        session.checks += 1
        if not (ticks > 0 and idle <= 100 and switches > 0 and calls > 0 and interrupts > 0):
            session.fail(f"ps: CPU 0's figures do not add up: {cpu[0].strip()}")
        # Cursor keys: "hlp", two left, "e" in the middle, Enter: help.
        command(session, "hlp" + LEFT + LEFT + "e" + RIGHT + RIGHT + "\r", r"  keys: ")
        # Backspace: "spawn hellx" corrected.
        ran = command(session, "spawn hellx" + BACKSPACE + "o\r", r"hello: process (\d+), child of \d+",
                      r"hello: the first ten squares add up to 385", r"\[(\d+)\] hello exited with code 0")
        session.checks += 1
        if ran[0][1] != ran[2][1]:
            session.fail(f"hello's own id {ran[0][1]} and the shell's report {ran[2][1]} differ")
        # History: up runs the last line again; up, up, up, down is the line before it (help).
        command(session, UP + "\r", r"hello: the first ten squares add up to 385", r"\[\d+\] hello exited with code 0")
        command(session, UP + UP + UP + DOWN + "\r", r"  keys: ")
        # Ctrl-U drops what was typed.
        command(session, "shutdown" + CTRL_U + "uptime\r", r"uptime: \d+\.\d{3} s since boot")

        # A background program holds kernel objects and frames until it is killed.
        before = figures(session)
        spinner = background(session, "spawn spinner &\r", "spinner")
        during = figures(session)
        command(session, "ps\r", rf"(?m)^ +{spinner} +\d+  running +[1-9]\d* KiB +1 +\d+  program  spinner\r?\n")
        command(session, "mem\r", rf"(?m)^ +{spinner}  spinner +[1-9]\d* +none\r?\n",
                r"(?m)^ +\d+  memory-manager +[1-9]\d* +2048\r?\n")
        command(session, f"kill {spinner}\r", rf"\[{spinner}\] spinner was killed")
        after = figures(session)
        session.checks += 1
        if not (during["objects"] > before["objects"] and during["free frames"] < before["free frames"]):
            session.fail(f"a running spinner shows in the figures: before {before}, during {during}")
        session.checks += 1
        if after != before:
            session.fail(f"the figures come back once the spinner is killed: before {before}, after {after}")

        # The kernel's IPC counters grow with IPC: a program's output and its wait are calls.
        first = ipc_counters(session)
        command(session, "spawn hello\r", r"\[\d+\] hello exited with code 0")
        second = ipc_counters(session)
        session.checks += 1
        if not (second[0] > first[0] + 4 and second[1] > first[1] + 4):
            session.fail(f"IPC counters after spawn hello: {first} then {second}")

        # Bad input gets a clear message, and the shell carries on.
        command(session, "frobnicate now\r", r"shell: unknown command 'frobnicate'; type help for the list")
        command(session, "kill\r", r"usage: kill PID")
        command(session, "kill 1\r", r"kill: 1 is not a running program")
        command(session, "kill 99x\r", r"usage: kill PID")
        command(session, "spawn no-such-program\r", r"spawn: no-such-program: no such program")
        command(session, "crash nothing\r", r"crash: nothing: no such service running")
        command(session, "spawn\r", r"usage: spawn NAME")

        # The disk: a sector written, read back, still there after the block service restarted.
        command(session, "disk\r", r"disk: 8192 sectors of 512 bytes \(4 MiB\), write cache",
                r"disk: block service restarted 0 times; this instance served \d+ requests")
        command(session, "disk write 7 hello, disk\r", r"disk: wrote 11 bytes to sector 7")
        command(session, "disk read 7\r", r"  68 65 6c 6c 6f 2c 20 64 69 73 6b 00 00 00 00 00 +hello, disk\.{5}")
        command(session, "crash block\r", r"crash: ended block \(process \d+\)")
        command(session, "disk read 7\r", r"  68 65 6c 6c 6f 2c 20 64 69 73 6b 00 00 00 00 00 +hello, disk\.{5}")
        command(session, "disk\r", r"disk: block service restarted 1 times")
        command(session, "disk read 8192\r", r"disk: usage: disk \| disk read SECTOR \| disk write SECTOR TEXT \(SECTOR below 8192\)")

        # Ctrl-C ends the foreground program.
        ctrl_c_ends_spinner(session)
        # A Ctrl-C typed in the same burst as the command is for the program (typed once the
        # shell reads: a Ctrl-C typed ahead of any read drops the input before it, as a
        # terminal's interrupt does).
        session.expect(PROMPT)
        time.sleep(0.5)
        session.type("spawn spinner\r" + CTRL_C)
        ended = session.expect(r"shell: Ctrl-C: ending process (\d+)\r?\n")
        session.expect(rf"\[{ended[1]}\] spinner was killed")

        # A background program that ends is collected and reported at the next prompt.
        job = background(session, "spawn chatter print 3 &\r", "chatter")
        session.expect(r"chatter: printed 3 lines")
        time.sleep(0.5)  # its exit follows its last line
        session.type("jobs\r")  # the prompt came before the program's last lines
        session.expect(rf"\[{job}\] exited chatter")
        session.expect(rf"\[{job}\] chatter exited with code 0")
        command(session, "jobs\r", r"jobs: none")

        # bench measures in user space: each figure a positive time per operation.
        timings = command(session, "bench\r", r"bench: null system call: (\d+) ns/op", r"bench: yield: (\d+) ns/op",
                          r"bench: IPC call to echo, 8 bytes: (\d+) ns/op", r"bench: spawn, kill and wait of spinner: (\d+) ns/op")
        session.checks += 1
        if not all(int(m[1]) > 0 for m in timings) or not int(timings[3][1]) > int(timings[0][1]):
            session.fail(f"bench figures: {[m[0] for m in timings]}")

        # A program reading lines gets the console's line discipline: echo, backspace, Ctrl-U, Ctrl-D.
        command(session, "spawn chatter read\r", r"chatter: reading lines; Ctrl-D ends\r?\n")
        session.type("abc" + BACKSPACE + "d\r")
        session.expect(r"abc\x08 \x08d\r?\n")
        session.expect(r"chatter: read 'abd'")
        session.type("xx" + CTRL_U + "yy\r")
        session.expect(r"chatter: read 'yy'")
        session.type("\x04")
        session.expect(r"chatter: end of input after 2 lines")
        session.expect(r"\[\d+\] chatter exited with code 0")

        # Typed ahead in one burst with the command: the lines after it are the program's input,
        # not the shell's next commands (the shell had read them; it gives them back with the
        # terminal).
        session.expect(PROMPT)
        session.type("spawn chatter read\rfirst\rsecond\r\x04")
        session.expect(r"chatter: read 'first'")
        session.expect(r"chatter: read 'second'")
        session.expect(r"chatter: end of input after 2 lines")
        session.expect(r"\[\d+\] chatter exited with code 0")
        # Only the shell may give bytes back: a program cannot, through its loan, put a line of
        # its own before the shell's next one.
        command(session, "spawn chatter inject\r", r"chatter: a line put before the shell's through the loan: "
                                                   r"refused \(access denied\)")
        session.expect(r"\[\d+\] chatter exited with code 0")
        command(session, "uptime\r", r"uptime: \d+\.\d{3} s since boot")

        # The terminal is the shell's: a program that looks the console up by name, run in the
        # background while the shell waits for input, is refused a read, a Ctrl-C notification of
        # its own and the foreground; one in the background is not lent the terminal. The shell
        # still gets what is typed and still hears Ctrl-C.
        job = background(session, "spawn chatter steal &\r", "chatter")
        session.expect(r"chatter: through the console's public port: read refused \(access denied\), "
                       r"interrupt notification refused \(access denied\), foreground refused \(access denied\)")
        time.sleep(0.5)
        session.type("jobs\r")
        session.expect(rf"\[{job}\] chatter exited with code 0")
        # (It may end before the shell says it runs, and is collected at the next prompt.)
        command(session, "spawn chatter read &\r", r"chatter: no terminal to read from",
                r"\[\d+\] chatter exited with code 1")
        # The terminal a foreground program gets is a loan that ends with it: a child it moved
        # the loan to before ending, which names Ctrl-C notifications of its own and reads
        # through it without a pause, loses it (the console closed the loan), and what is typed
        # next, Ctrl-C too, is the shell's.
        lost, ended = r"chatter: lost the terminal after \d+ reads: peer closed", r"\[\d+\] chatter exited with code 0"
        command(session, "spawn chatter pass\r", r"chatter: passed the terminal to process \d+",
                rf"(?s)(?:{lost}.*{ended}|{ended}.*{lost})")
        command(session, "uptime\r", r"uptime: \d+\.\d{3} s since boot")
        # A foreground program may take Ctrl-C for itself (a notification of its own named
        # through the loan, raw reads): Ctrl-C reaches it and ends nothing. Ctrl-\ is the shell's
        # whatever the program does, and ends it. (Had Ctrl-C ended it, Ctrl-\ would find no
        # loan and be a byte for the shell's editor: no line below.)
        command(session, "spawn chatter hold\r", r"chatter: holding the terminal \(Ctrl-C is mine\)")
        session.type(CTRL_C)
        time.sleep(1.0)
        session.type(CTRL_BACKSLASH)
        ended = session.expect(r"shell: Ctrl-\\: ending process (\d+)\r?\n")
        session.expect(rf"\[{ended[1]}\] chatter was killed")
        # Typed in the same burst as the command, it ends the program all the same.
        ended, = command(session, "spawn chatter hold\r" + CTRL_BACKSLASH, r"shell: Ctrl-\\: ending process (\d+)\r?\n")
        session.expect(rf"\[{ended[1]}\] chatter was killed")
        ctrl_c_ends_spinner(session)
        ctrl_c_ends_spinner(session)
        # With a tick, a sleep sleeps and a timed wait times out (without one: without_a_tick).
        command(session, "spawn chatter time\r", r"chatter: sleep of 10 ms: ok; wait of 10 ms: timed out\r?\n",
                r"\[\d+\] chatter exited with code 0")

        # The shell itself restarts: a new one answers, hears Ctrl-C and still holds power control.
        command(session, "crash shell\r", r"process-manager: started shell \(process \d+\)",
                r"shell: SwiftKernel shell; type help for the commands")
        ctrl_c_ends_spinner(session)

        command(session, "shutdown\r", r"init: shutdown requested by process \d+; stopping the services",
                r"Boot: shutdown, powering off")
        code = session.wait_exit()
        session.checks += 1
        if code != 0:
            session.fail(f"QEMU did not power off (exit code {code})")
    result = session.result()
    result.expect_in_order(r"^console: ready \(PL011, interrupt 33, kernel log\)$", r"^init: started console \(process \d+\)$",
                           r"^init: started shell \(process \d+\)$", r"^shell: SwiftKernel shell; type help for the commands$")
    result.expect_no_line(r"Kernel panic|faulted")
    return result


def without_a_tick() -> BootResult:
    """Booted with `tick=0`, the kernel runs without a timer interrupt: the system still comes up
    to the shell, and a program's sleep and timed wait are refused (`deviceFailed`) at once
    instead of waiting for a deadline that never passes (or, before, a kernel panic)."""
    with default_session(deadline=60.0, append="tick=0") as session:
        command(session, "spawn chatter time\r", r"chatter: sleep of 10 ms: device failed; wait of 10 ms: device failed\r?\n",
                r"\[\d+\] chatter exited with code 0", timeout=30.0)
        command(session, "spawn chatter print 2\r", r"chatter: printed 2 lines\r?\n", r"\[\d+\] chatter exited with code 0")
    result = session.result()
    result.expect_line(r"^Interrupts: generic timer unavailable \(tick=0; 1 to 10000 Hz\); running without a tick$")
    result.expect_no_line(r"Kernel panic|faulted")
    return result


def a_disk_that_stops_answering() -> BootResult:
    """The disk is an NBD server (stalling_disk.py) that holds the first read of sector 5 for
    25 s, as a hung device would. The block driver, having had no completion for 10 s, resets the
    device and hands it the read again (QEMU's reset waits for the held read, so the second one
    comes after it); that one is answered, and the shell shows the sector. Before the watchdog
    the shell waited for ever."""
    image = bytearray(4 << 20)
    image[5 * 512:5 * 512 + 16] = b"held, then freed"
    with StallingDisk(image, stalled_offset=5 * 512, hold=25.0) as disk:
        with Session(qemu_command(append="", initrd=INITRD, extra=disk.qemu_arguments()), deadline=120.0) as session:
            command(session, "disk\r", r"disk: 8192 sectors of 512 bytes \(4 MiB\)",
                    r"this instance served \d+ requests and reset the device 0 times")
            command(session, "disk read 5\r",
                    r"virtio-blk: the device completed no request in 10 s \(1 held\); resetting it",
                    r"  68 65 6c 64 2c 20 74 68 65 6e 20 66 72 65 65 64 +held, then freed", timeout=60.0)
            command(session, "disk\r", r"reset the device 1 times")
            # The disk still works.
            command(session, "disk write 6 still here\r", r"disk: wrote 10 bytes to sector 6")
            command(session, "disk read 6\r", r"  73 74 69 6c 6c 20 68 65 72 65 00")
        result = session.result()
        result.expect_equal(disk.error, None, "the NBD server's view of the protocol")
        result.expect_equal(disk.reads_of_stalled, 2, "reads of sector 5 by the device")
        result.expect_equal(bytes(image[6 * 512:6 * 512 + 11]), b"still here\0", "sector 6 on the disk")
    result.expect_no_line(r"Kernel panic|faulted|failed")
    return result


def console_under_flood() -> BootResult:
    """The console takes its sources in turn. On two CPUs, two programs asking its public port
    for statistics without a pause keep a request always waiting there, yet what is typed gets
    through: the shell reads commands and hears Ctrl-C. A foreground program flooding the
    terminal lent it is still ended by Ctrl-C, and a program writing to the kernel log without a
    pause keeps neither the shell's commands nor `kill` from getting through. A program keeping
    the process manager's public queue full keeps neither `crash` nor `kill` (its control port)
    from being served."""
    with default_session(smp=2) as session:
        flooders = [background(session, "spawn chatter flood &\r", "chatter") for _ in range(2)]
        time.sleep(1.0)
        command(session, "uptime\r", r"uptime: \d+\.\d{3} s since boot")
        ctrl_c_ends_spinner(session)
        for flooder in flooders:
            command(session, f"kill {flooder}\r", rf"\[{flooder}\] chatter was killed")
        # A program writing to the kernel log without a pause: the console writes the log out a
        # few records a turn, and still takes what is typed.
        flooder = background(session, "spawn chatter flood log &\r", "chatter")
        session.expect(r"~{31}")
        time.sleep(1.0)
        command(session, "uptime\r", r"uptime: \d+\.\d{3} s since boot")
        command(session, f"kill {flooder}\r", rf"\[{flooder}\] chatter was killed")
        # A program keeping the process manager's public queue full with plain sends from two
        # threads: the requests on its control port (`crash`, and `kill`) are still served.
        flooder = background(session, "spawn chatter flood manager &\r", "chatter")
        time.sleep(1.0)
        command(session, "crash echo\r", r"crash: ended echo \(process \d+\); the process manager restarts it")
        command(session, f"kill {flooder}\r", rf"\[{flooder}\] chatter was killed")
        command(session, "spawn chatter flood terminal\r", r"chatter: flooding the terminal")
        time.sleep(1.0)
        session.type(CTRL_C)
        ended = session.expect(r"shell: Ctrl-C: ending process (\d+)\r?\n")
        session.expect(rf"\[{ended[1]}\] chatter was killed")
        command(session, "uptime\r", r"uptime: \d+\.\d{3} s since boot")
    result = session.result()
    result.expect_line(r"chatter: flooding the process manager's public port")
    result.expect_no_line(r"Kernel panic|faulted|a request failed|a send failed")
    return result


def restarts_under_use(rounds: int) -> BootResult:
    """`crash console` while a program prints and `crash memory-manager` while a program allocates,
    `rounds` times each: every instance comes back, the shell answers, the programs run on and
    no printed line is lost, and the kernel holds at the end exactly what it held before.

    Before the baseline, each service is crashed twice in the same order, so that the services'
    heaps and tables are warm. A long-lived service keeps its send right to a memory manager that
    has ended (a closed port, one per holder) until it next needs memory; `figures` counts such
    ports apart, and a leak grows with the restarts instead."""
    with default_session(deadline=60 + rounds * 6) as session:
        for _ in range(2):
            command(session, "crash console\r", r"crash: ended console \(process \d+\)")
            command(session, "crash memory-manager\r", r"crash: ended memory-manager \(process \d+\)")
        baseline = figures(session)
        for mode, service in (("print", "console"), ("alloc", "memory-manager")):
            pid = background(session, f"spawn chatter {mode} &\r", "chatter")
            ended = set()
            for _ in range(rounds):
                ended.add(command(session, f"crash {service}\r", rf"crash: ended {service} \(process (\d+)\)")[0][1])
            session.checks += 1
            if len(ended) != rounds:
                session.fail(f"{rounds} crashes of {service} ended {len(ended)} different instances")
            restarted, = command(session, "services\r", rf"  {service} +\d+  running +(\d+)  ")
            session.checks += 1
            if int(restarted[1]) != min(rounds + 2, 255):
                session.fail(f"services reports {restarted[1]} restarts of {service}, not {rounds + 2}")
            command(session, f"kill {pid}\r", rf"\[{pid}\] chatter was killed")
        after = figures(session)
        session.checks += 1
        if after != baseline:
            session.fail(f"kernel figures before and after {rounds} restarts of each: {baseline}, then {after}")
        command(session, "shutdown\r", r"Boot: shutdown, powering off")
        session.wait_exit()
    result = session.result()
    # No line of the printing programs is lost across the console's restarts (one may repeat:
    # a line written just as the console ended is written again).
    numbers = sorted({int(m[1]) for m in result.lines_matching(r"chatter: line (\d+)$")})
    result.expect_equal(len(numbers) >= 5, True, "the printing program printed across the restarts")
    missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    result.expect_equal(missing, [], "line numbers of the printing program not seen")
    # The process manager's reports (through the kernel log, which the console writes between
    # its own lines) and the printing program's lines never share a line.
    result.expect_no_line(r"^.+(process-manager|memory-manager|names|init): |chatter: line \d+.*chatter: ")
    result.expect_no_line(r"Kernel panic")
    result.expect_equal(result.exit_code, 0, "QEMU powered off")
    return result


def garbage_on_the_line() -> BootResult:
    """Random bytes, very long lines and escape sequences cut in half: the console driver and the
    shell survive (same processes) and the shell still answers."""
    generator = random.Random(20261203)
    with default_session() as session:
        console = int(session.expect(r"init: started console \(process (\d+)\)")[1])
        shell = int(session.expect(r"init: started shell \(process (\d+)\)")[1])
        session.expect(PROMPT)
        # Random bytes, in bursts (a Ctrl-C or Enter among them is fine: each is just input).
        for _ in range(8):
            session.type(bytes(generator.randrange(256) for _ in range(300)))
        session.type("\x15\r")
        # A line far longer than the editor holds, and one of many words.
        session.type("x" * 3000 + "\r")
        session.type("a " * 400 + "\r")
        # Escape sequences cut short, by other keys or by the end of a read.
        for piece in ("\x1b", "[", "\x1b[", "1;", "\x1b[12", "\r", "\x1bO", "\x1b[3", "x", "\x1b[99999999~", "\x1b\x1b[[A"):
            session.type(piece)
        session.type("\x15\r")
        session.expect(r"shell: too many words")
        command(session, CTRL_U + "help\r", r"  keys: ", timeout=30)
        # All of it reached the shell: the console held the sender back while its queue was full.
        command(session, "ipc\r", r"ipc: console service: \d+ requests, \d+ bytes written, \d+ bytes read \(held back \d+ times, 0 dropped\)")
        # A foreground program that reads nothing but writes a line every 10 ms: typing fills the
        # console's queue, and a second after it filled (the writes do not put that off) the driver
        # drops what does not fit, so the Ctrl-C behind it still ends the program.
        command(session, "spawn chatter print\r")
        session.expect(r"chatter: line 3\r?\n")
        session.type("z" * 3000 + CTRL_C)
        ended = session.expect(r"shell: Ctrl-C: ending process (\d+)\r?\n", timeout=30)
        session.expect(rf"\[{ended[1]}\] chatter was killed")
        figures, = command(session, "ipc\r", r"ipc: console service: .* bytes read \(held back (\d+) times, (\d+) dropped\)")
        session.checks += 1
        if not (int(figures[1]) >= 1 and 0 < int(figures[2]) <= 3000 - 1024):
            session.fail(f"with no reader the console held back {figures[1]} times and dropped {figures[2]} of 3000 bytes "
                         "(expected at least once, and 1 to 1976)")
        command(session, "ps\r", rf"(?m)^ +{console} +\d+  running +[1-9]\d* KiB +[1-9]\d* +\d+  service  console\r?\n",
                rf"(?m)^ +{shell} +\d+  running +[1-9]\d* KiB +[1-9]\d* +\d+  service  shell\r?\n")
        command(session, "shutdown\r", r"Boot: shutdown, powering off")
        session.wait_exit()
    result = session.result()
    result.expect_no_line(r"Kernel panic|faulted|restarting in")
    result.expect_equal(result.exit_code, 0, "QEMU powered off")
    return result
