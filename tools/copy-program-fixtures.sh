#!/usr/bin/env bash
# Refreshes the program fixtures the host tests load: two stripped user programs as the build
# produces them, and a cpio newc archive holding them (made by the cpio tool, as the build does).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/initrd.cpio
cp build/initrd/hello tests/fixtures/elf/hello.elf
cp build/initrd/crasher tests/fixtures/elf/crasher.elf
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/etc"
cp build/initrd/hello "$scratch/hello"
cp build/initrd/crasher "$scratch/crasher"
printf 'SwiftKernel\n' > "$scratch/etc/motd"
(cd "$scratch" && find . | sort | cpio --quiet -o -H newc) > tests/fixtures/cpio/programs.cpio
