// Arm PrimeCell UART (PL011, Arm DDI 0183) as the kernel console: polled transmit, no
// interrupts yet. The base address comes from the device tree; registers are accessed only
// through volatile loads and stores.

import _Volatile

struct PL011 {
    /// The register block's physical address; reached through the physical window, so the same
    /// value works before and after the MMU comes on.
    let registers: PhysicalAddress

    private var base: UInt { UInt(PhysicalWindow.virtualAddress(of: registers)) }

    /// UARTFR bits.
    struct Flags: OptionSet {
        let rawValue: UInt32
        static let busy = Flags(rawValue: 1 << 3)
        static let receiveFIFOEmpty = Flags(rawValue: 1 << 4)
        static let transmitFIFOFull = Flags(rawValue: 1 << 5)
    }

    /// UARTLCR_H bits.
    struct LineControl: OptionSet {
        let rawValue: UInt32
        static let enableFIFOs = LineControl(rawValue: 1 << 4)
        static let eightBitWords = LineControl(rawValue: 0b11 << 5)
    }

    /// UARTCR bits.
    struct Control: OptionSet {
        let rawValue: UInt32
        static let enable = Control(rawValue: 1 << 0)
        static let transmitEnable = Control(rawValue: 1 << 8)
        static let receiveEnable = Control(rawValue: 1 << 9)
    }

    private var data: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x000) }
    private var flagRegister: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x018) }
    private var lineControl: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x02C) }
    private var control: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x030) }
    private var interruptMask: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x038) }
    private var interruptClear: VolatileMappedRegister<UInt32> { .init(unsafeBitPattern: base + 0x044) }

    var flags: Flags { Flags(rawValue: flagRegister.load()) }

    /// Whether the block identifies as a PL011 (TRM 3.3.14-15): part number 0x011 in
    /// UARTPeriphID0-1 and the PrimeCell component ID 0xB105F00D in UARTPCellID0-3, one byte
    /// per register. A device tree with a wrong UART address points at RAM or another device,
    /// whose flags could keep `start` and `write` waiting for good.
    var identifies: Bool {
        func byte(_ offset: UInt) -> UInt32 {
            VolatileMappedRegister<UInt32>(unsafeBitPattern: base + offset).load() & 0xFF
        }
        let part = byte(0xFE0) | (byte(0xFE4) & 0xF) << 8
        let component = byte(0xFF0) | byte(0xFF4) << 8 | byte(0xFF8) << 16 | byte(0xFFC) << 24
        return part == 0x011 && component == 0xB105_F00D
    }

    /// Programs 8N1 with FIFOs, interrupts masked and cleared, transmitter and receiver on.
    /// The baud rate divisors are left as the firmware set them, which keeps the speed the
    /// loader's stdout-path asked for. The sequence follows the TRM: disable, drain, configure, enable.
    func start() {
        control.store(0)
        while flags.contains(.busy) {}
        lineControl.store(LineControl([.eightBitWords, .enableFIFOs]).rawValue)
        interruptMask.store(0)
        interruptClear.store(0x7FF)
        control.store(Control([.enable, .transmitEnable, .receiveEnable]).rawValue)
    }

    /// How long a byte waits for room in the transmit FIFO: far longer than a byte takes to go
    /// at any baud rate.
    static let transmitWaitLimit = 1_000_000
    /// Set when a byte found the FIFO full for the whole wait: the UART does not send (a driver
    /// given its registers may have turned transmission off, or a flow control holds it). Until
    /// it has room again, bytes are dropped at once rather than waited for each time.
    nonisolated(unsafe) static var stalled = false

    /// Sends `byte`, or drops it when the UART has sent nothing for the whole wait: the kernel
    /// writes its log under its lock, and must not spin there for ever.
    func write(byte: UInt8) {
        if Self.stalled {
            guard !flags.contains(.transmitFIFOFull) else { return }
            Self.stalled = false
        }
        var waited = 0
        while flags.contains(.transmitFIFOFull) {
            waited += 1
            if waited == Self.transmitWaitLimit {
                Self.stalled = true
                return
            }
        }
        data.store(UInt32(byte))
    }

    /// A received byte, or nil when none is waiting.
    func read() -> UInt8? {
        guard !flags.contains(.receiveFIFOEmpty) else { return nil }
        return UInt8(truncatingIfNeeded: data.load())
    }

    /// Waits until the last byte has left the shift register (before power-off).
    func flush() {
        while flags.contains(.busy) {}
    }
}
