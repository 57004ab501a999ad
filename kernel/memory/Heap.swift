// The kernel heap instance behind posix_memalign/free: slabs and page runs from the frame
// allocator, used through the linear map. Before the MMU is on there is no heap, and requests fail.

/// Heap pages are frames of purpose `.heap` (slabs) or `.heapPages` (large blocks); the frame
/// allocator's records tell the two apart and give a run's start and length on free.
struct FrameHeapBackend: HeapBackend {
    mutating func allocatePages(count: Int, alignment: Int, kind: HeapPageKind) -> UnsafeMutableRawPointer? {
        guard PhysicalWindow.isLinearMapActive,
              let first = try? PhysicalFrames.allocate(count: count, alignment: alignment, kind == .slab ? .heap : .heapPages)
        else { return nil }
        return PhysicalWindow.heapPointer(to: first.address)
    }

    mutating func freePages(_ start: UnsafeMutableRawPointer) {
        do throws(FrameAllocatorError) {
            guard let address = PhysicalWindow.physicalAddress(ofHeapPointer: start) else { throw FrameAllocatorError.invalidRequest }
            try PhysicalFrames.free(PageFrame(containing: address))
        } catch {
            kernelPanic("heap pages at \(hex: UInt(bitPattern: start)) could not be returned")
        }
    }

    func pages(containing pointer: UnsafeMutableRawPointer) -> (start: UnsafeMutableRawPointer, count: Int, kind: HeapPageKind)? {
        guard let address = PhysicalWindow.physicalAddress(ofHeapPointer: pointer),
              let run = PhysicalFrames.allocation(containing: PageFrame(containing: address)) else { return nil }
        switch run.purpose {
        case .heap: return (PhysicalWindow.heapPointer(to: run.first.address), run.count, .slab)
        case .heapPages: return (PhysicalWindow.heapPointer(to: run.first.address), run.count, .large)
        default: return nil
        }
    }
}

enum Heap {
    /// Usable once the linear map is on (the backend refuses pages before); touched under `lock`.
    nonisolated(unsafe) static var heap = KernelHeap(backend: FrameHeapBackend(), poisoning: poisoning)
    /// `heap`. In the lock order after KernelAddressSpace.lock and before PhysicalFrames.lock
    /// (LockOrder.heap): slabs and page runs come from the frame allocator.
    static let lock = SpinLock(.heap)

    #if KERNEL_DEBUG
    static let poisoning = true
    #else
    static let poisoning = false
    #endif

    static func allocate(size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        let block = lock.withLock { heap.allocate(size: size, alignment: alignment) }
        if block == nil && statistics.corrupted { kernelPanic("kernel heap corrupted (write after free or overflow)") }
        return block
    }

    static func free(_ pointer: UnsafeMutableRawPointer) {
        let failure: HeapError? = lock.withLock { () -> HeapError? in
            do throws(HeapError) {
                try heap.free(pointer)
                return nil
            } catch {
                return error
            }
        }
        // Only kernel code frees kernel heap memory, so a bad free is a kernel bug.
        if let failure {
            switch failure {
            case .doubleFree: kernelPanic("kernel heap: double free of \(hex: UInt(bitPattern: pointer))")
            case .notHeapPointer: kernelPanic("kernel heap: free of \(hex: UInt(bitPattern: pointer)), not a heap block")
            case .notBlockStart: kernelPanic("kernel heap: free of \(hex: UInt(bitPattern: pointer)), inside a block")
            case .corrupted: kernelPanic("kernel heap: slab header around \(hex: UInt(bitPattern: pointer)) corrupted")
            }
        }
    }

    static var statistics: (counters: HeapStatistics, corrupted: Bool) {
        lock.withLock { (heap.statistics, heap.detectedCorruption) }
    }
}
