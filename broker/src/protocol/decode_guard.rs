//! Decoding requests safely against hostile lengths.
//!
//! kafka-protocol 0.18 sizes `Vec::with_capacity(n)` from array counts read off the wire before it decodes a
//! single element (upstream fixes are proposed but unreleased). A 20-byte request claiming 2^31 topics would ask
//! for hundreds of gigabytes up front, and a failed allocation aborts the process rather than returning an
//! error. Two defences, neither of which changes a byte the crate decodes:
//!
//! - [`GuardedAllocator`]: binaries that embed the broker install it as their global allocator. It serves every
//!   allocation of 1 GiB or more with an anonymous `MAP_NORESERVE` mapping: address space only, no memory
//!   committed until a page is touched. The hostile decode fails on its first missing element, the untouched
//!   reservation is unmapped, and nothing was ever resident. Smaller allocations go to the system allocator
//!   unchanged. `spate` and the broker's test binaries install it; an application embedding the broker should
//!   too (the broker logs a warning at start-up when it is missing).
//! - [`decode_request`] catches the `capacity overflow` panic that `Vec` raises for counts whose byte size does
//!   not even fit in `isize`, turning it into an ordinary decode error.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};

/// Allocations at least this large are reserved lazily instead of committed.
const RESERVE_THRESHOLD: usize = 1 << 30;
const PAGE: usize = 4096;

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that makes huge up-front reservations harmless. See the module documentation.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
///     spate_broker::protocol::decode_guard::GuardedAllocator;
/// ```
pub struct GuardedAllocator;

impl GuardedAllocator {
    /// Whether this process runs with [`GuardedAllocator`] as its global allocator.
    pub fn is_installed() -> bool {
        // Any allocation through it marks it; make sure at least one happened.
        drop(std::hint::black_box(Box::new(0u64)));
        INSTALLED.load(Ordering::Relaxed)
    }

    fn mark() {
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
    }

    unsafe fn map(size: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }
}

// SAFETY: large blocks come from mmap (page aligned, which satisfies any alignment up to PAGE) and go back with
// munmap of the same size; everything else is delegated to `System` unchanged.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::mark();
        if layout.size() >= RESERVE_THRESHOLD && layout.align() <= PAGE {
            // SAFETY: size is non-zero.
            unsafe { Self::map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::mark();
        if layout.size() >= RESERVE_THRESHOLD && layout.align() <= PAGE {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { Self::map(layout.size()) }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= RESERVE_THRESHOLD && layout.align() <= PAGE {
            // SAFETY: this block was mapped by `map` with exactly this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: this block came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let mapped = |size: usize| size >= RESERVE_THRESHOLD && layout.align() <= PAGE;
        if !mapped(layout.size()) && !mapped(new_size) {
            // SAFETY: both sizes stay on the System side.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `layout.align()` and `new_size` form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocation and copy of the smaller of the two sizes, then release of the old block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
}

/// Decodes a request body of `api` at `version`, turning every failure, including an impossible array count,
/// into an error instead of a crash.
pub fn decode_request(api: ApiKey, body: &mut Bytes, version: i16) -> Result<RequestKind, DecodeError> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| RequestKind::decode(api, body, version)));
    match result {
        Ok(Ok(request)) => Ok(request),
        Ok(Err(e)) => Err(DecodeError::Malformed { api, version, reason: e.to_string() }),
        Err(_) => Err(DecodeError::Malformed { api, version, reason: "impossible element count".to_string() }),
    }
}
