//! The program's memory allocator: mimalloc, told to keep freed memory.
//!
//! A training step allocates and frees the same few hundred megabytes of tensors (activations of
//! 10-20 MB each) every second. glibc handed such blocks back to the system (mmap, or trimming
//! the worker threads' arenas), and the kernel zeroed fresh pages for them on the next step: in a
//! profile of `bench model`, page faults and `clear_page` were a third of the time. mimalloc
//! keeps its pages; with purging switched off it never gives them back, so each step reuses the
//! last one's memory. Measured (docs/speed.md): training 27 -> 52-57 cutouts/s on 2 cores, peak
//! memory of the bench 367 -> 447 MB.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h of the version the
/// `libmimalloc-sys` in Cargo.lock builds; the Rust crate does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never returns freed memory to the system (mimalloc's purge delay -1). Call first in `main`;
/// `MIMALLOC_PURGE_DELAY` in the environment still decides when set.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide tuning option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// The purge delay mimalloc is using, in milliseconds (-1: never).
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads a process-wide option.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) as i64 }
}

#[cfg(test)]
mod tests {
    /// Minor page faults of the calling thread so far.
    fn faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
            usage.ru_minflt
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn freed_tensors_are_reused_without_new_page_faults() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        super::keep_freed_memory();
        assert_eq!(super::purge_delay_ms(), -1);
        // Activations the size of a training step's (32 x 16 x 101 x 101 floats, 21 MB),
        // allocated, written and freed again and again.
        let step = || {
            let mut v = vec![0.0f32; 32 * 16 * 101 * 101];
            v.iter_mut().enumerate().for_each(|(k, x)| *x = k as f32);
            std::hint::black_box(&v);
        };
        step();
        step();
        let before = faults();
        for _ in 0..10 {
            step();
        }
        let pages_per_step = (32 * 16 * 101 * 101 * 4 / 4096) as i64;
        let refaulted = faults() - before;
        assert!(
            refaulted < pages_per_step,
            "{refaulted} page faults in 10 steps of {pages_per_step} pages: freed memory went back to the system"
        );
    }
}
