# SwiftKernel build. `make run` and `make test` are all a fresh machine needs: both install
# missing tools first. See README.md for the variables.

# ---- Machine to emulate -------------------------------------------------------------------
CPU      ?= cortex-a72
MEMORY   ?= 1G
SMP      ?= 1
GIC      ?= 2
# EL2=1 enters the kernel at EL2 (virtualization=on); the kernel drops to EL1 itself.
EL2      ?= 0
APPEND   ?=
QEMU_EXTRA ?=
GDB_PORT ?= 1234

QEMU     ?= qemu-system-aarch64
MACHINE  := virt,gic-version=$(GIC)$(if $(filter 1,$(EL2)),$(comma)virtualization=on)
comma    := ,
QEMU_ARGS = -M $(MACHINE) -cpu $(CPU) -m $(MEMORY) -smp $(SMP) -nographic \
            -kernel $(IMAGE) -initrd $(INITRD) $(if $(APPEND),-append "$(APPEND)") $(QEMU_EXTRA)

# ---- Toolchain ----------------------------------------------------------------------------
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
ifeq ($(DEBUG),1)
SWIFT_FLAGS += -D KERNEL_DEBUG
endif
# FAULTS=1 builds a kernel that fails requests for memory on purpose when booted with faults=N
# (docs/ARCHITECTURE.md, "Kernel memory"); `make test` builds one in build/faults.
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
# reader, and for the program loader the cpio reader and the ELF validator (with the address and
# permission types it uses).
USER_PROGRAMS := $(notdir $(wildcard userland/services/*))
USER_SHARED   := $(ABI_SWIFT) support/CRuntime.swift kernel/core/FormattedText.swift kernel/core/KernelHeap.swift \
                 kernel/core/ServiceManifest.swift kernel/core/CPIOArchive.swift kernel/core/ELFImage.swift \
                 kernel/core/PhysicalMemory.swift kernel/core/PhysicalAddress.swift kernel/core/PageTable.swift
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
$(INITRD): $(USER_ELVES) userland/manifest tools/symbol-table.py
	@rm -rf $(BUILD)/initrd $(BUILD)/symbols && mkdir -p $(BUILD)/initrd $(BUILD)/symbols
	@for program in $(USER_PROGRAMS); do \
	    $(OBJCOPY) --strip-debug $(BUILD)/user/$$program.elf $(BUILD)/initrd/$$program && \
	    $(SYMBOL_TABLE) --blob $(BUILD)/symbols/$$program $(BUILD)/user/$$program.elf || exit 1; done
	@cp userland/manifest $(BUILD)/initrd/manifest
	cd $(BUILD)/initrd && ls | cpio --quiet -o -H newc > ../initrd.cpio
	cd $(BUILD)/symbols && ls | cpio --quiet -o -H newc > ../symbols.cpio
	$(SYMBOL_TABLE) --bundle $@ $(BUILD)/symbols.cpio

# ---- EL0 system call fuzzer (userland/services/fuzz, docs/FUZZING.md) ----------------------
# The fuzzer's register checks are inline assembly in a header of its own.
$(BUILD)/user/fuzz.o: USER_FLAGS += -I userland/services/fuzz/include
$(BUILD)/user/fuzz.o: $(wildcard userland/services/fuzz/include/*)

FUZZ_CALLS   ?= 10000000
FUZZ_SEED    ?= 1
FUZZ_FLAGS   ?= 0
FUZZ_TIMEOUT ?= 36000

# A long campaign: a test-mode boot in which init runs the fuzzer instead of the tests. The whole
# console goes to build/fuzz.log; the fuzzer's own lines (its summary last) and any kernel panic
# with its report are shown, and the target fails unless the fuzzer ended with code 0. FUZZ_FLAGS
# leaves out classes of calls, FUZZ_TIMEOUT (seconds) bounds the run (docs/FUZZING.md).
# `make soak`: the test run with SOAK_RESTARTS kills of a service in use (memory manager, name
# service, echo in turn); ends with "soak: N restarts, N recovered, leaked frames 0, leaked objects 0".
SOAK_RESTARTS ?= 10000
SOAK_TIMEOUT  ?= 7200
soak: install-deps build
	python3 tools/soak.py --restarts $(SOAK_RESTARTS) --timeout $(SOAK_TIMEOUT)

fuzz: APPEND = test fuzz=$(FUZZ_CALLS) seed=$(FUZZ_SEED) fuzzflags=$(FUZZ_FLAGS)
fuzz: install-deps build
	@echo "Fuzzing: $(FUZZ_CALLS) calls from seed $(FUZZ_SEED), flags $(FUZZ_FLAGS); console in $(BUILD)/fuzz.log"
	@timeout $(FUZZ_TIMEOUT) $(QEMU) $(QEMU_ARGS) </dev/null >$(BUILD)/fuzz.log 2>&1; \
	    grep -aE '^fuzz:|^Kernel panic|^  ' $(BUILD)/fuzz.log; \
	    grep -aq 'init ended (exit code 0)' $(BUILD)/fuzz.log
# ---- end of the EL0 system call fuzzer -----------------------------------------------------

APT_PACKAGES := qemu-system-arm gdb-multiarch device-tree-compiler cpio u-boot-qemu

.PHONY: soak all build run debug gdb bench test test-host test-boot bench clean install-deps check-deps fixtures fault-kernel fuzz

all: build

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

fault-kernel: check-toolchain $(FAULT_IMAGE)

run: install-deps build
	@echo "Booting SwiftKernel: $(QEMU) $(QEMU_ARGS)   (Ctrl-A X quits)"
	$(QEMU) $(QEMU_ARGS)

# QEMU starts halted at the first instruction with a GDB stub; `make gdb` (in a second terminal)
# attaches gdb-multiarch with the kernel's symbols. The ELF is linked at 0 and relocates itself,
# so GDB is told where it runs: QEMU -kernel loads an Image at RAM + 2 MiB (0x40200000) and the
# kernel runs from the linear map, 0xffff000000000000 above that, once the MMU is on. For the
# few instructions before, use LOAD_ADDRESS=0x40200000.
LOAD_ADDRESS ?= 0xffff000040200000

debug: install-deps build
	@echo "QEMU is halted, waiting for GDB on port $(GDB_PORT). In another terminal run:  make gdb"
	$(QEMU) $(QEMU_ARGS) -S -gdb tcp::$(GDB_PORT)

gdb:
	gdb-multiarch -q -ex "set architecture aarch64" -ex "symbol-file -o $(LOAD_ADDRESS) $(ELF)" \
	    -ex "target remote :$(GDB_PORT)" $(GDB_ARGS)

test: install-deps build fault-kernel
	python3 tests/run.py

test-host:
	python3 tests/run.py --host-only

test-boot: build
	python3 tests/run.py --boot-only

# Instructions per operation under -icount shift=0 (see tools/bench.py and docs/BENCHMARKS.md).
bench: install-deps build
	python3 tools/bench.py

fixtures: install-deps
	tools/dump-device-trees.sh

clean:
	rm -rf $(BUILD) .build

# ---- Dependencies -------------------------------------------------------------------------
check-toolchain:
	@test -x $(SWIFTC) || { echo "error: swiftc not found (looked in $(SWIFT_BIN)); install Swift 6.3 or set SWIFT_BIN"; exit 1; }
	@test -d $(SWIFT_BIN)/../lib/swift/embedded/$(TARGET) || \
	    { echo "error: this Swift toolchain has no Embedded Swift standard library for $(TARGET)"; exit 1; }

check-deps: check-toolchain
	@missing=""; for tool in qemu-system-aarch64 gdb-multiarch dtc cpio python3; do \
	    command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	for tool in $(CLANG) $(LD_LLD) $(OBJCOPY); do test -x $$tool || missing="$$missing $$tool"; done; \
	test -f /usr/lib/u-boot/qemu_arm64/u-boot.bin || missing="$$missing u-boot(qemu_arm64)"; \
	if [ -n "$$missing" ]; then echo "missing:$$missing (make install-deps installs them)"; exit 1; fi; \
	echo "all dependencies present: $$($(QEMU) --version | head -1)"

install-deps: check-toolchain
	@if ! $(MAKE) -s check-deps >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing $(APT_PACKAGES)"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	    elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	    else \
	        echo "please install: $(APT_PACKAGES) (QEMU for aarch64, GDB for several architectures, dtc, cpio)"; exit 1; \
	    fi; \
	fi
	@$(MAKE) -s check-deps

# ---- Host fuzzing ---------------------------------------------------------------------------
# One libFuzzer + AddressSanitizer target per parser of untrusted bytes (device tree, ELF, cpio),
# built into build/fuzz-host/ and run FUZZ_SECONDS each from the fixtures as seeds; fails on any
# crash. fuzz-host-regress replays the seeds and fuzz/regressions/ once. See docs/FUZZING.md.
FUZZ_SECONDS ?= 60

.PHONY: fuzz-host fuzz-host-regress

fuzz-host:
	SWIFTC=$(SWIFTC) python3 fuzz/host/run.py --seconds $(FUZZ_SECONDS)

fuzz-host-regress:
	SWIFTC=$(SWIFTC) python3 fuzz/host/run.py --regress
