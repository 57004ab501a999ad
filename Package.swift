// swift-tools-version: 6.1
// The portable kernel core as a host library, with its unit tests. The kernel image itself is
// built by the Makefile, which compiles the same sources with Embedded Swift for
// aarch64-none-none-elf together with the arch layer, drivers and boot sequence.
import PackageDescription

let package = Package(
    name: "SwiftKernel",
    products: [
        .library(name: "KernelCore", targets: ["KernelCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // The system call ABI, shared by kernel and user programs.
        .target(name: "ABI", path: "abi"),
        .target(name: "KernelCore", dependencies: ["ABI"], path: "kernel/core"),
        // What typed bytes mean: the decoder of escape sequences and the console's line discipline.
        .target(name: "TerminalInput", path: "userland",
                sources: ["runtime/TerminalInput.swift", "services/console/LineDiscipline.swift"]),
        // A reading of the system clock and its conversions between ticks and time.
        .target(name: "UserClock", path: "userland", sources: ["runtime/ClockReading.swift"]),
        // The virtio-blk driver's queue and request bookkeeping, over the driver's header of
        // volatile loads, stores and the barrier (a module map only, nothing to link).
        .systemLibrary(name: "VirtioMemory", path: "userland/services/virtio-blk/include"),
        .target(name: "Virtio", dependencies: ["VirtioMemory"], path: "userland",
                sources: ["services/virtio-blk/Virtqueue.swift", "services/virtio-blk/BlockRequests.swift"]),
        .testTarget(
            name: "KernelCoreTests",
            dependencies: [
                "KernelCore",
                "ABI",
                "TerminalInput",
                "UserClock",
                "Virtio",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            path: "tests/host"
        ),
    ]
)
