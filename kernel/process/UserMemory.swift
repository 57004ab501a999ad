// Copies between kernel memory and a user address space. Every user pointer and length is
// checked to lie in the user half before use, and the copy itself runs with EL0 permissions
// (LDTRB/STTRB in context.S), so an unmapped, kernel-only or read-only page is a `badAddress`
// error for the caller, never a kernel fault.

import AArch64

enum UserMemory {
    /// Whether `[address, address + count)` lies inside user space.
    static func isUserRange(_ address: UInt64, _ count: UInt64) -> Bool {
        let (end, overflow) = address.addingReportingOverflow(count)
        return !overflow && address >= UserSpace.start && end <= UserSpace.end
    }

    static func copyIn(to kernel: UnsafeMutableRawPointer, from user: UInt64, count: UInt64) -> KernelError {
        guard isUserRange(user, count) else { return .badAddress }
        return copy_from_user(kernel, user, count) == 0 ? .success : .badAddress
    }

    static func copyOut(to user: UInt64, from kernel: UnsafeRawPointer, count: UInt64) -> KernelError {
        guard isUserRange(user, count) else { return .badAddress }
        return copy_to_user(user, kernel, count) == 0 ? .success : .badAddress
    }

    /// The exception handler's hook: a fault inside the copy routines resumes at their fixup.
    static func recover(_ frame: ExceptionFrame) -> Bool {
        let faulting = frame.exceptionLinkRegister
        guard faulting >= aarch64_address_of_user_copy_start(), faulting < aarch64_address_of_user_copy_end() else {
            return false
        }
        frame.setRegister(0, frame.syndrome.value)
        frame.exceptionLinkRegister = aarch64_address_of_user_copy_fixup()
        return true
    }
}
