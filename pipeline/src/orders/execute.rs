//! Executing one order against one person's lots at its NAV: a lumpsum purchase, a
//! redemption by amount, by units or of everything, a switch (a redemption whose net proceeds
//! buy another scheme of the same fund house, at that scheme's NAV), and one SWP instalment.
//! A failed order takes nothing: the book is unchanged and the reason is returned.

use chrono::NaiveDate;

use super::lots::{Lot, LotBook, NotEnoughUnits, RealizedLot, SaleTotals};
use super::SchemeTerms;
use crate::money::{Nav, Paise, Units, NAV_PER_PAISA};
use crate::sip::{allot_units, stamp_duty};

/// How much a redemption takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeemBy {
    /// Units worth at most this gross amount at the NAV, in the scheme's unit steps.
    Amount(Paise),
    Units(Units),
    /// Everything held when the order executes.
    All,
}

/// Why an order executed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderFailure {
    #[error("{0}")]
    NotEnoughUnits(NotEnoughUnits),
    #[error("nothing is held in the scheme")]
    NothingHeld,
    #[error("the amount buys less than one unit step at NAV {nav}")]
    TooSmall { nav: Nav },
}

impl OrderFailure {
    /// The reason as the `orders.failure` column and the API spell it.
    pub const fn reason(&self) -> &'static str {
        match self {
            OrderFailure::NotEnoughUnits(_) => "insufficient_units",
            OrderFailure::NothingHeld => "nothing_held",
            OrderFailure::TooSmall { .. } => "amount_too_small",
        }
    }
}

/// An executed purchase: the debit, its stamp duty and the units it allotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allotment {
    pub amount: Paise,
    pub stamp_duty: Paise,
    pub units: Units,
    pub nav: Nav,
    pub nav_date: NaiveDate,
}

/// An executed redemption: the pieces of lots it took and its money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub pieces: Vec<RealizedLot>,
    pub totals: SaleTotals,
}

/// Buys with `amount` at `nav` (dated `nav_date`): stamp duty first, units rounded down to the
/// scheme's decimals, the same rule as a SIP instalment.
pub fn purchase(
    book: &mut LotBook,
    amount: Paise,
    nav: Nav,
    nav_date: NaiveDate,
    unit_decimals: i32,
) -> Result<Allotment, OrderFailure> {
    let duty = stamp_duty(amount);
    let units = allot_units(Paise(amount.0 - duty.0), nav, unit_decimals);
    if units.0 <= 0 {
        return Err(OrderFailure::TooSmall { nav });
    }
    book.buy(Lot::from_debit(nav_date, units, nav, duty, amount));
    Ok(Allotment {
        amount,
        stamp_duty: duty,
        units,
        nav,
        nav_date,
    })
}

/// The units a redemption asks for, at `nav`, from a holding of `held`.
pub fn units_to_redeem(
    by: RedeemBy,
    nav: Nav,
    held: Units,
    unit_decimals: i32,
) -> Result<Units, OrderFailure> {
    if held.0 <= 0 {
        return Err(OrderFailure::NothingHeld);
    }
    let units = match by {
        RedeemBy::Units(units) => units,
        RedeemBy::All => held,
        // Rounded down to the unit step, so the gross never exceeds the amount asked.
        RedeemBy::Amount(amount) => allot_units(amount, nav, unit_decimals),
    };
    if units.0 <= 0 {
        return Err(OrderFailure::TooSmall { nav });
    }
    if units.0 > held.0 {
        return Err(OrderFailure::NotEnoughUnits(NotEnoughUnits {
            wanted: units,
            held,
        }));
    }
    Ok(units)
}

/// Redeems from `book` on `nav_date` at `nav`.
pub fn redeem(
    book: &mut LotBook,
    by: RedeemBy,
    nav: Nav,
    nav_date: NaiveDate,
    terms: &SchemeTerms,
    unit_decimals: i32,
) -> Result<Redemption, OrderFailure> {
    let units = units_to_redeem(by, nav, book.held_on(nav_date), unit_decimals)?;
    let (pieces, totals) = book
        .redeem(units, nav_date, nav, terms)
        .map_err(OrderFailure::NotEnoughUnits)?;
    Ok(Redemption { pieces, totals })
}

/// A switch: the redemption leg from `from`, then its net proceeds buy `to` at `to_nav`
/// (dated `to_nav_date`: the purchase leg's own applicable date), paying stamp duty as any
/// purchase does. Nothing changes in either book unless both legs execute.
#[allow(clippy::too_many_arguments)]
pub fn switch(
    from: &mut LotBook,
    to: &mut LotBook,
    by: RedeemBy,
    from_nav: Nav,
    from_nav_date: NaiveDate,
    from_terms: &SchemeTerms,
    from_unit_decimals: i32,
    to_nav: Nav,
    to_nav_date: NaiveDate,
    to_unit_decimals: i32,
) -> Result<(Redemption, Allotment), OrderFailure> {
    let mut from_after = from.clone();
    let mut to_after = to.clone();
    let out = redeem(
        &mut from_after,
        by,
        from_nav,
        from_nav_date,
        from_terms,
        from_unit_decimals,
    )?;
    let into = purchase(
        &mut to_after,
        out.totals.net_proceeds,
        to_nav,
        to_nav_date,
        to_unit_decimals,
    )?;
    *from = from_after;
    *to = to_after;
    Ok((out, into))
}

/// One SWP instalment: redeems units worth `amount` gross. When what is held is worth less
/// than the instalment the SWP stops — `Err(NotEnoughUnits)` or `Err(NothingHeld)`, taking
/// nothing — rather than sell the last units for less than the person asked for.
pub fn swp_instalment(
    book: &mut LotBook,
    amount: Paise,
    nav: Nav,
    nav_date: NaiveDate,
    terms: &SchemeTerms,
    unit_decimals: i32,
) -> Result<Redemption, OrderFailure> {
    // Units worth the amount, rounded *up* to the step so the person receives at least the
    // instalment before charges (a withdrawal plan pays a fixed sum).
    let decimals = unit_decimals.clamp(0, Units::SCALE as i32) as u32;
    let step = 10_i128.pow(Units::SCALE - decimals);
    let scaled = i128::from(amount.0) * NAV_PER_PAISA * 10_i128.pow(Units::SCALE);
    let nav_scaled = i128::from(nav.scaled()).max(1);
    let exact = (scaled + nav_scaled - 1) / nav_scaled;
    let units = Units((((exact + step - 1) / step) * step) as i64);
    redeem(
        book,
        RedeemBy::Units(units),
        nav,
        nav_date,
        terms,
        unit_decimals,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{ExitLoad, NavRule, TaxClass};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn nav(text: &str) -> Nav {
        text.parse().unwrap()
    }

    fn terms(tax_class: TaxClass) -> SchemeTerms {
        SchemeTerms {
            tax_class,
            nav_rule: NavRule::Standard,
            exit_load: ExitLoad::none(),
            payout_days: 2,
            fmv_2018_01_31: None,
        }
    }

    /// A ₹10,000 lumpsum at NAV 25.1234: duty 1,000,000 × 5 / 100,005 = 49.9975 → 50 paise;
    /// ₹9,999.50 / 25.1234 = 398.0154… → 398.015 units.
    #[test]
    fn a_lumpsum_pays_stamp_duty_and_allots_to_three_decimals() {
        let mut book = LotBook::default();
        let a = purchase(
            &mut book,
            Paise(1_000_000),
            nav("25.1234"),
            d(2026, 12, 9),
            3,
        )
        .unwrap();
        assert_eq!(a.stamp_duty, Paise(50));
        assert_eq!(a.units, Units(3_980_150));
        assert_eq!(book.held(), Units(3_980_150));
        assert_eq!(
            purchase(&mut book, Paise(1), nav("25.1234"), d(2026, 12, 9), 3),
            Err(OrderFailure::TooSmall {
                nav: nav("25.1234")
            })
        );
    }

    /// ₹6,000 into an equity scheme at 40: duty 30 paise (29.9985), 5,999.70 / 40 = 149.992
    /// units. A switch of 100 of them at 50: ₹5,000.00 gross, STT ₹0.05, no load; ₹4,999.95
    /// buys the other scheme at *its* NAV, 20, on its own date: duty 25 paise (24.9985),
    /// 4,999.70 / 20 = 249.985 units.
    #[test]
    fn a_switch_buys_the_other_scheme_at_its_own_nav() {
        let mut from = LotBook::default();
        purchase(&mut from, Paise(600_000), nav("40"), d(2025, 1, 6), 3).unwrap();
        assert_eq!(from.held(), Units(1_499_920));
        let mut to = LotBook::default();
        let (out, into) = switch(
            &mut from,
            &mut to,
            RedeemBy::Units(Units(1_000_000)),
            nav("50"),
            d(2026, 12, 9),
            &terms(TaxClass::Equity),
            3,
            nav("20"),
            d(2026, 12, 10),
            3,
        )
        .unwrap();
        assert_eq!(out.totals.gross, Paise(500_000));
        assert_eq!(out.totals.stt, Paise(5));
        assert_eq!(out.totals.net_proceeds, Paise(499_995));
        assert_eq!(into.amount, Paise(499_995));
        assert_eq!(into.stamp_duty, Paise(25));
        assert_eq!((into.nav, into.nav_date), (nav("20"), d(2026, 12, 10)));
        assert_eq!(into.units, Units(2_499_850));
        assert_eq!(from.held(), Units(499_920));
        assert_eq!(to.held(), Units(2_499_850));
        // More than is held: neither book changes.
        let failed = switch(
            &mut from,
            &mut to,
            RedeemBy::Units(Units(499_930)),
            nav("50"),
            d(2026, 12, 11),
            &terms(TaxClass::Equity),
            3,
            nav("20"),
            d(2026, 12, 11),
            3,
        );
        assert_eq!(failed.unwrap_err().reason(), "insufficient_units");
        assert_eq!((from.held(), to.held()), (Units(499_920), Units(2_499_850)));
    }

    #[test]
    fn redemptions_by_amount_units_and_everything() {
        let held = Units(1_234_567);
        let n = nav("10");
        // ₹500 at 10 → 50 units exactly; ₹500.009 cannot be asked (paise), ₹0.05 → 0.005.
        assert_eq!(
            units_to_redeem(RedeemBy::Amount(Paise(50_000)), n, held, 3),
            Ok(Units(500_000))
        );
        assert_eq!(
            units_to_redeem(RedeemBy::Amount(Paise(5)), n, held, 3),
            Ok(Units(50))
        );
        assert_eq!(units_to_redeem(RedeemBy::All, n, held, 3), Ok(held));
        assert_eq!(
            units_to_redeem(RedeemBy::Units(Units(1_234_568)), n, held, 3)
                .unwrap_err()
                .reason(),
            "insufficient_units"
        );
        assert_eq!(
            units_to_redeem(RedeemBy::All, n, Units(0), 3),
            Err(OrderFailure::NothingHeld)
        );
        assert_eq!(
            units_to_redeem(RedeemBy::Amount(Paise(0)), n, held, 3)
                .unwrap_err()
                .reason(),
            "amount_too_small"
        );
    }

    /// ₹1,000 a month out of 250 units at 10 (₹2,500): two instalments of 100 units (rounded
    /// up: the person gets at least ₹1,000), then 50 units are worth ₹500 < ₹1,000: the SWP
    /// stops, taking nothing, and the 50 units stay.
    #[test]
    fn an_swp_stops_when_the_units_run_out() {
        let mut book = LotBook::default();
        purchase(&mut book, Paise(250_013), nav("10"), d(2025, 1, 6), 3).unwrap();
        assert_eq!(book.held(), Units(2_500_000)); // duty 13 paise (12.5 → 13): 2,500.00 net
        let t = terms(TaxClass::Debt);
        for month in 1..=2 {
            let r = swp_instalment(
                &mut book,
                Paise(100_000),
                nav("10"),
                d(2025, 1 + month, 10),
                &t,
                3,
            )
            .unwrap();
            assert_eq!(r.totals.units, Units(1_000_000));
            assert_eq!(r.totals.net_proceeds, Paise(100_000));
        }
        let stopped = swp_instalment(&mut book, Paise(100_000), nav("10"), d(2025, 4, 10), &t, 3);
        assert_eq!(stopped.unwrap_err().reason(), "insufficient_units");
        assert_eq!(book.held(), Units(500_000));
        // At NAV 3 the ₹1,000 instalment needs 333.3333... units → 333.334 (gross ₹1,000.00).
        let mut book = LotBook::default();
        purchase(&mut book, Paise(200_010), nav("3"), d(2025, 1, 6), 3).unwrap();
        let r = swp_instalment(&mut book, Paise(100_000), nav("3"), d(2025, 2, 10), &t, 3).unwrap();
        assert_eq!(r.totals.units, Units(3_333_340));
        assert_eq!(r.totals.gross, Paise(100_000));
    }
}
