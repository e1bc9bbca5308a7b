//! Portfolio valuation for one bucket of users: holdings valued at the latest NAV on or before
//! the valuation date, XIRR over every purchase plus the current value, and the chart data the
//! API serves as is (pies by scheme, category and fund house; invested and value at each month
//! end; amount invested per month).
//!
//! Money stays exact: a line's value is `units × NAV` rounded half up to the paisa, a
//! portfolio's value the sum of its lines. Percentages are scaled integers too (4 decimals);
//! only XIRR, a rate found by iteration, is a float.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{Datelike, Months, NaiveDate};

use crate::holdings::{sum_holdings, Holding};
use crate::money::{div_round_half_up, Nav, Paise, Units, RETURN_PCT_SCALE};
use crate::sip::{InstalmentStatus, Investment, NavLookup};
use crate::xirr::{xirr, CashFlow};

const ONE_HUNDRED_PCT: i128 = 100 * 10_i128.pow(RETURN_PCT_SCALE);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuationError {
    /// Units exist only where a NAV was published, so this means the `navs` partitions the
    /// holding was bought at are gone.
    #[error("user {user_id} holds scheme {scheme_code} but no NAV of it is published on or before {as_of}")]
    NoNav {
        user_id: i64,
        scheme_code: i64,
        as_of: NaiveDate,
    },
    /// A holding or purchase of a user the bucket's `users` does not list: valuing only the
    /// listed users would drop their money silently (the AUM would no longer equal what was
    /// invested), so the run stops instead.
    #[error("user {user_id} holds units but is not in the `users` table (export the users with `sips export`)")]
    UnknownHolder { user_id: i64 },
    /// The users' invested amounts do not add up to the holdings' cost.
    #[error("invested over users is {valued} paise but the holdings cost {held} paise")]
    Unreconciled { valued: i128, held: i128 },
    /// An executed or reversed instalment without its NAV date or units.
    #[error("instalment of SIP {sip_id} due {due_date} is {status} but has no NAV date or units")]
    IncompleteAllotment {
        sip_id: i64,
        due_date: NaiveDate,
        status: &'static str,
    },
}

/// An executed instalment as valuation sees it: money in on `nav_date`, units allotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Purchase {
    pub user_id: i64,
    pub nav_date: NaiveDate,
    pub scheme_code: i64,
    /// The debit, stamp duty included: what the investor paid.
    pub amount: Paise,
    pub units: Units,
}

impl Purchase {
    /// What valuation counts of an instalment: its allotment, a reversal as the allotment
    /// negated (same NAV date, so the pair nets to nothing), nothing for pending or failed.
    pub fn of(instalment: &Investment) -> Result<Option<Purchase>, ValuationError> {
        let sign = match instalment.status {
            InstalmentStatus::Executed => 1,
            InstalmentStatus::Reversed => -1,
            InstalmentStatus::Pending | InstalmentStatus::Failed => return Ok(None),
        };
        let (Some(nav_date), Some(units)) = (instalment.nav_date, instalment.units) else {
            return Err(ValuationError::IncompleteAllotment {
                sip_id: instalment.sip_id,
                due_date: instalment.due_date,
                status: instalment.status.as_str(),
            });
        };
        Ok(Some(Purchase {
            user_id: instalment.user_id,
            nav_date,
            scheme_code: instalment.scheme_code,
            amount: Paise(sign * instalment.amount.0),
            units: Units(sign * units.0),
        }))
    }
}

/// What the pies group by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemeInfo {
    // Shared, not copied: millions of pie slices carry these names.
    pub name: Arc<str>,
    pub category: Option<Arc<str>>,
    pub fund_house: Option<Arc<str>>,
}

/// Daily valuation computes XIRR and the history charts; hourly only values holdings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuationMode {
    Daily,
    Hourly,
}

/// A `portfolio_lines` row: one scheme of one user.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioLine {
    pub user_id: i64,
    pub scheme_code: i64,
    pub units: Units,
    pub invested: Paise,
    /// The NAV the line is valued at and its date: earlier than the valuation date when the
    /// scheme published nothing that day.
    pub nav_date: NaiveDate,
    pub nav: Nav,
    pub value: Paise,
    /// Share of the user's current value, percent scaled by 10^4.
    pub weight_pct: i64,
    /// The scheme's own XIRR over its purchases and its value (daily mode; `None` hourly or
    /// when the flows have no solution).
    pub xirr: Option<f64>,
    /// Value at `nav` less value at the scheme's previous NAV: the one-day change (zero for a
    /// scheme with one NAV so far).
    pub day_change: Paise,
}

/// A `portfolio_snapshots` row: one user.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioSnapshot {
    pub user_id: i64,
    pub invested: Paise,
    pub current_value: Paise,
    pub gain: Paise,
    /// Gain over invested, percent scaled by 10^4; `None` with nothing invested.
    pub return_pct: Option<i64>,
    /// Annual rate; `None` in hourly mode, NaN where no rate exists (no holdings, or all
    /// flows on one day).
    pub xirr: Option<f64>,
    pub schemes: i32,
    /// The oldest NAV date among the lines (`None` without holdings): a client can say
    /// "as of" honestly when a scheme's NAV is late.
    pub nav_date: Option<NaiveDate>,
}

/// Which chart a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChartKind {
    PieScheme,
    PieCategory,
    PieFundHouse,
    /// Invested and value at each month end, then at the valuation date.
    Line,
    /// Amount invested per calendar month.
    Bar,
}

impl ChartKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ChartKind::PieScheme => "pie_scheme",
            ChartKind::PieCategory => "pie_category",
            ChartKind::PieFundHouse => "pie_fund_house",
            ChartKind::Line => "line",
            ChartKind::Bar => "bar",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ChartKind::PieScheme,
            ChartKind::PieCategory,
            ChartKind::PieFundHouse,
            ChartKind::Line,
            ChartKind::Bar,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A `portfolio_charts` row. One user's charts are contiguous rows in `(user_id, chart, seq)`
/// order, each chart exactly what the API returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartPoint {
    pub user_id: i64,
    pub chart: ChartKind,
    /// Order within the chart: pies by value descending, line and bar by date.
    pub seq: i32,
    /// The slice's name (pies); none for line and bar, whose `period` says it.
    pub label: Option<Arc<str>>,
    /// The point's date (line: the month end or valuation date; bar: the month's first day).
    pub period: Option<NaiveDate>,
    pub invested: Paise,
    /// Current value (pies, line); for bar, the amount invested in the month.
    pub value: Paise,
}

/// One bucket's valuation.
#[derive(Debug, Default)]
pub struct Valuation {
    pub snapshots: Vec<PortfolioSnapshot>,
    pub lines: Vec<PortfolioLine>,
    pub charts: Vec<ChartPoint>,
}

/// Everything a bucket's valuation reads.
#[derive(Debug)]
pub struct ValuationInputs<'a> {
    pub as_of: NaiveDate,
    pub mode: ValuationMode,
    /// Every user of the bucket, sorted: a user without holdings still gets a snapshot.
    pub users: &'a [i64],
    /// Units and cost per user and scheme as of `as_of`, sorted by (user, scheme).
    pub holdings: &'a [Holding],
    /// Daily mode: every executed purchase up to `as_of`, sorted by (user, date, scheme).
    pub purchases: &'a [Purchase],
    /// Daily mode: cash flows XIRR counts beside the purchases, with no units and no cost,
    /// sorted by user (issue 36): a redemption is a purchase row taking out the cost of the
    /// units sold, and here its net proceeds less that cost (`amount` is the negated flow,
    /// as for purchases), so XIRR sees the proceeds the person received.
    pub cash_adjustments: &'a [Purchase],
    pub navs: &'a NavLookup,
    pub schemes: &'a HashMap<i64, SchemeInfo>,
}

/// `units × nav` in paise, half up.
pub fn market_value(units: Units, nav: Nav) -> Paise {
    // units 10^-4 × NAV 10^-8 = 10^-12 rupee; a paisa is 10^-2.
    const PER_PAISA: i128 = 10_i128.pow(Units::SCALE + Nav::SCALE - 2);
    Paise(div_round_half_up(i128::from(units.0) * i128::from(nav.scaled()), PER_PAISA) as i64)
}

/// `part / whole` as a percent with four decimals, half up; `None` for a zero whole.
pub fn percent_of(part: Paise, whole: Paise) -> Option<i64> {
    (whole.0 != 0).then(|| {
        div_round_half_up(i128::from(part.0) * ONE_HUNDRED_PCT, i128::from(whole.0)) as i64
    })
}

/// The calendar month ends after `first` and before `as_of`: the line chart's history.
fn month_ends(first: NaiveDate, as_of: NaiveDate) -> Vec<NaiveDate> {
    let mut ends = Vec::new();
    let mut month = first.with_day(1).unwrap_or(first);
    while let Some(next) = month.checked_add_months(Months::new(1)) {
        let Some(end) = next.pred_opt() else { break };
        if end >= as_of {
            break;
        }
        ends.push(end);
        month = next;
    }
    ends
}

/// A pie slice: label, invested, value.
type Slice = (Arc<str>, Paise, Paise);

fn slices<'a>(
    lines: &[PortfolioLine],
    group: impl Fn(&PortfolioLine) -> &'a Arc<str>,
) -> Vec<Slice> {
    // A user holds a few schemes: a linear search beats a map, and most labels are the same
    // shared string, so the pointer comparison settles them before any bytes are compared.
    let mut slices: Vec<Slice> = Vec::with_capacity(lines.len());
    for line in lines {
        let label = group(line);
        let index = match slices
            .iter()
            .position(|slice| Arc::ptr_eq(&slice.0, label) || *slice.0 == **label)
        {
            Some(index) => index,
            None => {
                slices.push((Arc::clone(label), Paise(0), Paise(0)));
                slices.len() - 1
            }
        };
        let slice = &mut slices[index];
        slice.1 .0 += line.invested.0;
        slice.2 .0 += line.value.0;
    }
    // Largest slice first; ties by name so the order is stable.
    slices.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    slices
}

/// The slice of schemes the scheme master does not describe.
static UNKNOWN: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("Unknown"));

/// Every scheme's NAV at each month end of the bucket's history and its latest on or before
/// the valuation date, looked up once per run rather than once per user, scheme and month.
struct MonthEndPrices {
    ends: Vec<NaiveDate>,
    by_scheme: HashMap<i64, Vec<Option<Nav>>>,
    current: HashMap<i64, (NaiveDate, Nav)>,
    /// The NAV before the current one, for the one-day change.
    previous: HashMap<i64, Nav>,
}

impl MonthEndPrices {
    fn new(inputs: &ValuationInputs<'_>) -> Self {
        let ends = match inputs.purchases.iter().map(|p| p.nav_date).min() {
            Some(first) if inputs.mode == ValuationMode::Daily => month_ends(first, inputs.as_of),
            _ => Vec::new(),
        };
        let by_scheme = inputs.navs.prices_at(&ends);
        // Once per scheme, not per holding: a bucket holds ~200k holdings of a few thousand
        // schemes, and the per-holding lookups were 7% of a 10M-user daily run.
        let codes: std::collections::BTreeSet<i64> =
            inputs.holdings.iter().map(|h| h.scheme_code).collect();
        let current = codes
            .into_iter()
            .filter_map(|code| {
                let price = inputs.navs.latest_on_or_before(code, inputs.as_of)?;
                Some((code, price))
            })
            .collect::<HashMap<i64, (NaiveDate, Nav)>>();
        let previous = current
            .iter()
            .filter_map(|(code, (date, _))| {
                let (_, nav) = inputs.navs.latest_on_or_before(*code, date.pred_opt()?)?;
                Some((*code, nav))
            })
            .collect();
        Self {
            ends,
            by_scheme,
            current,
            previous,
        }
    }

    fn of(&self, scheme_code: i64) -> &[Option<Nav>] {
        self.by_scheme.get(&scheme_code).map_or(&[], Vec::as_slice)
    }
}

struct UserValuation<'a> {
    inputs: &'a ValuationInputs<'a>,
    user_id: i64,
    holdings: &'a [Holding],
    purchases: &'a [Purchase],
    adjustments: &'a [Purchase],
}

impl UserValuation<'_> {
    fn lines(&self, prices: &MonthEndPrices) -> Result<Vec<PortfolioLine>, ValuationError> {
        let mut lines = Vec::with_capacity(self.holdings.len());
        for h in self.holdings.iter().filter(|h| h.units.0 != 0) {
            let (nav_date, nav) =
                prices
                    .current
                    .get(&h.scheme_code)
                    .copied()
                    .ok_or(ValuationError::NoNav {
                        user_id: self.user_id,
                        scheme_code: h.scheme_code,
                        as_of: self.inputs.as_of,
                    })?;
            let value = market_value(h.units, nav);
            let day_change = prices
                .previous
                .get(&h.scheme_code)
                .map_or(Paise(0), |before| {
                    Paise(value.0 - market_value(h.units, *before).0)
                });
            let xirr = match self.inputs.mode {
                ValuationMode::Hourly => None,
                ValuationMode::Daily => {
                    Some(self.xirr_of(Some(h.scheme_code), value)).filter(|x| x.is_finite())
                }
            };
            lines.push(PortfolioLine {
                user_id: self.user_id,
                scheme_code: h.scheme_code,
                units: h.units,
                invested: h.invested,
                nav_date,
                nav,
                value,
                weight_pct: 0,
                xirr,
                day_change,
            });
        }
        let total = Paise(lines.iter().map(|l| l.value.0).sum());
        for line in &mut lines {
            line.weight_pct = percent_of(line.value, total).unwrap_or(0);
        }
        Ok(lines)
    }

    /// XIRR over the purchases (of one scheme, or all) and `value` today.
    fn xirr_of(&self, scheme_code: Option<i64>, value: Paise) -> f64 {
        let mut flows: Vec<CashFlow> = self
            .purchases
            .iter()
            .chain(self.adjustments)
            .filter(|p| scheme_code.is_none_or(|code| p.scheme_code == code))
            .map(|p| CashFlow {
                date: p.nav_date,
                amount: -(p.amount.0 as f64) / 100.0,
            })
            .collect();
        flows.push(CashFlow {
            date: self.inputs.as_of,
            amount: value.0 as f64 / 100.0,
        });
        xirr(&flows)
    }

    fn snapshot(&self, lines: &[PortfolioLine]) -> PortfolioSnapshot {
        let invested = Paise(lines.iter().map(|l| l.invested.0).sum());
        let current_value = Paise(lines.iter().map(|l| l.value.0).sum());
        let gain = Paise(current_value.0 - invested.0);
        let xirr = match self.inputs.mode {
            ValuationMode::Hourly => None,
            // Most investors hold one scheme: its line's XIRR is then the portfolio's, already
            // solved (when every purchase was of that scheme).
            ValuationMode::Daily => Some(match lines {
                [only]
                    if self
                        .purchases
                        .iter()
                        .all(|p| p.scheme_code == only.scheme_code) =>
                {
                    only.xirr.unwrap_or(f64::NAN)
                }
                _ => self.xirr_of(None, current_value),
            }),
        };
        PortfolioSnapshot {
            user_id: self.user_id,
            invested,
            current_value,
            gain,
            return_pct: percent_of(gain, invested),
            xirr,
            schemes: lines.len() as i32,
            nav_date: lines.iter().map(|l| l.nav_date).min(),
        }
    }

    fn pies(&self, lines: &[PortfolioLine], out: &mut Vec<ChartPoint>) {
        let info = |code: i64| self.inputs.schemes.get(&code);
        let charts: [(ChartKind, Vec<Slice>); 3] = [
            (
                ChartKind::PieScheme,
                slices(lines, |l| {
                    info(l.scheme_code).map_or(&*UNKNOWN, |s| &s.name)
                }),
            ),
            (
                ChartKind::PieCategory,
                slices(lines, |l| {
                    info(l.scheme_code)
                        .and_then(|s| s.category.as_ref())
                        .unwrap_or(&UNKNOWN)
                }),
            ),
            (
                ChartKind::PieFundHouse,
                slices(lines, |l| {
                    info(l.scheme_code)
                        .and_then(|s| s.fund_house.as_ref())
                        .unwrap_or(&UNKNOWN)
                }),
            ),
        ];
        for (chart, slices) in charts {
            for (seq, (label, invested, value)) in slices.into_iter().enumerate() {
                out.push(ChartPoint {
                    user_id: self.user_id,
                    chart,
                    seq: seq as i32,
                    label: Some(label),
                    period: None,
                    invested,
                    value,
                });
            }
        }
    }

    /// Invested and value at each month end since the first purchase, then today's, from
    /// the purchases alone: units held at a month end are the units bought up to it.
    fn line(
        &self,
        snapshot: &PortfolioSnapshot,
        prices: &MonthEndPrices,
        out: &mut Vec<ChartPoint>,
    ) {
        let Some(first) = self.purchases.first() else {
            return;
        };
        let mut seq = 0;
        // (scheme, units so far, that scheme's month-end NAVs): a user holds a few schemes.
        let mut held: Vec<(i64, Units, &[Option<Nav>])> = Vec::new();
        let mut invested = Paise(0);
        let mut next = 0;
        let start = prices.ends.partition_point(|end| *end < first.nav_date);
        for (i, end) in prices.ends.iter().enumerate().skip(start) {
            while let Some(p) = self.purchases.get(next).filter(|p| p.nav_date <= *end) {
                match held.iter_mut().find(|h| h.0 == p.scheme_code) {
                    Some(h) => h.1 .0 += p.units.0,
                    None => held.push((p.scheme_code, p.units, prices.of(p.scheme_code))),
                }
                invested.0 += p.amount.0;
                next += 1;
            }
            let value = held
                .iter()
                .map(|(_, units, navs)| {
                    navs.get(i)
                        .copied()
                        .flatten()
                        .map_or(0, |nav| market_value(*units, nav).0)
                })
                .sum();
            out.push(ChartPoint {
                user_id: self.user_id,
                chart: ChartKind::Line,
                seq,
                label: None,
                period: Some(*end),
                invested,
                value: Paise(value),
            });
            seq += 1;
        }
        out.push(ChartPoint {
            user_id: self.user_id,
            chart: ChartKind::Line,
            seq,
            label: None,
            period: Some(self.inputs.as_of),
            invested: snapshot.invested,
            value: snapshot.current_value,
        });
    }

    fn bar(&self, out: &mut Vec<ChartPoint>) {
        // Purchases come sorted by NAV date, so each month's are consecutive.
        let mut by_month: Vec<(NaiveDate, Paise)> = Vec::new();
        for p in self.purchases {
            let month = p.nav_date.with_day(1).unwrap_or(p.nav_date);
            match by_month.last_mut() {
                Some((last, amount)) if *last == month => amount.0 += p.amount.0,
                _ => by_month.push((month, p.amount)),
            }
        }
        // A month whose instalments were all reversed put no money in: no bar, as a month
        // without instalments (and as the serving store's bar, cumulative differences, shows).
        let months = by_month.into_iter().filter(|(_, amount)| amount.0 != 0);
        for (seq, (month, amount)) in months.enumerate() {
            out.push(ChartPoint {
                user_id: self.user_id,
                chart: ChartKind::Bar,
                seq: seq as i32,
                label: None,
                period: Some(month),
                invested: amount,
                value: amount,
            });
        }
    }
}

/// The rows of `rows` (sorted by user) that belong to `user_id`, advancing `cursor`.
fn take_user<'a, T>(
    rows: &'a [T],
    cursor: &mut usize,
    user_id: i64,
    key: impl Fn(&T) -> i64,
) -> &'a [T] {
    while rows.get(*cursor).is_some_and(|r| key(r) < user_id) {
        *cursor += 1;
    }
    let start = *cursor;
    while rows.get(*cursor).is_some_and(|r| key(r) == user_id) {
        *cursor += 1;
    }
    &rows[start..*cursor]
}

/// Values every user of a bucket. Each output is sorted by its key: snapshots by user,
/// lines by (user, scheme), chart points by (user, chart, seq).
pub fn value_portfolios(inputs: &ValuationInputs<'_>) -> Result<Valuation, ValuationError> {
    let mut out = Valuation {
        snapshots: Vec::with_capacity(inputs.users.len()),
        ..Valuation::default()
    };
    let prices = MonthEndPrices::new(inputs);
    // Reserved up front: a 10M-user run's chart points are ~2.7M per bucket, and growing the
    // vector by doubling copied each bucket's points twice over (3% of a daily run).
    out.lines.reserve(inputs.holdings.len());
    if inputs.mode == ValuationMode::Daily {
        // Three pies of at most one slice per holding, and per user a line and a bar point
        // per month end plus today's.
        let history = 2 * (prices.ends.len() + 1);
        out.charts
            .reserve(3 * inputs.holdings.len() + history * inputs.users.len());
    }
    let (mut holding_cursor, mut purchase_cursor, mut adjustment_cursor) = (0, 0, 0);
    for &user_id in inputs.users {
        let user = UserValuation {
            inputs,
            user_id,
            holdings: take_user(inputs.holdings, &mut holding_cursor, user_id, |h| h.user_id),
            purchases: take_user(inputs.purchases, &mut purchase_cursor, user_id, |p| {
                p.user_id
            }),
            adjustments: take_user(
                inputs.cash_adjustments,
                &mut adjustment_cursor,
                user_id,
                |p| p.user_id,
            ),
        };
        let lines = user.lines(&prices)?;
        let snapshot = user.snapshot(&lines);
        if inputs.mode == ValuationMode::Daily {
            user.pies(&lines, &mut out.charts);
            user.line(&snapshot, &prices, &mut out.charts);
            user.bar(&mut out.charts);
        }
        out.snapshots.push(snapshot);
        out.lines.extend(lines);
    }
    // Every holding and purchase belongs to a listed user.
    let orphan = first_unlisted(inputs.users, inputs.holdings.iter().map(|h| h.user_id))
        .or_else(|| first_unlisted(inputs.users, inputs.purchases.iter().map(|p| p.user_id)));
    if let Some(user_id) = orphan {
        return Err(ValuationError::UnknownHolder { user_id });
    }
    let valued: i128 = out.snapshots.iter().map(|s| i128::from(s.invested.0)).sum();
    let held: i128 = inputs
        .holdings
        .iter()
        .map(|h| i128::from(h.invested.0))
        .sum();
    if valued != held {
        return Err(ValuationError::Unreconciled { valued, held });
    }
    // Users come in order and each user's charts are appended in (chart, seq) order.
    debug_assert!(out
        .charts
        .windows(2)
        .all(|w| (w[0].user_id, w[0].chart, w[0].seq) < (w[1].user_id, w[1].chart, w[1].seq)));
    Ok(out)
}

/// The first of `ids` not in `users`, both sorted ascending: one merge walk, no hashing.
fn first_unlisted(users: &[i64], ids: impl Iterator<Item = i64>) -> Option<i64> {
    let mut i = 0;
    for id in ids {
        while users.get(i).is_some_and(|u| *u < id) {
            i += 1;
        }
        if users.get(i) != Some(&id) {
            return Some(id);
        }
    }
    None
}

/// Holdings from purchases alone (sorted by user): the daily run has every purchase anyway,
/// and the test that this equals checkpoint-plus-since guards both paths.
pub fn holdings_from_purchases(purchases: &[Purchase]) -> Vec<Holding> {
    sum_holdings(purchases.iter().map(|p| Holding {
        user_id: p.user_id,
        scheme_code: p.scheme_code,
        units: p.units,
        invested: p.amount,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn nav(text: &str) -> Nav {
        text.parse().unwrap()
    }

    fn schemes() -> HashMap<i64, SchemeInfo> {
        HashMap::from([
            (
                100,
                SchemeInfo {
                    name: "Alpha Large Cap - Growth".into(),
                    category: Some("Equity Scheme - Large Cap Fund".into()),
                    fund_house: Some("Alpha Mutual Fund".into()),
                },
            ),
            (
                200,
                SchemeInfo {
                    name: "Beta Liquid - Growth".into(),
                    category: Some("Debt Scheme - Liquid Fund".into()),
                    fund_house: Some("Beta Mutual Fund".into()),
                },
            ),
            (
                300,
                SchemeInfo {
                    name: "Alpha Mid Cap - Growth".into(),
                    category: Some("Equity Scheme - Mid Cap Fund".into()),
                    fund_house: Some("Alpha Mutual Fund".into()),
                },
            ),
        ])
    }

    #[test]
    fn unlisted_holders_are_found_by_a_merge_walk() {
        assert_eq!(
            first_unlisted(&[1, 3, 5], [1, 1, 3, 5, 5].into_iter()),
            None
        );
        assert_eq!(first_unlisted(&[1, 3, 5], [1, 2, 3].into_iter()), Some(2));
        assert_eq!(first_unlisted(&[1, 3, 5], [0].into_iter()), Some(0));
        assert_eq!(first_unlisted(&[1, 3, 5], [5, 6].into_iter()), Some(6));
        assert_eq!(first_unlisted(&[], [4].into_iter()), Some(4));
    }

    #[test]
    fn an_instalment_is_a_purchase_a_negated_one_or_none() {
        let allotted = Investment {
            sip_id: 9,
            user_id: 4,
            scheme_code: 100,
            due_date: d("2025-01-05"),
            status: InstalmentStatus::Executed,
            amount: Paise(100_000),
            stamp_duty: Paise(5),
            nav_date: Some(d("2025-01-06")),
            nav: Some(nav("10")),
            units: Some(Units(99_995)),
        };
        let bought = purchase(4, "2025-01-06", 100, 100_000, 99_995);
        assert_eq!(Purchase::of(&allotted), Ok(Some(bought)));
        let reversed = Investment {
            status: InstalmentStatus::Reversed,
            ..allotted.clone()
        };
        assert_eq!(
            Purchase::of(&reversed),
            Ok(Some(purchase(4, "2025-01-06", 100, -100_000, -99_995)))
        );
        for status in [InstalmentStatus::Pending, InstalmentStatus::Failed] {
            let unallotted = Investment {
                status,
                nav_date: None,
                units: None,
                ..allotted.clone()
            };
            assert_eq!(Purchase::of(&unallotted), Ok(None));
        }
        let broken = Investment {
            units: None,
            ..allotted
        };
        assert_eq!(
            Purchase::of(&broken),
            Err(ValuationError::IncompleteAllotment {
                sip_id: 9,
                due_date: d("2025-01-05"),
                status: "executed",
            })
        );
    }

    fn purchase(user_id: i64, date: &str, scheme_code: i64, amount: i64, units: i64) -> Purchase {
        Purchase {
            user_id,
            nav_date: d(date),
            scheme_code,
            amount: Paise(amount),
            units: Units(units),
        }
    }

    /// ₹10,000 into 1,000 units at ₹10 on 1 Jan 2024; half sold at ₹12 on 1 Jan 2025 (366
    /// days): the purchase row takes out their cost, ₹5,000, and the adjustment adds the
    /// ₹1,000 more the person received; the other half is worth ₹6,000. Flows −10,000 then
    /// +12,000 a year later: XIRR = 1.2^(365/366) − 1 = 0.19948…; counted at cost the sale
    /// would give 1.1^(365/366) − 1 = 0.09973….
    #[test]
    fn a_redemption_counts_in_xirr_at_its_proceeds() {
        let purchases = vec![
            purchase(1, "2024-01-01", 100, 1_000_000, 10_000_000),
            purchase(1, "2025-01-01", 100, -500_000, -5_000_000),
        ];
        let adjustments = vec![purchase(1, "2025-01-01", 100, -100_000, 0)];
        let holdings = holdings_from_purchases(&purchases);
        let mut navs = NavLookup::default();
        navs.insert(100, d("2024-01-01"), nav("10"));
        navs.insert(100, d("2025-01-01"), nav("12"));
        navs.finish();
        let value = |adjustments: &[Purchase]| {
            value_portfolios(&ValuationInputs {
                as_of: d("2025-01-01"),
                mode: ValuationMode::Daily,
                users: &[1],
                holdings: &holdings,
                purchases: &purchases,
                cash_adjustments: adjustments,
                navs: &navs,
                schemes: &schemes(),
            })
            .unwrap()
        };
        let with = value(&adjustments);
        let snapshot = &with.snapshots[0];
        assert_eq!(snapshot.invested, Paise(500_000));
        assert_eq!(snapshot.current_value, Paise(600_000));
        let xirr = snapshot.xirr.unwrap();
        assert!(
            (xirr - (1.2_f64.powf(365.0 / 366.0) - 1.0)).abs() < 1e-9,
            "{xirr}"
        );
        let at_cost = value(&[]).snapshots[0].xirr.unwrap();
        assert!(
            (at_cost - (1.1_f64.powf(365.0 / 366.0) - 1.0)).abs() < 1e-9,
            "{at_cost}"
        );
    }

    #[test]
    fn market_value_rounds_half_up_at_the_paisa() {
        // 1.2345 units × ₹10.0005 = ₹12.34561725 → ₹12.35 (0.561… rounds up).
        assert_eq!(market_value(Units(12_345), nav("10.0005")), Paise(1_235));
        // 0.0001 units × ₹50 = ₹0.005 exactly → half up → ₹0.01.
        assert_eq!(market_value(Units(1), nav("50")), Paise(1));
        // 0.0001 units × ₹49.9999 = ₹0.00499999 → ₹0.00.
        assert_eq!(market_value(Units(1), nav("49.9999")), Paise(0));
    }

    #[test]
    fn percent_has_four_decimals_and_no_zero_division() {
        assert_eq!(percent_of(Paise(1), Paise(3)), Some(333_333));
        assert_eq!(percent_of(Paise(2), Paise(3)), Some(666_667));
        assert_eq!(percent_of(Paise(-50), Paise(100)), Some(-500_000));
        assert_eq!(percent_of(Paise(5), Paise(0)), None);
    }

    #[test]
    fn month_ends_between_first_purchase_and_valuation_date() {
        assert_eq!(
            month_ends(d("2024-01-10"), d("2024-03-31")),
            vec![d("2024-01-31"), d("2024-02-29")]
        );
        assert_eq!(month_ends(d("2024-03-05"), d("2024-03-20")), vec![]);
    }

    /// A hand-worked portfolio:
    /// - user 1 bought scheme 100 twice (₹1,000 at ₹10 → 99.995 units after ₹0.05 stamp duty,
    ///   ₹1,000 at ₹12.50 → 79.996 units) and scheme 200 once (₹500 at ₹1,000 → 0.499 units);
    /// - scheme 200 published nothing on the valuation date, so its line uses the day before;
    /// - user 2 holds nothing (their only SIP was cancelled before any instalment);
    /// - user 3 bought once on the valuation date: no time has passed, so XIRR has no answer.
    fn worked_inputs() -> (Vec<i64>, Vec<Purchase>, NavLookup) {
        let users = vec![1, 2, 3];
        let purchases = vec![
            purchase(1, "2024-01-10", 100, 100_000, 999_950),
            purchase(1, "2024-02-12", 100, 100_000, 799_960),
            purchase(1, "2024-02-12", 200, 50_000, 4_990),
            purchase(3, "2024-03-15", 300, 200_000, 1_999_900),
        ];
        let mut navs = NavLookup::default();
        navs.insert(100, d("2024-01-10"), nav("10"));
        navs.insert(100, d("2024-01-31"), nav("11"));
        navs.insert(100, d("2024-02-12"), nav("12.5"));
        navs.insert(100, d("2024-02-29"), nav("12"));
        navs.insert(100, d("2024-03-15"), nav("13.25"));
        navs.insert(200, d("2024-02-12"), nav("1000"));
        navs.insert(200, d("2024-02-29"), nav("1001"));
        navs.insert(200, d("2024-03-14"), nav("1002.5"));
        navs.insert(300, d("2024-03-15"), nav("10"));
        navs.finish();
        (users, purchases, navs)
    }

    /// The worked portfolios valued on 15 March 2024; hourly runs see no purchases, and
    /// `navs` replaces the worked NAVs where given.
    fn value_worked(
        mode: ValuationMode,
        navs: Option<NavLookup>,
    ) -> Result<Valuation, ValuationError> {
        let (users, purchases, worked_navs) = worked_inputs();
        let holdings = holdings_from_purchases(&purchases);
        let purchases = match mode {
            ValuationMode::Daily => purchases,
            ValuationMode::Hourly => Vec::new(),
        };
        value_portfolios(&ValuationInputs {
            as_of: d("2024-03-15"),
            mode,
            users: &users,
            holdings: &holdings,
            purchases: &purchases,
            cash_adjustments: &[],
            navs: &navs.unwrap_or(worked_navs),
            schemes: &schemes(),
        })
    }

    #[test]
    fn hand_worked_portfolios() {
        let out = value_worked(ValuationMode::Daily, None).unwrap();

        // Scheme 100: 179.991 units × ₹13.25 = ₹2,384.88075 → ₹2,384.88; at the previous NAV
        // (₹12, 29 Feb) ₹2,159.892 → ₹2,159.89: one-day change ₹224.99.
        // Scheme 200: 0.499 units × ₹1,002.50 (14 March) = ₹500.2475 → ₹500.25; at ₹1,001
        // ₹499.499 → ₹499.50: change ₹0.75. Scheme 300 has one NAV: no change.
        // Each line's own XIRR, solved outside sipline by bisection on the actual/365 NPV:
        // scheme 100 from −1,000 (10 Jan), −1,000 (12 Feb), +2,384.88 (15 Mar): 2.71111767816797;
        // scheme 200, −500 then +500.25 32 days later: (500.25 / 500)^(365/32) − 1.
        let rates: Vec<Option<f64>> = out.lines.iter().map(|l| l.xirr).collect();
        assert!(
            (rates[0].unwrap() - 2.711_117_678_167_97).abs() < 1e-9,
            "{rates:?}"
        );
        assert!(
            (rates[1].unwrap() - ((500.25_f64 / 500.0).powf(365.0 / 32.0) - 1.0)).abs() < 1e-12,
            "{rates:?}"
        );
        assert_eq!(rates[2], None, "bought on the valuation date: no answer");
        let lines: Vec<PortfolioLine> = out
            .lines
            .iter()
            .map(|l| PortfolioLine {
                xirr: None,
                ..l.clone()
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                PortfolioLine {
                    user_id: 1,
                    scheme_code: 100,
                    units: Units(1_799_910),
                    invested: Paise(200_000),
                    nav_date: d("2024-03-15"),
                    nav: nav("13.25"),
                    value: Paise(238_488),
                    weight_pct: 826_611,
                    xirr: None,
                    day_change: Paise(22_499),
                },
                PortfolioLine {
                    user_id: 1,
                    scheme_code: 200,
                    units: Units(4_990),
                    invested: Paise(50_000),
                    nav_date: d("2024-03-14"),
                    nav: nav("1002.5"),
                    value: Paise(50_025),
                    weight_pct: 173_389,
                    xirr: None,
                    day_change: Paise(75),
                },
                PortfolioLine {
                    user_id: 3,
                    scheme_code: 300,
                    units: Units(1_999_900),
                    invested: Paise(200_000),
                    nav_date: d("2024-03-15"),
                    nav: nav("10"),
                    value: Paise(199_990),
                    weight_pct: 1_000_000,
                    xirr: None,
                    day_change: Paise(0),
                },
            ]
        );

        let [one, two, three] = &out.snapshots[..] else {
            panic!("three snapshots: {:?}", out.snapshots)
        };
        assert_eq!(one.invested, Paise(250_000));
        assert_eq!(one.current_value, Paise(288_513));
        assert_eq!(one.gain, Paise(38_513));
        // 385.13 / 2500 = 15.4052%.
        assert_eq!(one.return_pct, Some(154_052));
        assert_eq!(one.nav_date, Some(d("2024-03-14")));
        assert_eq!(one.schemes, 2);
        // Flows −1,000 (10 Jan), −1,000 and −500 (12 Feb), +2,885.13 (15 Mar 2024). The
        // reference was solved outside sipline, by bisection on the actual/365 NPV in Python's
        // `decimal` at 50 digits: 2.14725708874539849638…
        let rate = one.xirr.unwrap();
        assert!((rate - 2.147_257_088_745_398_5).abs() < 1e-9, "{rate}");

        assert_eq!(two.invested, Paise(0));
        assert_eq!(two.current_value, Paise(0));
        assert_eq!(two.return_pct, None);
        assert_eq!(two.schemes, 0);
        assert_eq!(two.nav_date, None);
        assert!(two.xirr.unwrap().is_nan());

        assert_eq!(three.gain, Paise(-10));
        assert_eq!(three.return_pct, Some(-50));
        assert!(three.xirr.unwrap().is_nan(), "all flows on one day");
    }

    #[test]
    fn hand_worked_charts() {
        let out = value_worked(ValuationMode::Daily, None).unwrap();
        let chart = |user: i64, kind: ChartKind| -> Vec<(String, i64, i64)> {
            out.charts
                .iter()
                .filter(|p| p.user_id == user && p.chart == kind)
                .map(|p| {
                    let label = match (&p.label, p.period) {
                        (Some(label), None) => label.to_string(),
                        (None, Some(period)) => period.to_string(),
                        other => panic!("a point has a label or a period: {other:?}"),
                    };
                    (label, p.invested.0, p.value.0)
                })
                .collect()
        };
        let row = |label: &str, invested: i64, value: i64| (label.to_string(), invested, value);
        assert_eq!(
            chart(1, ChartKind::PieScheme),
            vec![
                row("Alpha Large Cap - Growth", 200_000, 238_488),
                row("Beta Liquid - Growth", 50_000, 50_025),
            ]
        );
        assert_eq!(
            chart(1, ChartKind::PieFundHouse),
            vec![
                row("Alpha Mutual Fund", 200_000, 238_488),
                row("Beta Mutual Fund", 50_000, 50_025),
            ]
        );
        // January end: 99.995 units × ₹11 = ₹1,099.945 → ₹1,099.95.
        // February end: 179.991 × ₹12 = ₹2,159.892 → ₹2,159.89, plus 0.499 × ₹1,001 =
        // ₹499.499 → ₹499.50; ₹2,659.39.
        assert_eq!(
            chart(1, ChartKind::Line),
            vec![
                row("2024-01-31", 100_000, 109_995),
                row("2024-02-29", 250_000, 265_939),
                row("2024-03-15", 250_000, 288_513),
            ]
        );
        assert_eq!(
            chart(1, ChartKind::Bar),
            vec![
                row("2024-01-01", 100_000, 100_000),
                row("2024-02-01", 150_000, 150_000)
            ]
        );
        assert!(
            out.charts.iter().all(|p| p.user_id != 2),
            "no holdings, no charts"
        );
        // Sorted by (user, chart, seq): one user's charts are one contiguous read.
        let keys: Vec<_> = out
            .charts
            .iter()
            .map(|p| (p.user_id, p.chart, p.seq))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn hourly_values_without_xirr_or_history_charts() {
        let out = value_worked(ValuationMode::Hourly, None).unwrap();
        assert!(out.snapshots.iter().all(|s| s.xirr.is_none()));
        assert_eq!(out.snapshots[0].current_value, Paise(288_513));
        assert!(out.charts.is_empty());
    }

    #[test]
    fn a_holding_without_any_nav_is_an_error_not_a_zero() {
        let err = value_worked(ValuationMode::Hourly, Some(NavLookup::default())).unwrap_err();
        assert!(matches!(
            err,
            ValuationError::NoNav {
                user_id: 1,
                scheme_code: 100,
                ..
            }
        ));
    }

    #[test]
    fn chart_kinds_round_trip_through_their_text() {
        for (kind, text) in [
            (ChartKind::PieScheme, "pie_scheme"),
            (ChartKind::PieCategory, "pie_category"),
            (ChartKind::PieFundHouse, "pie_fund_house"),
            (ChartKind::Line, "line"),
            (ChartKind::Bar, "bar"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(ChartKind::parse(text), Some(kind));
        }
        assert_eq!(ChartKind::parse("pie"), None);
    }

    /// A holding of a user the bucket does not list is an error naming the user, never
    /// passed over: the AUM must equal what was invested (issue 16).
    #[test]
    fn an_orphaned_holding_stops_the_valuation() {
        let (_, purchases, navs) = worked_inputs();
        let holdings = holdings_from_purchases(&purchases);
        let listed_users: Vec<i64> = value_worked(ValuationMode::Daily, None)
            .unwrap()
            .snapshots
            .iter()
            .map(|s| s.user_id)
            .collect();
        let orphan = *listed_users.first().unwrap();
        let without: Vec<i64> = listed_users
            .iter()
            .copied()
            .filter(|u| *u != orphan)
            .collect();
        for mode in [ValuationMode::Daily, ValuationMode::Hourly] {
            let err = value_portfolios(&ValuationInputs {
                as_of: d("2024-03-15"),
                mode,
                users: &without,
                holdings: &holdings,
                purchases: &purchases,
                cash_adjustments: &[],
                navs: &navs,
                schemes: &schemes(),
            })
            .unwrap_err();
            assert_eq!(err, ValuationError::UnknownHolder { user_id: orphan });
            assert!(err.to_string().contains("not in the `users` table"));
        }
    }
}
