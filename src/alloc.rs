//! The allocators' housekeeping: after a bulk load of links, the free pages
//! its queues left behind go back to the system.

/// Hands the allocators' free pages back to the system. A bulk load's queues
/// are many blocks of tens of kilobytes, which an allocator keeps for reuse;
/// kept, they would add tens of bytes a link to the resident size of the map.
/// The binary allocates with mimalloc; tests and tools with the C allocator.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: both calls only release free memory; they take no pointers.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}
