// The core uses the system call ABI's types (handles, rights, errors). In the kernel image and in
// user programs the ABI's files are compiled into the same module; on the host they are the
// `ABI` library, which this re-exports to the core's users and tests.
#if canImport(ABI)
@_exported import ABI
#endif
