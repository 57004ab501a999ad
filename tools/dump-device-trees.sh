#!/usr/bin/env bash
# Regenerates the device-tree fixtures in tests/fixtures/dtb from QEMU's own virt machine
# (`-machine dumpdtb=FILE`), one per configuration the kernel is tested on, then strips QEMU's
# trailing padding. Run it after a QEMU upgrade; the host tests read the results.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures/dtb
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# A loader only writes /chosen bootargs and initrd properties when it has a kernel to boot; an
# empty image is enough for a dump, since QEMU exits before running anything.
head -c 4096 /dev/zero > "$scratch/kernel"
printf 'initrd' > "$scratch/initrd"
with_kernel=(-kernel "$scratch/kernel" -initrd "$scratch/initrd" -append "test console=ttyAMA0")

dump() {
    local name=$1 machine=$2; shift 2
    qemu-system-aarch64 -M "virt,$machine,dumpdtb=$out/$name.dtb" -nographic -display none "$@" >/dev/null
    python3 tools/compact-dtb.py "$out/$name.dtb"
}

dump a72-128m-gicv2        gic-version=2 -cpu cortex-a72 -m 128M -smp 1
dump a72-1g-gicv3-smp4     gic-version=3 -cpu cortex-a72 -m 1G -smp 4 "${with_kernel[@]}"
dump a53-4g-gicv2          gic-version=2 -cpu cortex-a53 -m 4G -smp 1
dump max-1g-el2-gicv3      virtualization=on,gic-version=3 -cpu max -m 1G -smp 2 "${with_kernel[@]}"
dump a57-3g-gicv3-smp4     gic-version=3 -cpu cortex-a57 -m 3G -smp 4
dump a72-2g-numa           gic-version=3 -cpu cortex-a72 -m 2G -smp 2 \
    -object memory-backend-ram,id=ram0,size=1G -object memory-backend-ram,id=ram1,size=1G \
    -numa node,nodeid=0,cpus=0,memdev=ram0 -numa node,nodeid=1,cpus=1,memdev=ram1

# One tree QEMU cannot produce: /memreserve/ entries and /reserved-memory, compiled from source.
dtc -q -I dts -O dtb -o "$out/reserved-memory.dtb" tests/fixtures/dtb/reserved-memory.dts
