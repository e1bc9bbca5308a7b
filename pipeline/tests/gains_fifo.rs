//! `pipeline::orders::lots` against an oracle written from the rules alone
//! (`support/gains_oracle.rs`, by an author who did not read sipline's code), over random
//! histories of purchases and redemptions: every realised piece agrees field by field, and the
//! money is accounted for — units never go negative, the lots still held are the holding, a
//! lot's pieces plus what is held cost exactly the lot, and proceeds are gross − load − STT.

#[path = "support/gains_oracle.rs"]
mod gains_oracle;

use chrono::{Days, NaiveDate};
use gains_oracle::{oracle_gains, OracleLot, OracleRules, OracleSale};
use pipeline::money::{Nav, Paise, Units};
use pipeline::orders::execute::{self, RedeemBy};
use pipeline::orders::lots::{Lot, LotBook, Term};
use pipeline::orders::{ExitLoad, ExitLoadTier, NavRule, SchemeTerms, TaxClass};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Buy {
        days: u64,
        units: i64,
        nav: i64,
        duty: i64,
        /// Paid beyond purchase value and duty (units are allotted rounded down).
        residue: i64,
    },
    /// Redeem this many thousandths of what is held (at least one unit step).
    Sell { days: u64, per_mille: i64, nav: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0..200_u64,
            1..5_000_000_i64,
            1_000_000_000..100_000_000_000_i64,
            0..40_i64,
            0..100_i64
        )
            .prop_map(|(days, units, nav, duty, residue)| Step::Buy {
                days,
                units,
                nav,
                duty,
                residue
            }),
        (
            0..200_u64,
            1..=1_000_i64,
            1_000_000_000..100_000_000_000_i64
        )
            .prop_map(|(days, per_mille, nav)| Step::Sell {
                days,
                per_mille,
                nav
            }),
    ]
}

fn class() -> impl Strategy<Value = TaxClass> {
    prop_oneof![
        Just(TaxClass::Equity),
        Just(TaxClass::Debt),
        Just(TaxClass::Other)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fifo_gains_agree_with_the_oracle_and_every_paisa_is_accounted_for(
        steps in prop::collection::vec(step(), 1..40),
        class in class(),
        start_offset in 0..4_000_u64,
        fmv in prop::option::of(1_000_000_000..100_000_000_000_i64),
        tiers in prop::collection::vec((1..800_i64, 0..300_i64), 0..3),
    ) {
        // Starts between 2016 and 2027, so grandfathering, the 2023 and 2024 changes and
        // financial-year ends all occur.
        let mut date = NaiveDate::from_ymd_opt(2016, 1, 1).unwrap() + Days::new(start_offset);
        let mut days: Vec<i64> = tiers.iter().map(|t| t.0).collect();
        days.sort_unstable();
        days.dedup();
        let exit_load = ExitLoad {
            tiers: days
                .iter()
                .zip(&tiers)
                .map(|(&max_days_held, t)| ExitLoadTier { max_days_held, basis_points: t.1 })
                .collect(),
        };
        let terms = SchemeTerms {
            tax_class: class,
            nav_rule: NavRule::Standard,
            exit_load: exit_load.clone(),
            payout_days: 2,
            fmv_2018_01_31: fmv.map(Nav::from_scaled),
        };
        let mut book = LotBook::default();
        let mut lots = Vec::new();
        let mut sales = Vec::new();
        let mut ours = Vec::new();
        let mut our_totals = Vec::new();
        let mut residues = Vec::new();
        for step in steps {
            match step {
                Step::Buy { days, units, nav, duty, residue } => {
                    date = date + Days::new(days);
                    let lot = Lot { date, units: Units(units), nav: Nav::from_scaled(nav), stamp_duty: Paise(duty), residue: Paise(residue) };
                    book.buy(lot);
                    lots.push(OracleLot { date, units, nav, stamp_duty: duty });
                    residues.push(residue);
                }
                Step::Sell { days, per_mille, nav } => {
                    let held = book.held().0;
                    if held == 0 {
                        continue;
                    }
                    date = date + Days::new(days);
                    let units = (held * per_mille / 1_000).max(1);
                    let (pieces, totals) = book
                        .redeem(Units(units), date, Nav::from_scaled(nav), &terms)
                        .expect("never more than is held");
                    prop_assert!(book.held().0 >= 0);
                    ours.push(pieces);
                    our_totals.push(totals);
                    sales.push(OracleSale { date, units, nav });
                }
            }
        }
        let rules = OracleRules {
            tax_class: match class {
                TaxClass::Equity => gains_oracle::TaxClass::Equity,
                TaxClass::Debt => gains_oracle::TaxClass::Debt,
                TaxClass::Other => gains_oracle::TaxClass::Other,
            },
            exit_load: exit_load.tiers.iter().map(|t| (t.max_days_held, t.basis_points)).collect(),
            fmv_2018_01_31: fmv,
        };
        let (expected, expected_totals) = oracle_gains(&lots, &sales, &rules).expect("the oracle accepts the history");
        let flat: Vec<_> = ours.iter().enumerate().flat_map(|(i, p)| p.iter().map(move |p| (i, p))).collect();
        prop_assert_eq!(flat.len(), expected.len());
        for ((sale, piece), want) in flat.iter().zip(&expected) {
            prop_assert_eq!(*sale, want.sale_index);
            let got = (
                (piece.purchase_date, piece.sale_date, piece.units.0, piece.purchase_nav.scaled()),
                (piece.purchase_value.0, piece.stamp_duty.0, piece.sale_nav.scaled()),
                (piece.gross_sale_value.0, piece.exit_load.0, piece.stt.0, piece.cost.0),
                (piece.gain.0, piece.term == Term::Long, piece.fy.as_str()),
            );
            let oracle = (
                (want.purchase_date, want.sale_date, want.units, want.purchase_nav),
                (want.purchase_value, want.stamp_duty, want.sale_nav),
                (want.gross_sale_value, want.exit_load, want.stt, want.cost),
                (want.gain, want.term == gains_oracle::Term::Long, want.fy.as_str()),
            );
            prop_assert_eq!(got, oracle);
        }
        for (ours, want) in our_totals.iter().zip(&expected_totals) {
            prop_assert_eq!(
                (ours.gross.0, ours.exit_load.0, ours.stt.0, ours.net_proceeds.0),
                (want.gross, want.exit_load, want.stt, want.net_proceeds)
            );
            prop_assert_eq!(ours.net_proceeds.0, ours.gross.0 - ours.exit_load.0 - ours.stt.0);
        }
        // The lots still held are the holding, oldest first.
        let open = book.open_lots();
        prop_assert_eq!(open.iter().map(|l| l.units.0).sum::<i64>(), book.held().0);
        prop_assert!(open.windows(2).all(|w| w[0].date <= w[1].date));
        // Everything paid for the lots (purchase value, duty, residue) is what the sales took
        // out of invested plus what is still held: nothing lost or made up by rounding.
        let lots_paid: i64 = lots
            .iter()
            .zip(&residues)
            .map(|(l, residue)| gains_oracle::value_in_paise(l.units, l.nav) as i64 + l.stamp_duty + residue)
            .sum();
        let realised_cost: i64 = our_totals.iter().map(|t| t.cost.0).sum();
        prop_assert_eq!(lots_paid, realised_cost + book.cost_held().0);
        // The gains' costs leave the residue out; the sales took it out of invested with the
        // units, so what they took beyond the pieces' costs is at most the residues of the
        // lots they touched.
        let pieces_cost: i64 = ours.iter().flatten().map(|p| p.purchase_value.0 + p.stamp_duty.0).sum();
        prop_assert!(realised_cost - pieces_cost >= 0);
        prop_assert!(realised_cost - pieces_cost <= residues.iter().sum::<i64>());
        if book.held().0 == 0 {
            prop_assert_eq!(book.cost_held().0, 0);
            prop_assert_eq!(realised_cost - pieces_cost, residues.iter().sum::<i64>());
        }
    }
}

#[derive(Debug, Clone)]
enum TwoSchemeStep {
    Buy {
        b: bool,
        days: u64,
        units: i64,
        nav: i64,
        duty: i64,
    },
    Sell {
        b: bool,
        days: u64,
        per_mille: i64,
        nav: i64,
    },
    /// A switch of this many thousandths of scheme A into scheme B, each at its own NAV.
    Switch {
        days: u64,
        per_mille: i64,
        nav_a: i64,
        nav_b: i64,
    },
}

fn two_scheme_step() -> impl Strategy<Value = TwoSchemeStep> {
    let nav = || 1_000_000_000..100_000_000_000_i64;
    prop_oneof![
        (any::<bool>(), 0..60_u64, 1..5_000_000_i64, nav(), 0..40_i64).prop_map(
            |(b, days, units, nav, duty)| TwoSchemeStep::Buy {
                b,
                days,
                units,
                nav,
                duty
            }
        ),
        (any::<bool>(), 0..60_u64, 1..=1_000_i64, nav()).prop_map(|(b, days, per_mille, nav)| {
            TwoSchemeStep::Sell {
                b,
                days,
                per_mille,
                nav,
            }
        }),
        (0..60_u64, 1..=1_000_i64, nav(), nav()).prop_map(|(days, per_mille, nav_a, nav_b)| {
            TwoSchemeStep::Switch {
                days,
                per_mille,
                nav_a,
                nav_b,
            }
        }),
    ]
}

/// One scheme's history as both sides see it: the lots and sales for the oracle, and the
/// pieces sipline realised.
#[derive(Default)]
struct Side {
    lots: Vec<OracleLot>,
    sales: Vec<OracleSale>,
    pieces: Vec<Vec<pipeline::orders::lots::RealizedLot>>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Switches compose with purchases and redemptions: a switch-out is a sale of scheme A
    /// (first in, first out, with its load and STT), its net proceeds buy scheme B at B's NAV
    /// (stamp duty paid), and B's later sales take those units in their turn. Both schemes'
    /// pieces agree with the oracle; no book goes negative; money moves exactly.
    #[test]
    fn switches_are_a_sale_and_a_purchase_that_fifo_keeps_apart(
        steps in prop::collection::vec(two_scheme_step(), 1..40),
        start_offset in 0..4_000_u64,
    ) {
        let mut date = NaiveDate::from_ymd_opt(2016, 1, 1).unwrap() + Days::new(start_offset);
        let terms = |tax_class| SchemeTerms {
            tax_class,
            nav_rule: NavRule::Standard,
            exit_load: ExitLoad { tiers: vec![ExitLoadTier { max_days_held: 365, basis_points: 100 }] },
            payout_days: 2,
            fmv_2018_01_31: None,
        };
        let (terms_a, terms_b) = (terms(TaxClass::Equity), terms(TaxClass::Other));
        let (mut book_a, mut book_b) = (LotBook::default(), LotBook::default());
        let (mut a, mut b) = (Side::default(), Side::default());
        for step in steps {
            match step {
                TwoSchemeStep::Buy { b: into_b, days, units, nav, duty } => {
                    date = date + Days::new(days);
                    let (book, side) = if into_b { (&mut book_b, &mut b) } else { (&mut book_a, &mut a) };
                    book.buy(Lot { date, units: Units(units), nav: Nav::from_scaled(nav), stamp_duty: Paise(duty), residue: Paise(0) });
                    side.lots.push(OracleLot { date, units, nav, stamp_duty: duty });
                }
                TwoSchemeStep::Sell { b: from_b, days, per_mille, nav } => {
                    let (book, side, terms) = if from_b { (&mut book_b, &mut b, &terms_b) } else { (&mut book_a, &mut a, &terms_a) };
                    let held = book.held().0;
                    if held == 0 {
                        continue;
                    }
                    date = date + Days::new(days);
                    let units = (held * per_mille / 1_000).max(1);
                    let (pieces, _) = book.redeem(Units(units), date, Nav::from_scaled(nav), terms).unwrap();
                    side.pieces.push(pieces);
                    side.sales.push(OracleSale { date, units, nav });
                }
                TwoSchemeStep::Switch { days, per_mille, nav_a, nav_b } => {
                    let held = book_a.held().0;
                    if held == 0 {
                        continue;
                    }
                    date = date + Days::new(days);
                    let units = (held * per_mille / 1_000).max(1);
                    let before = (book_a.held(), book_b.held());
                    match execute::switch(
                        &mut book_a, &mut book_b, RedeemBy::Units(Units(units)),
                        Nav::from_scaled(nav_a), date, &terms_a, 4,
                        Nav::from_scaled(nav_b), date, 3,
                    ) {
                        Ok((out, into)) => {
                            prop_assert_eq!(into.amount, out.totals.net_proceeds);
                            prop_assert_eq!(book_a.held().0, before.0.0 - units);
                            prop_assert_eq!(book_b.held().0, before.1.0 + into.units.0);
                            a.pieces.push(out.pieces);
                            a.sales.push(OracleSale { date, units, nav: nav_a });
                            b.lots.push(OracleLot { date, units: into.units.0, nav: nav_b, stamp_duty: into.stamp_duty.0 });
                        }
                        // Proceeds too small for one unit step of B: neither book moved.
                        Err(_) => prop_assert_eq!((book_a.held(), book_b.held()), before),
                    }
                }
            }
            prop_assert!(book_a.held().0 >= 0 && book_b.held().0 >= 0);
        }
        for (side, class) in [(&a, gains_oracle::TaxClass::Equity), (&b, gains_oracle::TaxClass::Other)] {
            let rules = OracleRules { tax_class: class, exit_load: vec![(365, 100)], fmv_2018_01_31: None };
            let (expected, _) = oracle_gains(&side.lots, &side.sales, &rules).expect("the oracle accepts it");
            let ours: Vec<_> = side.pieces.iter().flatten().collect();
            prop_assert_eq!(ours.len(), expected.len());
            for (piece, want) in ours.iter().zip(&expected) {
                prop_assert_eq!(
                    (piece.purchase_date, piece.units.0, piece.purchase_value.0, piece.stamp_duty.0, piece.gain.0),
                    (want.purchase_date, want.units, want.purchase_value, want.stamp_duty, want.gain)
                );
                prop_assert_eq!((piece.exit_load.0, piece.stt.0, piece.cost.0), (want.exit_load, want.stt, want.cost));
            }
        }
    }
}
