// Copies between kernel memory and a user address space: the only way the kernel reaches memory
// behind a `UserAddress`. Every user pointer and length is checked to lie in the user half before
// use, and the copy itself runs with EL0 permissions (LDTR/STTR in context.S), so an unmapped,
// kernel-only or read-only page is a `badAddress` error for the caller, never a kernel fault.

import AArch64

enum UserMemory {
    /// Whether `[address, address + count)` lies inside user space.
    @inline(__always)
    static func isUserRange(_ address: UserAddress, _ count: UInt64) -> Bool {
        UserSpace.contains(address, count: count)
    }

    static func copyIn(to kernel: UnsafeMutableRawPointer, from user: UserAddress, count: UInt64) throws(KernelError) {
        guard isUserRange(user, count), copy_from_user(kernel, user.value, count) == 0 else { throw .badAddress }
    }

    static func copyOut(to user: UserAddress, from kernel: UnsafeRawPointer, count: UInt64) throws(KernelError) {
        guard isUserRange(user, count), copy_to_user(user.value, kernel, count) == 0 else { throw .badAddress }
    }

    // The IPC fast path's copies, for a message address already checked with `isUserRange`.

    /// Reads label, length and handle count of the message at `user` into `header`.
    @inline(__always)
    static func readMessageHeader(into header: UnsafeMutablePointer<UInt64>, fromChecked user: UserAddress) -> Bool {
        read_message_header(header, user.value) == 0
    }

    /// Writes the header of a message without handles at `user`.
    @inline(__always)
    static func writeMessageHeader(toChecked user: UserAddress, label: UInt64, length: UInt64, sender: UInt64,
                                   reply: UInt64) -> Bool {
        write_message_header(user.value, label, length, sender, reply) == 0
    }

    @inline(__always)
    static func copyIn(to kernel: UnsafeMutableRawPointer, fromChecked user: UserAddress, count: UInt64) -> Bool {
        copy_from_user(kernel, user.value, count) == 0
    }

    @inline(__always)
    static func copyOut(toChecked user: UserAddress, from kernel: UnsafeRawPointer, count: UInt64) -> Bool {
        copy_to_user(user.value, kernel, count) == 0
    }

    /// The exception handler's hook: a fault inside the copy routines resumes at their fixup,
    /// unless it was the first touch of an on-demand page, which is mapped and the copy goes on.
    static func recover(_ frame: ExceptionFrame) -> Bool {
        let faulting = frame.exceptionLinkRegister
        guard faulting >= aarch64_address_of_user_copy_start(), faulting < aarch64_address_of_user_copy_end() else {
            return false
        }
        if mapOnDemand(frame) { return true }
        frame.setRegister(0, frame.syndrome.value)
        frame.exceptionLinkRegister = aarch64_address_of_user_copy_fixup()
        return true
    }

    /// A translation fault on a user address, from EL0 or inside a copy, that was a page of an
    /// on-demand memory object mapped in the address space TTBR0 holds: that page is mapped now,
    /// and the faulting access may be made again. The space TTBR0 holds is the faulting thread's
    /// for EL0, and the one a copy reaches into (an IPC path may have switched to another's).
    static func mapOnDemand(_ frame: ExceptionFrame) -> Bool {
        guard case .translation = frame.syndrome.faultKind, let space = ASIDs.liveSpace else { return false }
        let address = frame.faultAddress
        guard UserSpace.contains(UserAddress(address), count: 1) else { return false }
        return space.mapOnDemand(at: address)
    }
}
