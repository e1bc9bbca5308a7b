//! How the `sipline` binary's allocator (mimalloc) treats freed memory.
//!
//! A batch job allocates and frees the same large vectors bucket after bucket. By default
//! mimalloc hands freed memory back to the kernel a second later, and the next bucket faults it
//! back in as fresh pages the kernel must zero: 24 of a 10M-user daily valuation's 50 s were
//! system time. A job runs to completion and exits, so it keeps what it freed instead; its
//! peak memory is what it would reach anyway.

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same in v2 and v3): the sys crate
/// does not name it. The test checks the index still holds its documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the kernel for the rest of the process (batch jobs only).
pub fn keep_freed_memory() {
    // SAFETY: sets an integer option; mimalloc reads options atomically on every purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_index_is_mimallocs_purge_delay() {
        // SAFETY: reads an integer option.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc v3 defaults `purge_delay` to 1000 ms; no other option defaults to 1000.
        assert_eq!(default, 1000);
    }
}
