//! Giving the memory of parked pairs back to the kernel.
//!
//! When quiet pairs park (engine `park_after`), their relay tasks and the setup tasks freed
//! around them leave free pages inside the allocator's heap, between the small records that
//! stay. Neither allocator returns such pages on its own while the engine core is idle: glibc
//! only trims the top of a heap, and mimalloc keeps a thread's free pages until that thread
//! allocates again (measured: 24–25 MiB RSS per 10,000 parked pairs with either, ~5 MiB after a
//! trim; bench/README.md "Parking quiet pairs"). The proxy binary therefore runs on the system
//! allocator, and the engine calls [`release_memory`] on a core's thread after pairs parked
//! there, at most once per `tandem_engine::RELEASE_MEMORY_EVERY`.

/// `malloc_trim(0)`: glibc returns the free pages of every arena to the kernel
/// (`MADV_DONTNEED`), keeping the live chunks where they are. Nothing on other C libraries.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only gives free pages back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
