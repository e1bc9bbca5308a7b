//! The business calendar: which dates NAVs are published on. Mutual-fund NAVs follow the
//! exchange's trading days, so a day is a business day when it is a weekday and not an NSE
//! trading holiday. The holiday list is data, not a rule: it is embedded for the years sipline
//! has been run over and can be replaced from a file (one `YYYY-MM-DD` per line).

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// NSE trading holidays that fall on weekdays, as NSE published them.
const NSE_HOLIDAYS: &[&str] = &[
    // 2024
    "2024-01-22",
    "2024-01-26",
    "2024-03-08",
    "2024-03-25",
    "2024-03-29",
    "2024-04-11",
    "2024-04-17",
    "2024-05-01",
    "2024-05-20",
    "2024-06-17",
    "2024-07-17",
    "2024-08-15",
    "2024-10-02",
    "2024-11-01",
    "2024-11-15",
    "2024-11-20",
    "2024-12-25",
    // 2025
    "2025-02-26",
    "2025-03-14",
    "2025-03-31",
    "2025-04-10",
    "2025-04-14",
    "2025-04-18",
    "2025-05-01",
    "2025-08-15",
    "2025-08-27",
    "2025-10-02",
    "2025-10-21",
    "2025-10-22",
    "2025-11-05",
    "2025-12-25",
    // 2026
    "2026-01-26",
    "2026-03-03",
    "2026-03-26",
    "2026-03-31",
    "2026-04-03",
    "2026-04-14",
    "2026-05-01",
    "2026-05-28",
    "2026-06-26",
    "2026-09-14",
    "2026-10-02",
    "2026-10-20",
    "2026-11-10",
    "2026-11-24",
    "2026-12-25",
];

#[derive(Debug, thiserror::Error)]
#[error("holiday list line {line}: `{text}` is not a YYYY-MM-DD date")]
pub struct HolidayListError {
    pub line: usize,
    pub text: String,
}

/// Weekdays minus holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    holidays: BTreeSet<NaiveDate>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self::nse()
    }
}

impl BusinessCalendar {
    /// The embedded NSE holiday list.
    pub fn nse() -> Self {
        let holidays = NSE_HOLIDAYS
            .iter()
            .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .collect();
        Self { holidays }
    }

    pub fn with_holidays(holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self {
            holidays: holidays.into_iter().collect(),
        }
    }

    /// A holiday list file: one date per line; blank lines and `#` comments are ignored.
    pub fn parse(text: &str) -> Result<Self, HolidayListError> {
        let mut holidays = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let date =
                NaiveDate::parse_from_str(line, "%Y-%m-%d").map_err(|_| HolidayListError {
                    line: i + 1,
                    text: line.to_string(),
                })?;
            holidays.insert(date);
        }
        Ok(Self { holidays })
    }

    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&date)
    }

    /// The first business day on or after `date`.
    pub fn roll_forward(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date;
        while !self.is_business_day(day) {
            day = day + Days::new(1);
        }
        day
    }

    /// Business days in `[from, to]`, in order.
    pub fn business_days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Iterator<Item = NaiveDate> + '_ {
        from.iter_days()
            .take_while(move |d| *d <= to)
            .filter(|d| self.is_business_day(*d))
    }

    /// Whether `date` is the last business day of its month (month-end checkpoints).
    pub fn is_last_business_day_of_month(&self, date: NaiveDate) -> bool {
        if !self.is_business_day(date) {
            return false;
        }
        let mut day = date + Days::new(1);
        while day.month() == date.month() {
            if self.is_business_day(day) {
                return false;
            }
            day = day + Days::new(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weekends_and_holidays_are_not_business_days() {
        let calendar = BusinessCalendar::nse();
        assert!(calendar.is_business_day(d("2024-12-27"))); // Friday
        assert!(!calendar.is_business_day(d("2024-12-28"))); // Saturday
        assert!(!calendar.is_business_day(d("2024-12-25"))); // Christmas, a Wednesday
        assert_eq!(calendar.roll_forward(d("2024-12-28")), d("2024-12-30"));
        // Holi 2025 was a Friday: rolls past the weekend to Monday.
        assert_eq!(calendar.roll_forward(d("2025-03-14")), d("2025-03-17"));
        assert_eq!(
            calendar
                .business_days(d("2024-12-23"), d("2024-12-29"))
                .count(),
            4
        );
    }

    #[test]
    fn month_end_is_the_last_business_day() {
        let calendar = BusinessCalendar::nse();
        // 2025-03-31 is a holiday (Id-ul-Fitr); 2025-03-28 is the Friday before it.
        assert!(calendar.is_last_business_day_of_month(d("2025-03-28")));
        assert!(!calendar.is_last_business_day_of_month(d("2025-03-27")));
        assert!(calendar.is_last_business_day_of_month(d("2024-02-29")));
    }

    #[test]
    fn holiday_files_name_the_bad_line() {
        let calendar = BusinessCalendar::parse("# NSE\n2025-01-01\n\n2025-01-02 # x\n").unwrap();
        assert!(!calendar.is_business_day(d("2025-01-02")));
        let err = BusinessCalendar::parse("2025-01-01\n01/02/2025\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn a_given_holiday_list_replaces_the_embedded_one() {
        // 2025-01-06 is a Monday; 2025-03-14 (Holi) is on the embedded NSE list only.
        let calendar = BusinessCalendar::with_holidays([d("2025-01-06")]);
        assert!(!calendar.is_business_day(d("2025-01-06")));
        assert!(calendar.is_business_day(d("2025-01-07")));
        assert!(calendar.is_business_day(d("2025-03-14")));
        assert!(!BusinessCalendar::nse().is_business_day(d("2025-03-14")));
    }
}
