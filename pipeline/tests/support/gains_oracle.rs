//! An independent test oracle for capital gains on mutual-fund redemptions.
//!
//! Written from the written rules only (first in, first out; cumulative splitting of money;
//! exit load; STT; grandfathering; holding period; financial year), sharing no code with the
//! `pipeline` crate. It favours being obviously correct over being fast: every product is
//! taken in `i128` and every division rounds half up, in one helper.
//!
//! Units: money in paise, units in 1/10,000 unit, NAV in 10^-8 rupee, so that
//! units × NAV / 10^10 is paise.
#![allow(dead_code)]

use chrono::{Datelike, Months, NaiveDate};

/// How the scheme is taxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxClass {
    Equity,
    Debt,
    Other,
}

/// Holding period of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    Short,
    Long,
}

/// A purchase (allotment). Lots are given in allotment order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleLot {
    pub date: NaiveDate,
    /// 1/10,000 unit.
    pub units: i64,
    /// 10^-8 rupee.
    pub nav: i64,
    /// Paise, for the whole lot.
    pub stamp_duty: i64,
}

/// A redemption. Sales are given in date order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleSale {
    pub date: NaiveDate,
    /// 1/10,000 unit.
    pub units: i64,
    /// 10^-8 rupee.
    pub nav: i64,
}

/// What the scheme's tax treatment depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleRules {
    pub tax_class: TaxClass,
    /// Exit load schedule: (max_days_held, basis_points), ascending by days; the first entry
    /// with days_held <= max_days_held applies; none applies → no load.
    pub exit_load: Vec<(i64, i64)>,
    /// NAV on 31-Jan-2018 (10^-8 rupee), for grandfathering; None if the scheme had none.
    pub fmv_2018_01_31: Option<i64>,
}

/// One (sale, lot) piece: the units of one lot that one sale consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleGain {
    /// Index into the sales slice.
    pub sale_index: usize,
    /// Index into the lots slice.
    pub lot_index: usize,
    pub purchase_date: NaiveDate,
    pub sale_date: NaiveDate,
    pub units: i64,
    pub purchase_nav: i64,
    /// Paise.
    pub purchase_value: i64,
    /// Paise: this piece's share of the lot's stamp duty.
    pub stamp_duty: i64,
    pub sale_nav: i64,
    /// Paise.
    pub gross_sale_value: i64,
    /// Paise.
    pub exit_load: i64,
    /// Paise: this piece's share of the sale's STT.
    pub stt: i64,
    /// Paise: cost of acquisition after grandfathering.
    pub cost: i64,
    /// Paise, may be negative.
    pub gain: i64,
    pub term: Term,
    /// Indian financial year of the sale, e.g. "2025-26".
    pub fy: String,
}

/// Totals of one sale, all in paise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleSaleTotals {
    pub gross: i64,
    pub exit_load: i64,
    pub stt: i64,
    pub net_proceeds: i64,
}

/// units × NAV is in 10^-10 paise.
const UNITS_TIMES_NAV_PER_PAISA: i128 = 10_000_000_000;
/// Basis points per whole.
const BPS_PER_WHOLE: i128 = 10_000;
/// STT on an equity redemption: 0.001% = 1 / 100,000 of the gross.
const STT_DIVISOR: i128 = 100_000;

/// A fixed calendar date.
fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    // Only ever called with constant, valid calendar dates below, so this cannot fail.
    NaiveDate::from_ymd_opt(year, month, day).expect("constant date is valid")
}

/// The last allotment date whose units are grandfathered.
fn grandfathering_cutoff() -> NaiveDate {
    ymd(2018, 1, 31)
}

/// Debt bought on or after this date is always short-term (specified mutual fund).
fn specified_debt_from() -> NaiveDate {
    ymd(2023, 4, 1)
}

/// Sales on or after this date use 24 months instead of 36 for debt/other.
fn new_holding_period_from() -> NaiveDate {
    ymd(2024, 7, 23)
}

/// numerator / denominator, rounded to the nearest integer, halves away from zero.
/// The denominator must be positive.
pub fn round_half_up(numerator: i128, denominator: i128) -> i128 {
    assert!(
        denominator > 0,
        "round_half_up: denominator must be positive"
    );
    let magnitude = (2 * numerator.abs() + denominator) / (2 * denominator);
    if numerator < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Paise of `units` at `nav`: round_half_up(units × nav / 10^10).
pub fn value_in_paise(units: i64, nav: i64) -> i128 {
    round_half_up(
        i128::from(units) * i128::from(nav),
        UNITS_TIMES_NAV_PER_PAISA,
    )
}

/// The Indian financial year (1 April to 31 March) containing `date`, e.g. "2025-26".
pub fn financial_year(date: NaiveDate) -> String {
    let start = if date.month() >= 4 {
        date.year()
    } else {
        date.year() - 1
    };
    let end_two_digits = (start + 1).rem_euclid(100);
    format!("{start}-{end_two_digits:02}")
}

/// Whether `sale_date` is after `purchase_date` + `months` calendar months (chrono clamps the
/// day to the month's end: 2024-01-31 + 1 month = 2024-02-29).
pub fn held_more_than_months(purchase_date: NaiveDate, sale_date: NaiveDate, months: u32) -> bool {
    match purchase_date.checked_add_months(Months::new(months)) {
        Some(anniversary) => sale_date > anniversary,
        // Past the last date chrono can represent: no sale date can be later than that.
        None => false,
    }
}

/// Short or long term, by tax class, purchase date and sale date.
pub fn term_of(tax_class: TaxClass, purchase_date: NaiveDate, sale_date: NaiveDate) -> Term {
    let long = match tax_class {
        TaxClass::Equity => held_more_than_months(purchase_date, sale_date, 12),
        TaxClass::Debt if purchase_date >= specified_debt_from() => false,
        TaxClass::Debt | TaxClass::Other => {
            let months = if sale_date >= new_holding_period_from() {
                24
            } else {
                36
            };
            held_more_than_months(purchase_date, sale_date, months)
        }
    };
    if long {
        Term::Long
    } else {
        Term::Short
    }
}

/// Basis points of exit load for a holding of `days_held` days: the first schedule entry with
/// days_held <= max_days_held, or 0 when none applies.
pub fn exit_load_bps(schedule: &[(i64, i64)], days_held: i64) -> i64 {
    for &(max_days_held, bps) in schedule {
        if days_held <= max_days_held {
            return bps;
        }
    }
    0
}

/// Back to i64, or an error naming what overflowed.
fn to_i64(value: i128, what: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("{what} does not fit in i64: {value}"))
}

/// One piece of a sale before the money is worked out: which lot, how many units, and how
/// many units of that lot had been consumed before it.
struct Take {
    lot_index: usize,
    units: i64,
    consumed_before: i64,
}

/// Capital gains of `sales` against `lots`, first in, first out.
///
/// Returns one `OracleGain` per (sale, lot) piece, by sale then oldest lot first, and one
/// `OracleSaleTotals` per sale. Errors: a sale of zero (or negative) units, a sale of more
/// units than are held on its date, lots or sales out of date order, a lot of zero (or
/// negative) units, a negative NAV, stamp duty or exit-load rate.
pub fn oracle_gains(
    lots: &[OracleLot],
    sales: &[OracleSale],
    rules: &OracleRules,
) -> Result<(Vec<OracleGain>, Vec<OracleSaleTotals>), String> {
    validate(lots, sales, rules)?;

    // Units of each lot consumed by earlier sales.
    let mut consumed = vec![0_i64; lots.len()];
    let mut gains = Vec::new();
    let mut totals = Vec::new();

    for (sale_index, sale) in sales.iter().enumerate() {
        // 1. First in, first out: which lots, how many units of each.
        let mut takes = Vec::new();
        let mut still_to_sell = sale.units;
        for (lot_index, lot) in lots.iter().enumerate() {
            if still_to_sell == 0 {
                break;
            }
            // A lot allotted after the sale date is not held on the sale date (lots are in
            // date order, so neither is any later one).
            if lot.date > sale.date {
                break;
            }
            let left_in_lot = lot.units - consumed[lot_index];
            if left_in_lot == 0 {
                continue;
            }
            let units = left_in_lot.min(still_to_sell);
            takes.push(Take {
                lot_index,
                units,
                consumed_before: consumed[lot_index],
            });
            consumed[lot_index] += units;
            still_to_sell -= units;
        }
        if still_to_sell > 0 {
            return Err(format!(
                "sale {sale_index} on {}: sells {} units but only {} are held",
                sale.date,
                sale.units,
                sale.units - still_to_sell
            ));
        }

        // 2. The sale's totals that pieces share.
        let gross_total = value_in_paise(sale.units, sale.nav);
        let stt_total = match rules.tax_class {
            TaxClass::Equity => round_half_up(gross_total, STT_DIVISOR),
            TaxClass::Debt | TaxClass::Other => 0,
        };

        // 3. Each piece.
        let mut units_before_in_sale: i64 = 0; // S
        let mut gross_before_in_sale: i128 = 0; // G_before
        let mut exit_load_total: i128 = 0;
        for take in takes {
            let lot = &lots[take.lot_index];
            let units = take.units;

            // Purchase value and stamp duty, cumulative within the lot.
            let consumed_after = take.consumed_before + units;
            let purchase_value = value_in_paise(consumed_after, lot.nav)
                - value_in_paise(take.consumed_before, lot.nav);
            let stamp_duty = round_half_up(
                i128::from(lot.stamp_duty) * i128::from(consumed_after),
                i128::from(lot.units),
            ) - round_half_up(
                i128::from(lot.stamp_duty) * i128::from(take.consumed_before),
                i128::from(lot.units),
            );

            // Gross, cumulative within the sale.
            let units_after_in_sale = units_before_in_sale + units;
            let gross = value_in_paise(units_after_in_sale, sale.nav)
                - value_in_paise(units_before_in_sale, sale.nav);

            // Exit load on this piece.
            let days_held = (sale.date - lot.date).num_days();
            let bps = exit_load_bps(&rules.exit_load, days_held);
            let exit_load = round_half_up(gross * i128::from(bps), BPS_PER_WHOLE);

            // STT share, cumulative by gross within the sale.
            let stt = if gross_total == 0 {
                0
            } else {
                round_half_up(stt_total * (gross_before_in_sale + gross), gross_total)
                    - round_half_up(stt_total * gross_before_in_sale, gross_total)
            };

            // Gain.
            let sale_value = gross - exit_load;
            let actual_cost = purchase_value + stamp_duty;
            let cost = match (rules.tax_class, rules.fmv_2018_01_31) {
                // s.112A: grandfathering applies to long-term gains only (rule revised after
                // the first draft of this oracle).
                (TaxClass::Equity, Some(fmv))
                    if lot.date <= grandfathering_cutoff()
                        && term_of(rules.tax_class, lot.date, sale.date) == Term::Long =>
                {
                    let fmv_value = value_in_paise(units, fmv);
                    actual_cost.max(fmv_value.min(sale_value))
                }
                _ => actual_cost,
            };
            let gain = sale_value - cost;

            gains.push(OracleGain {
                sale_index,
                lot_index: take.lot_index,
                purchase_date: lot.date,
                sale_date: sale.date,
                units,
                purchase_nav: lot.nav,
                purchase_value: to_i64(purchase_value, "purchase value")?,
                stamp_duty: to_i64(stamp_duty, "stamp duty share")?,
                sale_nav: sale.nav,
                gross_sale_value: to_i64(gross, "gross sale value")?,
                exit_load: to_i64(exit_load, "exit load")?,
                stt: to_i64(stt, "STT share")?,
                cost: to_i64(cost, "cost")?,
                gain: to_i64(gain, "gain")?,
                term: term_of(rules.tax_class, lot.date, sale.date),
                fy: financial_year(sale.date),
            });

            units_before_in_sale = units_after_in_sale;
            gross_before_in_sale += gross;
            exit_load_total += exit_load;
        }

        totals.push(OracleSaleTotals {
            gross: to_i64(gross_total, "sale gross")?,
            exit_load: to_i64(exit_load_total, "sale exit load")?,
            stt: to_i64(stt_total, "sale STT")?,
            net_proceeds: to_i64(
                gross_total - exit_load_total - stt_total,
                "sale net proceeds",
            )?,
        });
    }

    Ok((gains, totals))
}

/// Input checks the rules rely on.
fn validate(lots: &[OracleLot], sales: &[OracleSale], rules: &OracleRules) -> Result<(), String> {
    for (lot_index, lot) in lots.iter().enumerate() {
        if lot.units <= 0 {
            return Err(format!("lot {lot_index}: units must be positive"));
        }
        if lot.nav < 0 {
            return Err(format!("lot {lot_index}: NAV must not be negative"));
        }
        if lot.stamp_duty < 0 {
            return Err(format!("lot {lot_index}: stamp duty must not be negative"));
        }
        if lot_index > 0 && lot.date < lots[lot_index - 1].date {
            return Err(format!("lot {lot_index}: dated before the lot before it"));
        }
    }
    for (sale_index, sale) in sales.iter().enumerate() {
        if sale.units <= 0 {
            return Err(format!("sale {sale_index}: units must be positive"));
        }
        if sale.nav < 0 {
            return Err(format!("sale {sale_index}: NAV must not be negative"));
        }
        if sale_index > 0 && sale.date < sales[sale_index - 1].date {
            return Err(format!(
                "sale {sale_index}: dated before the sale before it"
            ));
        }
    }
    if let Some(fmv) = rules.fmv_2018_01_31 {
        if fmv < 0 {
            return Err("fmv_2018_01_31 must not be negative".to_string());
        }
    }
    for &(_, bps) in &rules.exit_load {
        if bps < 0 {
            return Err("exit load basis points must not be negative".to_string());
        }
    }
    Ok(())
}
