//! The allocators' housekeeping: after a bulk load of links, the free pages
//! its queues left behind go back to the system.
//!
//! One allocator serves the whole process: mimalloc is Rust's global
//! allocator in the binary, and it also takes the C library's `malloc` and
//! `free` (libmimalloc-sys's `override`), which librdkafka allocates with for
//! every message, header and batch. With glibc's allocator those calls were
//! about a third of the shipper thread's time (`loadtest/profile.sh kafka`).

/// Hands the allocator's free pages back to the system. A bulk load's queues
/// are many blocks of tens of kilobytes, which an allocator keeps for reuse;
/// kept, they would add tens of bytes a link to the resident size of the map.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: the call only releases free memory; it takes no pointers.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
