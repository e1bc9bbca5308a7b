//! Systematic withdrawal and transfer plans (issue 36): an SWP redeems a fixed amount from a
//! scheme each month, an STP switches a fixed amount into another scheme of the same fund
//! house each month. Each instalment becomes an order — a redemption or a switch by amount —
//! placed by the run of its NAV date and executed like one a person placed, so a plan shares
//! every rule of orders (NAV, charges, FIFO lots, gains) and of SIP dates (the plan day of
//! each month from the start date to the end date; a weekend or holiday rolls to the next
//! business day).
//!
//! When an instalment is placed is the rule that keeps a re-run byte-identical: the run of D
//! places the instalments whose NAV date is D — or an earlier date within
//! [`CATCH_UP_DAYS`] whose run never placed them — of the plans *live at that NAV date's
//! cut-off* (15:00 IST). A pause, resume or cancellation made after a cut-off changes nothing
//! about that date, so running it again places the same orders whatever happened since.
//! Every span in which a plan was live is kept ([`LiveSpans`], `plan_spans` in PostgreSQL),
//! so a night that never ran is caught up as it would have run, even after a pause and
//! resume made since.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime};

use super::{OrderKind, CUT_OFF};
use crate::calendar::BusinessCalendar;
use crate::sip::applicable_date;

/// How far back a run looks for instalments no run placed (a night that never ran): a
/// month, past which an instalment is skipped rather than sold late.
pub const CATCH_UP_DAYS: u64 = 31;

/// What a plan does each month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanKind {
    /// A systematic withdrawal plan: a redemption by amount.
    Withdrawal,
    /// A systematic transfer plan: a switch by amount into the target scheme.
    Transfer,
}

impl PlanKind {
    pub const ALL: [PlanKind; 2] = [PlanKind::Withdrawal, PlanKind::Transfer];

    /// As `plans.kind` and the API spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            PlanKind::Withdrawal => "swp",
            PlanKind::Transfer => "stp",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of order each instalment becomes (`orders.kind`).
    pub const fn order_kind(self) -> OrderKind {
        match self {
            PlanKind::Withdrawal => OrderKind::Redemption,
            PlanKind::Transfer => OrderKind::Switch,
        }
    }
}

/// Where a plan stands (`plans.status`): live while active; paused and resumed by the person;
/// stopped when its source ran dry (resumable after a top-up); cancelled for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanStatus {
    Active,
    Paused,
    Cancelled,
    Stopped,
}

impl PlanStatus {
    pub const ALL: [PlanStatus; 4] = [
        PlanStatus::Active,
        PlanStatus::Paused,
        PlanStatus::Cancelled,
        PlanStatus::Stopped,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Active => "active",
            PlanStatus::Paused => "paused",
            PlanStatus::Cancelled => "cancelled",
            PlanStatus::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A plan's schedule: which days of which months fall due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSchedule {
    /// 1–28, so every month has the day.
    pub plan_day: u32,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

/// One span in which a plan was live, instants in India time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSpan {
    /// Created, or resumed.
    pub since: NaiveDateTime,
    /// Paused, cancelled or stopped; `None` while it lasts.
    pub until: Option<NaiveDateTime>,
}

/// Every span in which a plan was live. The latest alone is not enough: a night that never
/// ran is caught up later, and a pause and resume made in between must not take away an
/// instalment whose cut-off fell before the pause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSpans(pub Vec<LiveSpan>);

impl LiveSpans {
    /// Live from `since`, never paused since.
    pub fn since(since: NaiveDateTime) -> Self {
        Self(vec![LiveSpan { since, until: None }])
    }

    /// Whether the plan was live at an India-time instant.
    pub fn live_at(&self, at: NaiveDateTime) -> bool {
        self.0
            .iter()
            .any(|span| span.since <= at && span.until.is_none_or(|until| at < until))
    }
}

/// One instalment to place: the day it falls due and the date of the NAV it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanInstalment {
    pub due_date: NaiveDate,
    pub nav_date: NaiveDate,
}

impl PlanSchedule {
    /// The plan day of each month in `[from, to]`, within the start and end dates.
    pub fn due_dates(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut dates = Vec::new();
        if !(1..=28).contains(&self.plan_day) {
            return dates;
        }
        let from = from.max(self.start_date);
        let to = self.end_date.map_or(to, |end| to.min(end));
        let Some(mut month) = from.with_day(1) else {
            return dates;
        };
        while month <= to {
            if let Some(due) = month.with_day(self.plan_day) {
                if due >= from && due <= to {
                    dates.push(due);
                }
            }
            match month.checked_add_months(Months::new(1)) {
                Some(next) => month = next,
                None => break,
            }
        }
        dates
    }

    /// The instalments the run of `run_date` places: due dates within [`CATCH_UP_DAYS`]
    /// before it whose NAV date (the due date rolled to a business day) is on or before
    /// `run_date`, and at whose NAV date's cut-off the plan was live (in any of its spans).
    /// Placing is idempotent per (plan, due date), so an instalment an earlier run placed is
    /// not placed again.
    pub fn instalments_to_place(
        &self,
        calendar: &BusinessCalendar,
        run_date: NaiveDate,
        live: &LiveSpans,
    ) -> Vec<PlanInstalment> {
        let Some(from) = run_date.checked_sub_days(Days::new(CATCH_UP_DAYS)) else {
            return Vec::new();
        };
        self.due_dates(from, run_date)
            .into_iter()
            .map(|due_date| PlanInstalment {
                due_date,
                nav_date: applicable_date(calendar, due_date),
            })
            .filter(|i| i.nav_date <= run_date && live.live_at(i.nav_date.and_time(CUT_OFF)))
            .collect()
    }

    /// The next instalment a plan live from `now` on places: the first due date whose NAV
    /// date's cut-off is after `now`. `None` when the end date comes first.
    pub fn next_instalment(
        &self,
        calendar: &BusinessCalendar,
        now: NaiveDateTime,
    ) -> Option<PlanInstalment> {
        // From the start date when it is still to come: a plan starting in three months shows
        // its first instalment.
        let from = now
            .date()
            .max(self.start_date)
            .checked_sub_days(Days::new(14))?;
        let to = from.checked_add_days(Days::new(76))?;
        self.due_dates(from, to)
            .into_iter()
            .map(|due_date| PlanInstalment {
                due_date,
                nav_date: applicable_date(calendar, due_date),
            })
            .find(|i| i.nav_date.and_time(CUT_OFF) > now)
    }
}

/// The failures (`orders.failure`) that stop a plan: the source holds too little for the
/// instalment, or nothing. Others (no NAV in time, too small to buy one unit step) fail the
/// one instalment only.
pub const STOPPING_FAILURES: [&str; 2] = ["insufficient_units", "nothing_held"];

pub fn stops_the_plan(failure: &str) -> bool {
    STOPPING_FAILURES.contains(&failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn at(date: NaiveDate, h: u32, m: u32) -> NaiveDateTime {
        date.and_time(NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    fn plan(day: u32) -> PlanSchedule {
        PlanSchedule {
            plan_day: day,
            start_date: d(2026, 6, 3),
            end_date: None,
        }
    }

    fn created() -> LiveSpans {
        LiveSpans::since(at(d(2026, 6, 3), 10, 0))
    }

    fn placed_while(
        p: &PlanSchedule,
        cal: &BusinessCalendar,
        run: NaiveDate,
        live: &LiveSpans,
    ) -> Vec<(NaiveDate, NaiveDate)> {
        p.instalments_to_place(cal, run, live)
            .into_iter()
            .map(|i| (i.due_date, i.nav_date))
            .collect()
    }

    fn placed(
        p: &PlanSchedule,
        cal: &BusinessCalendar,
        run: NaiveDate,
    ) -> Vec<(NaiveDate, NaiveDate)> {
        placed_while(p, cal, run, &created())
    }

    /// Saturday 4 July 2026 rolls to Monday 6 July: the Saturday's and Sunday's runs place
    /// nothing, Monday's places it at Monday's NAV.
    #[test]
    fn a_due_date_on_a_weekend_is_placed_by_the_next_business_days_run() {
        let cal = BusinessCalendar::with_holidays([]);
        let p = plan(4);
        assert_eq!(
            placed(&p, &cal, d(2026, 6, 4)),
            vec![(d(2026, 6, 4), d(2026, 6, 4))]
        );
        let july = |run| -> Vec<_> {
            placed(&p, &cal, run)
                .into_iter()
                .filter(|(due, _)| due.month() == 7)
                .collect()
        };
        assert!(july(d(2026, 7, 4)).is_empty());
        assert!(july(d(2026, 7, 5)).is_empty());
        assert_eq!(
            placed(&p, &cal, d(2026, 7, 6)),
            vec![(d(2026, 7, 4), d(2026, 7, 6))]
        );
    }

    #[test]
    fn a_listed_holiday_rolls_too() {
        let cal = BusinessCalendar::with_holidays([d(2026, 8, 4)]);
        let p = plan(4);
        let aug: Vec<_> = placed(&p, &cal, d(2026, 8, 5))
            .into_iter()
            .filter(|(due, _)| due.month() == 8)
            .collect();
        assert_eq!(aug, vec![(d(2026, 8, 4), d(2026, 8, 5))]);
        assert!(!placed(&p, &cal, d(2026, 8, 4))
            .iter()
            .any(|(due, _)| due.month() == 8));
    }

    /// Created at 16:00 on its own plan day: that day's cut-off has passed, so the first
    /// instalment is next month's.
    #[test]
    fn a_plan_created_after_the_cut_off_starts_next_month() {
        let cal = BusinessCalendar::with_holidays([]);
        let p = plan(3);
        let late = LiveSpans::since(at(d(2026, 6, 3), 16, 0));
        assert!(placed_while(&p, &cal, d(2026, 6, 3), &late).is_empty());
        assert_eq!(
            p.next_instalment(&cal, at(d(2026, 6, 3), 16, 0)),
            Some(PlanInstalment {
                due_date: d(2026, 7, 3),
                nav_date: d(2026, 7, 3)
            })
        );
        let early = LiveSpans::since(at(d(2026, 6, 3), 14, 59));
        assert_eq!(
            placed_while(&p, &cal, d(2026, 6, 3), &early),
            vec![(d(2026, 6, 3), d(2026, 6, 3))]
        );
    }

    /// Paused on 10 July, resumed on 5 August at 16:00: July's instalment (placed before the
    /// pause) stays; nothing is placed for 4 August, paused at its cut-off; September's is.
    /// Re-running 4 August after the resume places nothing either: the rule reads the plan
    /// as it was at that cut-off.
    #[test]
    fn a_pause_skips_the_instalments_whose_cut_off_falls_inside_it() {
        let cal = BusinessCalendar::with_holidays([]);
        let p = plan(4);
        let mut live = created();
        live.0[0].until = Some(at(d(2026, 7, 10), 9, 0));
        assert!(!placed_while(&p, &cal, d(2026, 8, 4), &live)
            .iter()
            .any(|(due, _)| due.month() == 8));
        // Resumed: live again from the resume on.
        live.0.push(LiveSpan {
            since: at(d(2026, 8, 5), 16, 0),
            until: None,
        });
        assert!(!placed_while(&p, &cal, d(2026, 8, 4), &live)
            .iter()
            .any(|(due, _)| due.month() == 8));
        assert_eq!(
            placed_while(&p, &cal, d(2026, 9, 4), &live),
            vec![(d(2026, 9, 4), d(2026, 9, 4))]
        );
    }

    /// The night of Monday 10 August never ran. The plan was paused at 17:00 that day (after
    /// its cut-off) and resumed at 16:00 on the 11th (after that day's): when the night of the
    /// 10th is caught up on the 12th, the plan was live at the 10th's cut-off in its first
    /// span, so the instalment is placed as the night would have placed it. The 11th's
    /// cut-off fell inside the pause: nothing due that day would be.
    #[test]
    fn a_night_caught_up_after_a_pause_and_resume_places_what_it_would_have() {
        let cal = BusinessCalendar::with_holidays([]);
        let live = LiveSpans(vec![
            LiveSpan {
                since: at(d(2026, 8, 5), 10, 0),
                until: Some(at(d(2026, 8, 10), 17, 0)),
            },
            LiveSpan {
                since: at(d(2026, 8, 11), 16, 0),
                until: None,
            },
        ]);
        assert_eq!(
            placed_while(&plan(10), &cal, d(2026, 8, 10), &live),
            vec![(d(2026, 8, 10), d(2026, 8, 10))]
        );
        assert!(placed_while(&plan(11), &cal, d(2026, 8, 11), &live).is_empty());
        // The latest span alone loses the 10th's.
        let latest = LiveSpans(vec![live.0[1]]);
        assert!(placed_while(&plan(10), &cal, d(2026, 8, 10), &latest).is_empty());
    }

    #[test]
    fn nothing_after_the_end_date_or_past_the_catch_up_window() {
        let cal = BusinessCalendar::with_holidays([]);
        let mut p = plan(4);
        p.end_date = Some(d(2026, 7, 31));
        assert!(placed(&p, &cal, d(2026, 8, 4))
            .iter()
            .all(|(due, _)| due.month() != 8));
        assert_eq!(p.next_instalment(&cal, at(d(2026, 7, 7), 9, 0)), None);
        let p = plan(4);
        // 4 June is 31 days before 5 July: a run that day (had 4 June's never run) still
        // places it; the run of 6 July no longer does.
        assert!(placed(&p, &cal, d(2026, 7, 5)).contains(&(d(2026, 6, 4), d(2026, 6, 4))));
        assert!(placed(&p, &cal, d(2026, 7, 6))
            .iter()
            .all(|(due, _)| due.month() == 7));
    }

    #[test]
    fn a_plan_starting_months_ahead_shows_its_first_instalment() {
        let cal = BusinessCalendar::with_holidays([]);
        let mut p = plan(10);
        p.start_date = d(2026, 11, 1);
        assert_eq!(
            p.next_instalment(&cal, at(d(2026, 6, 3), 10, 0)),
            Some(PlanInstalment {
                due_date: d(2026, 11, 10),
                nav_date: d(2026, 11, 10)
            })
        );
    }

    #[test]
    fn plan_kinds_become_order_kinds() {
        assert_eq!(PlanKind::parse("swp"), Some(PlanKind::Withdrawal));
        assert_eq!(
            PlanKind::parse("stp").map(PlanKind::order_kind),
            Some(OrderKind::Switch)
        );
        for status in PlanStatus::ALL {
            assert_eq!(PlanStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PlanKind::parse("sip"), None);
        use crate::orders::execute::OrderFailure;
        assert!(stops_the_plan(OrderFailure::NothingHeld.reason()));
        assert!(stops_the_plan(
            OrderFailure::NotEnoughUnits(crate::orders::lots::NotEnoughUnits {
                wanted: crate::money::Units(2),
                held: crate::money::Units(1),
            })
            .reason()
        ));
        assert!(!stops_the_plan("no_nav"));
        assert!(!stops_the_plan("amount_too_small"));
    }
}
