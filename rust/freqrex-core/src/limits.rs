//! Sizes checked before allocation: every entry that allocates in proportion
//! to a size the caller chose first estimates the bytes it needs (with
//! checked arithmetic) and returns [`CoreError::Parameter`] with the estimate
//! when it exceeds the memory limit, instead of aborting the process on a
//! failed allocation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CoreError, Result};

/// Default bound on the memory one call may plan for: 8 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 8 << 30;

static MEMORY_LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_MEMORY_LIMIT);

/// The bound (bytes) on what one call may allocate.
pub fn memory_limit() -> u64 {
    MEMORY_LIMIT.load(Ordering::Relaxed)
}

/// Set the bound (bytes; process-wide) on what one call may allocate.
pub fn set_memory_limit(bytes: u64) {
    MEMORY_LIMIT.store(bytes.max(1), Ordering::Relaxed);
}

/// Bytes of `count` items of `size` bytes each, or None on overflow.
pub fn bytes(count: usize, size: usize) -> Option<u64> {
    (count as u64).checked_mul(size as u64)
}

/// The sum of several estimates, None if any is None or the sum overflows.
pub fn total(parts: &[Option<u64>]) -> Option<u64> {
    parts
        .iter()
        .try_fold(0u64, |acc, p| p.and_then(|v| acc.checked_add(v)))
}

fn human(b: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if b as f64 >= GIB {
        format!("{:.1} GiB", b as f64 / GIB)
    } else {
        format!("{:.1} MiB", b as f64 / MIB)
    }
}

/// Ok when `estimate` (None: it overflowed 64 bits) fits the memory limit.
pub fn check(what: &str, estimate: Option<u64>) -> Result<()> {
    let limit = memory_limit();
    match estimate {
        Some(b) if b <= limit => Ok(()),
        Some(b) => Err(CoreError::Parameter(format!(
            "{what} would need about {} of memory (estimate), above the limit of {}; use smaller sizes",
            human(b),
            human(limit)
        ))),
        None => Err(CoreError::Parameter(format!(
            "{what} would need more than 2^64 bytes of memory (the size overflows); use smaller sizes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_and_excess_are_errors() {
        assert!(check("x", None).is_err());
        assert!(check("x", bytes(usize::MAX, 16)).is_err());
        assert!(check("x", Some(u64::MAX)).is_err());
        assert!(check("x", bytes(1000, 8)).is_ok());
        assert_eq!(total(&[Some(1), None]), None);
        assert_eq!(total(&[Some(u64::MAX), Some(1)]), None);
        let msg = check("the space", Some(100 << 30)).unwrap_err().to_string();
        assert!(msg.contains("100.0 GiB"), "{msg}");
    }
}
