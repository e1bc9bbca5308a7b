//! SIP execution rules: when an instalment falls due, how much it is for, the stamp duty on
//! it, the units it buys, and what one run of the execution batch does to one bucket of SIPs.
//!
//! Everything here is integer arithmetic on scaled values (paise, NAV in 10^-8, units in
//! 1/10,000), so a re-run gives the same rows and the reconciliation
//! `amount = stamp duty + units × NAV + residue` holds exactly.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, Months, NaiveDate};

use crate::calendar::BusinessCalendar;
use crate::money::{div_round_half_up, Nav, Paise, Units, DEFAULT_UNIT_DECIMALS, NAV_PER_PAISA};

/// Stamp duty on mutual-fund purchases is 0.005% of the amount allotted, and comes out of the
/// debit: duty = amount × 0.005 / 100.005 (the AMCs' and registrars' formula), so that
/// duty = 0.005% × (amount − duty). As integers: amount × 5 / 100,005.
const STAMP_DUTY_NUMERATOR: i128 = 5;
const STAMP_DUTY_DENOMINATOR: i128 = 100_005;

/// By default, an instalment still without its applicable NAV this many business days after
/// the applicable date fails with `no_nav`: its scheme stopped publishing (merged, wound up),
/// and waiting longer would leave it pending for ever. No money is taken, and it does not
/// count towards the failed-debit streak, which is about the investor's bank.
pub const NO_NAV_AFTER_BUSINESS_DAYS: u32 = 20;

/// A SIP is cancelled after this many consecutive failed instalments.
pub const FAILURES_BEFORE_CANCEL: i32 = 3;

/// The stamp duty on a purchase debiting `amount`, rounded half up to the paisa. (An exact half
/// never occurs: it would need 10 × amount = 100,005 × an odd number.)
pub fn stamp_duty(amount: Paise) -> Paise {
    Paise(div_round_half_up(
        i128::from(amount.0) * STAMP_DUTY_NUMERATOR,
        STAMP_DUTY_DENOMINATOR,
    ) as i64)
}

/// Units bought with `net` (the amount after stamp duty) at `nav`, rounded down to
/// `unit_decimals` places (0..=4; out-of-range values are clamped).
pub fn allot_units(net: Paise, nav: Nav, unit_decimals: i32) -> Units {
    let decimals = unit_decimals.clamp(0, Units::SCALE as i32) as u32;
    if nav.scaled() <= 0 || net.0 <= 0 {
        return Units(0);
    }
    // units = (net / 10^2) / (nav / 10^8) = net × 10^6 / nav, in 10^-decimals steps, floored.
    let steps =
        i128::from(net.0) * NAV_PER_PAISA * 10_i128.pow(decimals) / i128::from(nav.scaled());
    Units((steps * 10_i128.pow(Units::SCALE - decimals)) as i64)
}

/// A `debit_failures` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitFailure {
    pub sip_id: i64,
    pub due_date: NaiveDate,
    pub reason: String,
}

/// A SIP's status in a mandate snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipStatus {
    Active,
    Paused,
    Cancelled,
}

impl SipStatus {
    pub const ALL: [SipStatus; 3] = [SipStatus::Active, SipStatus::Paused, SipStatus::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            SipStatus::Active => "active",
            SipStatus::Paused => "paused",
            SipStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A SIP mandate, as the `sips` snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mandate {
    pub sip_id: i64,
    pub user_id: i64,
    pub scheme_code: i64,
    /// The first year's instalment.
    pub amount: Paise,
    /// 1–28, so every month has the day.
    pub sip_day: u32,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Yearly step-up in hundredths of a percent (`step_up_pct` 10.00 is 1000).
    pub step_up_bps: i64,
    pub status: SipStatus,
    /// A paused SIP skips every instalment due on or before this date — the last skipped
    /// day, not the resume day — and for ever if `None`.
    pub paused_until: Option<NaiveDate>,
}

impl Mandate {
    /// The first instalment date: the first `sip_day` on or after the start date.
    pub fn first_due_date(&self) -> Option<NaiveDate> {
        let in_start_month = self.start_date.with_day(self.sip_day)?;
        if in_start_month >= self.start_date {
            Some(in_start_month)
        } else {
            in_start_month.checked_add_months(Months::new(1))
        }
    }

    fn is_skipped(&self, due: NaiveDate) -> bool {
        match self.status {
            SipStatus::Cancelled => true,
            SipStatus::Paused => self.paused_until.is_none_or(|until| due <= until),
            SipStatus::Active => false,
        }
    }

    /// The instalments due in `[from, to]`: each month's `sip_day` from the first due date
    /// until the end date, minus those a pause or cancellation skips. No holiday roll here:
    /// a due date on a weekend or holiday executes at the NAV of the next business day
    /// (see [`applicable_date`]).
    pub fn due_dates(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        let mut dates = Vec::new();
        let (Some(first), true) = (self.first_due_date(), (1..=28).contains(&self.sip_day)) else {
            return dates;
        };
        let from = from.max(first);
        let to = self.end_date.map_or(to, |end| to.min(end));
        let Some(mut month) = from.with_day(1) else {
            return dates;
        };
        while month <= to {
            if let Some(due) = month.with_day(self.sip_day) {
                if due >= from && due <= to && !self.is_skipped(due) {
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

    /// The first instalment these terms settle when they apply from batch date
    /// `effective_from`: the first due date whose run — the business day its NAV is dated,
    /// [`applicable_date`] — is on or after `effective_from`. (A run on date B takes the
    /// instalments due since the previous business day, with the mandate snapshot as of B.)
    /// `None` when nothing more falls due within a year and a month.
    pub fn first_instalment_from(
        &self,
        calendar: &BusinessCalendar,
        effective_from: NaiveDate,
    ) -> Option<NaiveDate> {
        // A due date runs at most a couple of weeks after it falls (long holiday chains).
        let from = effective_from.checked_sub_days(chrono::Days::new(14))?;
        let to = effective_from.checked_add_days(chrono::Days::new(400))?;
        self.due_dates(from, to)
            .into_iter()
            .find(|due| applicable_date(calendar, *due) >= effective_from)
    }

    /// Whole years of instalments before `due` (0 in the first twelve months).
    pub fn step_up_year(&self, due: NaiveDate) -> u32 {
        let Some(first) = self.first_due_date() else {
            return 0;
        };
        let months = (due.year() - first.year()) * 12 + due.month() as i32 - first.month() as i32;
        (months.max(0) / 12) as u32
    }

    /// The instalment amount for `due`: the amount stepped up once per completed year,
    /// each step rounded half up to the paisa.
    pub fn instalment_amount(&self, due: NaiveDate) -> Paise {
        let mut amount = i128::from(self.amount.0);
        for _ in 0..self.step_up_year(due) {
            amount = div_round_half_up(amount * (10_000 + i128::from(self.step_up_bps)), 10_000);
        }
        Paise(amount.min(i128::from(i64::MAX)) as i64)
    }
}

/// What became of an instalment in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstalmentStatus {
    Executed,
    /// The NAV of the applicable date is not published yet; a later run executes it.
    Pending,
    /// The bank reported the debit as failed.
    Failed,
    /// Executed by an earlier run, then returned by the bank (returns come T+1 to T+3): the
    /// row repeats the allotment's amount and units, which come out of the holding again.
    Reversed,
}

impl InstalmentStatus {
    /// Every status, in the order the API lists them.
    pub const ALL: [InstalmentStatus; 4] = [
        InstalmentStatus::Executed,
        InstalmentStatus::Pending,
        InstalmentStatus::Failed,
        InstalmentStatus::Reversed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InstalmentStatus::Executed => "executed",
            InstalmentStatus::Pending => "pending",
            InstalmentStatus::Failed => "failed",
            InstalmentStatus::Reversed => "reversed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// An `investments` row: one instalment attempt as of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Investment {
    pub sip_id: i64,
    pub user_id: i64,
    pub scheme_code: i64,
    pub due_date: NaiveDate,
    pub status: InstalmentStatus,
    pub amount: Paise,
    /// Zero unless executed.
    pub stamp_duty: Paise,
    pub nav_date: Option<NaiveDate>,
    pub nav: Option<Nav>,
    pub units: Option<Units>,
}

/// A `sip_state` row: what a run carries to the next for a SIP whose last instalment failed
/// or which the batch cancelled. SIPs in good standing have no row, so the table stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipState {
    pub sip_id: i64,
    pub user_id: i64,
    pub failure_streak: i32,
    pub cancelled_on: Option<NaiveDate>,
}

/// What a notification will be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SipEventKind {
    Executed,
    Pending,
    Failed,
    Cancelled,
    /// No NAV came within the limit (see [`NO_NAV_AFTER_BUSINESS_DAYS`]): the instalment
    /// failed, no money taken.
    NoNav,
    /// The bank returned an executed instalment's debit: its units were taken back.
    Reversed,
}

impl SipEventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SipEventKind::Executed => "executed",
            SipEventKind::Pending => "pending",
            SipEventKind::Failed => "failed",
            SipEventKind::Cancelled => "cancelled",
            SipEventKind::NoNav => "no_nav",
            SipEventKind::Reversed => "reversed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "executed" => Some(SipEventKind::Executed),
            "pending" => Some(SipEventKind::Pending),
            "failed" => Some(SipEventKind::Failed),
            "cancelled" => Some(SipEventKind::Cancelled),
            "no_nav" => Some(SipEventKind::NoNav),
            "reversed" => Some(SipEventKind::Reversed),
            _ => None,
        }
    }
}

/// A `sip_events` row: one fact a notification is made from. `event_id` is stable across
/// re-runs (`sip:<sip_id>:<due_date>:<kind>`), so the outbox can deduplicate on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipEvent {
    pub event_id: String,
    pub sip_id: i64,
    pub user_id: i64,
    pub scheme_code: i64,
    pub due_date: NaiveDate,
    pub kind: SipEventKind,
    pub amount: Paise,
    pub nav_date: Option<NaiveDate>,
    pub nav: Option<Nav>,
    pub units: Option<Units>,
}

impl SipEvent {
    fn of(investment: &Investment, kind: SipEventKind) -> Self {
        Self {
            event_id: format!(
                "sip:{}:{}:{}",
                investment.sip_id,
                investment.due_date,
                kind.as_str()
            ),
            sip_id: investment.sip_id,
            user_id: investment.user_id,
            scheme_code: investment.scheme_code,
            due_date: investment.due_date,
            kind,
            amount: investment.amount,
            nav_date: investment.nav_date,
            nav: investment.nav,
            units: investment.units,
        }
    }
}

/// Published NAVs by scheme, for finding the NAV an instalment executes at.
#[derive(Debug, Default, Clone)]
pub struct NavLookup {
    by_scheme: HashMap<i64, Vec<(NaiveDate, Nav)>>,
}

impl NavLookup {
    pub fn insert(&mut self, scheme_code: i64, nav_date: NaiveDate, nav: Nav) {
        self.by_scheme
            .entry(scheme_code)
            .or_default()
            .push((nav_date, nav));
    }

    /// Sorts each scheme's NAVs; call once after the inserts.
    pub fn finish(&mut self) {
        for navs in self.by_scheme.values_mut() {
            navs.sort_unstable();
            navs.dedup_by_key(|(date, _)| *date);
        }
    }

    /// Adds a NAV dated on or after every NAV already held for the scheme, keeping the
    /// lookup as [`NavLookup::finish`] leaves it (of two NAVs one day, the lower, as the sort
    /// there keeps), so a lookup extended a day at a time answers as one built at once.
    pub fn push_latest(&mut self, scheme_code: i64, nav_date: NaiveDate, nav: Nav) {
        let navs = self.by_scheme.entry(scheme_code).or_default();
        match navs.last_mut() {
            Some(last) if last.0 == nav_date => last.1 = last.1.min(nav),
            Some(last) if last.0 > nav_date => {
                // Not the latest: fall back to the general path for this scheme.
                navs.push((nav_date, nav));
                navs.sort_unstable();
                navs.dedup_by_key(|(date, _)| *date);
            }
            _ => navs.push((nav_date, nav)),
        }
    }

    /// Drops every NAV dated before `from`, and schemes left with none, as a lookup built
    /// from `from` on would not have them.
    pub fn retain_from(&mut self, from: NaiveDate) {
        self.by_scheme.retain(|_, navs| {
            let before = navs.partition_point(|(d, _)| *d < from);
            navs.drain(..before);
            !navs.is_empty()
        });
    }

    /// The scheme's NAV dated exactly `date`, if published. An instalment executes only at
    /// the NAV of its applicable date, never at a later one that happens to be there.
    pub fn on(&self, scheme_code: i64, date: NaiveDate) -> Option<Nav> {
        let navs = self.by_scheme.get(&scheme_code)?;
        let i = navs.binary_search_by_key(&date, |(d, _)| *d).ok()?;
        navs.get(i).map(|(_, nav)| *nav)
    }

    /// The scheme's latest NAV on or before `date`.
    pub fn on_or_before(&self, scheme_code: i64, date: NaiveDate) -> Option<Nav> {
        let navs = self.by_scheme.get(&scheme_code)?;
        let i = navs.partition_point(|(d, _)| *d <= date);
        i.checked_sub(1)
            .and_then(|i| navs.get(i))
            .map(|(_, nav)| *nav)
    }

    /// For every scheme, its latest NAV on or before each of `dates` (ascending).
    pub fn prices_at(&self, dates: &[NaiveDate]) -> HashMap<i64, Vec<Option<Nav>>> {
        self.by_scheme
            .iter()
            .map(|(code, navs)| {
                let prices = dates
                    .iter()
                    .map(|date| {
                        let i = navs.partition_point(|(d, _)| d <= date);
                        i.checked_sub(1)
                            .and_then(|i| navs.get(i))
                            .map(|(_, nav)| *nav)
                    })
                    .collect();
                (*code, prices)
            })
            .collect()
    }

    /// Every scheme's latest NAV on or before `date`, with its date.
    pub fn latest_all(&self, date: NaiveDate) -> HashMap<i64, (NaiveDate, Nav)> {
        self.by_scheme
            .keys()
            .filter_map(|code| Some((*code, self.latest_on_or_before(*code, date)?)))
            .collect()
    }

    /// The latest NAV dated on or before `date`: what a holding is valued at on `date`.
    pub fn latest_on_or_before(
        &self,
        scheme_code: i64,
        date: NaiveDate,
    ) -> Option<(NaiveDate, Nav)> {
        let navs = self.by_scheme.get(&scheme_code)?;
        let i = navs.partition_point(|(d, _)| *d <= date);
        i.checked_sub(1).and_then(|i| navs.get(i)).copied()
    }
}

/// SEBI's applicable NAV date of an instalment due on `due`: the business day the funds are
/// realised, which is the due date, or the next business day when it falls on a weekend or
/// holiday.
pub fn applicable_date(calendar: &BusinessCalendar, due: NaiveDate) -> NaiveDate {
    calendar.roll_forward(due)
}

/// The status the API shows for a mandate that [`has_run_its_course`] (never stored).
pub const COMPLETED: &str = "completed";

/// Whether a mandate (a SIP, an SWP or an STP) ending on `end_date` has run its course by
/// `today`: no instalment falls due any more, and the last possible one, due on or before the
/// end date, belonged to the batch of its NAV date — the end date rolled to a business day,
/// at the latest — and that day is over. Such a mandate is shown `completed` (a stored
/// active or paused status; cancelled and stopped stay as they are). That last instalment
/// may still be settling: waiting for a late NAV, or placed by a night caught up late; its
/// outcome shows in the person's investments and orders (and a plan whose last instalment
/// the source cannot pay still becomes `stopped`). The quota of open mandates stops counting
/// one earlier, the day after its end date.
pub fn has_run_its_course(
    calendar: &BusinessCalendar,
    end_date: Option<NaiveDate>,
    today: NaiveDate,
) -> bool {
    end_date.is_some_and(|end| applicable_date(calendar, end) < today)
}

/// Everything one run needs for one bucket of SIPs.
#[derive(Debug)]
pub struct ExecutionInputs<'a> {
    pub run_date: NaiveDate,
    /// New instalments are those due in `[window_start, run_date]`: the day after the
    /// previous run, so instalments due on weekends and holidays are picked up.
    pub window_start: NaiveDate,
    pub mandates: &'a [Mandate],
    /// The previous run's still-pending instalments.
    pub pending: &'a [Investment],
    /// The previous run's `sip_state`.
    pub state: &'a [SipState],
    /// `(sip_id, due_date)` of debits the bank reported failed.
    pub failures: &'a HashSet<(i64, NaiveDate)>,
    /// Instalments earlier runs executed (and none reversed) whose debit the bank's report
    /// returns: each is reversed in this run.
    pub returned: &'a [Investment],
    pub navs: &'a NavLookup,
    /// Unit decimals by scheme; missing schemes use the default of 3.
    pub unit_decimals: &'a HashMap<i64, i32>,
    /// Business days, for the applicable NAV date and the `no_nav` limit.
    pub calendar: &'a BusinessCalendar,
    /// Business days after its applicable date an instalment may wait for its NAV before it
    /// fails with `no_nav`.
    pub no_nav_after: u32,
}

/// One run's output for a bucket, each list sorted by its key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecutionOutput {
    pub investments: Vec<Investment>,
    pub state: Vec<SipState>,
    pub events: Vec<SipEvent>,
}

/// An instalment a run would record although another row already settles it: the one
/// invariant no run may break, whatever order dates run in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SIP {sip_id}, instalment due {due_date}: {reason}; refusing to write a run that would execute it twice")]
pub struct DoubleExecution {
    pub sip_id: i64,
    pub due_date: NaiveDate,
    pub reason: &'static str,
}

impl ExecutionOutput {
    /// Checks that this run records each instalment at most once across the warehouse.
    ///
    /// Runs form a chain: each reads the previous published run and takes new instalments
    /// only from the days after it, so an instalment is settled in exactly one run if every
    /// run's rows are unique and each row is either new (due in this run's window) or one
    /// the previous run handed on as pending. Checking those two facts here, on every run,
    /// keeps the invariant by induction without reading the whole history.
    pub fn check_at_most_once(&self, inputs: &ExecutionInputs<'_>) -> Result<(), DoubleExecution> {
        let carried: HashSet<(i64, NaiveDate)> = inputs
            .pending
            .iter()
            .filter(|p| p.status == InstalmentStatus::Pending)
            .map(|p| (p.sip_id, p.due_date))
            .collect();
        let returned: HashSet<(i64, NaiveDate)> = inputs
            .returned
            .iter()
            .filter(|r| r.status == InstalmentStatus::Executed)
            .map(|r| (r.sip_id, r.due_date))
            .collect();
        let mut seen = HashSet::with_capacity(self.investments.len());
        for row in &self.investments {
            let key = (row.sip_id, row.due_date);
            let fail = |reason| DoubleExecution {
                sip_id: row.sip_id,
                due_date: row.due_date,
                reason,
            };
            if !seen.insert(key) {
                return Err(fail("it appears twice in this run"));
            }
            // A reversal undoes one allotment an earlier run made, named in the inputs; the
            // job hands over only allotments no run reversed yet.
            if row.status == InstalmentStatus::Reversed {
                if !returned.contains(&key) {
                    return Err(fail("it is reversed without an allotment to reverse"));
                }
                continue;
            }
            if row.due_date < inputs.window_start && !carried.contains(&key) {
                return Err(fail(
                    "it fell due before this run's window and the previous run did not hand it on as pending, so an earlier run settled it",
                ));
            }
            if row.due_date > inputs.run_date {
                return Err(fail("it is not due yet"));
            }
        }
        Ok(())
    }
}

struct Due<'a> {
    sip_id: i64,
    due_date: NaiveDate,
    user_id: i64,
    scheme_code: i64,
    amount: Paise,
    /// First seen in this run (so its "pending" event is new).
    is_new: bool,
    /// An earlier run's allotment the bank returned: reversed, not executed.
    allotted: Option<&'a Investment>,
}

impl<'a> Due<'a> {
    /// An instalment an earlier run recorded: carried as pending, or allotted and returned.
    fn recorded(row: &Investment, allotted: Option<&'a Investment>) -> Self {
        Self {
            sip_id: row.sip_id,
            due_date: row.due_date,
            user_id: row.user_id,
            scheme_code: row.scheme_code,
            amount: row.amount,
            is_new: false,
            allotted,
        }
    }
}

/// Whether an instalment due on `due` has waited more than `no_nav_after` business days past
/// its applicable date for the NAV.
fn waited_too_long(inputs: &ExecutionInputs<'_>, due: NaiveDate) -> bool {
    let applicable = applicable_date(inputs.calendar, due);
    applicable < inputs.run_date
        && inputs
            .calendar
            .business_days(applicable.succ_opt().unwrap_or(applicable), inputs.run_date)
            .nth(inputs.no_nav_after as usize)
            .is_some()
}

/// Executes one bucket's instalments for one run date. Pure: the same inputs give the same
/// output, which is what makes re-runs and shards byte-identical.
pub fn execute_instalments(inputs: &ExecutionInputs<'_>) -> ExecutionOutput {
    let mut state: BTreeMap<i64, SipState> =
        inputs.state.iter().map(|s| (s.sip_id, s.clone())).collect();

    let mut due: Vec<Due> = inputs
        .pending
        .iter()
        .filter(|p| p.status == InstalmentStatus::Pending)
        .map(|p| Due::recorded(p, None))
        .chain(
            inputs
                .returned
                .iter()
                .filter(|r| r.status == InstalmentStatus::Executed)
                .map(|r| Due::recorded(r, Some(r))),
        )
        .collect();
    for mandate in inputs.mandates {
        if state
            .get(&mandate.sip_id)
            .is_some_and(|s| s.cancelled_on.is_some())
        {
            continue;
        }
        for due_date in mandate.due_dates(inputs.window_start, inputs.run_date) {
            due.push(Due {
                sip_id: mandate.sip_id,
                due_date,
                user_id: mandate.user_id,
                scheme_code: mandate.scheme_code,
                amount: mandate.instalment_amount(due_date),
                is_new: true,
                allotted: None,
            });
        }
    }
    due.sort_unstable_by_key(|d| (d.sip_id, d.due_date, !d.is_new));
    due.dedup_by_key(|d| (d.sip_id, d.due_date));

    let mut out = ExecutionOutput::default();
    for d in due {
        let entry = state.entry(d.sip_id).or_insert(SipState {
            sip_id: d.sip_id,
            user_id: d.user_id,
            failure_streak: 0,
            cancelled_on: None,
        });
        // A SIP cancelled earlier in this same walk takes no new instalments; money already
        // debited for a pending one is still invested.
        if entry.cancelled_on.is_some() && d.is_new {
            continue;
        }
        if let Some(allotted) = d.allotted {
            // The money came back to the investor: the units go, and the return counts
            // towards the failed-debit streak like a debit that failed on the day.
            let row = Investment {
                status: InstalmentStatus::Reversed,
                ..allotted.clone()
            };
            entry.failure_streak += 1;
            out.events.push(SipEvent::of(&row, SipEventKind::Reversed));
            if entry.failure_streak >= FAILURES_BEFORE_CANCEL && entry.cancelled_on.is_none() {
                entry.cancelled_on = Some(inputs.run_date);
                out.events.push(SipEvent::of(&row, SipEventKind::Cancelled));
            }
            out.investments.push(row);
            continue;
        }
        let mut row = Investment {
            sip_id: d.sip_id,
            user_id: d.user_id,
            scheme_code: d.scheme_code,
            due_date: d.due_date,
            status: InstalmentStatus::Pending,
            amount: d.amount,
            stamp_duty: Paise(0),
            nav_date: None,
            nav: None,
            units: None,
        };
        if inputs.failures.contains(&(d.sip_id, d.due_date)) {
            row.status = InstalmentStatus::Failed;
            entry.failure_streak += 1;
            out.events.push(SipEvent::of(&row, SipEventKind::Failed));
            if entry.failure_streak >= FAILURES_BEFORE_CANCEL && entry.cancelled_on.is_none() {
                entry.cancelled_on = Some(inputs.run_date);
                out.events.push(SipEvent::of(&row, SipEventKind::Cancelled));
            }
        } else if let Some((nav_date, nav)) = Some(applicable_date(inputs.calendar, d.due_date))
            .filter(|date| *date <= inputs.run_date)
            .and_then(|date| Some((date, inputs.navs.on(d.scheme_code, date)?)))
        {
            let duty = stamp_duty(d.amount);
            let decimals = inputs
                .unit_decimals
                .get(&d.scheme_code)
                .copied()
                .unwrap_or(DEFAULT_UNIT_DECIMALS);
            row.status = InstalmentStatus::Executed;
            row.stamp_duty = duty;
            row.nav_date = Some(nav_date);
            row.nav = Some(nav);
            row.units = Some(allot_units(Paise(d.amount.0 - duty.0), nav, decimals));
            entry.failure_streak = 0;
            out.events.push(SipEvent::of(&row, SipEventKind::Executed));
        } else if waited_too_long(inputs, d.due_date) {
            row.status = InstalmentStatus::Failed;
            out.events.push(SipEvent::of(&row, SipEventKind::NoNav));
        } else if d.is_new {
            out.events.push(SipEvent::of(&row, SipEventKind::Pending));
        }
        out.investments.push(row);
    }
    out.state = state
        .into_values()
        .filter(|s| s.failure_streak > 0 || s.cancelled_on.is_some())
        .collect();
    out.events.sort_by_key(|e| (e.sip_id, e.due_date, e.kind));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holdings::{roll_forward, Holding};
    use crate::money::cost_e12;
    use proptest::prelude::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn mandate(sip_day: u32, start: &str) -> Mandate {
        Mandate {
            sip_id: 1,
            user_id: 10,
            scheme_code: 100,
            amount: Paise(300_000),
            sip_day,
            start_date: d(start),
            end_date: None,
            step_up_bps: 0,
            status: SipStatus::Active,
            paused_until: None,
        }
    }

    /// Ending on Saturday 12 December 2026: the last instalment can be bought on Monday the
    /// 14th (and on Tuesday the 15th were the Monday a holiday), so the mandate has run its
    /// course from the day after.
    #[test]
    fn a_mandate_has_run_its_course_the_day_after_its_end_dates_nav_date() {
        let calendar = BusinessCalendar::with_holidays([]);
        let end = Some(d("2026-12-12"));
        assert!(!has_run_its_course(&calendar, end, d("2026-12-12")));
        assert!(!has_run_its_course(&calendar, end, d("2026-12-14")));
        assert!(has_run_its_course(&calendar, end, d("2026-12-15")));
        let holiday = BusinessCalendar::with_holidays([d("2026-12-14")]);
        assert!(!has_run_its_course(&holiday, end, d("2026-12-15")));
        assert!(has_run_its_course(&holiday, end, d("2026-12-16")));
        assert!(!has_run_its_course(&calendar, None, d("2099-01-01")));
    }

    #[test]
    fn stamp_duty_is_the_registrars_formula_to_the_paisa() {
        // amount × 0.005 / 100.005, worked by hand and rounded half up to the paisa.
        assert_eq!(stamp_duty(Paise(50_000)), Paise(2)); // ₹500 → 2.49988 paise → ₹0.02
        assert_eq!(stamp_duty(Paise(150_000)), Paise(7)); // ₹1,500 → 7.49963 → ₹0.07
        assert_eq!(stamp_duty(Paise(250_000)), Paise(12)); // ₹2,500 → 12.49938 → ₹0.12
        assert_eq!(stamp_duty(Paise(1_010_100)), Paise(51)); // ₹10,101 → 50.50247 → ₹0.51
        assert_eq!(stamp_duty(Paise(10_000_000)), Paise(500)); // ₹1,00,000 → 499.975 → ₹5.00
        assert_eq!(stamp_duty(Paise(300_000)), Paise(15)); // ₹3,000 → 14.99925 → ₹0.15
        assert_eq!(stamp_duty(Paise(10_000)), Paise(0)); // ₹100 → 0.49998 → ₹0
        assert_eq!(stamp_duty(Paise(30_000)), Paise(1)); // ₹300 → 1.49993 → ₹0.01
                                                         // What the investor sees: ₹500 at NAV 10 allots 49.998 units (₹499.98 net).
        let nav: Nav = "10".parse().unwrap();
        assert_eq!(allot_units(Paise(50_000 - 2), nav, 3), Units(49_9980));
    }

    #[test]
    fn units_round_down_to_the_scheme_decimals() {
        let nav: Nav = "123.4567".parse().unwrap();
        // 2999.85 / 123.4567 = 24.298801…
        assert_eq!(allot_units(Paise(299_985), nav, 3), Units(24_2980));
        assert_eq!(allot_units(Paise(299_985), nav, 4), Units(24_2988));
        assert_eq!(allot_units(Paise(299_985), nav, 0), Units(24_0000));
        // Exactly on a unit boundary: no rounding down below the exact value.
        assert_eq!(
            allot_units(Paise(10_000), "10".parse().unwrap(), 3),
            Units(10_0000)
        );
        assert_eq!(
            allot_units(Paise(9_999), "10".parse().unwrap(), 3),
            Units(9_9990)
        );
    }

    #[test]
    fn due_dates_cross_month_ends_and_leap_years() {
        let m = mandate(28, "2024-01-31");
        assert_eq!(m.first_due_date(), Some(d("2024-02-28")));
        assert_eq!(
            m.due_dates(d("2024-01-01"), d("2024-04-30")),
            vec![d("2024-02-28"), d("2024-03-28"), d("2024-04-28")]
        );
        let leap = mandate(5, "2024-02-29");
        assert_eq!(leap.first_due_date(), Some(d("2024-03-05")));
        // A window of one day is due only on that day.
        assert_eq!(
            leap.due_dates(d("2024-04-05"), d("2024-04-05")),
            vec![d("2024-04-05")]
        );
        assert!(leap.due_dates(d("2024-04-06"), d("2024-05-04")).is_empty());
        // A start on the SIP day is due that day.
        assert_eq!(
            mandate(10, "2024-12-10").first_due_date(),
            Some(d("2024-12-10"))
        );
        // December rolls into the next year.
        assert_eq!(
            mandate(15, "2024-12-16").first_due_date(),
            Some(d("2025-01-15"))
        );
    }

    #[test]
    fn end_date_pause_and_cancellation_stop_instalments() {
        let mut m = mandate(10, "2024-01-01");
        m.end_date = Some(d("2024-03-10"));
        assert_eq!(
            m.due_dates(d("2024-01-01"), d("2024-12-31")),
            vec![d("2024-01-10"), d("2024-02-10"), d("2024-03-10")]
        );
        let mut paused = mandate(10, "2024-01-01");
        paused.status = SipStatus::Paused;
        paused.paused_until = Some(d("2024-02-10"));
        assert_eq!(
            paused.due_dates(d("2024-01-01"), d("2024-04-30")),
            vec![d("2024-03-10"), d("2024-04-10")]
        );
        paused.paused_until = None;
        assert!(paused
            .due_dates(d("2024-01-01"), d("2024-04-30"))
            .is_empty());
        let mut cancelled = mandate(10, "2024-01-01");
        cancelled.status = SipStatus::Cancelled;
        assert!(cancelled
            .due_dates(d("2024-01-01"), d("2024-04-30"))
            .is_empty());
    }

    /// A change applies to the instalments whose run is on or after its effective date: a SIP
    /// starting on its own SIP day, created after that day's cut-off (effective the next day),
    /// has its first instalment a month later; one due on a Saturday is still run on Monday.
    #[test]
    fn the_first_instalment_of_new_terms_is_the_first_run_on_or_after_their_effective_date() {
        let calendar = BusinessCalendar::nse();
        let m = mandate(2, "2025-06-02"); // Monday 2 June 2025
        assert_eq!(
            m.first_instalment_from(&calendar, d("2025-06-02")),
            Some(d("2025-06-02"))
        );
        assert_eq!(
            m.first_instalment_from(&calendar, d("2025-06-03")),
            Some(d("2025-07-02"))
        );
        let saturday = mandate(7, "2025-06-07"); // Saturday 7 June: runs Monday 9 June
        assert_eq!(
            saturday.first_instalment_from(&calendar, d("2025-06-08")),
            Some(d("2025-06-07"))
        );
        assert_eq!(
            saturday.first_instalment_from(&calendar, d("2025-06-10")),
            Some(d("2025-07-07"))
        );
        // Paused through the 2 July instalment (the last skipped day): 2 August is next.
        let mut paused = mandate(2, "2025-06-02");
        paused.status = SipStatus::Paused;
        paused.paused_until = Some(d("2025-07-02"));
        assert_eq!(
            paused.first_instalment_from(&calendar, d("2025-06-20")),
            Some(d("2025-08-02"))
        );
        paused.paused_until = Some(d("2025-07-01"));
        assert_eq!(
            paused.first_instalment_from(&calendar, d("2025-06-20")),
            Some(d("2025-07-02"))
        );
        let mut cancelled = mandate(2, "2025-06-02");
        cancelled.status = SipStatus::Cancelled;
        assert_eq!(
            cancelled.first_instalment_from(&calendar, d("2025-06-02")),
            None
        );
    }

    #[test]
    fn step_up_applies_per_completed_year_rounded_each_year() {
        let mut m = mandate(5, "2024-01-05");
        m.amount = Paise(333_333); // ₹3,333.33
        m.step_up_bps = 1000; // 10%
        assert_eq!(m.instalment_amount(d("2024-12-05")), Paise(333_333));
        assert_eq!(m.instalment_amount(d("2025-01-05")), Paise(366_666)); // 3666.663 → .66
        assert_eq!(m.instalment_amount(d("2026-01-05")), Paise(403_333)); // 4033.326 → .33
        assert_eq!(m.step_up_year(d("2025-12-05")), 1);
    }

    /// NAVs given in 1/10,000 rupee, the scale most published NAVs have.
    fn lookup(navs: &[(i64, &str, i64)]) -> NavLookup {
        let mut lookup = NavLookup::default();
        for &(scheme, date, nav) in navs {
            lookup.insert(scheme, d(date), Nav::from_scaled(nav * 10_000));
        }
        lookup.finish();
        lookup
    }

    fn run(
        run_date: &str,
        window_start: &str,
        mandates: &[Mandate],
        pending: &[Investment],
        state: &[SipState],
        failures: &[(i64, &str)],
        navs: &NavLookup,
    ) -> ExecutionOutput {
        let failures = failures.iter().map(|&(s, due)| (s, d(due))).collect();
        execute_instalments(&ExecutionInputs {
            run_date: d(run_date),
            window_start: d(window_start),
            mandates,
            pending,
            state,
            failures: &failures,
            returned: &[],
            navs,
            unit_decimals: &HashMap::new(),
            calendar: &BusinessCalendar::nse(),
            no_nav_after: NO_NAV_AFTER_BUSINESS_DAYS,
        })
    }

    /// A scheme that never publishes again: the instalment waits NO_NAV_AFTER_BUSINESS_DAYS
    /// business days, then fails with `no_nav` — no money taken, no units, and the
    /// failed-debit streak untouched.
    #[test]
    fn an_instalment_without_a_nav_for_too_long_fails_with_no_nav() {
        let m = mandate(5, "2024-11-01");
        // Later NAVs arrive, but never the one dated the 5th: the instalment must not take them.
        let navs = lookup(&[(100, "2024-12-04", 10_0000), (100, "2024-12-06", 11_0000)]);
        let pending = run("2024-12-05", "2024-12-05", &[m], &[], &[], &[], &navs).investments;
        assert_eq!(pending[0].status, InstalmentStatus::Pending);
        // 2024-12-06 … 2025-01-03 holds exactly 20 business days (25 December is an NSE
        // holiday): still waiting on the 20th, failed on the 21st (Monday 6 January).
        let calendar = BusinessCalendar::nse();
        assert_eq!(
            calendar
                .business_days(d("2024-12-06"), d("2025-01-03"))
                .count(),
            20
        );
        let waiting = run("2025-01-03", "2025-01-03", &[], &pending, &[], &[], &navs);
        assert_eq!(
            waiting.investments[0].status,
            InstalmentStatus::Pending,
            "20 business days: still waiting"
        );
        let out = run("2025-01-06", "2025-01-06", &[], &pending, &[], &[], &navs);
        let inv = &out.investments[0];
        assert_eq!(inv.status, InstalmentStatus::Failed);
        assert_eq!((inv.units, inv.nav, inv.stamp_duty), (None, None, Paise(0)));
        assert_eq!(out.events[0].kind, SipEventKind::NoNav);
        assert_eq!(out.events[0].event_id, "sip:1:2024-12-05:no_nav");
        assert!(out.state.is_empty(), "no failure streak: {:?}", out.state);
    }

    #[test]
    fn holiday_due_dates_execute_at_the_next_nav() {
        // Due Saturday 2024-12-28; Monday's run picks it up at Monday's NAV.
        let m = mandate(28, "2024-12-01");
        let navs = lookup(&[(100, "2024-12-27", 10_0000), (100, "2024-12-30", 20_0000)]);
        let out = run("2024-12-30", "2024-12-28", &[m], &[], &[], &[], &navs);
        assert_eq!(out.investments.len(), 1);
        let inv = &out.investments[0];
        assert_eq!(inv.status, InstalmentStatus::Executed);
        assert_eq!(inv.nav_date, Some(d("2024-12-30")));
        assert_eq!(inv.stamp_duty, Paise(15));
        assert_eq!(inv.units, Some(Units(149_9920))); // 2999.85 / 20 = 149.9925 → 149.992
        assert_eq!(out.events[0].kind, SipEventKind::Executed);
        assert_eq!(out.events[0].event_id, "sip:1:2024-12-28:executed");
    }

    /// SEBI's applicable NAV: the due date's own NAV, never the next one the warehouse holds.
    /// When the daily file lacked it and the next day's arrived, the instalment waits; once
    /// the history report for the due date is ingested, it executes at that NAV.
    #[test]
    fn an_instalment_waits_for_its_own_nav_and_never_takes_a_later_one() {
        let m = mandate(10, "2024-12-01");
        let next_day_only = lookup(&[(100, "2024-12-11", 12_0000)]);
        let out = run(
            "2024-12-11",
            "2024-12-10",
            &[m],
            &[],
            &[],
            &[],
            &next_day_only,
        );
        assert_eq!(out.investments[0].status, InstalmentStatus::Pending);
        assert_eq!(out.investments[0].nav, None);
        let filled = lookup(&[(100, "2024-12-10", 11_0000), (100, "2024-12-11", 12_0000)]);
        let out = run(
            "2024-12-12",
            "2024-12-12",
            &[],
            &out.investments,
            &[],
            &[],
            &filled,
        );
        assert_eq!(out.investments[0].status, InstalmentStatus::Executed);
        assert_eq!(out.investments[0].nav_date, Some(d("2024-12-10")));
        assert_eq!(
            out.investments[0].nav,
            Some(Nav::from_scaled(11_0000 * 10_000))
        );
    }

    /// A due date on an NSE holiday takes the next business day's NAV, not the holiday's
    /// (there is none) and not a later one.
    #[test]
    fn the_applicable_date_rolls_over_weekends_and_holidays() {
        let calendar = BusinessCalendar::nse();
        assert_eq!(applicable_date(&calendar, d("2024-12-25")), d("2024-12-26"));
        assert_eq!(applicable_date(&calendar, d("2024-12-28")), d("2024-12-30"));
        assert_eq!(applicable_date(&calendar, d("2024-12-27")), d("2024-12-27"));
    }

    /// The at-most-once check refuses a run that would settle an instalment an earlier run
    /// already settled, or settle one twice.
    #[test]
    fn the_at_most_once_check_refuses_a_second_execution() {
        let m = mandate(10, "2024-12-01");
        let navs = lookup(&[(100, "2024-12-10", 10_0000)]);
        let failures = HashSet::new();
        let decimals = HashMap::new();
        let calendar = BusinessCalendar::nse();
        let inputs = ExecutionInputs {
            run_date: d("2024-12-10"),
            window_start: d("2024-12-10"),
            mandates: std::slice::from_ref(&m),
            pending: &[],
            state: &[],
            failures: &failures,
            returned: &[],
            navs: &navs,
            unit_decimals: &decimals,
            calendar: &calendar,
            no_nav_after: NO_NAV_AFTER_BUSINESS_DAYS,
        };
        let out = execute_instalments(&inputs);
        assert_eq!(out.check_at_most_once(&inputs), Ok(()));
        // The same rows claimed by a run whose window starts after the due date, with nothing
        // carried: the instalment belongs to an earlier run.
        let later = ExecutionInputs {
            run_date: d("2024-12-11"),
            window_start: d("2024-12-11"),
            ..inputs
        };
        let err = out.check_at_most_once(&later).unwrap_err();
        assert_eq!((err.sip_id, err.due_date), (1, d("2024-12-10")));
        let mut twice = out;
        twice.investments.push(twice.investments[0].clone());
        assert!(twice.check_at_most_once(&inputs).is_err());
    }

    /// The bank returns a debit after the instalment was allotted: the next run reverses it
    /// (same amount and units, so the holding loses exactly what it gained), tells the user,
    /// counts it towards the streak, and two more failed debits cancel the SIP.
    #[test]
    fn a_returned_debit_reverses_its_allotment_and_counts_towards_cancellation() {
        let m = mandate(10, "2024-10-01");
        let navs = lookup(&[
            (100, "2024-10-10", 10_0000),
            (100, "2024-10-14", 10_0000),
            (100, "2024-11-11", 10_0000),
            (100, "2024-12-10", 10_0000),
        ]);
        let allotted = run(
            "2024-10-10",
            "2024-10-10",
            std::slice::from_ref(&m),
            &[],
            &[],
            &[],
            &navs,
        );
        let executed = allotted.investments[0].clone();
        assert_eq!(executed.status, InstalmentStatus::Executed);

        let failures: HashSet<(i64, NaiveDate)> = [(1, d("2024-10-10"))].into();
        let (decimals, calendar) = (HashMap::new(), BusinessCalendar::nse());
        let inputs = ExecutionInputs {
            run_date: d("2024-10-14"),
            window_start: d("2024-10-11"),
            mandates: std::slice::from_ref(&m),
            pending: &[],
            state: &[],
            failures: &failures,
            returned: std::slice::from_ref(&executed),
            navs: &navs,
            unit_decimals: &decimals,
            calendar: &calendar,
            no_nav_after: NO_NAV_AFTER_BUSINESS_DAYS,
        };
        let reversal = execute_instalments(&inputs);
        assert_eq!(
            reversal.investments,
            vec![Investment {
                status: InstalmentStatus::Reversed,
                ..executed.clone()
            }]
        );
        assert_eq!(reversal.events[0].kind, SipEventKind::Reversed);
        assert_eq!(reversal.events[0].event_id, "sip:1:2024-10-10:reversed");
        assert_eq!(reversal.state[0].failure_streak, 1);
        assert_eq!(reversal.check_at_most_once(&inputs), Ok(()));
        // The holding is back where it was before the allotment.
        let held = roll_forward(
            &[],
            allotted.investments.iter().chain(&reversal.investments),
        );
        assert!(
            held.iter().all(|h| h.units.0 == 0 && h.invested.0 == 0),
            "{held:?}"
        );
        // A reversal the inputs did not ask for is refused.
        let unasked = ExecutionInputs {
            returned: &[],
            ..inputs
        };
        assert!(reversal.check_at_most_once(&unasked).is_err());

        // Two more failed debits: cancelled on the third.
        let failures: HashSet<(i64, NaiveDate)> =
            [(1, d("2024-11-10")), (1, d("2024-12-10"))].into();
        let november = ExecutionInputs {
            run_date: d("2024-11-11"),
            window_start: d("2024-10-15"),
            state: &reversal.state,
            failures: &failures,
            returned: &[],
            ..inputs
        };
        let november_out = execute_instalments(&november);
        assert_eq!(november_out.investments[0].status, InstalmentStatus::Failed);
        assert!(november_out.state[0].cancelled_on.is_none());
        let december = ExecutionInputs {
            run_date: d("2024-12-10"),
            window_start: d("2024-11-12"),
            state: &november_out.state,
            ..november
        };
        let december_out = execute_instalments(&december);
        assert_eq!(december_out.state[0].cancelled_on, Some(d("2024-12-10")));
        assert!(december_out
            .events
            .iter()
            .any(|e| e.kind == SipEventKind::Cancelled));
    }

    #[test]
    fn pending_then_executed_when_the_nav_arrives() {
        let m = mandate(10, "2024-12-01");
        let none = lookup(&[(100, "2024-12-09", 10_0000)]);
        let first = run(
            "2024-12-10",
            "2024-12-10",
            std::slice::from_ref(&m),
            &[],
            &[],
            &[],
            &none,
        );
        assert_eq!(first.investments[0].status, InstalmentStatus::Pending);
        assert_eq!(first.events[0].kind, SipEventKind::Pending);

        // Next day, still no NAV: still pending, but no second "pending" event.
        let second = run(
            "2024-12-11",
            "2024-12-11",
            std::slice::from_ref(&m),
            &first.investments,
            &[],
            &[],
            &none,
        );
        assert_eq!(second.investments, first.investments);
        assert!(second.events.is_empty());

        // The NAV for the 10th was published late: it, not the 12th's, applies.
        let late = lookup(&[(100, "2024-12-10", 11_0000), (100, "2024-12-12", 12_0000)]);
        let third = run(
            "2024-12-12",
            "2024-12-12",
            &[m],
            &second.investments,
            &[],
            &[],
            &late,
        );
        assert_eq!(third.investments[0].status, InstalmentStatus::Executed);
        assert_eq!(third.investments[0].nav_date, Some(d("2024-12-10")));
        assert_eq!(third.investments[0].due_date, d("2024-12-10"));
    }

    #[test]
    fn three_consecutive_failures_cancel_the_sip() {
        let m = mandate(10, "2024-01-01");
        let navs = lookup(&[(100, "2024-01-10", 10_0000), (100, "2024-04-10", 10_0000)]);
        let mut state = Vec::new();
        let mut cancelled_events = 0;
        for (month, fails) in [("01", false), ("02", true), ("03", true), ("04", false)] {
            let date = format!("2024-{month}-10");
            let fail: Vec<(i64, &str)> = if fails {
                vec![(1, date.as_str())]
            } else {
                vec![]
            };
            let out = run(
                &date,
                &date,
                std::slice::from_ref(&m),
                &[],
                &state,
                &fail,
                &navs,
            );
            state = out.state;
            cancelled_events += out
                .events
                .iter()
                .filter(|e| e.kind == SipEventKind::Cancelled)
                .count();
        }
        // Two failures then a success: the streak resets, nothing cancelled.
        assert!(state.is_empty());
        assert_eq!(cancelled_events, 0);

        let mut state = Vec::new();
        let mut last = ExecutionOutput::default();
        for month in ["05", "06", "07", "08"] {
            let date = format!("2024-{month}-10");
            let out = run(
                &date,
                &date,
                std::slice::from_ref(&m),
                &[],
                &state,
                &[(1, date.as_str())],
                &navs,
            );
            state = out.state.clone();
            last = out;
            if month == "07" {
                assert_eq!(state[0].cancelled_on, Some(d("2024-07-10")));
                assert!(last
                    .events
                    .iter()
                    .any(|e| e.kind == SipEventKind::Cancelled));
            }
        }
        // After cancellation nothing more is attempted.
        assert!(last.investments.is_empty());
        assert_eq!(state[0].failure_streak, 3);
    }

    #[test]
    fn holdings_roll_forward_from_checkpoints() {
        let inv = |user, scheme, units, amount, status| Investment {
            sip_id: 1,
            user_id: user,
            scheme_code: scheme,
            due_date: d("2024-01-10"),
            status,
            amount: Paise(amount),
            stamp_duty: Paise(0),
            nav_date: None,
            nav: None,
            units: Some(Units(units)),
        };
        let a = [inv(1, 100, 5_0000, 1000, InstalmentStatus::Executed)];
        let b = [
            inv(1, 100, 1_0000, 200, InstalmentStatus::Executed),
            inv(2, 100, 9_0000, 900, InstalmentStatus::Failed),
        ];
        let once = roll_forward(&[], a.iter().chain(&b));
        let twice = roll_forward(&roll_forward(&[], &a), &b);
        assert_eq!(once, twice);
        assert_eq!(
            once,
            vec![Holding {
                user_id: 1,
                scheme_code: 100,
                units: Units(6_0000),
                invested: Paise(1200)
            }]
        );
    }

    proptest! {
        /// amount = duty + units × NAV + residue, with 0 ≤ residue < one unit step × NAV.
        #[test]
        fn allotment_reconciles_to_the_paisa(
            amount in 10_000_i64..=10_000_000,
            nav in 1_i64..=1_000_000_000_000,
            decimals in 0_i32..=4,
        ) {
            let amount = Paise(amount);
            let nav = Nav::from_scaled(nav);
            let duty = stamp_duty(amount);
            let units = allot_units(Paise(amount.0 - duty.0), nav, decimals);
            let net_e12 = i128::from(amount.0 - duty.0) * 10_000_000_000;
            let residue = net_e12 - cost_e12(units, nav);
            let step_e12 = 10_i128.pow(4 - decimals as u32) * i128::from(nav.scaled());
            prop_assert!(residue >= 0);
            prop_assert!(residue < step_e12);
            prop_assert!(duty.0 * 20_000 <= amount.0 + 10_000);
        }

        /// The same allotment in `rust_decimal` arithmetic, written from the rules rather than
        /// from the integer code: duty = amount × 0.005 / 100.005 rounded half up to the paisa,
        /// units = (amount − duty) / NAV truncated to the scheme's decimals.
        #[test]
        fn allotment_agrees_with_decimal_arithmetic(
            amount in 10_000_i64..=10_000_000,
            nav in 1_i64..=1_000_000_000_000,
            decimals in 0_u32..=4,
        ) {
            use rust_decimal::prelude::ToPrimitive;
            use rust_decimal::{Decimal, RoundingStrategy};
            let rupees = Decimal::new(amount, 2);
            let duty = (rupees * Decimal::new(5, 3) / Decimal::new(100_005, 3))
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            let units = ((rupees - duty) / Decimal::new(nav, Nav::SCALE))
                .round_dp_with_strategy(decimals, RoundingStrategy::ToZero);
            let ours_duty = stamp_duty(Paise(amount));
            let ours_units = allot_units(Paise(amount - ours_duty.0), Nav::from_scaled(nav), decimals as i32);
            prop_assert_eq!(Some(ours_duty.0), (duty * Decimal::new(100, 0)).to_i64());
            prop_assert_eq!(Some(ours_units.0), (units * Decimal::new(10_000, 0)).to_i64());
        }

        /// Due dates against a day-by-day scan of the calendar: every day in range whose
        /// day of month is the SIP day, from the start date to the end date.
        #[test]
        fn due_dates_are_every_sip_day_in_range(
            sip_day in 1_u32..=28,
            start_offset in 0_u64..800,
            from_offset in 0_u64..900,
            length in 0_u64..400,
            end_offset in proptest::option::of(0_u64..900),
        ) {
            let base = d("2023-01-01");
            let mut m = mandate(sip_day, "2023-01-01");
            m.start_date = base + chrono::Days::new(start_offset);
            m.end_date = end_offset.map(|o| base + chrono::Days::new(o));
            let from = base + chrono::Days::new(from_offset);
            let to = from + chrono::Days::new(length);
            let scanned: Vec<NaiveDate> = from
                .iter_days()
                .take_while(|day| *day <= to)
                .filter(|day| day.day() == sip_day && *day >= m.start_date)
                .filter(|day| m.end_date.is_none_or(|end| *day <= end))
                .collect();
            prop_assert_eq!(m.due_dates(from, to), scanned);
        }

        /// Splitting a date range into consecutive windows finds the same due dates.
        #[test]
        fn due_dates_compose_over_windows(
            sip_day in 1_u32..=28,
            start_offset in 0_u64..800,
            split in 0_u64..800,
            end_offset in proptest::option::of(0_u64..900),
        ) {
            let base = d("2023-01-01");
            let mut m = mandate(sip_day, "2023-01-01");
            m.start_date = base + chrono::Days::new(start_offset);
            m.end_date = end_offset.map(|o| base + chrono::Days::new(o));
            let (from, to) = (base, base + chrono::Days::new(900));
            let mid = base + chrono::Days::new(split);
            let mut parts = m.due_dates(from, mid);
            parts.extend(m.due_dates(mid + chrono::Days::new(1), to));
            let whole = m.due_dates(from, to);
            prop_assert_eq!(&parts, &whole);
            for w in whole.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
            for due in whole {
                prop_assert_eq!(due.day(), sip_day);
                prop_assert!(due >= m.start_date);
            }
        }

        /// Running day by day equals one run over the whole range when every NAV is there.
        #[test]
        fn daily_runs_equal_one_run(sip_day in 1_u32..=28, days in 1_u64..70) {
            let m = mandate(sip_day, "2024-01-01");
            let start = d("2024-01-01");
            let mut navs = NavLookup::default();
            for i in 0..=days {
                navs.insert(100, start + chrono::Days::new(i), Nav::from_scaled((10_0000 + i as i64) * 10_000));
            }
            navs.finish();
            let end = start + chrono::Days::new(days);
            let failures = HashSet::new();
            let decimals = HashMap::new();
            let calendar = BusinessCalendar::with_holidays([]);
            let once = execute_instalments(&ExecutionInputs {
                run_date: end, window_start: start, mandates: std::slice::from_ref(&m),
                pending: &[], state: &[], failures: &failures, returned: &[], navs: &navs,
                unit_decimals: &decimals, calendar: &calendar,
                no_nav_after: NO_NAV_AFTER_BUSINESS_DAYS,
            }).investments;
            // Day by day, each run carrying the previous one's pending instalments (a weekend
            // due date waits for Monday's NAV): what settles, plus what is left pending at the
            // end, is what one run over the range gives.
            let mut daily = Vec::new();
            let mut pending: Vec<Investment> = Vec::new();
            for day in start.iter_days().take_while(|x| *x <= end) {
                let out = execute_instalments(&ExecutionInputs {
                    run_date: day, window_start: day, mandates: std::slice::from_ref(&m),
                    pending: &pending, state: &[], failures: &failures, returned: &[], navs: &navs,
                    unit_decimals: &decimals, calendar: &calendar,
                    no_nav_after: NO_NAV_AFTER_BUSINESS_DAYS,
                });
                let (waiting, settled): (Vec<_>, Vec<_>) = out
                    .investments
                    .into_iter()
                    .partition(|i| i.status == InstalmentStatus::Pending);
                daily.extend(settled);
                pending = waiting;
            }
            daily.extend(pending);
            daily.sort_by_key(|i| (i.sip_id, i.due_date));
            prop_assert_eq!(daily, once);
        }
    }

    /// The text forms are the warehouse's and the API's contract: exact strings, read back.
    #[test]
    fn statuses_and_event_kinds_round_trip_through_their_text() {
        for (status, text) in [
            (SipStatus::Active, "active"),
            (SipStatus::Paused, "paused"),
            (SipStatus::Cancelled, "cancelled"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(SipStatus::parse(text), Some(status));
        }
        for (status, text) in [
            (InstalmentStatus::Executed, "executed"),
            (InstalmentStatus::Pending, "pending"),
            (InstalmentStatus::Failed, "failed"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(InstalmentStatus::parse(text), Some(status));
        }
        for (kind, text) in [
            (SipEventKind::Executed, "executed"),
            (SipEventKind::Pending, "pending"),
            (SipEventKind::Failed, "failed"),
            (SipEventKind::Cancelled, "cancelled"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(SipEventKind::parse(text), Some(kind));
        }
        assert_eq!(SipStatus::parse("Active"), None);
        assert_eq!(InstalmentStatus::parse(""), None);
        assert_eq!(SipEventKind::parse("cancel"), None);
    }

    #[test]
    fn paise_and_units_show_their_fixed_scale() {
        assert_eq!(Paise(123_456).to_string(), "1234.56");
        assert_eq!(Paise(-5).to_string(), "-0.05");
        assert_eq!(Units(12_3450).to_string(), "12.3450");
        assert_eq!(Units(7).to_string(), "0.0007");
    }

    #[test]
    fn nothing_to_invest_buys_no_units() {
        let nav: Nav = "10".parse().unwrap();
        assert_eq!(allot_units(Paise(0), nav, 3), Units(0));
        assert_eq!(allot_units(Paise(-10_000), nav, 3), Units(0));
        assert_eq!(allot_units(Paise(10_000), Nav::from_scaled(0), 3), Units(0));
    }

    proptest! {
        /// A lookup moved along day by day (`retain_from`, then `push_latest` for the new
        /// days) holds what one built at once over the same window holds, whatever the
        /// windows and however many NAVs a scheme has on one day.
        #[test]
        fn a_lookup_moved_day_by_day_equals_one_built_at_once(
            rows in proptest::collection::vec((0_i64..6, 0_u64..40, 1_i64..50), 0..200),
            steps in proptest::collection::vec((0_u64..6, 0_u64..4), 1..12),
        ) {
            let day = |n: u64| d("2025-01-01") + chrono::Days::new(n);
            let built = |from: u64, to: u64| {
                let mut lookup = NavLookup::default();
                for &(code, n, nav) in rows.iter().filter(|r| r.1 >= from && r.1 <= to) {
                    lookup.insert(code, day(n), Nav::from_scaled(nav));
                }
                lookup.finish();
                lookup
            };
            let (mut from, mut to) = (0, 0);
            let mut moved = built(from, to);
            for (grow_from, grow_to) in steps {
                let (next_from, next_to) = (from + grow_from, to + grow_to);
                moved.retain_from(day(next_from));
                // The rows of each new day, in the order a partition lists them.
                for n in (to + 1).max(next_from)..=next_to {
                    for &(code, _, nav) in rows.iter().filter(|r| r.1 == n) {
                        moved.push_latest(code, day(n), Nav::from_scaled(nav));
                    }
                }
                (from, to) = (next_from, next_to);
                prop_assert_eq!(&moved.by_scheme, &built(from, to).by_scheme);
            }
        }
    }

    /// NAVs inserted out of order, twice for one date: `finish` sorts and keeps one per date,
    /// so the lookups see the dates in order.
    #[test]
    fn nav_lookup_sorts_what_it_was_given_in_any_order() {
        let mut navs = NavLookup::default();
        for (date, nav) in [
            ("2025-01-08", 12),
            ("2025-01-02", 10),
            ("2025-01-06", 11),
            ("2025-01-02", 10),
        ] {
            navs.insert(100, d(date), Nav::from_scaled(nav));
        }
        navs.insert(200, d("2025-01-03"), Nav::from_scaled(20));
        navs.finish();
        assert_eq!(navs.on(100, d("2025-01-06")), Some(Nav::from_scaled(11)));
        assert_eq!(navs.on(100, d("2025-01-03")), None);
        assert_eq!(
            navs.latest_on_or_before(100, d("2025-01-07")),
            Some((d("2025-01-06"), Nav::from_scaled(11)))
        );
        let latest = navs.latest_all(d("2025-01-07"));
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[&100], (d("2025-01-06"), Nav::from_scaled(11)));
        assert_eq!(latest[&200], (d("2025-01-03"), Nav::from_scaled(20)));
        assert!(navs.latest_all(d("2025-01-01")).is_empty());
    }
}
