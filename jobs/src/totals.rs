//! Platform totals in the jobs' summaries (amounts executed, invested, valued): an overflow is
//! an error that fails the run, never a wrapped number in its summary line and `job_runs`.

/// A total that no longer fits its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} total overflowed")]
pub struct TotalOverflow(pub &'static str);

/// `total += more`, or the overflow named by `what`.
pub fn add_i64(total: &mut i64, more: i64, what: &'static str) -> Result<(), TotalOverflow> {
    *total = total.checked_add(more).ok_or(TotalOverflow(what))?;
    Ok(())
}

/// `total += more`, or the overflow named by `what`.
pub fn add_u64(total: &mut u64, more: u64, what: &'static str) -> Result<(), TotalOverflow> {
    *total = total.checked_add(more).ok_or(TotalOverflow(what))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflowing_total_is_an_error_and_leaves_the_total() {
        let mut paise = i64::MAX - 1;
        assert_eq!(add_i64(&mut paise, 1, "amount"), Ok(()));
        assert_eq!(
            add_i64(&mut paise, 1, "amount"),
            Err(TotalOverflow("amount"))
        );
        assert_eq!(paise, i64::MAX);
        let mut count = u64::MAX;
        assert_eq!(add_u64(&mut count, 1, "rows"), Err(TotalOverflow("rows")));
        assert_eq!(add_i64(&mut paise, -5, "amount"), Ok(()));
        assert_eq!(paise, i64::MAX - 5);
    }
}
