// Each system call's arguments and results as typed values, and the registers they travel in.
// The user runtime builds an argument struct and sends its `registers`; the kernel rebuilds the
// struct from the caller's saved registers, and the same in reverse for results. This file is the
// one place that says which register carries what (docs/SYSCALLS.md shows it, and a host test
// holds the two together).

/// x0-x5 as a call's arguments (registers a call does not use are 0).
public struct ArgumentRegisters: Equatable, Sendable {
    public var x0, x1, x2, x3, x4, x5: UInt64
    @inline(__always)
    public init(x0: UInt64 = 0, x1: UInt64 = 0, x2: UInt64 = 0, x3: UInt64 = 0, x4: UInt64 = 0, x5: UInt64 = 0) {
        (self.x0, self.x1, self.x2, self.x3, self.x4, self.x5) = (x0, x1, x2, x3, x4, x5)
    }
}

/// x1-x2 as a successful call's values (x0 holds the status).
public struct ResultRegisters: Equatable, Sendable {
    public var x1, x2: UInt64
    @inline(__always)
    public init(x1: UInt64 = 0, x2: UInt64 = 0) { (self.x1, self.x2) = (x1, x2) }
}

/// A call's arguments: its number, and its fields to and from registers.
public protocol SystemCallArguments {
    associatedtype Result: SystemCallResult
    static var number: SystemCallNumber { get }
    init(registers: ArgumentRegisters)
    var registers: ArgumentRegisters { get }
}

/// Which way a `SystemCall.MemoryCopy` goes: its call number.
public protocol MemoryCopyDirection {
    static var number: SystemCallNumber { get }
}

/// A call's values on success, to and from registers.
public protocol SystemCallResult {
    init(registers: ResultRegisters)
    var registers: ResultRegisters { get }
}

/// The result of a call that returns nothing but its status.
public struct NoValues: SystemCallResult {
    @inline(__always) public init() {}
    @inline(__always) public init(registers: ResultRegisters) {}
    @inline(__always) public var registers: ResultRegisters { ResultRegisters() }
}

/// A new handle, for the calls that create or duplicate one.
public struct NewHandle: SystemCallResult {
    public var handle: Handle
    @inline(__always) public init(handle: Handle) { self.handle = handle }
    @inline(__always) public init(registers: ResultRegisters) { handle = Handle(registers.x1) }
    @inline(__always) public var registers: ResultRegisters { ResultRegisters(x1: handle.value) }
}

/// Where new memory was mapped, for `map` and `memoryMap`.
public struct MappedAddress: SystemCallResult {
    public var address: UserAddress
    @inline(__always) public init(address: UserAddress) { self.address = address }
    @inline(__always) public init(registers: ResultRegisters) { address = UserAddress(registers.x1) }
    @inline(__always) public var registers: ResultRegisters { ResultRegisters(x1: address.value) }
}

/// One argument struct per call, named after it.
public enum SystemCall {
    /// Does nothing and succeeds: the cost of entering and leaving the kernel.
    public struct Null: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.null
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }
    }

    /// The counter's ticks since boot and its frequency.
    public struct Clock: SystemCallArguments {
        public static let number = SystemCallNumber.clock
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        /// `ticks` since boot at `frequency` Hz.
        public struct Result: SystemCallResult {
            public var ticks: UInt64
            public var frequency: UInt64
            @inline(__always) public init(ticks: UInt64, frequency: UInt64) {
                self.ticks = ticks
                self.frequency = frequency
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(ticks: registers.x1, frequency: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: ticks, x2: frequency)
            }
        }
    }

    /// Writes `length` bytes (at most 1 MiB) at `text` to the console.
    public struct DebugWrite: SystemCallArguments {
        public static let number = SystemCallNumber.debugWrite
        public var text: UserAddress
        public var length: UInt64
        @inline(__always) public init(text: UserAddress, length: UInt64) {
            self.text = text
            self.length = length
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(text: UserAddress(registers.x0), length: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: text.value, x1: length)
        }

        /// How many bytes reached the console.
        public struct Result: SystemCallResult {
            public var written: UInt64
            @inline(__always) public init(written: UInt64) {
                self.written = written
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(written: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: written)
            }
        }
    }

    /// Ends the calling process with `code`. Does not return.
    public struct Exit: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.exit
        public var code: UInt64
        @inline(__always) public init(code: UInt64) {
            self.code = code
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(code: registers.x0)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: code)
        }
    }

    /// Gives up the rest of the time slice.
    public struct Yield: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.yield
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }
    }

    /// Sleeps for at least `nanoseconds`.
    public struct Sleep: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.sleep
        public var nanoseconds: UInt64
        @inline(__always) public init(nanoseconds: UInt64) {
            self.nanoseconds = nanoseconds
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(nanoseconds: registers.x0)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: nanoseconds)
        }
    }

    /// The caller's process id and its parent's.
    public struct ProcessID: SystemCallArguments {
        public static let number = SystemCallNumber.processID
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var process: UInt64
            public var parent: UInt64
            @inline(__always) public init(process: UInt64, parent: UInt64) {
                self.process = process
                self.parent = parent
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(process: registers.x1, parent: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: process, x2: parent)
            }
        }
    }

    /// The caller's thread id.
    public struct ThreadID: SystemCallArguments {
        public static let number = SystemCallNumber.threadID
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var thread: UInt64
            @inline(__always) public init(thread: UInt64) {
                self.thread = thread
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(thread: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: thread)
            }
        }
    }

    /// Waits for child `process` to end.
    public struct Wait: SystemCallArguments {
        public static let number = SystemCallNumber.wait
        public var process: UInt64
        @inline(__always) public init(process: UInt64) {
            self.process = process
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: registers.x0)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process)
        }

        /// Its exit code (the ESR for a fault) and why it ended.
        public struct Result: SystemCallResult {
            public var code: UInt64
            public var reason: ExitReason
            @inline(__always) public init(code: UInt64, reason: ExitReason) {
                self.code = code
                self.reason = reason
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(code: registers.x1, reason: ExitReason(rawValue: registers.x2) ?? .killed)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: code, x2: reason.rawValue)
            }
        }
    }

    /// Ends `process` (a child of the caller, or the caller).
    public struct Kill: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.kill
        public var process: UInt64
        @inline(__always) public init(process: UInt64) {
            self.process = process
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: registers.x0)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process)
        }
    }

    /// Maps `bytes` (1 B to 1 GiB, rounded up to pages) of zeroed memory with `access`.
    public struct Map: SystemCallArguments {
        public typealias Result = MappedAddress
        public static let number = SystemCallNumber.map
        public var bytes: UInt64
        public var access: MemoryAccess
        @inline(__always) public init(bytes: UInt64, access: MemoryAccess) {
            self.bytes = bytes
            self.access = access
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(bytes: registers.x0, access: MemoryAccess(rawValue: registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: bytes, x1: access.rawValue)
        }
    }

    /// Unmaps `bytes` at `address`, exactly what one `map` or `memoryMap` returned.
    public struct Unmap: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.unmap
        public var address: UserAddress
        public var bytes: UInt64
        @inline(__always) public init(address: UserAddress, bytes: UInt64) {
            self.address = address
            self.bytes = bytes
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(address: UserAddress(registers.x0), bytes: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: address.value, x1: bytes)
        }
    }

    /// Free and total physical frames.
    public struct MemoryStatistics: SystemCallArguments {
        public static let number = SystemCallNumber.memoryStatistics
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var freeFrames: UInt64
            public var totalFrames: UInt64
            @inline(__always) public init(freeFrames: UInt64, totalFrames: UInt64) {
                self.freeFrames = freeFrames
                self.totalFrames = totalFrames
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(freeFrames: registers.x1, totalFrames: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: freeFrames, x2: totalFrames)
            }
        }
    }

    /// Live processes and the bytes the caller has mapped.
    public struct ProcessStatistics: SystemCallArguments {
        public static let number = SystemCallNumber.processStatistics
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var liveProcesses: UInt64
            public var mappedBytes: UInt64
            @inline(__always) public init(liveProcesses: UInt64, mappedBytes: UInt64) {
                self.liveProcesses = liveProcesses
                self.mappedBytes = mappedBytes
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(liveProcesses: registers.x1, mappedBytes: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: liveProcesses, x2: mappedBytes)
            }
        }
    }

    /// A new port, with every right.
    public struct PortCreate: SystemCallArguments {
        public typealias Result = NewHandle
        public static let number = SystemCallNumber.portCreate
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }
    }

    /// A new notification, with every right.
    public struct NotificationCreate: SystemCallArguments {
        public typealias Result = NewHandle
        public static let number = SystemCallNumber.notificationCreate
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }
    }

    /// Closes `handle`.
    public struct HandleClose: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.handleClose
        public var handle: Handle
        @inline(__always) public init(handle: Handle) {
            self.handle = handle
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(handle: Handle(registers.x0))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: handle.value)
        }
    }

    /// A second handle to the object of `handle` (needs duplicate) with `rights`, a subset of its
    /// own.
    public struct HandleDuplicate: SystemCallArguments {
        public typealias Result = NewHandle
        public static let number = SystemCallNumber.handleDuplicate
        public var handle: Handle
        public var rights: Rights
        @inline(__always) public init(handle: Handle, rights: Rights) {
            self.handle = handle
            self.rights = rights
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(handle: Handle(registers.x0), rights: Rights(rawValue: registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: handle.value, x1: rights.rawValue)
        }
    }

    /// Queues the `IPCMessage` at `message` on `port` (needs send) and returns at once; its handles
    /// move with it.
    public struct Send: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.send
        public var port: Handle
        public var message: UserAddress
        @inline(__always) public init(port: Handle, message: UserAddress) {
            self.port = port
            self.message = message
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(port: Handle(registers.x0), message: UserAddress(registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: port.value, x1: message.value)
        }
    }

    /// Takes the next message from `port` (needs receive) into the `IPCMessage` at `message`,
    /// waiting up to `timeout` nanoseconds (0: not at all, all ones: for ever).
    public struct Receive: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.receive
        public var port: Handle
        public var message: UserAddress
        public var timeout: UInt64
        @inline(__always) public init(port: Handle, message: UserAddress, timeout: UInt64) {
            self.port = port
            self.message = message
            self.timeout = timeout
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(port: Handle(registers.x0), message: UserAddress(registers.x1), timeout: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: port.value, x1: message.value, x2: timeout)
        }
    }

    /// Sends the `IPCMessage` at `message` to `port` (needs send) with a one-time reply handle and
    /// waits for the reply, which overwrites the message.
    public struct Call: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.call
        public var port: Handle
        public var message: UserAddress
        @inline(__always) public init(port: Handle, message: UserAddress) {
            self.port = port
            self.message = message
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(port: Handle(registers.x0), message: UserAddress(registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: port.value, x1: message.value)
        }
    }

    /// Answers a call through `reply` (used up) with the `IPCMessage` at `message`.
    public struct Reply: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.reply
        public var reply: Handle
        public var message: UserAddress
        @inline(__always) public init(reply: Handle, message: UserAddress) {
            self.reply = reply
            self.message = message
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(reply: Handle(registers.x0), message: UserAddress(registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: reply.value, x1: message.value)
        }
    }

    /// Sets `bits` of `notification` (needs signal).
    public struct NotificationSignal: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.notificationSignal
        public var notification: Handle
        public var bits: UInt64
        @inline(__always) public init(notification: Handle, bits: UInt64) {
            self.notification = notification
            self.bits = bits
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(notification: Handle(registers.x0), bits: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: notification.value, x1: bits)
        }
    }

    /// Waits up to `timeout` nanoseconds for `notification` (needs wait) to have bits set.
    public struct NotificationWait: SystemCallArguments {
        public static let number = SystemCallNumber.notificationWait
        public var notification: Handle
        public var timeout: UInt64
        @inline(__always) public init(notification: Handle, timeout: UInt64) {
            self.notification = notification
            self.timeout = timeout
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(notification: Handle(registers.x0), timeout: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: notification.value, x1: timeout)
        }

        /// The bits that were set, now clear.
        public struct Result: SystemCallResult {
            public var bits: UInt64
            @inline(__always) public init(bits: UInt64) {
                self.bits = bits
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(bits: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: bits)
            }
        }
    }

    /// A new zeroed memory object of `bytes` (rounded up to pages, 4 KiB to 1 MiB), with every
    /// right.
    public struct MemoryCreate: SystemCallArguments {
        public typealias Result = NewHandle
        public static let number = SystemCallNumber.memoryCreate
        public var bytes: UInt64
        /// The process whose memory account pays for the object (needs account), or none: the caller.
        public var account: Handle
        public var options: MemoryOptions
        @inline(__always) public init(bytes: UInt64, account: Handle = .none, options: MemoryOptions = []) {
            self.bytes = bytes
            self.account = account
            self.options = options
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(bytes: registers.x0, account: Handle(registers.x1), options: MemoryOptions(rawValue: registers.x2))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: bytes, x1: account.value, x2: options.rawValue)
        }
    }

    /// Maps memory object `memory` (needs map; write too for a writable mapping) with `access`
    /// (never executable).
    public struct MemoryMap: SystemCallArguments {
        public static let number = SystemCallNumber.memoryMap
        public var memory: Handle
        public var access: MemoryAccess
        @inline(__always) public init(memory: Handle, access: MemoryAccess) {
            self.memory = memory
            self.access = access
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(memory: Handle(registers.x0), access: MemoryAccess(rawValue: registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: memory.value, x1: access.rawValue)
        }

        /// Where the mapping is and how long: the object's size, which a holder of the handle
        /// cannot learn otherwise (a server mapping a client's buffer must not trust a size the
        /// client claims).
        public struct Result: SystemCallResult {
            public var address: UserAddress
            public var bytes: UInt64
            @inline(__always) public init(address: UserAddress, bytes: UInt64) {
                self.address = address
                self.bytes = bytes
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(address: UserAddress(registers.x1), bytes: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: address.value, x2: bytes)
            }
        }
    }

    /// Copies `bytes` from `address` in the caller into memory object `memory` (needs write; RAM
    /// only) at byte `offset`, without mapping it: how a loader fills a program's pages.
    public typealias MemoryWrite = MemoryCopy<IntoObject>
    /// Copies `bytes` of memory object `memory` (needs map; RAM only) from byte `offset` to
    /// `address` in the caller, without mapping it.
    public typealias MemoryRead = MemoryCopy<OutOfObject>

    public enum IntoObject: MemoryCopyDirection {
        public static var number: SystemCallNumber { .memoryWrite }
    }
    public enum OutOfObject: MemoryCopyDirection {
        public static var number: SystemCallNumber { .memoryRead }
    }

    /// `memoryWrite` and `memoryRead`, which differ only in direction: an object, a byte offset
    /// in it, an address in the caller and a length.
    public struct MemoryCopy<Direction: MemoryCopyDirection>: SystemCallArguments {
        public typealias Result = NoValues
        public static var number: SystemCallNumber { Direction.number }
        public var memory: Handle
        public var offset: UInt64
        public var address: UserAddress
        public var bytes: UInt64
        @inline(__always) public init(memory: Handle, offset: UInt64, address: UserAddress, bytes: UInt64) {
            self.memory = memory
            self.offset = offset
            self.address = address
            self.bytes = bytes
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(memory: Handle(registers.x0), offset: registers.x1, address: UserAddress(registers.x2),
                      bytes: registers.x3)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: memory.value, x1: offset, x2: address.value, x3: bytes)
        }
    }

    /// Waits up to `timeout` nanoseconds until one of the `count` (1-8) ports and notifications
    /// whose handles are at `handles` is ready (a message queued or the port closed; bits set).
    public struct WaitAny: SystemCallArguments {
        public static let number = SystemCallNumber.waitAny
        public var handles: UserAddress
        public var count: UInt64
        public var timeout: UInt64
        @inline(__always) public init(handles: UserAddress, count: UInt64, timeout: UInt64) {
            self.handles = handles
            self.count = count
            self.timeout = timeout
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(handles: UserAddress(registers.x0), count: registers.x1, timeout: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: handles.value, x1: count, x2: timeout)
        }

        /// The index of the first ready one.
        public struct Result: SystemCallResult {
            public var index: UInt64
            @inline(__always) public init(index: UInt64) {
                self.index = index
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(index: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: index)
            }
        }
    }

    /// Starts a thread in the calling process at `entry` with SP = `stackTop` (16-byte aligned,
    /// memory the caller mapped), x0 = `argument0` and x1 = `argument1`.
    public struct ThreadCreate: SystemCallArguments {
        public static let number = SystemCallNumber.threadCreate
        public var entry: UserAddress
        public var stackTop: UserAddress
        public var argument0: UInt64
        public var argument1: UInt64
        @inline(__always) public init(entry: UserAddress, stackTop: UserAddress, argument0: UInt64, argument1: UInt64) {
            self.entry = entry
            self.stackTop = stackTop
            self.argument0 = argument0
            self.argument1 = argument1
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(entry: UserAddress(registers.x0), stackTop: UserAddress(registers.x1), argument0: registers.x2, argument1: registers.x3)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: entry.value, x1: stackTop.value, x2: argument0, x3: argument1)
        }

        /// The new thread's id.
        public struct Result: SystemCallResult {
            public var thread: UInt64
            @inline(__always) public init(thread: UInt64) {
                self.thread = thread
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(thread: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: thread)
            }
        }
    }

    /// Ends the calling thread; when it is the process's last, the process exits with `code`. Does
    /// not return.
    public struct ThreadExit: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.threadExit
        public var code: UInt64
        @inline(__always) public init(code: UInt64) {
            self.code = code
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(code: registers.x0)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: code)
        }
    }

    /// Kernel heap blocks in use (kernel objects and their storage) and pages the kernel heap
    /// holds: with `memoryStatistics`, every frame is accounted for.
    public struct KernelStatistics: SystemCallArguments {
        public static let number = SystemCallNumber.kernelStatistics
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var heapBlocks: UInt64
            public var heapPages: UInt64
            @inline(__always) public init(heapBlocks: UInt64, heapPages: UInt64) {
                self.heapBlocks = heapBlocks
                self.heapPages = heapPages
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(heapBlocks: registers.x1, heapPages: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: heapBlocks, x2: heapPages)
            }
        }
    }

    /// A memory account: what the kernel holds for a process and its descendants, and the limit.
    /// `process` names the process (needs account); none: the caller.
    public struct MemoryAccount: SystemCallArguments {
        public static let number = SystemCallNumber.memoryAccount
        public var process: Handle
        @inline(__always) public init(process: Handle = .none) {
            self.process = process
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value)
        }

        public struct Result: SystemCallResult {
            public var used: UInt64
            public var limit: UInt64
            @inline(__always) public init(used: UInt64, limit: UInt64) {
                self.used = used
                self.limit = limit
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(used: registers.x1, limit: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: used, x2: limit)
            }
        }
    }

    /// Kernel objects alive machine-wide and the bytes charged to all processes: leak checks.
    public struct KernelObjects: SystemCallArguments {
        public static let number = SystemCallNumber.kernelObjects
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var objects: UInt64
            public var chargedBytes: UInt64
            @inline(__always) public init(objects: UInt64, chargedBytes: UInt64) {
                self.objects = objects
                self.chargedBytes = chargedBytes
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(objects: registers.x1, chargedBytes: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: objects, x2: chargedBytes)
            }
        }
    }

    /// Opens `device` (0 = the console UART) through device-access capability `access` (needs
    /// open), for a user-space driver.
    public struct DeviceOpen: SystemCallArguments {
        public static let number = SystemCallNumber.deviceOpen
        public var access: Handle
        public var device: UInt64
        @inline(__always) public init(access: Handle, device: UInt64) {
            self.access = access
            self.device = device
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(access: Handle(registers.x0), device: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: access.value, x1: device)
        }

        /// A memory object of its registers (map, write, transfer, duplicate) and its interrupt
        /// (bind, transfer, duplicate): two handles a driver can be given without the authority
        /// to open anything else.
        public struct Result: SystemCallResult {
            public var registerMemory: Handle
            public var interrupt: Handle
            @inline(__always) public init(registerMemory: Handle, interrupt: Handle) {
                self.registerMemory = registerMemory
                self.interrupt = interrupt
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(registerMemory: Handle(registers.x1), interrupt: Handle(registers.x2))
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: registerMemory.value, x2: interrupt.value)
            }
        }
    }

    /// Makes `interrupt` (an interrupt handle; needs bind) set bit 0 of `notification` (needs
    /// signal); the line is masked at each signal until `interruptAcknowledge`. One binding per line.
    public struct InterruptBind: SystemCallArguments {
        public static let number = SystemCallNumber.interruptBind
        public var interrupt: Handle
        public var notification: Handle
        @inline(__always) public init(interrupt: Handle, notification: Handle) {
            self.interrupt = interrupt
            self.notification = notification
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(interrupt: Handle(registers.x0), notification: Handle(registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: interrupt.value, x1: notification.value)
        }

        /// The line's identifier at the interrupt controller, for reports: a driver needs only
        /// its handle.
        public struct Result: SystemCallResult {
            public var identifier: UInt64
            @inline(__always) public init(identifier: UInt64) {
                self.identifier = identifier
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(identifier: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: identifier)
            }
        }
    }

    /// Unmasks bound interrupt `interrupt` (needs bind) once its driver has handled it.
    public struct InterruptAcknowledge: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.interruptAcknowledge
        public var interrupt: Handle
        @inline(__always) public init(interrupt: Handle) {
            self.interrupt = interrupt
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(interrupt: Handle(registers.x0))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: interrupt.value)
        }
    }

    /// A server's loop in one call: answers `reply` (none: 0) with the `IPCMessage` at `message`,
    /// then takes the next message from `port` (needs receive) into the same buffer, waiting up to
    /// `timeout` nanoseconds. A caller that died meanwhile is not an error.
    public struct ReplyReceive: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.replyReceive
        public var reply: Handle
        public var message: UserAddress
        public var port: Handle
        public var timeout: UInt64
        @inline(__always) public init(reply: Handle, message: UserAddress, port: Handle, timeout: UInt64) {
            self.reply = reply
            self.message = message
            self.port = port
            self.timeout = timeout
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(reply: Handle(registers.x0), message: UserAddress(registers.x1), port: Handle(registers.x2), timeout: registers.x3)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: reply.value, x1: message.value, x2: port.value, x3: timeout)
        }
    }

    /// A message that came back in registers (`RegisterMessageLayout`): its label and payload
    /// length; the payload is in x9-x16.
    public struct RegisterMessageHeader: SystemCallResult {
        public var label: UInt64
        public var length: UInt64
        @inline(__always) public init(label: UInt64, length: UInt64) {
            self.label = label
            self.length = length
        }
        @inline(__always) public init(registers: ResultRegisters) {
            self.init(label: registers.x1, length: registers.x2)
        }
        @inline(__always) public var registers: ResultRegisters {
            ResultRegisters(x1: label, x2: length)
        }
    }

    /// `Call` with the message in registers (`RegisterMessageLayout`): `label`, `length` (at most
    /// 64) and the payload in x9-x16 go to `port` (needs send), and the answer comes back the same
    /// way. An answer with handles or more than 64 bytes fails the call with `messageTooLong`.
    public struct CallRegisters: SystemCallArguments {
        public typealias Result = RegisterMessageHeader
        public static let number = SystemCallNumber.callRegisters
        public var port: Handle
        public var label: UInt64
        public var length: UInt64
        @inline(__always) public init(port: Handle, label: UInt64, length: UInt64) {
            self.port = port
            self.label = label
            self.length = length
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(port: Handle(registers.x0), label: registers.x1, length: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: port.value, x1: label, x2: length)
        }
    }

    /// `ReplyReceive` with both messages in registers: answers `reply` (none: 0) with `label`,
    /// `length` and the payload in x9-x16, then takes the next message from `port` the same way,
    /// waiting up to `timeout` nanoseconds; x3 then holds its reply handle (0 for a plain send)
    /// and x4 its sender's id. A message with handles or more than 64 bytes is `messageTooLong`
    /// and stays first in the queue, for `receive` to take.
    public struct ReplyReceiveRegisters: SystemCallArguments {
        public typealias Result = RegisterMessageHeader
        public static let number = SystemCallNumber.replyReceiveRegisters
        public var reply: Handle
        public var label: UInt64
        public var length: UInt64
        public var port: Handle
        public var timeout: UInt64
        @inline(__always) public init(reply: Handle, label: UInt64, length: UInt64, port: Handle, timeout: UInt64) {
            self.reply = reply
            self.label = label
            self.length = length
            self.port = port
            self.timeout = timeout
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(reply: Handle(registers.x0), label: registers.x1, length: registers.x2, port: Handle(registers.x3),
                      timeout: registers.x4)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: reply.value, x1: label, x2: length, x3: port.value, x4: timeout)
        }
    }
}

// MARK: Building processes
// The primitives a user-space loader needs (docs/ARCHITECTURE.md, "Who decides what"): the kernel
// makes an empty process, maps memory objects into it where the loader says, and starts its first
// thread; which program, where its segments go and what it is given are the loader's decisions.

extension SystemCall {
    /// A new, empty process named by the `nameLength` bytes (1-64) at `name`, a child of the
    /// caller, whose kernel memory is capped at `memoryLimit` bytes (0: only the caller's caps).
    /// It has no memory and no thread until `processMap` and `processStart`; if every handle to
    /// it is closed before it starts, it ends.
    public struct ProcessCreate: SystemCallArguments {
        public static let number = SystemCallNumber.processCreate
        public var name: UserAddress
        public var nameLength: UInt64
        public var memoryLimit: UInt64
        /// The process whose memory account the new one's hangs under and pays through (needs
        /// account), or none: the caller.
        public var account: Handle
        @inline(__always) public init(name: UserAddress, nameLength: UInt64, memoryLimit: UInt64 = 0,
                                      account: Handle = .none) {
            self.name = name
            self.nameLength = nameLength
            self.memoryLimit = memoryLimit
            self.account = account
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(name: UserAddress(registers.x0), nameLength: registers.x1, memoryLimit: registers.x2,
                      account: Handle(registers.x3))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: name.value, x1: nameLength, x2: memoryLimit, x3: account.value)
        }

        /// A process handle (`Rights.newProcess`) and the new process's id, for reports.
        public struct Result: SystemCallResult {
            public var handle: Handle
            public var process: UInt64
            @inline(__always) public init(handle: Handle, process: UInt64) {
                self.handle = handle
                self.process = process
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(handle: Handle(registers.x1), process: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: handle.value, x2: process)
            }
        }
    }

    /// Maps pages of memory object `memory` (needs map; writable also needs write) at
    /// page-aligned `address` in `process` (needs control) with `access` (never writable and
    /// executable): from byte `offset` (page-aligned) of the object, `bytes` of it (rounded up to
    /// pages; 0: through its end), which must lie in it. The process cannot unmap them itself:
    /// they are part of its program.
    public struct ProcessMap: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.processMap
        public var process: Handle
        public var memory: Handle
        public var address: UserAddress
        public var access: MemoryAccess
        public var offset: UInt64
        public var bytes: UInt64
        @inline(__always) public init(process: Handle, memory: Handle, address: UserAddress, access: MemoryAccess,
                                      offset: UInt64 = 0, bytes: UInt64 = 0) {
            self.process = process
            self.memory = memory
            self.address = address
            self.access = access
            self.offset = offset
            self.bytes = bytes
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0), memory: Handle(registers.x1), address: UserAddress(registers.x2),
                      access: MemoryAccess(rawValue: registers.x3), offset: registers.x4, bytes: registers.x5)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value, x1: memory.value, x2: address.value, x3: access.rawValue, x4: offset,
                              x5: bytes)
        }
    }

    /// Starts the first thread of `process` (needs control; not yet started) at `entry` with
    /// SP = `stackTop` (16-byte aligned, in a writable mapping), x0 = `argument`, x1 = the value
    /// in the new process of `handle` (none: 0; needs transfer), which moves there, and x2 =
    /// `startBlock` (the address of the loader's start block there, or 0).
    public struct ProcessStart: SystemCallArguments {
        public static let number = SystemCallNumber.processStart
        public var process: Handle
        public var entry: UserAddress
        public var stackTop: UserAddress
        public var argument: UInt64
        public var handle: Handle
        public var startBlock: UserAddress
        @inline(__always) public init(process: Handle, entry: UserAddress, stackTop: UserAddress, argument: UInt64,
                                      handle: Handle, startBlock: UserAddress = .none) {
            self.process = process
            self.entry = entry
            self.stackTop = stackTop
            self.argument = argument
            self.handle = handle
            self.startBlock = startBlock
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0), entry: UserAddress(registers.x1), stackTop: UserAddress(registers.x2),
                      argument: registers.x3, handle: Handle(registers.x4), startBlock: UserAddress(registers.x5))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value, x1: entry.value, x2: stackTop.value, x3: argument, x4: handle.value,
                              x5: startBlock.value)
        }

        /// The first thread's id.
        public struct Result: SystemCallResult {
            public var thread: UInt64
            @inline(__always) public init(thread: UInt64) {
                self.thread = thread
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(thread: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: thread)
            }
        }
    }

    /// Moves `handle` (needs transfer) from the caller's table into `process`'s (needs control):
    /// how a loader gives a program more than its start handle. Returns the handle's value there.
    public struct ProcessGive: SystemCallArguments {
        public static let number = SystemCallNumber.processGive
        public var process: Handle
        public var handle: Handle
        @inline(__always) public init(process: Handle, handle: Handle) {
            self.process = process
            self.handle = handle
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0), handle: Handle(registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value, x1: handle.value)
        }

        public struct Result: SystemCallResult {
            public var given: Handle
            @inline(__always) public init(given: Handle) {
                self.given = given
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(given: Handle(registers.x1))
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: given.value)
            }
        }
    }

    /// How `process` (needs wait) ended: waits for it, unless `options` has `.poll` (then
    /// `wouldBlock` while it runs). The caller's own child is collected, as by `wait`.
    public struct ProcessWait: SystemCallArguments {
        public static let number = SystemCallNumber.processWait
        public var process: Handle
        public var options: ProcessWaitOptions
        @inline(__always) public init(process: Handle, options: ProcessWaitOptions = []) {
            self.process = process
            self.options = options
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0), options: ProcessWaitOptions(rawValue: registers.x1))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value, x1: options.rawValue)
        }

        public typealias Result = Wait.Result
    }

    /// Ends `process` (needs control).
    public struct ProcessKill: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.processKill
        public var process: Handle
        @inline(__always) public init(process: Handle) {
            self.process = process
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value)
        }
    }

    /// Makes the end of `process` (needs wait) signal `bits` (not 0) on `notification` (needs
    /// signal), at once if it has ended already: how a supervisor learns of many ends with one
    /// wait. Up to 4 notifications per process (`queueFull` beyond); binding one again changes
    /// its bits.
    public struct ProcessNotify: SystemCallArguments {
        public typealias Result = NoValues
        public static let number = SystemCallNumber.processNotify
        public var process: Handle
        public var notification: Handle
        public var bits: UInt64
        @inline(__always) public init(process: Handle, notification: Handle, bits: UInt64) {
            self.process = process
            self.notification = notification
            self.bits = bits
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0), notification: Handle(registers.x1), bits: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value, x1: notification.value, x2: bits)
        }
    }

    /// What `process` (needs wait) is doing: its live threads and its CPU time, sampled: one
    /// timer tick's worth of nanoseconds for each tick that found one of its threads running.
    /// For figures such as `ps`.
    public struct ProcessInfo: SystemCallArguments {
        public static let number = SystemCallNumber.processInfo
        public var process: Handle
        @inline(__always) public init(process: Handle) {
            self.process = process
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(process: Handle(registers.x0))
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: process.value)
        }

        public struct Result: SystemCallResult {
            public var threads: UInt64
            public var cpuNanoseconds: UInt64
            @inline(__always) public init(threads: UInt64, cpuNanoseconds: UInt64) {
                self.threads = threads
                self.cpuNanoseconds = cpuNanoseconds
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(threads: registers.x1, cpuNanoseconds: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: threads, x2: cpuNanoseconds)
            }
        }
    }

    /// The kernel's IPC counters since boot: messages delivered to a receiver (by any path) and
    /// calls made. For figures such as the shell's `ipc`; they never go down.
    public struct IPCStatistics: SystemCallArguments {
        public static let number = SystemCallNumber.ipcStatistics
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var messages: UInt64
            public var calls: UInt64
            @inline(__always) public init(messages: UInt64, calls: UInt64) {
                self.messages = messages
                self.calls = calls
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(messages: registers.x1, calls: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: messages, x2: calls)
            }
        }
    }

    /// The ports alive machine-wide, and how many of them are closed: their receiver is gone while
    /// send rights still name them (each such right answers `peerClosed`). A closed port ends with
    /// the last right; until its holder uses or closes that right it is no leak, and leak checks
    /// across restarts set such ports apart.
    public struct PortStatistics: SystemCallArguments {
        public static let number = SystemCallNumber.portStatistics
        @inline(__always) public init() {}
        @inline(__always) public init(registers: ArgumentRegisters) {}
        @inline(__always) public var registers: ArgumentRegisters { ArgumentRegisters() }

        public struct Result: SystemCallResult {
            public var ports: UInt64
            public var closed: UInt64
            @inline(__always) public init(ports: UInt64, closed: UInt64) {
                self.ports = ports
                self.closed = closed
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(ports: registers.x1, closed: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: ports, x2: closed)
            }
        }
    }

    /// Takes over the kernel log (kernel/ipc/KernelLog.swift) through the device-access
    /// capability `access` (needs open): from now on the kernel's lines and programs' debug
    /// writes queue for the returned reader, and `notification` (needs signal) gets `bits` when
    /// records wait. One reader at a time; when its last handle goes, the kernel writes to the
    /// UART directly again.
    public struct LogOpen: SystemCallArguments {
        public static let number = SystemCallNumber.logOpen
        public var access: Handle
        public var notification: Handle
        public var bits: UInt64
        @inline(__always) public init(access: Handle, notification: Handle, bits: UInt64) {
            self.access = access
            self.notification = notification
            self.bits = bits
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(access: Handle(registers.x0), notification: Handle(registers.x1), bits: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: access.value, x1: notification.value, x2: bits)
        }

        /// The reader (receive, duplicate, transfer).
        public struct Result: SystemCallResult {
            public var reader: Handle
            @inline(__always) public init(reader: Handle) {
                self.reader = reader
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(reader: Handle(registers.x1))
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: reader.value)
            }
        }
    }

    /// Moves the kernel log's waiting records, oldest first and each whole, into `buffer`
    /// (`capacity` bytes, at least `logRecordMaximum`) through `reader` (needs receive).
    public struct LogRead: SystemCallArguments {
        public static let number = SystemCallNumber.logRead
        public var reader: Handle
        public var buffer: UserAddress
        public var capacity: UInt64
        @inline(__always) public init(reader: Handle, buffer: UserAddress, capacity: UInt64) {
            self.reader = reader
            self.buffer = buffer
            self.capacity = capacity
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(reader: Handle(registers.x0), buffer: UserAddress(registers.x1), capacity: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: reader.value, x1: buffer.value, x2: capacity)
        }

        /// The bytes moved: 0 when nothing waits.
        public struct Result: SystemCallResult {
            public var length: UInt64
            @inline(__always) public init(length: UInt64) {
                self.length = length
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(length: registers.x1)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: length)
            }
        }
    }

    /// The priority of a thread of the caller's process: `thread` is its id (0: the calling
    /// thread), `priority` the level to set, from 0 (background) up to `highest`
    /// (`UInt64.max`: leave it, only read it). Above `highest` is `accessDenied`; a level the
    /// scheduler does not have (4 or more) `invalidArgument`; a thread not of the caller's
    /// process `notFound`. Threads start at `highest`, the default level (1): a thread may go
    /// below it, to let others go first, and back, never above.
    public struct ThreadPriority: SystemCallArguments {
        public static let number = SystemCallNumber.threadPriority
        public var thread: UInt64
        public var priority: UInt64
        @inline(__always) public init(thread: UInt64, priority: UInt64) {
            self.thread = thread
            self.priority = priority
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(thread: registers.x0, priority: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: thread, x1: priority)
        }

        /// The level before the call, and the highest the caller may set.
        public struct Result: SystemCallResult {
            public var previous: UInt64
            public var highest: UInt64
            @inline(__always) public init(previous: UInt64, highest: UInt64) {
                self.previous = previous
                self.highest = highest
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(previous: registers.x1, highest: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: previous, x2: highest)
            }
        }
    }

    /// Where a thread of the caller's process may run: `thread` is its id (0: the calling
    /// thread), `cpus` one bit per CPU index (0: leave it, only read it). A mask naming no CPU
    /// that runs threads is `invalidArgument`; a thread not of the caller's process `notFound`.
    /// New threads start with their creator's mask; a new process's first thread with all CPUs.
    public struct ThreadAffinity: SystemCallArguments {
        public static let number = SystemCallNumber.threadAffinity
        public var thread: UInt64
        public var cpus: UInt64
        @inline(__always) public init(thread: UInt64, cpus: UInt64) {
            self.thread = thread
            self.cpus = cpus
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(thread: registers.x0, cpus: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: thread, x1: cpus)
        }

        /// The mask before the call, and the CPUs that run threads.
        public struct Result: SystemCallResult {
            public var previous: UInt64
            public var online: UInt64
            @inline(__always) public init(previous: UInt64, online: UInt64) {
                self.previous = previous
                self.online = online
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(previous: registers.x1, online: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: previous, x2: online)
            }
        }
    }

    /// One CPU's figures (`CPUStatistics`, `CPUStatistics.size` bytes) written to `buffer`
    /// (`capacity` bytes, at least that many). A CPU that does not run threads is `notFound`.
    public struct CPUStatisticsRead: SystemCallArguments {
        public static let number = SystemCallNumber.cpuStatistics
        public var cpu: UInt64
        public var buffer: UserAddress
        public var capacity: UInt64
        @inline(__always) public init(cpu: UInt64, buffer: UserAddress, capacity: UInt64) {
            self.cpu = cpu
            self.buffer = buffer
            self.capacity = capacity
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(cpu: registers.x0, buffer: UserAddress(registers.x1), capacity: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: cpu, x1: buffer.value, x2: capacity)
        }

        /// The CPUs that run threads, and how many the kernel started.
        public struct Result: SystemCallResult {
            public var online: UInt64
            public var count: UInt64
            @inline(__always) public init(online: UInt64, count: UInt64) {
                self.online = online
                self.count = count
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(online: registers.x1, count: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: online, x2: count)
            }
        }
    }

    /// What device `device` of device-access capability `access` (needs open) is, and where its
    /// registers are: a driver finds its device by kind and reaches its registers at
    /// `registers % 4096` into the mapping of `deviceOpen`'s memory object (devices may share a
    /// page).
    public struct DeviceInfo: SystemCallArguments {
        public static let number = SystemCallNumber.deviceInfo
        public var access: Handle
        public var device: UInt64
        @inline(__always) public init(access: Handle, device: UInt64) {
            self.access = access
            self.device = device
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(access: Handle(registers.x0), device: registers.x1)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: access.value, x1: device)
        }

        /// A `DeviceKind` raw value, and the physical address of the device's registers.
        public struct Result: SystemCallResult {
            public var kind: UInt64
            public var registerAddress: UInt64
            @inline(__always) public init(kind: UInt64, registerAddress: UInt64) {
                self.kind = kind
                self.registerAddress = registerAddress
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(kind: registers.x1, registerAddress: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: kind, x2: registerAddress)
            }
        }
    }

    /// `bytes` (rounded up to pages, at most 1 MiB) of zeroed, physically contiguous memory for
    /// device `device` of device-access capability `access` (needs open) to read and write,
    /// charged to the caller. Mapped non-cacheable. When the object ends, the kernel stops the
    /// device (a virtio device is reset) before the memory is reused.
    public struct DMACreate: SystemCallArguments {
        public static let number = SystemCallNumber.dmaCreate
        public var access: Handle
        public var device: UInt64
        public var bytes: UInt64
        @inline(__always) public init(access: Handle, device: UInt64, bytes: UInt64) {
            self.access = access
            self.device = device
            self.bytes = bytes
        }
        @inline(__always) public init(registers: ArgumentRegisters) {
            self.init(access: Handle(registers.x0), device: registers.x1, bytes: registers.x2)
        }
        @inline(__always) public var registers: ArgumentRegisters {
            ArgumentRegisters(x0: access.value, x1: device, x2: bytes)
        }

        /// The memory object (map, write, duplicate, transfer) and the physical address of its
        /// first byte, which the device uses.
        public struct Result: SystemCallResult {
            public var memory: Handle
            public var deviceAddress: UInt64
            @inline(__always) public init(memory: Handle, deviceAddress: UInt64) {
                self.memory = memory
                self.deviceAddress = deviceAddress
            }
            @inline(__always) public init(registers: ResultRegisters) {
                self.init(memory: Handle(registers.x1), deviceAddress: registers.x2)
            }
            @inline(__always) public var registers: ResultRegisters {
                ResultRegisters(x1: memory.value, x2: deviceAddress)
            }
        }
    }
}
