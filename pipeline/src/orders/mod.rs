//! Orders other than SIP instalments (issue 36): which NAV an order gets, when its money is
//! paid out, what it is charged, and — in [`lots`] — which units a redemption takes and the
//! capital gain on each. Pure rules over dates and integers; the jobs feed them rows.
//!
//! The sources are `../shared/DESIGN.md` ("Purchases", "Redemptions", "Capital gains"):
//! SEBI's uniform cut-off timings (from 1-Feb-2021), the Indian Stamp Act as amended from
//! 1-Jul-2020, the STT rate on redemption of equity-oriented units, and the Income-tax Act as
//! amended by the Finance (No. 2) Act 2024.

pub mod execute;
pub mod fmv;
pub mod lots;
pub mod plans;
pub mod statement;

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime};

use crate::calendar::BusinessCalendar;
use crate::money::{div_round_half_up, Paise};

/// Which way money moves: into units (lumpsum, switch-in, STP-in) or out of them (redemption,
/// switch-out, SWP, STP-out). The side decides the cut-off rule and the charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Purchase,
    Redemption,
}

/// A scheme's tax treatment (`schemes rules`' `tax_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaxClass {
    /// At least 65% in domestic equity: STT on redemption, long-term after 12 months,
    /// grandfathered at the 31-Jan-2018 NAV.
    Equity,
    /// A specified mutual fund (debt): bought on or after 1-Apr-2023, always short-term.
    Debt,
    /// Everything else (hybrids below 65% equity, gold, international, funds of funds):
    /// long-term after 24 months (36 for sales before 23-Jul-2024).
    Other,
}

impl TaxClass {
    pub const ALL: [TaxClass; 3] = [TaxClass::Equity, TaxClass::Debt, TaxClass::Other];

    pub const fn as_str(self) -> &'static str {
        match self {
            TaxClass::Equity => "equity",
            TaxClass::Debt => "debt",
            TaxClass::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The default for a scheme from its AMFI category ("Equity Scheme - Large Cap Fund",
    /// "Debt Scheme - Liquid Fund", "Hybrid Scheme - Arbitrage Fund", …) and name, where
    /// `schemes rules` says nothing. Aggressive hybrid, arbitrage and equity-savings funds
    /// hold at least 65% equity by mandate. Index funds and ETFs share one category whatever
    /// they track, so their name decides: a debt index (SDL, G-Sec, gilt, bond, CRISIL IBX,
    /// target maturity, liquid) is a specified (debt) fund, gold, silver and overseas indices
    /// are other, the rest equity. A `schemes rules` row settles any scheme this misjudges.
    pub fn for_scheme(category: &str, scheme_name: &str) -> Self {
        let c = category.to_ascii_lowercase();
        let name = scheme_name.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| name.contains(w) || c.contains(w));
        if c.starts_with("equity scheme")
            || c.contains("arbitrage")
            || c.contains("equity savings")
            || c.contains("aggressive hybrid")
            || c.contains("elss")
        {
            TaxClass::Equity
        } else if c.starts_with("debt scheme") {
            TaxClass::Debt
        } else if c.contains("index fund") || c.contains("etf") {
            if has(&[
                "sdl",
                "g-sec",
                "gsec",
                "gilt",
                "bond",
                "crisil ibx",
                "target maturity",
                "liquid",
                "debt",
                "psu",
                "t-bill",
            ]) {
                TaxClass::Debt
            } else if has(&[
                "gold",
                "silver",
                "nasdaq",
                "s&p 500",
                "hang seng",
                "global",
                "overseas",
                "international",
                "us ",
                "fang",
            ]) {
                TaxClass::Other
            } else {
                TaxClass::Equity
            }
        } else {
            TaxClass::Other
        }
    }
}

/// Which cut-off and NAV rule a scheme's orders follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavRule {
    /// 15:00 IST; the NAV of that business day, else the next business day's.
    Standard,
    /// Liquid and overnight schemes' purchases: 13:30 IST; the NAV of the calendar day before
    /// the (business) day the money counts on.
    Liquid,
}

impl NavRule {
    /// From an AMFI category: liquid and overnight funds have their own rule.
    pub fn for_category(category: &str) -> Self {
        let c = category.to_ascii_lowercase();
        if c.contains("liquid fund") || c.contains("overnight fund") {
            NavRule::Liquid
        } else {
            NavRule::Standard
        }
    }
}

/// The cut-off for every order except liquid and overnight purchases (SEBI).
pub const CUT_OFF: NaiveTime = match NaiveTime::from_hms_opt(15, 0, 0) {
    Some(t) => t,
    None => unreachable!(),
};
/// The cut-off for purchases of liquid and overnight schemes (SEBI).
pub const LIQUID_CUT_OFF: NaiveTime = match NaiveTime::from_hms_opt(13, 30, 0) {
    Some(t) => t,
    None => unreachable!(),
};

/// The date of the NAV an order is executed at. `at` is the India-time instant the request
/// was received (a redemption or switch-out) or the money became available for use (a
/// purchase or switch-in): before the cut-off on a business day, that day; otherwise the next
/// business day. Liquid and overnight purchases then take the NAV of the calendar day before
/// that day (so money in by 13:30 on Tuesday gets Monday's NAV, and on Monday gets
/// Sunday's, which these schemes compute for every calendar day). Redemptions of liquid
/// schemes follow the standard rule, as `../shared/DESIGN.md` gives it.
pub fn applicable_nav_date(
    at: NaiveDateTime,
    side: Side,
    rule: NavRule,
    calendar: &BusinessCalendar,
) -> NaiveDate {
    let liquid_purchase = side == Side::Purchase && rule == NavRule::Liquid;
    let cut_off = if liquid_purchase {
        LIQUID_CUT_OFF
    } else {
        CUT_OFF
    };
    let day = at.date();
    let counts_on = if calendar.is_business_day(day) && at.time() < cut_off {
        day
    } else {
        calendar.roll_forward(day + Days::new(1))
    };
    if liquid_purchase {
        counts_on - Days::new(1)
    } else {
        counts_on
    }
}

/// The day redemption proceeds reach the bank: `payout_days` business days after the NAV
/// date (T+1 to T+3 by category; SEBI's limit is 3). A liquid scheme's NAV date may be a
/// holiday; the count starts from it all the same.
pub fn payout_date(
    nav_date: NaiveDate,
    payout_days: u32,
    calendar: &BusinessCalendar,
) -> NaiveDate {
    let mut day = nav_date;
    for _ in 0..payout_days {
        day = calendar.roll_forward(day + Days::new(1));
    }
    day
}

/// The Indian financial year (1 April – 31 March) a date falls in, as "2025-26".
pub fn financial_year(date: NaiveDate) -> String {
    let start = if date.month() >= 4 {
        date.year()
    } else {
        date.year() - 1
    };
    format!("{start}-{:02}", (start + 1).rem_euclid(100))
}

/// Securities transaction tax on a redemption or switch-out of an equity-oriented scheme:
/// 0.001% of the redemption value, to the paisa. Other schemes pay none.
pub fn stt(tax_class: TaxClass, gross: Paise) -> Paise {
    match tax_class {
        TaxClass::Equity => Paise(div_round_half_up(i128::from(gross.0), 100_000) as i64),
        TaxClass::Debt | TaxClass::Other => Paise(0),
    }
}

/// One step of an exit-load schedule: units held at most `max_days_held` days when redeemed
/// pay `basis_points` (100 = 1%) of their redemption value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitLoadTier {
    pub max_days_held: i64,
    pub basis_points: i64,
}

/// A scheme's exit load: tiers in ascending `max_days_held`; the first a lot falls within
/// applies, none after the last. "1% if redeemed within 365 days of allotment" is
/// `[{365, 100}]`: a lot redeemed on its 365th day pays, on its 366th does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitLoad {
    pub tiers: Vec<ExitLoadTier>,
}

impl ExitLoad {
    pub fn none() -> Self {
        Self::default()
    }

    /// The basis points a lot allotted on `allotted` pays when redeemed on `sold`.
    pub fn basis_points(&self, allotted: NaiveDate, sold: NaiveDate) -> i64 {
        let held = (sold - allotted).num_days();
        self.tiers
            .iter()
            .find(|t| held <= t.max_days_held)
            .map_or(0, |t| t.basis_points)
    }

    /// The default by AMFI category, where `schemes rules` gives no schedule: equity (not
    /// ELSS, which is locked in for three years) and hybrid schemes commonly charge 1% within
    /// a year; debt schemes none. Liquid funds' graded load (SEBI: 0.0070% on day 1 down to
    /// 0.0045% on day 6) is below one basis point, the unit of a tier, so it is not charged by
    /// default rather than overcharged; arbitrage funds' short loads need their own row.
    pub fn for_category(category: &str) -> Self {
        let c = category.to_ascii_lowercase();
        let tiers =
            if c.starts_with("equity scheme") && !c.contains("elss") || c.starts_with("hybrid") {
                vec![ExitLoadTier {
                    max_days_held: 365,
                    basis_points: 100,
                }]
            } else {
                Vec::new()
            };
        Self { tiers }
    }

    /// Parses `365:100;730:50` (days:basis points, ascending), or an empty text for none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut tiers = Vec::new();
        for step in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (days, bps) = step
                .split_once(':')
                .ok_or_else(|| format!("`{step}`: expected days:basis_points"))?;
            let tier = ExitLoadTier {
                max_days_held: days
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{step}`: days is not a whole number"))?,
                basis_points: bps
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{step}`: basis points is not a whole number"))?,
            };
            if tier.max_days_held < 0 || !(0..=10_000).contains(&tier.basis_points) {
                return Err(format!("`{step}`: out of range"));
            }
            if tiers
                .last()
                .is_some_and(|t: &ExitLoadTier| t.max_days_held >= tier.max_days_held)
            {
                return Err(format!("`{step}`: tiers must ascend by days"));
            }
            tiers.push(tier);
        }
        Ok(Self { tiers })
    }
}

/// What the order rules need to know about a scheme (`schemes rules`, else the category's
/// defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeTerms {
    pub tax_class: TaxClass,
    pub nav_rule: NavRule,
    pub exit_load: ExitLoad,
    /// Business days from the NAV date to the payout of a redemption.
    pub payout_days: u32,
    /// The NAV of 31-Jan-2018, for grandfathering units bought on or before it.
    pub fmv_2018_01_31: Option<crate::money::Nav>,
}

impl SchemeTerms {
    /// The defaults for a scheme by AMFI category (and name, for the tax class): T+1 for liquid, overnight and other debt, T+2
    /// for equity and the rest, SEBI's schedule as registrars apply it.
    pub fn for_scheme(category: &str, scheme_name: &str) -> Self {
        let tax_class = TaxClass::for_scheme(category, scheme_name);
        let nav_rule = NavRule::for_category(category);
        let payout_days = if tax_class == TaxClass::Debt { 1 } else { 2 };
        Self {
            tax_class,
            nav_rule,
            exit_load: ExitLoad::for_category(category),
            payout_days,
            fmv_2018_01_31: None,
        }
    }
}

/// What an order asks (`orders.kind`, the API's `kind`): one place for the names, so the
/// route that validates, the job that executes, the OpenAPI document and the table's CHECK
/// (tested against it) cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// A lumpsum purchase, by amount.
    Purchase,
    /// A redemption by amount, by units, or of everything held.
    Redemption,
    /// A redemption whose proceeds buy another scheme of the same fund house.
    Switch,
}

impl OrderKind {
    pub const ALL: [OrderKind; 3] = [
        OrderKind::Purchase,
        OrderKind::Redemption,
        OrderKind::Switch,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderKind::Purchase => "purchase",
            OrderKind::Redemption => "redemption",
            OrderKind::Switch => "switch",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The names as a person reads them in an error: "purchase, redemption or switch".
    pub fn listed() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// Which way the money moves first: a switch starts with its redemption.
    pub const fn side(self) -> Side {
        match self {
            OrderKind::Purchase => Side::Purchase,
            OrderKind::Redemption | OrderKind::Switch => Side::Redemption,
        }
    }

    /// The leg executed first (a switch's second leg, its switch-in, follows from it).
    pub const fn first_leg(self) -> OrderLeg {
        match self {
            OrderKind::Purchase => OrderLeg::Purchase,
            OrderKind::Redemption => OrderLeg::Redemption,
            OrderKind::Switch => OrderLeg::SwitchOut,
        }
    }
}

/// Where an order stands (`orders.status`): received until its cut-off, then executed or
/// failed; cancelled by the person before the cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Received,
    Executed,
    Failed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Received,
        OrderStatus::Executed,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Received => "received",
            OrderStatus::Executed => "executed",
            OrderStatus::Failed => "failed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Which part of an order a warehouse `orders` row records: a switch is two legs, a
/// redemption out of one scheme and a purchase into the other, under one order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderLeg {
    Purchase,
    Redemption,
    SwitchOut,
    SwitchIn,
}

impl OrderLeg {
    pub const ALL: [OrderLeg; 4] = [
        OrderLeg::Purchase,
        OrderLeg::Redemption,
        OrderLeg::SwitchOut,
        OrderLeg::SwitchIn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderLeg::Purchase => "purchase",
            OrderLeg::Redemption => "redemption",
            OrderLeg::SwitchOut => "switch_out",
            OrderLeg::SwitchIn => "switch_in",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }

    /// Whether the leg adds units (a lot) rather than takes them.
    pub const fn buys(self) -> bool {
        matches!(self, OrderLeg::Purchase | OrderLeg::SwitchIn)
    }
}

/// A row of the warehouse's `orders`: one executed leg of an order, or the order's failure
/// (`units` and the money zero, `failure` set). `amount` is the debit of a purchase leg and
/// the gross value of a redemption leg; `cost` is what the units sold were paid (stamp duty
/// and their lots' residue included), which leaves "invested"; `gain` the sum of the realised
/// pieces' gains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderOutcome {
    pub order_id: i64,
    pub user_id: i64,
    pub scheme_code: i64,
    pub leg: OrderLeg,
    pub executed: bool,
    pub nav_date: NaiveDate,
    pub nav: Option<crate::money::Nav>,
    pub units: crate::money::Units,
    pub amount: Paise,
    pub stamp_duty: Paise,
    pub exit_load: Paise,
    pub stt: Paise,
    pub net_amount: Paise,
    pub cost: Paise,
    pub gain: Paise,
    pub payout_date: Option<NaiveDate>,
    pub failure: Option<String>,
}

/// A row of the warehouse's `realized_gains`: one piece of one lot a redemption or switch-out
/// consumed, with what the data team joins on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealizedGain {
    pub order_id: i64,
    pub seq: i32,
    pub user_id: i64,
    pub scheme_code: i64,
    pub isin: Option<String>,
    pub tax_class: TaxClass,
    pub lot: lots::RealizedLot,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn at(y: i32, m: u32, day: u32, h: u32, min: u32) -> NaiveDateTime {
        d(y, m, day).and_hms_opt(h, min, 0).unwrap()
    }

    #[test]
    fn order_kinds_and_statuses_read_back_what_they_write() {
        for kind in OrderKind::ALL {
            assert_eq!(OrderKind::parse(kind.as_str()), Some(kind));
        }
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderKind::parse("swp"), None);
        assert_eq!(OrderStatus::parse("pending"), None);
        assert_eq!(OrderKind::listed(), "purchase, redemption or switch");
        assert_eq!(OrderKind::Switch.side(), Side::Redemption);
        assert_eq!(OrderKind::Switch.first_leg(), OrderLeg::SwitchOut);
        assert_eq!(OrderKind::Purchase.first_leg(), OrderLeg::Purchase);
    }

    /// NSE's list has 2026-12-25 (Friday, Christmas).
    fn nse() -> BusinessCalendar {
        BusinessCalendar::with_holidays([d(2026, 12, 25)])
    }

    #[test]
    fn an_order_after_the_cut_off_takes_the_next_business_days_nav() {
        let cal = nse();
        for side in [Side::Purchase, Side::Redemption] {
            // Wednesday 9 Dec 2026, 14:59 → that day; 15:00 → Thursday.
            assert_eq!(
                applicable_nav_date(at(2026, 12, 9, 14, 59), side, NavRule::Standard, &cal),
                d(2026, 12, 9)
            );
            assert_eq!(
                applicable_nav_date(at(2026, 12, 9, 15, 0), side, NavRule::Standard, &cal),
                d(2026, 12, 10)
            );
            // Thursday 24 Dec after 15:00: Friday is Christmas, so Monday 28th.
            assert_eq!(
                applicable_nav_date(at(2026, 12, 24, 16, 0), side, NavRule::Standard, &cal),
                d(2026, 12, 28)
            );
            // Saturday morning: Monday.
            assert_eq!(
                applicable_nav_date(at(2026, 12, 12, 9, 0), side, NavRule::Standard, &cal),
                d(2026, 12, 14)
            );
        }
    }

    #[test]
    fn a_liquid_fund_purchase_takes_the_previous_calendar_days_nav() {
        let cal = nse();
        let buy = |t| applicable_nav_date(t, Side::Purchase, NavRule::Liquid, &cal);
        // Tuesday 8 Dec 13:29 → money counts Tuesday → Monday's NAV.
        assert_eq!(buy(at(2026, 12, 8, 13, 29)), d(2026, 12, 7));
        // 13:30 → counts Wednesday → Tuesday's NAV.
        assert_eq!(buy(at(2026, 12, 8, 13, 30)), d(2026, 12, 8));
        // Monday 7 Dec 10:00 → Sunday's NAV (liquid funds value every calendar day).
        assert_eq!(buy(at(2026, 12, 7, 10, 0)), d(2026, 12, 6));
        // Thursday 24 Dec 14:00 → counts Monday 28th (Friday a holiday) → Sunday 27th.
        assert_eq!(buy(at(2026, 12, 24, 14, 0)), d(2026, 12, 27));
        // A redemption of the same scheme follows the standard rule: 14:00 is before 15:00.
        assert_eq!(
            applicable_nav_date(
                at(2026, 12, 24, 14, 0),
                Side::Redemption,
                NavRule::Liquid,
                &cal
            ),
            d(2026, 12, 24)
        );
    }

    #[test]
    fn payout_counts_business_days_from_the_nav_date() {
        let cal = nse();
        assert_eq!(payout_date(d(2026, 12, 23), 2, &cal), d(2026, 12, 28));
        assert_eq!(payout_date(d(2026, 12, 24), 1, &cal), d(2026, 12, 28));
        assert_eq!(payout_date(d(2026, 12, 9), 3, &cal), d(2026, 12, 14));
        assert_eq!(payout_date(d(2026, 12, 6), 1, &cal), d(2026, 12, 7));
    }

    #[test]
    fn financial_years_run_april_to_march() {
        assert_eq!(financial_year(d(2026, 3, 31)), "2025-26");
        assert_eq!(financial_year(d(2026, 4, 1)), "2026-27");
        assert_eq!(financial_year(d(2000, 1, 1)), "1999-00");
    }

    #[test]
    fn stt_is_a_thousandth_of_a_percent_on_equity_only() {
        // ₹1,00,000 → ₹1.00; ₹12,345.67 → 12.3457 paise → 12.
        assert_eq!(stt(TaxClass::Equity, Paise(10_000_000)), Paise(100));
        assert_eq!(stt(TaxClass::Equity, Paise(1_234_567)), Paise(12));
        assert_eq!(stt(TaxClass::Equity, Paise(150_000)), Paise(2)); // 1.5 → 2
        assert_eq!(stt(TaxClass::Debt, Paise(10_000_000)), Paise(0));
    }

    #[test]
    fn exit_load_tiers_apply_to_the_days_held() {
        let load = ExitLoad::parse("30:200; 365:100").unwrap();
        assert_eq!(load.basis_points(d(2025, 1, 1), d(2025, 1, 31)), 200);
        assert_eq!(load.basis_points(d(2025, 1, 1), d(2025, 2, 1)), 100);
        assert_eq!(load.basis_points(d(2025, 1, 1), d(2026, 1, 1)), 100); // day 365
        assert_eq!(load.basis_points(d(2025, 1, 1), d(2026, 1, 2)), 0); // day 366
        assert!(ExitLoad::parse("365:100;30:200").is_err());
        assert!(ExitLoad::parse("365").is_err());
        assert_eq!(ExitLoad::parse("").unwrap(), ExitLoad::none());
    }

    #[test]
    fn category_defaults() {
        let t = SchemeTerms::for_scheme("Equity Scheme - Large Cap Fund", "X Bluechip Fund");
        assert_eq!(
            (t.tax_class, t.nav_rule, t.payout_days),
            (TaxClass::Equity, NavRule::Standard, 2)
        );
        let t = SchemeTerms::for_scheme("Debt Scheme - Liquid Fund", "X Liquid Fund");
        assert_eq!(
            (t.tax_class, t.nav_rule, t.payout_days, t.exit_load),
            (TaxClass::Debt, NavRule::Liquid, 1, ExitLoad::none())
        );
        let class = |category, name| TaxClass::for_scheme(category, name);
        assert_eq!(
            class("Hybrid Scheme - Arbitrage Fund", "X Arbitrage"),
            TaxClass::Equity
        );
        assert_eq!(
            class("Hybrid Scheme - Aggressive Hybrid Fund", "X"),
            TaxClass::Equity
        );
        assert_eq!(
            class("Hybrid Scheme - Balanced Advantage", "X"),
            TaxClass::Other
        );
        assert_eq!(
            class("Other Scheme - Gold ETF", "X Gold ETF"),
            TaxClass::Other
        );
        assert_eq!(class("Other Scheme - FoF Overseas", "X"), TaxClass::Other);
        let index = "Other Scheme - Index Funds";
        assert_eq!(
            class(index, "UTI Nifty 50 Index Fund - Direct"),
            TaxClass::Equity
        );
        assert_eq!(
            class(
                index,
                "Edelweiss CRISIL IBX 50:50 Gilt Plus SDL Apr 2037 Index Fund"
            ),
            TaxClass::Debt
        );
        assert_eq!(
            class(index, "Motilal Oswal Nasdaq 100 Index Fund"),
            TaxClass::Other
        );
        assert_eq!(
            class("Other Scheme - Other  ETFs", "Bharat Bond ETF - April 2030"),
            TaxClass::Debt
        );
    }
}
