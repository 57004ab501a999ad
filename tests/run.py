#!/usr/bin/env python3
"""`make test`: the host unit tests (swift test), the host fuzzing, the QEMU boot scenarios and
the documentation's commands (tests/docs), ending with one summary line over all of them:
`N passed, N failed`."""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time
from xml.etree import ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "boot"))


def run_host_tests() -> tuple[int, int]:
    """Runs `swift test`; counts the verdicts of its xUnit report (one <testcase> per test, failed
    if it holds a <failure> or an <error>), which, unlike the console output of tests running in
    parallel, cannot be garbled."""
    print("== host unit tests (swift test)", flush=True)
    started = time.monotonic()
    report = ROOT / "build" / "host-tests.xml"
    written = ROOT / "build" / "host-tests-swift-testing.xml"
    report.parent.mkdir(exist_ok=True)
    written.unlink(missing_ok=True)
    process = subprocess.run(["swift", "test", "--xunit-output", str(report)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    output = process.stdout
    passed = failed = 0
    if written.exists():
        for case in ElementTree.parse(written).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"  FAIL {case.get('classname')}.{case.get('name')}")
            else:
                passed += 1
    summary = re.search(r"Test run with (\d+) tests? .*", output)
    if summary:
        print("  " + summary[0].strip())
    if process.returncode != 0 and failed == 0:
        # A build failure or crash: show it and count the suite as one failure.
        print(output[-6000:])
        failed = 1
    elif failed:
        print("\n".join(line for line in output.splitlines() if "✘" in line or "error" in line.lower())[-6000:])
    print(f"  host: {passed} passed, {failed} failed ({time.monotonic() - started:.0f} s)", flush=True)
    return passed, failed


def run_host_fuzzing(seconds: int) -> tuple[int, int]:
    """A short libFuzzer run of each parser target (fuzz/host/run.py), from the seeds and the saved
    regressions: one test per target, failed if it crashed (or did not build)."""
    print(f"== host fuzzing of the parsers ({seconds} s per target)", flush=True)
    process = subprocess.run([sys.executable, str(ROOT / "fuzz" / "host" / "run.py"), "--seconds", str(seconds)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    verdicts = re.findall(r"^fuzz-host (\S+): (\w+)", process.stdout, re.MULTILINE)
    passed = sum(1 for _, verdict in verdicts if verdict == "ok")
    failed = len(verdicts) - passed
    for line in process.stdout.splitlines():
        if line.startswith("fuzz-host "):
            print("  " + line)
    if process.returncode != 0 and failed == 0:
        print(process.stdout[-4000:])
        failed = 1
    print(f"  host fuzzing: {passed} passed, {failed} failed", flush=True)
    return passed, failed


def run_boot_tests(jobs: int) -> tuple[int, int]:
    from harness import KERNEL_IMAGE, BootFailure
    from scenarios import SCENARIOS

    print(f"== boot tests in QEMU ({len(SCENARIOS)} scenarios, {jobs} at a time)", flush=True)
    if not KERNEL_IMAGE.exists():
        print(f"  {KERNEL_IMAGE} is missing: run `make build` first")
        return 0, len(SCENARIOS)
    passed = failed = 0

    def attempt(scenario):
        try:
            result = scenario.run()
            return scenario, None, result
        except BootFailure as failure:
            return scenario, str(failure), None
        except Exception as error:  # a harness bug is a failure too, never a pass
            return scenario, f"{type(error).__name__}: {error}", None

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for scenario, failure, result in pool.map(attempt, SCENARIOS):
            if failure is None:
                passed += 1
                print(f"  ok   {scenario.name} ({result.checks} checks, {result.seconds:.1f} s)", flush=True)
            else:
                failed += 1
                print(f"  FAIL {scenario.name}\n{failure}", flush=True)
    print(f"  boot: {passed} passed, {failed} failed", flush=True)
    return passed, failed


def run_doc_tests() -> tuple[int, int]:
    """The documentation's commands and expected output (tests/docs/run_doc_commands.py): its
    own summary line gives the counts; no summary (the runner crashed) is one failure."""
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "docs" / "run_doc_commands.py")], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    summary = None
    for line in process.stdout:
        print(line, end="", flush=True)
        summary = re.match(r"^  docs: (\d+) passed, (\d+) failed", line) or summary
    process.wait()
    if summary is None:
        return 0, 1
    passed, failed = int(summary[1]), int(summary[2])
    if process.returncode != 0 and failed == 0:
        failed = 1
    return passed, failed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-only", action="store_true")
    parser.add_argument("--boot-only", action="store_true")
    parser.add_argument("--docs-only", action="store_true")
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    options = parser.parse_args()

    totals = [0, 0]
    everything = not (options.host_only or options.boot_only or options.docs_only)
    if everything or options.host_only:
        for index, count in enumerate(run_host_tests()):
            totals[index] += count
        for index, count in enumerate(run_host_fuzzing(seconds=5)):
            totals[index] += count
    if everything or options.boot_only:
        for index, count in enumerate(run_boot_tests(options.jobs)):
            totals[index] += count
    # Last: its commands boot QEMU and build nothing, with the build the other suites used.
    if everything or options.docs_only:
        for index, count in enumerate(run_doc_tests()):
            totals[index] += count
    print(f"{totals[0]} passed, {totals[1]} failed")
    return 0 if totals[1] == 0 and totals[0] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
