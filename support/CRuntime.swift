// The C library's memory functions, which LLVM's code generation and the Embedded Swift runtime
// call, for every freestanding program in the tree: the kernel and each user program.

/// memcpy, memmove and memset are written so LLVM cannot recognise their loops as calls to
/// themselves (it skips functions with these names). They move words, and every access is
/// aligned to its size: that keeps them safe while the MMU is off and all memory is Device
/// memory, where unaligned accesses fault. A forward copy whose two sides are not aligned alike
/// aligns the destination and builds each word from two aligned source words.
@_silgen_name("memcpy")
func memcpy(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) -> UnsafeMutableRawPointer {
    copyForward(destination, source, count)
    return destination
}

@_silgen_name("memmove")
func memmove(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) -> UnsafeMutableRawPointer {
    let target = UInt(bitPattern: destination)
    let origin = UInt(bitPattern: source)
    if target <= origin || target >= origin + UInt(count) {
        copyForward(destination, source, count)
    } else {
        var index = count
        while index > 0 {
            index -= 1
            destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self), toByteOffset: index, as: UInt8.self)
        }
    }
    return destination
}

@_silgen_name("memset")
func memset(_ destination: UnsafeMutableRawPointer, _ value: Int32, _ count: Int) -> UnsafeMutableRawPointer {
    let byte = UInt8(truncatingIfNeeded: value)
    var index = 0
    if UInt(bitPattern: destination) & 7 == 0 {
        let word = UInt64(byte) &* 0x0101_0101_0101_0101
        let words = destination.assumingMemoryBound(to: UInt64.self)
        let wordCount = count >> 3
        var next = 0
        // Four words a step (two store pairs), then two, then a last one.
        while next &+ 4 <= wordCount {
            words[next] = word
            words[next &+ 1] = word
            words[next &+ 2] = word
            words[next &+ 3] = word
            next &+= 4
        }
        if next &+ 2 <= wordCount {
            words[next] = word
            words[next &+ 1] = word
            next &+= 2
        }
        if next < wordCount {
            words[next] = word
            next &+= 1
        }
        index = next << 3
    }
    while index < count {
        destination.storeBytes(of: byte, toByteOffset: index, as: UInt8.self)
        index += 1
    }
    return destination
}

@inline(__always)
private func copyForward(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) {
    var index = 0
    if (UInt(bitPattern: destination) | UInt(bitPattern: source)) & 7 == 0 {
        // Typed pointers tell the compiler the words are aligned, so they stay 8-byte moves.
        // Four words a step (two load pairs and two store pairs: fewer loop tests per byte),
        // then two, then a last word if one is left.
        let targetWords = destination.assumingMemoryBound(to: UInt64.self)
        let sourceWords = source.assumingMemoryBound(to: UInt64.self)
        let words = count >> 3
        var word = 0
        while word &+ 4 <= words {
            let first = sourceWords[word], second = sourceWords[word &+ 1]
            let third = sourceWords[word &+ 2], fourth = sourceWords[word &+ 3]
            targetWords[word] = first
            targetWords[word &+ 1] = second
            targetWords[word &+ 2] = third
            targetWords[word &+ 3] = fourth
            word &+= 4
        }
        if word &+ 2 <= words {
            let first = sourceWords[word], second = sourceWords[word &+ 1]
            targetWords[word] = first
            targetWords[word &+ 1] = second
            word &+= 2
        }
        if word < words {
            targetWords[word] = sourceWords[word]
            word &+= 1
        }
        index = word << 3
    }
    else if count >= 32 {
        index = copyShifting(destination, source, count)
    }
    while index < count {
        destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self), toByteOffset: index, as: UInt8.self)
        index += 1
    }
}

/// The bulk of a forward copy whose source and destination are not both 8-byte aligned: bytes
/// until the destination is aligned, then whole words, each put together from the two aligned
/// source words it straddles (little-endian: the earlier word's high bytes, the later word's low
/// ones). The first aligned word read may begin before the source and the last may extend past
/// its end, but only within the aligned words that hold its first and last bytes, so never onto
/// another page. How many bytes it moved.
@inline(__always)
private func copyShifting(_ destination: UnsafeMutableRawPointer, _ source: UnsafeRawPointer, _ count: Int) -> Int {
    var index = 0
    while UInt(bitPattern: destination + index) & 7 != 0 {
        destination.storeBytes(of: source.load(fromByteOffset: index, as: UInt8.self), toByteOffset: index, as: UInt8.self)
        index += 1
    }
    let offset = UInt(bitPattern: source + index) & 7
    let target = (destination + index).assumingMemoryBound(to: UInt64.self)
    let words = (count - index) >> 3
    if offset == 0 {
        // Aligned alike after all, once the destination is.
        let origin = (source + index).assumingMemoryBound(to: UInt64.self)
        for word in 0..<words { target[word] = origin[word] }
        return index + words << 3
    }
    let origin = (source + index - Int(offset)).assumingMemoryBound(to: UInt64.self)
    let low = UInt64(offset) << 3
    let high = 64 - low
    var previous = origin[0]
    for word in 0..<words {
        let next = origin[word &+ 1]
        target[word] = previous >> low | next << high
        previous = next
    }
    return index + words << 3
}
