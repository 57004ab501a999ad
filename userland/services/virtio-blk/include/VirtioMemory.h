// Access to memory a virtio device reads and writes while the driver runs: every load and store is
// volatile (the compiler may neither drop, merge nor reorder it against other volatile accesses),
// and one full barrier orders them for the other side. Plain C with no includes, so the same header
// serves the Embedded user build and the host tests.
#ifndef VIRTIO_MEMORY_H
#define VIRTIO_MEMORY_H

static inline unsigned short virtio_load16(const void *address) {
    return *(const volatile unsigned short *)address;
}
static inline unsigned int virtio_load32(const void *address) {
    return *(const volatile unsigned int *)address;
}
static inline unsigned long long virtio_load64(const void *address) {
    return *(const volatile unsigned long long *)address;
}
static inline void virtio_store16(void *address, unsigned short value) {
    *(volatile unsigned short *)address = value;
}
static inline void virtio_store32(void *address, unsigned int value) {
    *(volatile unsigned int *)address = value;
}
static inline void virtio_store64(void *address, unsigned long long value) {
    *(volatile unsigned long long *)address = value;
}

// Orders every earlier load and store against every later one, as seen by the device (another
// agent in the inner shareable domain): `dmb ish` on AArch64, `mfence` on x86-64.
static inline void virtio_memory_barrier(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#endif
