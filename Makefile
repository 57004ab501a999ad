# SwiftKernel build. `make run` and `make test` are all a fresh machine needs: both install
# missing tools first. See README.md for the variables.

# ---- Machine to emulate -------------------------------------------------------------------
# `make` alone builds everything (the first rule below is not that).
.DEFAULT_GOAL := all
# A recipe that fails part way (a missing tool, say) leaves no half-made target behind to be
# taken for a good one by the next make.
.DELETE_ON_ERROR:

# A line starting with `##` documents the variable or target below it: `make help` prints them
# (tools/make_help.py) and README's tables are checked against that output (`make test`). For a
# variable it reads `## TARGETS: meaning`, the targets that use it first.

## run run-uefi debug bench profile fuzz: `cortex-a53`, `cortex-a57`, `cortex-a72`, `max`, ...
CPU      ?= cortex-a72
## run run-uefi debug bench profile fuzz: RAM size (`128M` ... `8G`), read by the kernel from the device tree; `bench` runs at `256M` and `8G`, `profile` at `256M`, unless it is given
MEMORY   ?= 1G
## run run-uefi debug bench fuzz: cores described to the kernel; every one comes online and runs threads
SMP      ?= 1
## run run-uefi debug bench profile fuzz: interrupt controller version, `2` or `3`
GIC      ?= 2
## run run-uefi debug bench profile fuzz: `1` enters the kernel at EL2 (`virtualization=on`); it drops to EL1 itself
EL2      ?= 0
## run run-uefi debug bench profile fuzz: kernel command line: `test` runs the self-tests and powers off, `bench` the benchmarks (`bench=cores` and `bench=scaling` only the multi-core ones), `tick=N` sets the timer tick (1 to 10000 Hz, default 100); `bench`, `profile` and `fuzz` add it after their own
APPEND   ?=
## run run-uefi debug bench fuzz: any further QEMU arguments
QEMU_EXTRA ?=
## run debug fuzz: the disk image attached as a virtio block device (a missing one is made: 16 MiB of zeros); empty: no disk
DISK     ?= build/disk.img
## debug gdb: the TCP port of QEMU's GDB stub
GDB_PORT ?= 1234

## run run-uefi debug bench profile fuzz test soak: the QEMU binary
QEMU     ?= qemu-system-aarch64
comma    := ,
MACHINE   = virt,gic-version=$(GIC)$(if $(filter 1,$(EL2)),$(comma)virtualization=on)
QEMU_ARGS = -M $(MACHINE) -cpu $(CPU) -m $(MEMORY) -smp $(SMP) -nographic \
            -kernel $(IMAGE) -initrd $(INITRD) $(if $(APPEND),-append "$(APPEND)") $(DISK_ARGS) $(QEMU_EXTRA)
# The disk, on a modern (virtio 1.x) transport: QEMU's virtio-mmio is legacy unless told.
DISK_ARGS = $(if $(DISK),-global virtio-mmio.force-legacy=false \
            -drive if=none$(comma)format=raw$(comma)file=$(DISK)$(comma)id=disk -device virtio-blk-device$(comma)drive=disk)

# `make test` and `make soak` boot the machines their scenarios name (tests/boot/scenarios.py,
# tools/soak.py); rather than ignore a machine variable given to them, they say so.
MACHINE_VARIABLES := CPU MEMORY SMP GIC EL2 APPEND QEMU_EXTRA
MACHINE_GIVEN := $(strip $(foreach variable,$(MACHINE_VARIABLES),$(if $(filter command line,$(origin $(variable))),$(variable))))
ifneq ($(and $(MACHINE_GIVEN),$(filter test test-boot test-docs soak,$(MAKECMDGOALS))),)
$(info note: $(MACHINE_GIVEN) not used by make $(filter test test-boot test-docs soak,$(MAKECMDGOALS)): its boots choose their own machines (README, "Make targets and variables"))
endif

# ---- Toolchain ----------------------------------------------------------------------------
## build: the Swift toolchain's `bin` folder: where `swiftc` is on the `PATH`, else `/opt/swift/usr/bin`
SWIFT_BIN ?= $(or $(patsubst %/swiftc,%,$(shell command -v swiftc 2>/dev/null)),/opt/swift/usr/bin)
SWIFTC   := $(SWIFT_BIN)/swiftc
CLANG    := $(SWIFT_BIN)/clang
LD_LLD   := $(SWIFT_BIN)/ld.lld
OBJCOPY  := $(SWIFT_BIN)/llvm-objcopy
SWIFT    := $(SWIFT_BIN)/swift
TARGET   := aarch64-none-none-elf
SYMBOL_TABLE := python3 tools/symbol-table.py --bin $(SWIFT_BIN)

# The kernel never touches FP/SIMD (user state is saved on switch instead) and runs its early
# code with the MMU off, where unaligned accesses fault: hence general-regs-only, strict-align.
SWIFT_FLAGS := -target $(TARGET) -enable-experimental-feature Embedded -wmo -parse-as-library \
               -O -g -module-name Kernel -Xcc -mgeneral-regs-only -Xcc -mstrict-align \
               -Xcc -ffreestanding -I kernel/arch/aarch64/include
# DEBUG=1 adds the kernel's debug checks (heap poisoning, lock order).
## build: `1` adds the kernel's debug checks such as heap poisoning (after `make clean`: the build does not track it)
DEBUG    ?= 0
ifeq ($(DEBUG),1)
SWIFT_FLAGS += -D KERNEL_DEBUG
endif
# FAULTS=1 builds a kernel that fails requests for memory on purpose when booted with faults=N
# (docs/ARCHITECTURE.md, "Kernel memory"); `make test` builds one in build/faults.
## build: `1` builds a kernel that refuses requests for memory on purpose when booted with `faults=N` (after `make clean`)
FAULTS   ?= 0
ifeq ($(FAULTS),1)
SWIFT_FLAGS += -D KERNEL_FAULT_INJECTION
endif
ASM_FLAGS   := --target=aarch64-none-elf -g -Ikernel/arch/aarch64/include
LD_FLAGS    := -T kernel/arch/aarch64/linker.ld --pie --no-dynamic-linker -z notext \
               -z norelro --hash-style=sysv --no-undefined

BUILD    := build
IMAGE    := $(BUILD)/kernel.img
ELF      := $(BUILD)/kernel.elf
ABI_SWIFT    := $(sort $(wildcard abi/*.swift))
KERNEL_SWIFT := $(sort $(shell find kernel -name '*.swift')) $(ABI_SWIFT) support/CRuntime.swift
KERNEL_ASM   := $(wildcard kernel/arch/aarch64/*.S)
KERNEL_HEADERS := $(wildcard kernel/arch/aarch64/include/*)
ASM_OBJECTS  := $(patsubst kernel/arch/aarch64/%.S,$(BUILD)/%.o,$(KERNEL_ASM))

# ---- User programs --------------------------------------------------------------------------
# Every folder in userland/services is a program: its Swift files, the ABI and the runtime, built
# into one Embedded Swift module, linked at 0x400000 and packed into the initial ramdisk. Of the
# kernel's portable core, programs share text formatting, the slab heap, the service manifest's
# reader, and for the program loader the cpio reader and the ELF validator (with the virtual
# address and permission types it uses, VirtualMemory.swift; nothing of the page tables).
USER_PROGRAMS := $(notdir $(wildcard userland/services/*))
USER_SHARED   := $(ABI_SWIFT) support/CRuntime.swift kernel/core/FormattedText.swift kernel/core/KernelHeap.swift kernel/core/AlignedStores.swift \
                 kernel/core/ServiceManifest.swift kernel/core/CPIOArchive.swift kernel/core/ELFImage.swift kernel/core/LittleEndian.swift \
                 kernel/core/VirtualMemory.swift
USER_RUNTIME  := $(wildcard userland/runtime/*.swift)
USER_FLAGS    := -target $(TARGET) -enable-experimental-feature Embedded -wmo -parse-as-library -Osize -g \
                 -Xfrontend -function-sections -I userland/runtime/include
USER_ELVES    := $(patsubst %,$(BUILD)/user/%.elf,$(USER_PROGRAMS))
INITRD        := $(BUILD)/initrd.cpio

$(BUILD)/user/start.o: userland/runtime/start.S
	@mkdir -p $(@D)
	$(CLANG) --target=aarch64-none-elf -c $< -o $@

# Keep the per-program objects: they are intermediate files to make, but rebuilding them is slow.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/user/%.o: $$(wildcard userland/services/%/*.swift) $(USER_RUNTIME) $(USER_SHARED) userland/runtime/include/UserSystemCall.h
	@mkdir -p $(@D)
	$(SWIFTC) $(USER_FLAGS) -module-name $(subst -,_,$*) -c $(USER_RUNTIME) $(USER_SHARED) $(wildcard userland/services/$*/*.swift) -o $@

$(BUILD)/user/%.elf: $(BUILD)/user/%.o $(BUILD)/user/start.o userland/runtime/user.ld
	$(LD_LLD) -T userland/runtime/user.ld -static --no-dynamic-linker --gc-sections --no-undefined \
	    -z max-page-size=4096 -z norelro -o $@ $(BUILD)/user/start.o $<

# Beside the programs, the ramdisk holds the service manifest (userland/manifest) as `manifest`.
# The programs are stripped of their debug information; their symbol tables, for the kernel's
# fault reports, follow the archive in one of their own (docs/ARCHITECTURE.md, "Symbol tables").
# Every file's bytes start on a page, so that loaders map read-only segments from the ramdisk.
$(INITRD): $(USER_ELVES) userland/manifest tools/symbol-table.py tools/pack-ramdisk.py
	@rm -rf $(BUILD)/initrd $(BUILD)/symbols && mkdir -p $(BUILD)/initrd $(BUILD)/symbols
	@for program in $(USER_PROGRAMS); do \
	    $(OBJCOPY) --strip-debug $(BUILD)/user/$$program.elf $(BUILD)/initrd/$$program && \
	    $(SYMBOL_TABLE) --blob $(BUILD)/symbols/$$program $(BUILD)/user/$$program.elf || exit 1; done
	@cp userland/manifest $(BUILD)/initrd/manifest
	python3 tools/pack-ramdisk.py $(BUILD)/initrd $@
	cd $(BUILD)/symbols && ls | cpio --quiet -o -H newc > ../symbols.cpio
	$(SYMBOL_TABLE) --bundle $@ $(BUILD)/symbols.cpio

# The disk driver's volatile access to memory its device shares (userland/services/virtio-blk).
$(BUILD)/user/virtio-blk.o: USER_FLAGS += -I userland/services/virtio-blk/include
$(BUILD)/user/virtio-blk.o: $(wildcard userland/services/virtio-blk/include/*)

# ---- EL0 system call fuzzer (userland/services/fuzz, docs/FUZZING.md) ----------------------
# The fuzzer's register checks are inline assembly in a header of its own.
$(BUILD)/user/fuzz.o: USER_FLAGS += -I userland/services/fuzz/include
$(BUILD)/user/fuzz.o: $(wildcard userland/services/fuzz/include/*)

## fuzz: system calls in the campaign
FUZZ_CALLS   ?= 10000000
## fuzz: the campaign's seed (20 bits); the same seed replays the same campaign
FUZZ_SEED    ?= 1
## fuzz: classes of calls left out, one bit each (docs/FUZZING.md)
FUZZ_FLAGS   ?= 0
## fuzz: seconds before the campaign is stopped
FUZZ_TIMEOUT ?= 36000

# A long campaign: a test-mode boot in which init runs the fuzzer instead of the tests. The whole
# console goes to build/fuzz.log; the fuzzer's own lines (its summary last) and any kernel panic
# with its report are shown, and the target fails unless the fuzzer ended with code 0. FUZZ_FLAGS
# leaves out classes of calls, FUZZ_TIMEOUT (seconds) bounds the run (docs/FUZZING.md).
# `make soak`: the test run with SOAK_RESTARTS kills of a service in use (memory manager, name
# service, echo in turn) and as many crashes of the disk driver under a copy (on a disk of its
# own); ends with "soak: N restarts, N recovered, leaked frames 0, leaked objects 0".
## soak: kills of a service in use, and crashes of the disk driver
SOAK_RESTARTS ?= 10000
## soak: seconds before the run is stopped
SOAK_TIMEOUT  ?= 7200
## the test run with SOAK_RESTARTS kills of services in use and crashes of the disk driver; fails on a leak, a lost restart or a wrong byte
soak: install-deps build
	python3 tools/soak.py --restarts $(SOAK_RESTARTS) --timeout $(SOAK_TIMEOUT)

# A command-line APPEND goes after the fuzzer's own words instead of replacing them.
fuzz: override APPEND := test fuzz=$(FUZZ_CALLS) seed=$(FUZZ_SEED) fuzzflags=$(FUZZ_FLAGS) $(APPEND)
## a long EL0 system call fuzzing campaign; console in build/fuzz.log, fails unless it ends clean
fuzz: install-deps build $(DISK)
	@echo "Fuzzing: $(FUZZ_CALLS) calls from seed $(FUZZ_SEED), flags $(FUZZ_FLAGS); console in $(BUILD)/fuzz.log"
	@timeout $(FUZZ_TIMEOUT) $(QEMU) $(QEMU_ARGS) </dev/null >$(BUILD)/fuzz.log 2>&1; \
	    grep -aE '^fuzz:|^Kernel panic|^  ' $(BUILD)/fuzz.log; \
	    grep -aq 'init ended (exit code 0)' $(BUILD)/fuzz.log
# ---- end of the EL0 system call fuzzer -----------------------------------------------------

APT_PACKAGES := qemu-system-arm gdb-multiarch device-tree-compiler cpio u-boot-qemu qemu-efi-aarch64 mtools dosfstools

# In this order `make help` lists the targets.
.PHONY: help all build run run-uefi debug gdb test test-host test-boot test-docs bench profile fuzz soak fixtures fault-kernel debug-kernel clean \
        install-deps check-deps check-toolchain

## the same as build
all: build

## the targets and the variables, one line each (README shows the same tables)
help:
	@python3 tools/make_help.py

## the kernel image, its ELF with symbols, and the initial ramdisk of the user programs
build: check-toolchain $(IMAGE) $(ELF) $(INITRD)

$(BUILD)/kernel.o: $(KERNEL_SWIFT) $(KERNEL_HEADERS)
	@mkdir -p $(@D)
	$(SWIFTC) $(SWIFT_FLAGS) -c $(KERNEL_SWIFT) -o $@

$(BUILD)/%.o: kernel/arch/aarch64/%.S $(KERNEL_HEADERS)
	@mkdir -p $(@D)
	$(CLANG) $(ASM_FLAGS) -c $< -o $@

# The kernel is linked twice: the first ELF gives tools/symbol-table.py the functions' names,
# sizes and lines; the second carries that table in .kernel_symbols, which lies after .text, so
# no function moves (--check makes sure). docs/ARCHITECTURE.md, "Symbol tables".
$(BUILD)/kernel-unsymbolized.elf: $(BUILD)/kernel.o $(ASM_OBJECTS) kernel/arch/aarch64/linker.ld
	$(LD_LLD) $(LD_FLAGS) -o $@ $(ASM_OBJECTS) $(BUILD)/kernel.o

$(BUILD)/kernel-symbols.o: $(BUILD)/kernel-unsymbolized.elf tools/symbol-table.py
	$(SYMBOL_TABLE) --object $@ $<

$(ELF): $(BUILD)/kernel-unsymbolized.elf $(BUILD)/kernel-symbols.o
	$(LD_LLD) $(LD_FLAGS) -o $@ $(ASM_OBJECTS) $(BUILD)/kernel.o $(BUILD)/kernel-symbols.o
	$(SYMBOL_TABLE) --check $@ || { rm -f $@; exit 1; }

$(IMAGE): $(ELF)
	$(OBJCOPY) -O binary $< $@

# The same kernel built with FAULTS=1, for the fault-injection boot scenario.
FAULT_IMAGE := $(BUILD)/faults/kernel.img
$(FAULT_IMAGE): $(KERNEL_SWIFT) $(KERNEL_HEADERS) $(KERNEL_ASM) kernel/arch/aarch64/linker.ld tools/symbol-table.py
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/faults FAULTS=1 $(BUILD)/faults/kernel.img

## the kernel built with FAULTS=1 in build/faults, for the fault-injection boot tests
fault-kernel: check-toolchain $(FAULT_IMAGE)

# The same kernel built with DEBUG=1 (lock order and heap poisoning checked), for boot scenarios.
DEBUG_IMAGE := $(BUILD)/debug/kernel.img
$(DEBUG_IMAGE): $(KERNEL_SWIFT) $(KERNEL_HEADERS) $(KERNEL_ASM) kernel/arch/aarch64/linker.ld tools/symbol-table.py
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/debug DEBUG=1 $(BUILD)/debug/kernel.img

## the kernel built with DEBUG=1 in build/debug, for the boot tests of its checks
debug-kernel: check-toolchain $(DEBUG_IMAGE)

## build, then boot in QEMU with the machine variables; ends at the shell's prompt (Ctrl-A X quits)
run: install-deps build $(DISK)
	@echo "Booting SwiftKernel: $(QEMU) $(QEMU_ARGS)   (Ctrl-A X quits)"
	$(QEMU) $(QEMU_ARGS)

# A disk for `make run` when none is there yet (the block service, docs/ARCHITECTURE.md "The disk").
ifneq ($(DISK),)
$(DISK):
	@mkdir -p $(@D)
	truncate -s 16M $@
endif

# ---- UEFI boot ------------------------------------------------------------------------------
# The same kernel.img is an EFI application (docs/ARCHITECTURE.md, "UEFI boot"). run-uefi boots
# Debian's edk2 build for QEMU (qemu-efi-aarch64) from flash, with its variable store copied to
# build/, and a FAT EFI system partition on a virtio block device: EFI/BOOT/BOOTAA64.EFI (the
# kernel, the firmware's default for removable media), initrd.cpio and, from APPEND, cmdline.txt.
# acpi=off: edk2 publishes QEMU's device tree only when QEMU gives it no ACPI tables.
UEFI_CODE := /usr/share/AAVMF/AAVMF_CODE.fd
UEFI_VARS := $(BUILD)/uefi-vars.fd
ESP       := $(BUILD)/esp.img
MTOOLS    := MTOOLS_SKIP_CHECK=1
UEFI_QEMU_ARGS = -M $(MACHINE),acpi=off -cpu $(CPU) -m $(MEMORY) -smp $(SMP) -nographic \
            -drive if=pflash,format=raw,readonly=on,file=$(UEFI_CODE) -drive if=pflash,format=raw,file=$(UEFI_VARS) \
            -drive if=none,format=raw,file=$(ESP),id=esp -device virtio-blk-device,drive=esp $(QEMU_EXTRA)

$(ESP): $(IMAGE) $(INITRD)
	@rm -f $@
	mkfs.fat -C -F 16 -n SWIFTKERNEL $@ 16384 >/dev/null
	$(MTOOLS) mmd -i $@ ::/EFI ::/EFI/BOOT
	$(MTOOLS) mcopy -i $@ $(IMAGE) ::/EFI/BOOT/BOOTAA64.EFI
	$(MTOOLS) mcopy -i $@ $(INITRD) ::/initrd.cpio

$(UEFI_VARS):
	@mkdir -p $(@D)
	cp /usr/share/AAVMF/AAVMF_VARS.fd $@

## build, then boot the kernel as an EFI application under edk2 UEFI firmware, from a FAT system partition (Ctrl-A X quits)
run-uefi: install-deps build $(ESP) $(UEFI_VARS)
	printf '%s\n' "$(APPEND)" > $(BUILD)/cmdline.txt
	$(MTOOLS) mcopy -o -i $(ESP) $(BUILD)/cmdline.txt ::/cmdline.txt
	@echo "Booting SwiftKernel under UEFI: $(QEMU) $(UEFI_QEMU_ARGS)   (Ctrl-A X quits)"
	$(QEMU) $(UEFI_QEMU_ARGS)

# QEMU starts halted at the first instruction with a GDB stub; `make gdb` (in a second terminal)
# attaches gdb-multiarch with the kernel's symbols. The ELF is linked at 0 and relocates itself,
# so GDB is told where it runs: QEMU -kernel loads an Image at RAM + 2 MiB (0x40200000) and the
# kernel runs from the linear map, 0xffff000000000000 above that, once the MMU is on. For the
# few instructions before, use LOAD_ADDRESS=0x40200000.
## gdb: where GDB places the kernel's symbols; `0x40200000` for the code before the MMU is on
LOAD_ADDRESS ?= 0xffff000040200000
## gdb: further gdb-multiarch arguments, e.g. `-batch -ex bt`
GDB_ARGS ?=

## as run, but QEMU waits before the first instruction with a GDB stub on GDB_PORT
debug: install-deps build $(DISK)
	@echo "QEMU is halted, waiting for GDB on port $(GDB_PORT). In another terminal run:  make gdb"
	$(QEMU) $(QEMU_ARGS) -S -gdb tcp::$(GDB_PORT)

# GDB 13 misreads the DWARF 5 name index LLVM writes (.debug_names) and then finds no source
# lines; it gets a copy of the kernel's ELF without the index, and builds its own.
GDB_ELF := $(BUILD)/kernel-gdb.elf
$(GDB_ELF): $(ELF)
	@$(OBJCOPY) --remove-section .debug_names $< $@

## gdb-multiarch with the kernel's symbols, attached to make debug's QEMU (in a second terminal)
gdb: $(GDB_ELF)
	gdb-multiarch -q -ex "set architecture aarch64" -ex "symbol-file -o $(LOAD_ADDRESS) $(GDB_ELF)" \
	    -ex "target remote :$(GDB_PORT)" $(GDB_ARGS)

## install, build, run every test suite; ends with one line, `N passed, N failed`
test: install-deps build fault-kernel debug-kernel
	python3 tests/run.py

## the host unit tests and the host fuzzing suite only
test-host:
	python3 tests/run.py --host-only

## the QEMU boot tests only
test-boot: build fault-kernel debug-kernel
	python3 tests/run.py --boot-only

## the documentation's commands and expected output only (tests/docs)
test-docs: install-deps build
	python3 tests/run.py --docs-only

# Instructions per operation under -icount shift=0 (see tools/bench.py and docs/BENCHMARKS.md).
# The machine variables apply; MEMORY, when given, replaces the two default sizes.
## guest instructions per kernel and IPC operation, under `-icount shift=0`, at 256 MiB and 8 GiB
bench: install-deps build
	python3 tools/bench.py --machine $(MACHINE) --cpu $(CPU) --smp $(SMP) --append "$(strip bench $(APPEND))" \
	    $(if $(filter command line,$(origin MEMORY)),--memory $(MEMORY)) $(if $(QEMU_EXTRA),-- $(QEMU_EXTRA))

# Where the instructions of one bench row go, function by function (tools/profile.py and
# docs/BENCHMARKS.md, "Profiling a row"): the bench under QEMU with a TCG plugin built here.
## profile: the `make bench` row to break down, such as `ipc-call-reply-registers-0`; empty: list the rows
ROW      ?=
## profile: how many functions are listed (those with the most instructions per operation first)
TOP      ?= 40
## profile: a function (its symbol or part of its demangled name) whose instructions are also listed with their counts
FUNCTION ?=
## profile: a function (as FUNCTION) whose calls that ran are also listed by call site, such as `swift_release`
CALLERS  ?=
## the instructions of one `make bench` row per function, counted by a QEMU plugin inside its measured loop (at MEMORY, default 256 MiB)
profile: install-deps build $(BUILD)/instruction_profile.so
	python3 tools/profile.py $(if $(ROW),$(ROW),--list) --machine $(MACHINE) --cpu $(CPU) --append "$(strip bench $(APPEND))" \
	    --top $(TOP) $(if $(FUNCTION),--function '$(FUNCTION)') $(if $(CALLERS),--callers '$(CALLERS)') $(if $(filter command line,$(origin MEMORY)),--memory $(MEMORY))

# A shared object for the host's QEMU, built with the toolchain's clang for the host.
$(BUILD)/instruction_profile.so: tools/profile/instruction_profile.c
	@mkdir -p $(@D)
	$(CLANG) -shared -fPIC -O2 -fvisibility=hidden -Wall -Wextra -o $@ $<

## regenerate the device-tree fixtures from QEMU (tests/fixtures/dtb)
fixtures: install-deps
	tools/dump-device-trees.sh

## remove build/ and the host build (.build)
clean:
	rm -rf $(BUILD) .build

# ---- Dependencies -------------------------------------------------------------------------
## check that the Swift toolchain has the Embedded Swift library for aarch64
check-toolchain:
	@test -x $(SWIFTC) || { echo "error: swiftc not found (looked in $(SWIFT_BIN)); install Swift 6.3 or set SWIFT_BIN"; exit 1; }
	@test -d $(SWIFT_BIN)/../lib/swift/embedded/$(TARGET) || \
	    { echo "error: this Swift toolchain has no Embedded Swift standard library for $(TARGET)"; exit 1; }

## report missing tools (QEMU, U-Boot, edk2, GDB, dtc, cpio, mtools)
check-deps: check-toolchain
	@missing=""; for tool in qemu-system-aarch64 gdb-multiarch dtc cpio python3 mcopy mkfs.fat; do \
	    command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	for tool in $(CLANG) $(LD_LLD) $(OBJCOPY); do test -x $$tool || missing="$$missing $$tool"; done; \
	test -f /usr/lib/u-boot/qemu_arm64/u-boot.bin || missing="$$missing u-boot(qemu_arm64)"; \
	test -f $(UEFI_CODE) || missing="$$missing edk2(qemu-efi-aarch64)"; \
	if [ -n "$$missing" ]; then echo "missing:$$missing (make install-deps installs them)"; exit 1; fi; \
	echo "all dependencies present: $$($(QEMU) --version | head -1)"

## install missing tools with apt-get (as root or through sudo)
install-deps: check-toolchain
	@if ! $(MAKE) -s check-deps >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing $(APT_PACKAGES)"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	    elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	    else \
	        echo "please install: $(APT_PACKAGES) (QEMU for aarch64, GDB for several architectures, dtc, cpio, edk2 firmware, mtools)"; exit 1; \
	    fi; \
	fi
	@$(MAKE) -s check-deps

# ---- Host fuzzing ---------------------------------------------------------------------------
# One libFuzzer + AddressSanitizer target per parser of untrusted bytes (device tree, ELF, cpio),
# built into build/fuzz-host/ and run FUZZ_SECONDS each from the fixtures as seeds; fails on any
# crash. fuzz-host-regress replays the seeds and fuzz/regressions/ once. See docs/FUZZING.md.
## fuzz-host: seconds of fuzzing per parser target
FUZZ_SECONDS ?= 60

.PHONY: fuzz-host fuzz-host-regress

## libFuzzer with AddressSanitizer on the device-tree, ELF, cpio and manifest parsers
fuzz-host:
	SWIFTC=$(SWIFTC) python3 fuzz/host/run.py --seconds $(FUZZ_SECONDS)

## each seed and saved crash input through the parser targets once
fuzz-host-regress:
	SWIFTC=$(SWIFTC) python3 fuzz/host/run.py --regress
