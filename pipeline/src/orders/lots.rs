//! Lots, first in first out, and the capital gain on every piece of a lot a redemption takes.
//!
//! A holding of one scheme is its purchases in allotment order; a redemption takes units from
//! the first allotted lot that still has some (the Income-tax Act's rule for units held
//! without identification: first in, first out). Allotment order is date order but for a lot
//! allotted late (a later run, at an earlier NAV date), which stays where it joined: the
//! figure below must mean the same units in every run. So the lots left are "every purchase
//! after the first R units redeemed":
//! [`LotBook`] is the purchases plus one cumulative figure, the units redeemed so far, which is
//! all the state a sale needs.
//!
//! Money is split so that the pieces add up exactly to the whole: a piece of a lot takes the
//! difference of two roundings of the cumulative share (the lot's units consumed before and
//! after it), for its purchase value and its share of the lot's stamp duty; a piece of a sale
//! takes the same of the sale's gross value and of its STT. A lot redeemed in five sales costs
//! exactly what it cost, to the paisa.
//!
//! Per piece (`../shared/DESIGN.md`, "Capital gains"): sale value = gross − exit load (the
//! load is an expense of the transfer, s.48(i), and the registrar's redemption price is the
//! NAV less the load); cost = purchase value + the piece's stamp duty, or for equity units
//! bought on or before 31-Jan-2018 and sold long-term, max(cost, min(FMV, sale value))
//! (s.112A grandfathering, FMV = units × the 31-Jan-2018 NAV); gain = sale value − cost; STT is shown, not deducted.

use chrono::{Months, NaiveDate};

use super::{financial_year, stt, SchemeTerms, TaxClass};
use crate::money::{div_round_half_up, Nav, Paise, Units, NAV_PER_PAISA};

/// Units bought at one NAV on one date: a purchase, SIP instalment, switch-in or STP-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lot {
    /// The NAV date the units were bought at: the holding period runs from it.
    pub date: NaiveDate,
    pub units: Units,
    pub nav: Nav,
    pub stamp_duty: Paise,
    /// What the debit paid beyond the purchase value and the stamp duty: units are allotted
    /// rounded down, so up to one unit step's worth bought nothing. It is not a cost of
    /// acquisition (the gains leave it out), but it is part of what the person put in, so it
    /// leaves "invested" with the units it came with: a holding sold to the last unit holds
    /// no cost.
    pub residue: Paise,
}

impl Lot {
    /// The lot a debit of `debit` bought: `units` at `nav` with `stamp_duty`, the rest of
    /// the debit its residue.
    pub fn from_debit(
        date: NaiveDate,
        units: Units,
        nav: Nav,
        stamp_duty: Paise,
        debit: Paise,
    ) -> Lot {
        Lot {
            date,
            units,
            nav,
            stamp_duty,
            residue: Paise(debit.0 - value_of(units.0, nav).0 - stamp_duty.0),
        }
    }

    /// What the person paid for the lot: purchase value, stamp duty and residue.
    pub fn debit(&self) -> Paise {
        Paise(value_of(self.units.0, self.nav).0 + self.stamp_duty.0 + self.residue.0)
    }
}

/// Short- or long-term, as the Income-tax Act classes the gain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Term {
    Short,
    Long,
}

impl Term {
    pub const fn as_str(self) -> &'static str {
        match self {
            Term::Short => "short",
            Term::Long => "long",
        }
    }
}

/// The part of one lot one redemption took, with its gain: a row of `realized_gains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealizedLot {
    pub purchase_date: NaiveDate,
    pub purchase_nav: Nav,
    pub units: Units,
    pub purchase_value: Paise,
    pub stamp_duty: Paise,
    pub sale_date: NaiveDate,
    pub sale_nav: Nav,
    pub gross_sale_value: Paise,
    pub exit_load: Paise,
    pub stt: Paise,
    /// The cost of acquisition the gain is taken against (after grandfathering).
    pub cost: Paise,
    pub gain: Paise,
    pub term: Term,
    pub fy: String,
}

/// A redemption's money: the sum of its pieces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaleTotals {
    pub units: Units,
    pub gross: Paise,
    pub exit_load: Paise,
    pub stt: Paise,
    /// What reaches the bank: gross − exit load − STT.
    pub net_proceeds: Paise,
    /// What the units sold were paid (purchase value + stamp duty, before grandfathering, and
    /// their share of their lots' residue): what leaves "invested".
    pub cost: Paise,
}

/// A redemption asked for more units than the holding has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redeems {wanted} units but {held} are held")]
pub struct NotEnoughUnits {
    pub wanted: Units,
    pub held: Units,
}

/// One scheme's lots for one person: the purchases in allotment order and the units redeemed
/// so far, which FIFO takes from the front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LotBook {
    lots: Vec<Lot>,
    redeemed: Units,
}

impl LotBook {
    /// A book from purchases in allotment order and the units redeemed from them so far.
    pub fn new(lots: Vec<Lot>, redeemed: Units) -> Self {
        Self { lots, redeemed }
    }

    /// Adds a purchase at the end: purchases come in the order runs allot them, which is not
    /// always their dates' order (see [`LotBook::held_on`]).
    pub fn buy(&mut self, lot: Lot) {
        self.lots.push(lot);
    }

    /// Units still held.
    pub fn held(&self) -> Units {
        Units(self.lots.iter().map(|l| l.units.0).sum::<i64>() - self.redeemed.0)
    }

    /// Units a sale dated `date` can take: the units left in the lots up to the first one
    /// (with units left) dated after it. A sale dated before a purchase's allotment cannot take that purchase's units,
    /// and FIFO takes from the front, so a lot allotted late (in a later run, at an earlier
    /// NAV date) behind a later-dated one waits for sales dated after that one.
    pub fn held_on(&self, date: NaiveDate) -> Units {
        let mut skip = self.redeemed.0;
        let mut held = 0;
        for lot in &self.lots {
            let taken = skip.min(lot.units.0);
            skip -= taken;
            let open = lot.units.0 - taken;
            // Lots sold out do not stand in the way, whatever their date.
            if open == 0 {
                continue;
            }
            if lot.date > date {
                break;
            }
            held += open;
        }
        Units(held)
    }

    /// Units redeemed so far (the checkpointed figure).
    pub fn redeemed(&self) -> Units {
        self.redeemed
    }

    /// The lots still held, first allotted first, each with the units left in it and what is left of
    /// its stamp duty and residue (the lot's less its redeemed pieces').
    pub fn open_lots(&self) -> Vec<Lot> {
        let mut skip = self.redeemed.0;
        let mut open = Vec::new();
        for lot in &self.lots {
            let taken = skip.min(lot.units.0);
            skip -= taken;
            if taken < lot.units.0 {
                open.push(Lot {
                    units: Units(lot.units.0 - taken),
                    stamp_duty: Paise(lot.stamp_duty.0 - piece_duty(lot, taken)),
                    residue: Paise(lot.residue.0 - piece_residue(lot, taken)),
                    ..*lot
                });
            }
        }
        open
    }

    /// What the units still held were paid (purchase value, stamp duty and their share of
    /// the residue): "invested".
    pub fn cost_held(&self) -> Paise {
        let mut skip = self.redeemed.0;
        let mut cost = 0;
        for lot in &self.lots {
            let taken = skip.min(lot.units.0);
            skip -= taken;
            // The lot's whole cost less what the redeemed pieces took, so held plus realised
            // is the lot to the paisa.
            let (all, gone) = (lot.units.0, taken);
            cost += value_of(all, lot.nav).0 - value_of(gone, lot.nav).0;
            cost += piece_duty(lot, all) - piece_duty(lot, gone);
            cost += piece_residue(lot, all) - piece_residue(lot, gone);
        }
        Paise(cost)
    }

    /// Redeems `units` on `date` at `nav`: takes them first allotted lot first and returns one
    /// [`RealizedLot`] per lot touched and the sale's totals. Nothing changes on error.
    pub fn redeem(
        &mut self,
        units: Units,
        date: NaiveDate,
        nav: Nav,
        terms: &SchemeTerms,
    ) -> Result<(Vec<RealizedLot>, SaleTotals), NotEnoughUnits> {
        // FIFO within the units held on the date never reaches a lot dated after the sale:
        // `held_on` counts only the prefix of lots dated on or before it.
        let held = self.held_on(date);
        if units.0 <= 0 || units.0 > held.0 {
            return Err(NotEnoughUnits {
                wanted: units,
                held,
            });
        }
        let gross_total = value_of(units.0, nav);
        let stt_total = stt(terms.tax_class, gross_total);
        let fy = financial_year(date);
        let mut pieces = Vec::new();
        let mut totals = SaleTotals {
            units,
            gross: gross_total,
            stt: stt_total,
            ..SaleTotals::default()
        };
        // Units of earlier lots (consumed before this sale or by it) to skip, and the sale's
        // units taken so far.
        let mut skip = self.redeemed.0;
        let mut sold = 0_i64;
        let mut gross_before = Paise(0);
        for lot in &self.lots {
            if sold == units.0 {
                break;
            }
            let before = skip.min(lot.units.0);
            skip -= before;
            let take = (lot.units.0 - before).min(units.0 - sold);
            if take == 0 {
                continue;
            }
            let purchase_value =
                Paise(value_of(before + take, lot.nav).0 - value_of(before, lot.nav).0);
            let stamp_duty = Paise(piece_duty(lot, before + take) - piece_duty(lot, before));
            let gross = Paise(value_of(sold + take, nav).0 - value_of(sold, nav).0);
            let stt = Paise(
                share(stt_total, gross_before.0 + gross.0, gross_total.0)
                    - share(stt_total, gross_before.0, gross_total.0),
            );
            let bps = terms.exit_load.basis_points(lot.date, date);
            let exit_load =
                Paise(div_round_half_up(i128::from(gross.0) * i128::from(bps), 10_000) as i64);
            let sale_value = gross.0 - exit_load.0;
            let actual_cost = purchase_value.0 + stamp_duty.0;
            let term = term_of(terms.tax_class, lot.date, date);
            let cost = match (terms.tax_class, terms.fmv_2018_01_31) {
                // s.112A grandfathers long-term gains only.
                (TaxClass::Equity, Some(fmv))
                    if lot.date <= grandfathering_date() && term == Term::Long =>
                {
                    let fmv_value = value_of(take, fmv).0;
                    actual_cost.max(fmv_value.min(sale_value))
                }
                _ => actual_cost,
            };
            pieces.push(RealizedLot {
                purchase_date: lot.date,
                purchase_nav: lot.nav,
                units: Units(take),
                purchase_value,
                stamp_duty,
                sale_date: date,
                sale_nav: nav,
                gross_sale_value: gross,
                exit_load,
                stt,
                cost: Paise(cost),
                gain: Paise(sale_value - cost),
                term,
                fy: fy.clone(),
            });
            totals.exit_load.0 += exit_load.0;
            // The residue leaves with the units, not into the gain.
            totals.cost.0 +=
                actual_cost + piece_residue(lot, before + take) - piece_residue(lot, before);
            gross_before.0 += gross.0;
            sold += take;
        }
        totals.net_proceeds = Paise(totals.gross.0 - totals.exit_load.0 - totals.stt.0);
        self.redeemed.0 += units.0;
        Ok((pieces, totals))
    }
}

/// Units bought on or before this date are grandfathered (Finance Act 2018, s.112A).
pub fn grandfathering_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2018, 1, 31).unwrap_or(NaiveDate::MIN)
}

/// Short or long term for units of `class` bought on `bought` and sold on `sold`.
pub fn term_of(class: TaxClass, bought: NaiveDate, sold: NaiveDate) -> Term {
    // Specified mutual funds (s.50AA) from 1-Apr-2023; the 24-month rule for sales from
    // 23-Jul-2024 (Finance (No. 2) Act 2024), 36 months before.
    let specified_from = NaiveDate::from_ymd_opt(2023, 4, 1).unwrap_or(NaiveDate::MIN);
    let shorter_from = NaiveDate::from_ymd_opt(2024, 7, 23).unwrap_or(NaiveDate::MIN);
    let months = match class {
        TaxClass::Equity => 12,
        TaxClass::Debt if bought >= specified_from => return Term::Short,
        TaxClass::Debt | TaxClass::Other if sold >= shorter_from => 24,
        TaxClass::Debt | TaxClass::Other => 36,
    };
    // "Held for more than N months": sold after the same day N months on (a 31st or 29 Feb
    // becomes the month's last day, as chrono adds months).
    match bought.checked_add_months(Months::new(months)) {
        Some(anniversary) if sold > anniversary => Term::Long,
        _ => Term::Short,
    }
}

/// `units` × `nav` to the paisa.
fn value_of(units: i64, nav: Nav) -> Paise {
    Paise(div_round_half_up(
        i128::from(units) * i128::from(nav.scaled()),
        NAV_PER_PAISA * 10_i128.pow(Units::SCALE),
    ) as i64)
}

/// The stamp duty of the first `consumed` units of `lot`.
fn piece_duty(lot: &Lot, consumed: i64) -> i64 {
    share(lot.stamp_duty, consumed, lot.units.0)
}

/// The residue of the first `consumed` units of `lot`.
fn piece_residue(lot: &Lot, consumed: i64) -> i64 {
    share(lot.residue, consumed, lot.units.0)
}

/// `whole` × `part` / `of`, to the paisa; zero when `of` is zero.
fn share(whole: Paise, part: i64, of: i64) -> i64 {
    if of == 0 {
        return 0;
    }
    div_round_half_up(i128::from(whole.0) * i128::from(part), i128::from(of)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::{ExitLoad, ExitLoadTier, NavRule};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn nav(text: &str) -> Nav {
        text.parse().unwrap()
    }

    fn equity(exit_load: ExitLoad, fmv: Option<Nav>) -> SchemeTerms {
        SchemeTerms {
            tax_class: TaxClass::Equity,
            nav_rule: NavRule::Standard,
            exit_load,
            payout_days: 2,
            fmv_2018_01_31: fmv,
        }
    }

    fn one_percent_for_a_year() -> ExitLoad {
        ExitLoad {
            tiers: vec![ExitLoadTier {
                max_days_held: 365,
                basis_points: 100,
            }],
        }
    }

    /// Three lots of 100 units; a sale of 250 on 1-Jun-2026 takes all of the first two and
    /// 50 of the third, and only the third (bought 10-Jan-2026, 142 days earlier) pays the 1%.
    #[test]
    fn a_redemption_spanning_three_lots_pays_exit_load_on_the_newest_only() {
        let mut book = LotBook::default();
        book.buy(Lot {
            date: d(2024, 1, 10),
            units: Units(1_000_000),
            nav: nav("10"),
            stamp_duty: Paise(5),
            residue: Paise(0),
        });
        book.buy(Lot {
            date: d(2025, 1, 10),
            units: Units(1_000_000),
            nav: nav("12"),
            stamp_duty: Paise(6),
            residue: Paise(0),
        });
        book.buy(Lot {
            date: d(2026, 1, 10),
            units: Units(1_000_000),
            nav: nav("15"),
            stamp_duty: Paise(8),
            residue: Paise(0),
        });
        let terms = equity(one_percent_for_a_year(), None);
        let (pieces, totals) = book
            .redeem(Units(2_500_000), d(2026, 6, 1), nav("16"), &terms)
            .unwrap();
        assert_eq!(pieces.len(), 3);
        // Lot 1: 100 × 10 = ₹1,000.00 + ₹0.05 duty; sold 100 × 16 = ₹1,600.00; held > 12
        // months → long; no load (872 days). Gain 1,600.00 − 1,000.05 = 599.95.
        assert_eq!(pieces[0].purchase_value, Paise(100_000));
        assert_eq!(pieces[0].stamp_duty, Paise(5));
        assert_eq!(pieces[0].gross_sale_value, Paise(160_000));
        assert_eq!(pieces[0].exit_load, Paise(0));
        assert_eq!(pieces[0].gain, Paise(59_995));
        assert_eq!(pieces[0].term, Term::Long);
        // Lot 2: bought 10-Jan-2025, 507 days → no load, long; 1,600.00 − 1,200.06 = 399.94.
        assert_eq!(pieces[1].exit_load, Paise(0));
        assert_eq!(pieces[1].gain, Paise(39_994));
        assert_eq!(pieces[1].term, Term::Long);
        // Lot 3: 50 of 100 units; value 50 × 15 = ₹750.00, duty half of 8 = 4; sold 50 × 16 =
        // ₹800.00, load 1% = ₹8.00; sale value 792.00 − 750.04 = 41.96; short.
        assert_eq!(pieces[2].units, Units(500_000));
        assert_eq!(pieces[2].purchase_value, Paise(75_000));
        assert_eq!(pieces[2].stamp_duty, Paise(4));
        assert_eq!(pieces[2].exit_load, Paise(800));
        assert_eq!(pieces[2].gain, Paise(4_196));
        assert_eq!(pieces[2].term, Term::Short);
        // STT: 0.001% of ₹4,000.00 = ₹0.04, shared 1.6:1.6:0.8 → 2, 1, 1 by cumulative rounding
        // (round(4×1600/4000)=2, round(4×3200/4000)=3 → 1, 4−3 → 1).
        assert_eq!(totals.gross, Paise(400_000));
        assert_eq!(totals.stt, Paise(4));
        assert_eq!(
            pieces.iter().map(|p| p.stt.0).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
        assert_eq!(totals.exit_load, Paise(800));
        assert_eq!(totals.net_proceeds, Paise(400_000 - 800 - 4));
        assert_eq!(pieces[0].fy, "2026-27");
        // What is left: 50 units of lot 3 at cost 750.00 + 4 (the other half of the duty).
        assert_eq!(book.held(), Units(500_000));
        assert_eq!(book.cost_held(), Paise(75_004));
    }

    #[test]
    fn a_grandfathered_lot_costs_the_higher_of_cost_and_fmv_capped_at_the_sale() {
        let lot = Lot {
            date: d(2017, 6, 1),
            units: Units(1_000_000),
            nav: nav("20"),
            stamp_duty: Paise(0),
            residue: Paise(0),
        };
        // Bought at 20, NAV 30 on 31-Jan-2018, sold at 40: cost = max(2,000, min(3,000,
        // 4,000)) = 3,000; gain 1,000.
        let terms = equity(ExitLoad::none(), Some(nav("30")));
        let mut book = LotBook::new(vec![lot], Units(0));
        let (p, _) = book
            .redeem(Units(1_000_000), d(2025, 6, 2), nav("40"), &terms)
            .unwrap();
        assert_eq!(
            (p[0].cost, p[0].gain, p[0].term),
            (Paise(300_000), Paise(100_000), Term::Long)
        );
        // Sold at 25, below the FMV: cost = max(2,000, min(3,000, 2,500)) = 2,500; no gain.
        let mut book = LotBook::new(vec![lot], Units(0));
        let (p, _) = book
            .redeem(Units(1_000_000), d(2025, 6, 2), nav("25"), &terms)
            .unwrap();
        assert_eq!((p[0].cost, p[0].gain), (Paise(250_000), Paise(0)));
        // Sold at 15, below cost: cost = max(2,000, min(3,000, 1,500)) = 2,000; loss 500.
        let mut book = LotBook::new(vec![lot], Units(0));
        let (p, _) = book
            .redeem(Units(1_000_000), d(2025, 6, 2), nav("15"), &terms)
            .unwrap();
        assert_eq!((p[0].cost, p[0].gain), (Paise(200_000), Paise(-50_000)));
        // Sold short-term (within 12 months, in 2018): s.112A does not apply; actual cost.
        let mut book = LotBook::new(vec![lot], Units(0));
        let (p, _) = book
            .redeem(Units(1_000_000), d(2018, 5, 2), nav("40"), &terms)
            .unwrap();
        assert_eq!((p[0].cost, p[0].term), (Paise(200_000), Term::Short));
        // Bought 1-Feb-2018: not grandfathered.
        let late = Lot {
            date: d(2018, 2, 1),
            ..lot
        };
        let mut book = LotBook::new(vec![late], Units(0));
        let (p, _) = book
            .redeem(Units(1_000_000), d(2025, 6, 2), nav("40"), &terms)
            .unwrap();
        assert_eq!(p[0].cost, Paise(200_000));
    }

    #[test]
    fn the_pieces_of_a_lot_add_up_to_the_lot() {
        // 3 units at 10.33333333, duty 1 paisa, sold one unit at a time.
        let lot = Lot {
            date: d(2025, 1, 1),
            units: Units(30_000),
            nav: nav("10.33333333"),
            stamp_duty: Paise(1),
            residue: Paise(0),
        };
        let mut book = LotBook::new(vec![lot], Units(0));
        let terms = SchemeTerms {
            tax_class: TaxClass::Debt,
            ..equity(ExitLoad::none(), None)
        };
        let mut value = 0;
        let mut duty = 0;
        for _ in 0..3 {
            let (p, totals) = book
                .redeem(Units(10_000), d(2025, 3, 1), nav("11"), &terms)
                .unwrap();
            assert_eq!(totals.stt, Paise(0));
            value += p[0].purchase_value.0;
            duty += p[0].stamp_duty.0;
        }
        assert_eq!((value, duty), (3_100, 1)); // 31.00 = round(3 × 10.33333333)
        assert_eq!(book.held(), Units(0));
        assert_eq!(book.cost_held(), Paise(0));
    }

    #[test]
    fn what_a_lot_was_paid_leaves_invested_with_its_units_and_the_gain_leaves_the_residue_out() {
        // ₹1,000 debited: duty 5 paise, ₹999.95 at NAV 35.1234 buys 28.469 units (₹999.93 at
        // that NAV, to the paisa); the remaining 2 paise bought no unit.
        let lot = Lot::from_debit(
            d(2025, 1, 1),
            Units(284_690),
            nav("35.1234"),
            Paise(5),
            Paise(100_000),
        );
        assert_eq!(lot.residue, Paise(2));
        assert_eq!(lot.debit(), Paise(100_000));
        let mut book = LotBook::new(vec![lot], Units(0));
        assert_eq!(book.cost_held(), Paise(100_000));
        let terms = equity(ExitLoad::none(), None);
        let (mut left_invested, mut gains_cost, mut duty_taken) = (0, 0, 0);
        for units in [100_000, 100_000, 84_690] {
            let (p, totals) = book
                .redeem(Units(units), d(2025, 3, 1), nav("40"), &terms)
                .unwrap();
            left_invested += totals.cost.0;
            gains_cost += p.iter().map(|piece| piece.cost.0).sum::<i64>();
            duty_taken += p.iter().map(|piece| piece.stamp_duty.0).sum::<i64>();
            if let [open] = book.open_lots()[..] {
                // What is left of the lot keeps what is left of its duty and residue.
                let residue_taken = left_invested - gains_cost;
                assert_eq!(
                    (
                        open.stamp_duty.0 + duty_taken,
                        open.residue.0 + residue_taken
                    ),
                    (5, 2),
                    "{open:?}"
                );
            }
        }
        // Sold to the last unit: all that was paid has left invested, nothing is held, and
        // the gains were taken against purchase value and duty only.
        assert_eq!(left_invested, 100_000);
        assert_eq!(book.cost_held(), Paise(0));
        assert_eq!(gains_cost, 99_998);
    }

    #[test]
    fn redeeming_more_than_is_held_changes_nothing() {
        let lot = Lot {
            date: d(2025, 1, 1),
            units: Units(10_000),
            nav: nav("10"),
            stamp_duty: Paise(0),
            residue: Paise(0),
        };
        let mut book = LotBook::new(vec![lot], Units(0));
        let terms = equity(ExitLoad::none(), None);
        let err = book
            .redeem(Units(10_001), d(2025, 3, 1), nav("11"), &terms)
            .unwrap_err();
        assert_eq!(
            err,
            NotEnoughUnits {
                wanted: Units(10_001),
                held: Units(10_000)
            }
        );
        assert_eq!(book.held(), Units(10_000));
        assert!(book
            .redeem(Units(0), d(2025, 3, 1), nav("11"), &terms)
            .is_err());
        // A lot allotted after the sale date is not there to sell.
        book.buy(Lot {
            date: d(2025, 3, 3),
            ..lot
        });
        assert_eq!(book.held(), Units(20_000));
        let err = book
            .redeem(Units(10_001), d(2025, 3, 2), nav("11"), &terms)
            .unwrap_err();
        assert_eq!(err.held, Units(10_000));
        assert!(book
            .redeem(Units(10_001), d(2025, 3, 3), nav("11"), &terms)
            .is_ok());
    }

    /// A lot allotted late (a later run, at an earlier NAV date) joins behind a later-dated
    /// lot: FIFO takes the later-dated one first, and a sale dated between the two dates
    /// cannot reach past it to the late lot.
    #[test]
    fn a_lot_allotted_late_waits_behind_the_lots_allotted_before_it() {
        let lot = |date, units| Lot {
            date,
            units: Units(units),
            nav: nav("10"),
            stamp_duty: Paise(0),
            residue: Paise(0),
        };
        let mut book = LotBook::default();
        book.buy(lot(d(2025, 3, 5), 10_000));
        book.buy(lot(d(2025, 3, 3), 20_000));
        let terms = equity(ExitLoad::none(), None);
        assert_eq!(book.held(), Units(30_000));
        assert_eq!(book.held_on(d(2025, 3, 4)), Units(0));
        assert_eq!(
            book.redeem(Units(1), d(2025, 3, 4), nav("11"), &terms)
                .unwrap_err()
                .held,
            Units(0)
        );
        let (pieces, _) = book
            .redeem(Units(15_000), d(2025, 3, 5), nav("11"), &terms)
            .unwrap();
        let taken: Vec<_> = pieces.iter().map(|p| (p.purchase_date, p.units)).collect();
        assert_eq!(
            taken,
            [
                (d(2025, 3, 5), Units(10_000)),
                (d(2025, 3, 3), Units(5_000))
            ]
        );
        assert_eq!(book.open_lots(), [lot(d(2025, 3, 3), 15_000)]);
        // The later-dated lot is sold out, so it no longer stands in front: a sale dated
        // between the two dates can take what is left of the late lot.
        assert_eq!(book.held_on(d(2025, 3, 4)), Units(15_000));
        assert_eq!(book.held_on(d(2025, 3, 2)), Units(0));
        let (pieces, _) = book
            .redeem(Units(15_000), d(2025, 3, 4), nav("11"), &terms)
            .unwrap();
        assert_eq!(pieces[0].purchase_date, d(2025, 3, 3));
        assert_eq!(book.held(), Units(0));
    }

    #[test]
    fn terms_by_class_and_date() {
        // Equity: more than 12 months; 29-Feb-2024 + 12 months = 28-Feb-2025.
        assert_eq!(
            term_of(TaxClass::Equity, d(2024, 2, 29), d(2025, 2, 28)),
            Term::Short
        );
        assert_eq!(
            term_of(TaxClass::Equity, d(2024, 2, 29), d(2025, 3, 1)),
            Term::Long
        );
        // Specified debt bought from 1-Apr-2023: short however long.
        assert_eq!(
            term_of(TaxClass::Debt, d(2023, 4, 1), d(2028, 4, 1)),
            Term::Short
        );
        assert_eq!(
            term_of(TaxClass::Debt, d(2023, 3, 31), d(2028, 4, 1)),
            Term::Long
        );
        // Other, 30 months: short before 23-Jul-2024 (36 months), long from it (24).
        assert_eq!(
            term_of(TaxClass::Other, d(2022, 1, 15), d(2024, 7, 15)),
            Term::Short
        );
        assert_eq!(
            term_of(TaxClass::Other, d(2022, 1, 22), d(2024, 7, 23)),
            Term::Long
        );
    }
}
