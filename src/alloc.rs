//! The process allocator: the system allocator, with huge pages asked for on
//! large blocks.
//!
//! The link map's table is one block of hundreds of megabytes at scale, read
//! and written at random: with 4 KiB pages nearly every probe also misses the
//! TLB. Where the kernel leaves transparent huge pages to `madvise` (the
//! common default), such blocks are marked `MADV_HUGEPAGE`. Small blocks are
//! untouched, so the request path pays one comparison.

// The one module allowed `unsafe`: a global allocator cannot be written without it.

// The one module allowed `unsafe`: a global allocator cannot be written without it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large are marked (a huge page is 2 MiB).
const HUGE_FROM: usize = 4 << 20;

#[derive(Debug)]
pub struct EdgeAllocator;

fn advise(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size < HUGE_FROM {
        return;
    }
    let page = 4096;
    let start = (ptr as usize).next_multiple_of(page);
    let end = (ptr as usize + size) & !(page - 1);
    if end > start {
        // Advice only: a kernel without THP says EINVAL and nothing changes.
        // SAFETY: the range lies inside the block just allocated.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every call is passed to `System` unchanged; `advise` only gives
// the kernel a hint about pages inside the returned block.
unsafe impl GlobalAlloc for EdgeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        advise(new, new_size);
        new
    }
}
