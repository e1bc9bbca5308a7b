//! The business calendar: which dates NAVs are published on. Mutual-fund NAVs follow the
//! exchange's trading days, so a day is a business day when it is a weekday and not an NSE
//! trading holiday. The holiday list is data, not a rule: it is embedded for the years sipline
//! has been run over and can be replaced from a file (one `YYYY-MM-DD` per line).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// NSE trading holidays that fall on weekdays, as NSE published them: a data file, so a new
/// year is a data change.
const NSE_HOLIDAYS: &str = include_str!("../data/nse_holidays.txt");

/// The longest gap between two NAV dates that can hide a market holiday: a holiday on each
/// side of a weekend, or two holidays in a row next to one (Diwali), span at most five days
/// from the last NAV date to the next. A longer gap is missing data, which must stay loud.
const MAX_NAV_GAP_DAYS: i64 = 5;

/// Schemes that must have a NAV on each side of a gap for it to be a market holiday (AMFI's
/// daily file has thousands; a history file's liquid funds on a holiday, a dozen).
pub const MIN_MARKET_SCHEMES: u64 = 100;

/// How many days before its end a holiday list is reported as ending soon.
pub const ENDING_SOON_DAYS: u64 = 60;

#[derive(Debug, thiserror::Error)]
#[error("holiday list line {line}: `{text}` is not a YYYY-MM-DD date")]
pub struct HolidayListError {
    pub line: usize,
    pub text: String,
}

/// A calendar with the holidays the NAV data shows ([`BusinessCalendar::observe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCalendar {
    /// The list's holidays and the unlisted ones.
    pub calendar: BusinessCalendar,
    /// Weekdays without NAVs between dates with NAVs, not on the list: holidays by the data.
    pub unlisted_holidays: Vec<NaiveDate>,
    /// Listed holidays that have NAVs dated them: the list and the data disagree (the list
    /// wins; a history file may carry liquid funds' calendar-day NAVs).
    pub priced_holidays: Vec<NaiveDate>,
}

/// Weekdays minus holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    holidays: BTreeSet<NaiveDate>,
    /// The last date the holiday list is complete for.
    through: Option<NaiveDate>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        Self::nse()
    }
}

impl BusinessCalendar {
    /// The embedded NSE holiday list (`pipeline/data/nse_holidays.txt`).
    pub fn nse() -> Self {
        // A test parses the same file, so a bad line fails the build's tests, not a job.
        Self::parse(NSE_HOLIDAYS).unwrap_or_else(|_| Self::with_holidays([]))
    }

    /// A calendar of `holidays`, complete through the end of the last one's year.
    pub fn with_holidays(holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        let holidays: BTreeSet<NaiveDate> = holidays.into_iter().collect();
        let through = holidays
            .last()
            .and_then(|d| NaiveDate::from_ymd_opt(d.year(), 12, 31));
        Self { holidays, through }
    }

    /// A holiday list file: one date per line; blank lines and `#` comments are ignored, but
    /// for `# through: YYYY-MM-DD`, the last date the list is complete for. Without it, a list
    /// is taken as complete through the end of its last holiday's year (NSE publishes a year
    /// at a time).
    pub fn parse(text: &str) -> Result<Self, HolidayListError> {
        let mut holidays = BTreeSet::new();
        let mut through = None;
        for (i, line) in text.lines().enumerate() {
            let (line, comment) = line.split_once('#').unwrap_or((line, ""));
            let line = line.trim();
            if let Some(date) = comment.trim().strip_prefix("through:") {
                let date = date.trim();
                through = Some(NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                    HolidayListError {
                        line: i + 1,
                        text: date.to_string(),
                    }
                })?);
            }
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
        let mut calendar = Self::with_holidays(holidays);
        if through.is_some() {
            calendar.through = through;
        }
        Ok(calendar)
    }

    /// The last date the holiday list is complete for (`None` for an empty list).
    pub fn through(&self) -> Option<NaiveDate> {
        self.through
    }

    /// Why a run on `date` should warn about the calendar: the list ends within
    /// [`ENDING_SOON_DAYS`] of it, or has already ended.
    pub fn ending_soon(&self, date: NaiveDate) -> Option<String> {
        let through = self.through?;
        if date > through {
            Some(format!(
                "the holiday calendar ended on {through}: every weekday after it counts as a business day; add the new year's NSE holidays (--holidays)"
            ))
        } else if date + Days::new(ENDING_SOON_DAYS) > through {
            Some(format!(
                "the holiday calendar ends on {through}, {} days after {date}: add the next year's NSE holidays (--holidays) before then",
                (through - date).num_days()
            ))
        } else {
            None
        }
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

    /// The calendar as the NAV data settles it (issue 35). A weekday that is not on the list,
    /// has no NAV dated it, and lies between two dates that have NAVs is a market holiday: on
    /// the evening of a holiday AMFI's file still shows the previous business day's NAVs, and
    /// the next business day's file shows NAVs dated after it and none dated it. So the list
    /// is an input, not what keeps money moving: a holiday NSE declares after the list was
    /// written, or a year whose list is not out yet, rolls due dates exactly as a listed one.
    /// `nav_dates` are the dates the warehouse holds NAVs for, with how many schemes have a
    /// NAV dated each. A holiday is a market-wide absence: both dates around the gap must
    /// hold NAVs of at least [`MIN_MARKET_SCHEMES`] schemes, so a handful of schemes late on
    /// the same day (a small or test universe) is late, not a holiday. Listed holidays stay
    /// holidays whatever the data says; where the two disagree, [`ObservedCalendar`] says which.
    pub fn observe(&self, nav_dates: &BTreeMap<NaiveDate, u64>) -> ObservedCalendar {
        let mut observed = ObservedCalendar {
            calendar: self.clone(),
            unlisted_holidays: Vec::new(),
            priced_holidays: Vec::new(),
        };
        // Only between two NAV dates at most five days apart: before the first there is no data,
        // the last may be tonight's date whose file has not come yet, and a longer gap is data
        // nobody ingested, not a holiday (those instalments wait, and fail loudly, as before).
        for ((before, schemes_before), (after, schemes_after)) in
            nav_dates.iter().zip(nav_dates.iter().skip(1))
        {
            if (*after - *before).num_days() > MAX_NAV_GAP_DAYS
                || *schemes_before < MIN_MARKET_SCHEMES
                || *schemes_after < MIN_MARKET_SCHEMES
            {
                continue;
            }
            for day in before.iter_days().skip(1).take_while(|d| d < after) {
                if self.is_business_day(day) {
                    observed.unlisted_holidays.push(day);
                }
            }
        }
        let (Some((&first, _)), Some((&last, _))) =
            (nav_dates.first_key_value(), nav_dates.last_key_value())
        else {
            return observed;
        };
        observed.priced_holidays = self
            .holidays
            .range(first..=last)
            .filter(|d| nav_dates.get(d).is_some_and(|n| *n >= MIN_MARKET_SCHEMES))
            .copied()
            .collect();
        observed
            .calendar
            .holidays
            .extend(observed.unlisted_holidays.iter().copied());
        observed
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

    /// Republic Day 2027 is a Tuesday and on no list yet (the embedded one ends 2026-12-31):
    /// Monday's and Wednesday's NAVs and none dated Tuesday make it a holiday, and an
    /// instalment due then is bought on Wednesday. The weekend is not reported; Christmas 2026
    /// (listed) with NAVs dated it is reported as a disagreement.
    #[test]
    fn a_weekday_without_navs_between_two_nav_dates_is_a_holiday() {
        let listed = BusinessCalendar::nse();
        assert!(listed.is_business_day(d("2027-01-26")));
        let navs: BTreeMap<NaiveDate, u64> = [
            "2026-12-24",
            "2026-12-25",
            "2026-12-28",
            "2027-01-22",
            "2027-01-25",
            "2027-01-27",
        ]
        .iter()
        .map(|t| (d(t), 9_000))
        .collect();
        let observed = listed.observe(&navs);
        // The gap 29 Dec – 21 Jan is data nobody ingested, not three weeks of holidays.
        assert_eq!(observed.unlisted_holidays, vec![d("2027-01-26")]);
        assert_eq!(observed.priced_holidays, vec![d("2026-12-25")]);
        let calendar = &observed.calendar;
        assert!(!calendar.is_business_day(d("2027-01-26")));
        assert!(
            !calendar.is_business_day(d("2026-12-25")),
            "the list still wins"
        );
        assert_eq!(calendar.roll_forward(d("2027-01-26")), d("2027-01-27"));
        // The last NAV date's tomorrow is not settled yet: it stays a business day.
        assert!(calendar.is_business_day(d("2027-01-28")));
    }

    #[test]
    fn nothing_is_observed_without_a_later_nav_date() {
        let listed = BusinessCalendar::nse();
        let one: BTreeMap<NaiveDate, u64> = [(d("2027-01-25"), 9_000)].into_iter().collect();
        let observed = listed.observe(&one);
        assert!(observed.unlisted_holidays.is_empty());
        assert_eq!(observed.calendar, listed);
        assert_eq!(listed.observe(&BTreeMap::new()).calendar, listed);
        // A few schemes late together on a day is lateness, not a holiday.
        let few: BTreeMap<NaiveDate, u64> = [(d("2027-01-25"), 3), (d("2027-01-27"), 3)]
            .into_iter()
            .collect();
        assert!(listed.observe(&few).unlisted_holidays.is_empty());
    }

    #[test]
    fn the_embedded_list_parses_and_says_when_it_ends() {
        let embedded = BusinessCalendar::parse(NSE_HOLIDAYS).unwrap();
        assert_eq!(embedded, BusinessCalendar::nse());
        assert_eq!(embedded.through(), Some(d("2026-12-31")));
        assert!(!embedded.is_business_day(d("2026-12-25")));
        assert_eq!(embedded.ending_soon(d("2026-10-31")), None);
        let soon = embedded.ending_soon(d("2026-11-25")).unwrap();
        assert!(
            soon.contains("ends on 2026-12-31, 36 days after 2026-11-25"),
            "{soon}"
        );
        let ended = embedded.ending_soon(d("2027-01-04")).unwrap();
        assert!(ended.contains("ended on 2026-12-31"), "{ended}");
        // Without a `through:` line, a list covers its last holiday's year.
        let listed = BusinessCalendar::parse("2027-01-26\n").unwrap();
        assert_eq!(listed.through(), Some(d("2027-12-31")));
        assert!(BusinessCalendar::parse("# through: soon\n").is_err());
    }

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
