//! Settings of the whole `aftersales-local` process.

/// Turns transparent huge pages off for this process (Linux; elsewhere there is nothing to do).
///
/// mimalloc (the allocator, see `main.rs`) advises its memory for huge pages, gives memory it
/// has freed back to the kernel after a short delay and faults it in again when it allocates
/// there anew. With huge pages each such fault zeroes a whole 2 MiB page: at 5,000 intakes a
/// second that zeroing was a quarter of the store writer's CPU, the HTTP workers paid it too,
/// and the p99 doubled (docs/performance.md). Without huge pages a fault zeroes 4 KiB.
pub fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_THP_DISABLE) takes no pointers and only sets a flag of this
        // process's memory, which its threads and children share.
        let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if done != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot turn transparent huge pages off"
            );
        }
    }
}
