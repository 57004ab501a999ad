#!/usr/bin/env python3
"""Host fuzzing of the kernel's parsers of untrusted bytes with libFuzzer and AddressSanitizer.

Each target compiles the kernel/core and abi/ sources it needs together with its entry file in
this folder into build/fuzz-host/<target>, rebuilt only when a source or the flags change.

  run.py --seconds N   fuzz every target for N seconds from the seed corpus (fixtures, build/
                       outputs when present, saved regressions); new inputs accumulate in
                       build/fuzz-host/corpus/<target>, crashes go to build/fuzz-host/crashes/<target>
  run.py --regress     run every seed and every file in fuzz/regressions/<target>/ once

Either mode prints one line per target and exits non-zero if any target crashed."""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
HERE = ROOT / "fuzz" / "host"
OUTPUT = ROOT / "build" / "fuzz-host"
REGRESSIONS = ROOT / "fuzz" / "regressions"


@dataclass
class Target:
    name: str
    entry: str
    # kernel/core files the entry needs; abi/*.swift is always added.
    core: list[str]
    # Seed files relative to the repository root; build/ outputs are used when a build made them.
    seeds: list[str]
    # Longest input libFuzzer makes: larger inputs mostly add bytes no parser looks at.
    max_len: int


TARGETS = [
    Target("device-tree", "DeviceTreeTarget.swift",
           ["DeviceTree", "Platform", "BootArguments", "PhysicalAddress", "PhysicalMemory", "VirtualMemory",
            "FormattedText", "ErrorDescriptions", "FrameAllocator", "PageTable", "CPUIdentity", "AlignedStores"],
           ["tests/fixtures/dtb/*.dtb"], 16384),
    Target("elf", "ELFImageTarget.swift",
           ["ELFImage", "LittleEndian", "VirtualMemory", "FormattedText"],
           ["tests/fixtures/elf/*", "build/initrd/*"], 131072),
    Target("cpio", "CPIOArchiveTarget.swift",
           ["CPIOArchive", "ELFImage", "LittleEndian", "VirtualMemory", "FormattedText"],
           ["tests/fixtures/cpio/*.cpio", "build/initrd.cpio"], 65536),
    Target("manifest", "ServiceManifestTarget.swift", ["ServiceManifest", "FormattedText"],
           ["userland/manifest"], 4096),
]

# -O keeps the fuzzers fast; `-assert-config Debug` keeps the bounds checks of unsafe buffer
# pointers, which catch a read outside a slice even when it stays inside the input.
SWIFT_FLAGS = ["-parse-as-library", "-O", "-assert-config", "Debug", "-g", "-sanitize=fuzzer,address",
               "-use-ld=lld"]

# What failed: a Swift runtime trap names itself; otherwise the sanitizer's or libFuzzer's report.
TRAP = re.compile(r"^(.*Fatal error.*)$", re.MULTILINE)
REPORT = re.compile(r"^==\d+==\s*ERROR: (.*)$", re.MULTILINE)
# The innermost stack frame in the project's own sources.
FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ in \S+ \S*?/((?:kernel|abi|fuzz)/\S+:\d+)", re.MULTILINE)


def swiftc() -> str:
    if "SWIFTC" in os.environ:
        return os.environ["SWIFTC"]
    return shutil.which("swiftc") or "/opt/swift/usr/bin/swiftc"


def sources(target: Target) -> list[Path]:
    core = [ROOT / "kernel" / "core" / f"{name}.swift" for name in target.core]
    return core + sorted((ROOT / "abi").glob("*.swift")) + [HERE / "FuzzSupport.swift", HERE / target.entry]


def binary(target: Target) -> Path:
    return OUTPUT / target.name


def build(target: Target) -> str | None:
    """Compiles `target` unless it is up to date; returns an error message on failure."""
    files = sources(target)
    command = [swiftc(), *SWIFT_FLAGS, "-module-name", "Fuzz" + target.entry.removesuffix("Target.swift"),
               *map(str, files), "-o", str(binary(target))]
    stamp = OUTPUT / f"{target.name}.command"
    if binary(target).exists() and stamp.exists() and stamp.read_text() == " ".join(command):
        built = binary(target).stat().st_mtime
        if all(path.stat().st_mtime < built for path in files):
            return None
    process = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if process.returncode != 0:
        return process.stdout[-4000:] or f"swiftc exited with {process.returncode}"
    stamp.write_text(" ".join(command))
    return None


def seed_files(target: Target) -> list[Path]:
    found: list[Path] = []
    for pattern in target.seeds:
        found += sorted(path for path in ROOT.glob(pattern) if path.is_file())
    regressions = REGRESSIONS / target.name
    if regressions.is_dir():
        found += sorted(path for path in regressions.iterdir() if path.is_file() and path.name != "README.md")
    return found


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # Swift's own crash backtracer would take over the signal libFuzzer needs to save the input.
    env["SWIFT_BACKTRACE"] = "enable=no"
    symbolizer = Path(swiftc()).parent / "llvm-symbolizer"
    if symbolizer.exists():
        env.setdefault("ASAN_SYMBOLIZER_PATH", str(symbolizer))
    return env


def failure_summary(log: str) -> str:
    reason = TRAP.search(log) or REPORT.search(log)
    frame = FRAME.search(log)
    artifact = re.search(r"Test unit written to (\S+)", log)
    text = reason[1].strip() if reason else "crashed"
    if frame:
        text += f" at {frame[1]}"
    if artifact:
        text += f"; input saved to {os.path.relpath(artifact[1], ROOT)}"
    return text


def fuzz(target: Target, seconds: int) -> tuple[bool, str]:
    corpus = OUTPUT / "corpus" / target.name
    seeds = OUTPUT / "seeds" / target.name
    crashes = OUTPUT / "crashes" / target.name
    shutil.rmtree(seeds, ignore_errors=True)
    for directory in (corpus, seeds, crashes):
        directory.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(seed_files(target)):
        shutil.copyfile(path, seeds / f"{index:03}-{path.name}")
    log_path = OUTPUT / f"{target.name}.log"
    # New inputs go to the first folder, which persists between runs; the seeds are read only.
    command = [str(binary(target)), f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=4096",
               f"-max_len={target.max_len}", f"-dict={HERE / (target.name + '.dict')}", "-print_final_stats=1",
               f"-artifact_prefix={crashes}/", str(corpus), str(seeds)]
    with open(log_path, "w") as log:
        process = subprocess.run(command, cwd=ROOT, env=environment(), stdout=log, stderr=subprocess.STDOUT)
    text = log_path.read_text(errors="replace")
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    runs_text = f"{int(runs[1])} runs" if runs else "? runs"
    if process.returncode != 0:
        return False, f"CRASH after {runs_text}: {failure_summary(text)} (log {log_path.relative_to(ROOT)})"
    coverage = re.findall(r"\bcov: (\d+) ft: \d+ corp: (\d+)", text)
    detail = f", {coverage[-1][0]} coverage points, corpus {coverage[-1][1]} inputs" if coverage else ""
    return True, f"ok, {runs_text} in {seconds} s{detail}, no crash"


def regress(target: Target) -> tuple[bool, str]:
    files = seed_files(target)
    if not files:
        return False, "no seed or regression inputs found"
    log_path = OUTPUT / f"{target.name}-regress.log"
    # Given files rather than folders, libFuzzer runs each once and stops at the first failure.
    command = [str(binary(target)), "-timeout=10", "-rss_limit_mb=4096",
               f"-artifact_prefix={OUTPUT}/regress-{target.name}-", *map(str, files)]
    with open(log_path, "w") as log:
        process = subprocess.run(command, cwd=ROOT, env=environment(), stdout=log, stderr=subprocess.STDOUT)
    text = log_path.read_text(errors="replace")
    regressions = sum(1 for path in files if path.is_relative_to(REGRESSIONS))
    if process.returncode != 0:
        running = re.findall(r"^Running: (\S+)", text, re.MULTILINE)
        culprit = f" on {Path(running[-1]).relative_to(ROOT)}" if running else ""
        return False, f"CRASH{culprit}: {failure_summary(text)} (log {log_path.relative_to(ROOT)})"
    return True, f"ok, {len(files)} inputs ({regressions} saved regressions), no crash"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--seconds", type=int, help="fuzz each target for this long")
    mode.add_argument("--regress", action="store_true", help="run the seeds and saved regressions once")
    parser.add_argument("--targets", default=",".join(target.name for target in TARGETS),
                        help="comma-separated subset of: " + ", ".join(target.name for target in TARGETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets built and run at once")
    options = parser.parse_args()

    wanted = options.targets.split(",")
    unknown = [name for name in wanted if name not in {target.name for target in TARGETS}]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)}")
    targets = [target for target in TARGETS if target.name in wanted]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(options.jobs, len(targets)))

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = dict(zip((target.name for target in targets), pool.map(build, targets)))
    for name, error in errors.items():
        if error:
            print(f"fuzz-host {name}: BUILD FAILED\n{error}")
    if any(errors.values()):
        return 1
    print(f"fuzz-host: {len(targets)} targets built in {OUTPUT.relative_to(ROOT)} "
          f"({time.monotonic() - started:.0f} s)", flush=True)

    def run(target: Target) -> tuple[bool, str]:
        return regress(target) if options.regress else fuzz(target, options.seconds)

    all_passed = True
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for target, (passed, line) in zip(targets, pool.map(run, targets)):
            all_passed = all_passed and passed
            print(f"fuzz-host {target.name}: {line}", flush=True)
    print(f"fuzz-host: {'all targets passed' if all_passed else 'FAILED'} ({time.monotonic() - started:.0f} s)")
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
