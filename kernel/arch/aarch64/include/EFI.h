// The EFI entry's routines and symbols in boot.S and linker.ld (EFIStub.swift, EFIHandoff.swift).
#pragma once
#include "AArch64.h"

void efi_start_kernel(aarch64_u64 image, aarch64_u64 device_tree) __attribute__((noreturn));
void dcache_clean_range(aarch64_u64 start, aarch64_u64 size);
extern aarch64_u64 efi_handoff_address;
extern char _edata;
AARCH64_SYMBOL_ADDRESS(end_of_file, _edata)

static inline __attribute__((always_inline)) aarch64_u64 aarch64_read_efi_handoff_address(void) {
    return *(volatile aarch64_u64 *)&efi_handoff_address;
}
static inline __attribute__((always_inline)) void aarch64_write_efi_handoff_address(aarch64_u64 value) {
    *(volatile aarch64_u64 *)&efi_handoff_address = value;
}
