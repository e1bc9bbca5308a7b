//! The one clock the date rules read: "now" for the API's cut-off, "today" and "not in the
//! past", and for `sips export`'s "has D's cut-off passed". Production reads the wall clock;
//! a test (or a replay) starts it at a chosen instant with `--now`, and it ticks from there.
//! The SQL that applies the same rules (the `sip_changes` trigger's effective date) reads the
//! transaction's `sipline.now` setting, which writers set from this clock
//! ([`Clock::SQL_SETTING`]), so PostgreSQL and the program never disagree about the date.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Offset, Utc};

/// India Standard Time, where SIP dates, the cut-off and NAV dates live (no daylight saving).
pub fn ist() -> FixedOffset {
    // 5 h 30 min east of UTC is in range for FixedOffset; the fallback is never taken.
    FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap_or_else(|| Utc.fix())
}

/// The date in India at instant `at`.
pub fn date_ist(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&ist()).date_naive()
}

/// A clock: the wall clock shifted by a fixed offset (zero in production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    offset: Duration,
}

impl Clock {
    /// The transaction setting (`SET LOCAL`/`set_config(…, true)`) the SQL functions read as
    /// "now" (`sipline_now()`, migration 0020); unset, they read `now()`.
    pub const SQL_SETTING: &'static str = "sipline.now";

    /// The wall clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start` now and ticks from there, as the wall clock does.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }

    /// Now, to the microsecond: PostgreSQL keeps microseconds, so the instant the API reasons
    /// with and the one it hands to SQL (`sipline.now`) are the same, even at the cut-off.
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now() + self.offset;
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }

    /// Today's date in India.
    pub fn today_ist(&self) -> NaiveDate {
        date_ist(self.now())
    }

    /// Whether the clock was set away from the wall clock (`--now`): logged at start, so an
    /// operator never runs a shifted clock without seeing it.
    pub fn is_shifted(&self) -> bool {
        self.offset != Duration::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_clock_reads_its_instant_and_ticks() {
        let start = DateTime::parse_from_rfc3339("2027-01-31T23:59:57+05:30")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::starting_at(start);
        assert!(clock.is_shifted());
        let read = clock.now();
        assert!(
            read >= start && read - start < Duration::seconds(5),
            "{read}"
        );
        // 23:59:57 IST on the 31st is still the 31st in India (18:29 UTC); 3.5 s later, not.
        assert_eq!(
            clock.today_ist(),
            NaiveDate::from_ymd_opt(2027, 1, 31).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(3500));
        assert_eq!(
            clock.today_ist(),
            NaiveDate::from_ymd_opt(2027, 2, 1).unwrap()
        );
        assert!(!Clock::system().is_shifted());
    }

    #[test]
    fn india_is_five_and_a_half_hours_east_of_utc() {
        let utc = DateTime::parse_from_rfc3339("2028-02-28T18:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            utc.with_timezone(&ist()).date_naive(),
            NaiveDate::from_ymd_opt(2028, 2, 29).unwrap()
        );
    }
}
