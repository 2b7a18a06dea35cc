//! Where refedge talks to the OS and the CPU below Rust's safe surface:
//! the process's allocator (`alloc`), CPU affinity and socket steering
//! (`cpu`), ASCII text made a `&str` or a header value after one quick
//! check (`text`), read-only file maps (`map`) and a cache prefetch
//! (`prefetch`). The one room allowed `unsafe`: each use says why it is
//! sound, and everything else in the crate is held to `unsafe_code =
//! "deny"` with no exception (a test holds it there).
#![allow(unsafe_code)]

pub mod alloc;
pub mod cpu;
pub mod map;
pub mod text;

/// Asks the CPU to bring `value`'s cache line in ahead of its use; a hint
/// that cannot fault and changes nothing the program can see.
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch of an address inside a live reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    /// No file outside this room opts out of the crate's `unsafe_code`
    /// lint.
    #[test]
    fn unsafe_lives_here_only() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("sys") {
                        walk(&path, found);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains(concat!("allow(", "unsafe_code)")) {
                        found.push(path.display().to_string());
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.is_empty(), "unsafe outside src/sys: {found:?}");
    }
}
