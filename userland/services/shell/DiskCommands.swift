// The shell's `disk` command: the disk as the block service reports it, and single sectors read
// and written through it (userland/runtime/BlockProtocol.swift; docs/ARCHITECTURE.md, "The disk").

enum DiskCommands {
    /// `disk`, `disk read SECTOR`, `disk write SECTOR TEXT...`.
    static func disk(_ words: inout Words) {
        guard let disk = ProgramStart.handle(.disk) else {
            System.print("disk: this shell was not given the disk (the manifest's devices=disk)")
            return
        }
        var device: BlockDevice
        do throws(KernelError) {
            device = try BlockDevice(disk: disk, bufferBytes: BlockProtocol.sectorSize)
        } catch {
            System.print("disk: no block service (\(error)): is a disk attached?")
            return
        }
        defer { device.close() }
        guard let info = try? device.info() else {
            System.print("disk: the block service does not answer")
            return
        }
        if words.count == 1 {
            // The service's registration under its public name counts its instances.
            var generation: UInt64 = 0
            if let found = try? SystemServices.lookup(BlockProtocol.serviceName, attempts: 1) {
                try? IPC.close(found.port)
                generation = found.generation
            }
            let restarts = generation > 0 ? generation - 1 : 0
            System.print("disk: \(info.sectors) sectors of 512 bytes (\(info.sectors / 2048) MiB)\(info.features.contains(.readOnly) ? ", read-only" : "")\(info.features.contains(.flush) ? ", write cache" : "")")
            System.print("disk: block service restarted \(restarts) times; this instance served \(info.served) requests and reset the device \(info.resets) times")
            return
        }
        guard words.count >= 3, let sector = words.number(2), sector < info.sectors else {
            System.print("disk: usage: disk | disk read SECTOR | disk write SECTOR TEXT (SECTOR below \(info.sectors))")
            return
        }
        if words.equals(1, "read") && words.count == 3 {
            read(sector, &device)
        } else if words.equals(1, "write") && words.count >= 4 {
            write(sector, words, &device)
        } else {
            System.print("disk: usage: disk | disk read SECTOR | disk write SECTOR TEXT")
        }
    }

    /// Shows the sector's first 64 bytes, in hex and as text.
    static func read(_ sector: UInt64, _ device: inout BlockDevice) {
        do throws(KernelError) {
            try device.read(sector: sector, count: 1)
        } catch {
            System.print("disk: read of sector \(sector) failed: \(error)")
            return
        }
        let bytes = device.buffer.assumingMemoryBound(to: UInt8.self)
        for row in 0..<4 {
            var line = TextLine()
            line.write("  ")
            for column in 0..<16 {
                let byte = bytes[row * 16 + column]
                line.write(byte: hexDigit(byte >> 4))
                line.write(byte: hexDigit(byte & 0xF))
                line.write(" ")
            }
            line.write(" ")
            for column in 0..<16 {
                let byte = bytes[row * 16 + column]
                line.write(byte: byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "."))
            }
            System.print(FormattedText(line: line))
        }
    }

    /// Writes the rest of the line (from word 3), zero-filled to a whole sector, and flushes it.
    static func write(_ sector: UInt64, _ words: Words, _ device: inout BlockDevice) {
        device.buffer.initializeMemory(as: UInt8.self, repeating: 0, count: BlockProtocol.sectorSize)
        let length = (try? words.with(3, through: words.count - 1) { text throws(KernelError) -> Int in
            let count = min(text.count, BlockProtocol.sectorSize)
            device.buffer.copyMemory(from: text.baseAddress!, byteCount: count)
            return count
        }) ?? 0
        do throws(KernelError) {
            try device.write(sector: sector, count: 1)
            try device.flush()
        } catch {
            System.print("disk: write of sector \(sector) failed: \(error)")
            return
        }
        System.print("disk: wrote \(length) bytes to sector \(sector)")
    }

    static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}
