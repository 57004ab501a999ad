// The system call ABI, one module compiled into the kernel and into every user program and
// documented in docs/SYSCALLS.md (a host test keeps the two in step, registers included). A call
// puts its number in x8 and its arguments in x0-x5 (each call's argument struct in
// SystemCalls.swift says which register holds what), then executes `svc #0`. It gets a status in
// x0 (0 = success, else a `KernelError`) and, on success, up to two values in x1-x2. All other
// registers are preserved.

public enum SystemCallNumber: UInt64, CaseIterable, Sendable {
    case null = 0
    case clock = 1
    case debugWrite = 2
    case exit = 3
    case yield = 4
    case sleep = 5
    case processID = 6
    case threadID = 7
    /// Retired: it loaded a program by name in the kernel. Programs are loaded in user space
    /// now (ProgramLoader, the process manager); the number answers unknownSystemCall. It stays
    /// a case so that the numbers remain one range, which the dispatch checks with one compare.
    case retired8 = 8
    case wait = 9
    case kill = 10
    case map = 11
    case unmap = 12
    case memoryStatistics = 13
    case processStatistics = 14
    case portCreate = 15
    case notificationCreate = 16
    case handleClose = 17
    case handleDuplicate = 18
    case send = 19
    case receive = 20
    case call = 21
    case reply = 22
    case notificationSignal = 23
    case notificationWait = 24
    case memoryCreate = 25
    case memoryMap = 26
    case waitAny = 27
    case threadCreate = 28
    case threadExit = 29
    case kernelStatistics = 30
    case deviceOpen = 31
    case interruptBind = 32
    case interruptAcknowledge = 33
    case replyReceive = 34
    case memoryAccount = 35
    case kernelObjects = 36
    case processCreate = 37
    case processMap = 38
    case processStart = 39
    case processGive = 40
    case processWait = 41
    case processKill = 42
    case processNotify = 43
    case ipcStatistics = 44
    case processInfo = 45
    case logOpen = 46
    case logRead = 47
    case threadAffinity = 48
    case cpuStatistics = 49
    case deviceInfo = 50
    case dmaCreate = 51
    case threadPriority = 52
    case callRegisters = 53
    case replyReceiveRegisters = 54
    case memoryWrite = 55
    case memoryRead = 56
    case portStatistics = 57
}

/// The status a successful call leaves in x0; any other value is a `KernelError`.
public let systemCallSuccess: UInt64 = 0
