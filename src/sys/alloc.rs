//! The process's allocator, and its housekeeping: after a bulk load of
//! links, the free pages its queues left behind go back to the system.
//!
//! One allocator serves the whole process: mimalloc is Rust's global
//! allocator in the binary (`Allocator`), and it also takes the C library's
//! `malloc` and `free` (libmimalloc-sys's `override`), which librdkafka
//! allocates with for every message, header and batch. With glibc's
//! allocator those calls were about a third of the shipper thread's time
//! (`loadtest/profile.sh kafka`).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as Rust's global allocator, asked the cheapest way.
///
/// The `mimalloc` crate's allocator sends every request through
/// `mi_malloc_aligned`, which works out each time whether the size class
/// is aligned enough; callgrind put that at about a tenth of the request
/// path's instructions. Every block `mi_malloc` hands out is aligned to
/// `MALLOC_ALIGN` bytes, or to its own size when smaller (its size classes
/// are whole multiples of 16 bytes but the 8-byte one), so a request that
/// asks no more than that takes the plain calls, as Rust's own `System`
/// allocator does with the C library's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

/// What every `mi_malloc` block of at least this size is aligned to
/// (mimalloc's `MI_MAX_ALIGN_SIZE` on the platforms we build for).
const MALLOC_ALIGN: usize = 16;

/// Whether a block of `size` bytes from the plain calls is aligned enough.
fn plain(align: usize, size: usize) -> bool {
    align <= MALLOC_ALIGN && align <= size
}

// SAFETY: each call hands the caller's layout to the mimalloc function
// that guarantees it: the plain ones only where `plain` says their blocks
// are aligned enough, the aligned ones otherwise. `mi_free` and
// `mi_realloc` take blocks of either kind.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from one of the calls above.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see the impl; `ptr` came from one of the calls above.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Hands the allocator's free pages back to the system. A bulk load's queues
/// are many blocks of tens of kilobytes, which an allocator keeps for reuse;
/// kept, they would add tens of bytes a link to the resident size of the map.
pub fn release_free_memory() {
    // SAFETY: the call only releases free memory; it takes no pointers.
    unsafe { mi::mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a Rust type can have up to 4 KiB, through
    /// each of the four calls: the block is aligned, usable and zeroed
    /// where asked.
    #[test]
    fn blocks_are_aligned_as_asked() {
        let a = Allocator;
        let mut align = 1;
        while align <= 4096 {
            for size in (align..=4096).step_by(align) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is freed once, with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null() && p as usize % align == 0, "{layout:?}");
                    p.write_bytes(0xa5, size);
                    let z = a.alloc_zeroed(layout);
                    assert!(z as usize % align == 0, "{layout:?}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    let grown = a.realloc(p, layout, size * 2);
                    assert!(grown as usize % align == 0, "{layout:?} grown");
                    assert_eq!(*grown.add(size - 1), 0xa5, "realloc keeps the contents");
                    a.dealloc(grown, Layout::from_size_align(size * 2, align).unwrap());
                    a.dealloc(z, layout);
                }
            }
            align *= 2;
        }
    }
}
