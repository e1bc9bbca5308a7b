//! Hand-worked checks of the capital-gains test oracle (`support/gains_oracle.rs`), so that the
//! oracle can be trusted when it is used against the implementation.
//!
//! Units throughout: paise; 1/10,000 unit (10.0000 units = 100_000); NAV in 10^-8 rupee
//! (₹100.00 = 10_000_000_000). Value in paise = round_half_up(units × NAV / 10^10).

#[path = "support/gains_oracle.rs"]
mod gains_oracle;

use chrono::NaiveDate;
use gains_oracle::{
    financial_year, oracle_gains, round_half_up, value_in_paise, OracleGain, OracleLot,
    OracleRules, OracleSale, OracleSaleTotals, TaxClass, Term,
};

fn d(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
}

fn lot(date: NaiveDate, units: i64, nav: i64, stamp_duty: i64) -> OracleLot {
    OracleLot {
        date,
        units,
        nav,
        stamp_duty,
    }
}

fn sale(date: NaiveDate, units: i64, nav: i64) -> OracleSale {
    OracleSale { date, units, nav }
}

fn rules(tax_class: TaxClass, exit_load: Vec<(i64, i64)>, fmv: Option<i64>) -> OracleRules {
    OracleRules {
        tax_class,
        exit_load,
        fmv_2018_01_31: fmv,
    }
}

/// ₹ with two decimals as a NAV in 10^-8 rupee: rupees(100, 0) = ₹100.00.
fn rupees(whole: i64, hundredths: i64) -> i64 {
    whole * 100_000_000 + hundredths * 1_000_000
}

/// The term of one unit bought on `bought` and sold on `sold`, through the oracle.
fn term_for(tax_class: TaxClass, bought: NaiveDate, sold: NaiveDate) -> Term {
    let (gains, _) = oracle_gains(
        &[lot(bought, 10_000, rupees(10, 0), 0)],
        &[sale(sold, 10_000, rupees(10, 0))],
        &rules(tax_class, vec![], None),
    )
    .expect("one unit bought, one sold");
    assert_eq!(gains.len(), 1);
    gains[0].term
}

#[test]
fn rounding_helpers() {
    // Halves go away from zero.
    assert_eq!(round_half_up(4, 10), 0);
    assert_eq!(round_half_up(5, 10), 1);
    assert_eq!(round_half_up(14, 10), 1);
    assert_eq!(round_half_up(15, 10), 2);
    assert_eq!(round_half_up(-4, 10), 0);
    assert_eq!(round_half_up(-5, 10), -1);
    // 1.2345 units × ₹105.0576 = ₹129.69360720 → 12969.360720 paise → 12969.
    assert_eq!(value_in_paise(12_345, 10_505_760_000), 12_969);
    // 1.0000 unit × ₹10.005 = 1000.5 paise → 1001.
    assert_eq!(value_in_paise(10_000, 1_000_500_000), 1_001);
}

/// Equity, exit load 1% up to 365 days. Three lots, one sale of 18 units that takes all of
/// lot 0 and lot 1 and 3 of lot 2's 4 units; a second sale takes lot 2's last unit.
///
/// Lots:
///   L0 2023-01-10, 10.0000 u @ ₹100.00, stamp 5 → value 100000
///   L1 2023-05-15,  5.0000 u @ ₹120.00, stamp 3 → value  60000
///   L2 2024-03-01,  4.0000 u @ ₹150.00, stamp 3 → value  60000
/// Sale 0 2024-06-03, 18.0000 u @ ₹160.12345678 (16_012_345_678):
///   gross total = 180000 × 16012345678 / 1e10 = 288222.222204 → 288222
///   piece L0 (S=0, P=10 u): 100000 × 16012345678 / 1e10 = 160123.45678 → 160123 − 0 = 160123
///   piece L1 (S=10, P=5):   150000 × … = 240185.18517 → 240185 − 160123           =  80062
///   piece L2 (S=15, P=3):   288222 − 240185                                       =  48037
///   days held: L0 510, L1 385 (2023-05-15→2024-05-15 is 366, +19), L2 94 → load on L2 only:
///     48037 × 100 / 10000 = 480.37 → 480
///   STT = 288222 / 100000 = 2.88222 → 3, shared by gross:
///     L0: 3 × 160123 / 288222 = 1.6667 → 2; − 0                    = 2
///     L1: 3 × 240185 / 288222 = 720555 / 288222 = 2.5 exactly → 3; − 2 = 1
///     L2: 3 × 288222 / 288222 = 3; − 3                              = 0
///   purchase value / stamp: L0 100000 / 5; L1 60000 / 3;
///     L2 (C=0, P=3 u): 30000 × 15e9 / 1e10 = 45000; stamp 3 × 30000/40000 = 2.25 → 2
///   cost = value + stamp: 100005, 60003, 45002
///   sale value = gross − load: 160123, 80062, 47557
///   gain: 60118, 20059, 2555
///   term: L0 Long (2024-01-10 < sale), L1 Long (2024-05-15 < sale), L2 Short
///   totals: gross 288222, load 480, STT 3, net 288222 − 480 − 3 = 287739
/// Sale 1 2024-07-01, 1.0000 u @ ₹160.00 from L2 (C=3 u, P=1 u):
///   purchase value 60000 − 45000 = 15000; stamp 3 − 2 = 1; cost 15001
///   gross 16000; days 2024-03-01 → 2024-07-01 = 122 → load 160; STT 16000/100000 = 0.16 → 0
///   sale value 15840; gain 839; Short
#[test]
fn sale_spanning_three_lots_with_exit_load_on_newest_only() {
    let lots = [
        lot(d(2023, 1, 10), 100_000, rupees(100, 0), 5),
        lot(d(2023, 5, 15), 50_000, rupees(120, 0), 3),
        lot(d(2024, 3, 1), 40_000, rupees(150, 0), 3),
    ];
    let sales = [
        sale(d(2024, 6, 3), 180_000, 16_012_345_678),
        sale(d(2024, 7, 1), 10_000, rupees(160, 0)),
    ];
    let (gains, totals) = oracle_gains(
        &lots,
        &sales,
        &rules(TaxClass::Equity, vec![(365, 100)], None),
    )
    .expect("enough units");

    let piece = |sale_index: usize,
                 lot_index: usize,
                 units: i64,
                 money: [i64; 7],
                 term: Term|
     -> OracleGain {
        let [purchase_value, stamp_duty, gross_sale_value, exit_load, stt, cost, gain] = money;
        OracleGain {
            sale_index,
            lot_index,
            purchase_date: lots[lot_index].date,
            sale_date: sales[sale_index].date,
            units,
            purchase_nav: lots[lot_index].nav,
            purchase_value,
            stamp_duty,
            sale_nav: sales[sale_index].nav,
            gross_sale_value,
            exit_load,
            stt,
            cost,
            gain,
            term,
            fy: "2024-25".to_string(),
        }
    };
    let expected = vec![
        piece(
            0,
            0,
            100_000,
            [100_000, 5, 160_123, 0, 2, 100_005, 60_118],
            Term::Long,
        ),
        piece(
            0,
            1,
            50_000,
            [60_000, 3, 80_062, 0, 1, 60_003, 20_059],
            Term::Long,
        ),
        piece(
            0,
            2,
            30_000,
            [45_000, 2, 48_037, 480, 0, 45_002, 2_555],
            Term::Short,
        ),
        piece(
            1,
            2,
            10_000,
            [15_000, 1, 16_000, 160, 0, 15_001, 839],
            Term::Short,
        ),
    ];
    assert_eq!(gains, expected);
    assert_eq!(
        totals,
        vec![
            OracleSaleTotals {
                gross: 288_222,
                exit_load: 480,
                stt: 3,
                net_proceeds: 287_739,
            },
            OracleSaleTotals {
                gross: 16_000,
                exit_load: 160,
                stt: 0,
                net_proceeds: 15_840,
            },
        ]
    );
}

/// Debt (bought before 2023-04-01), exit load 0.25% up to 7 days (never applies here).
/// Lot 2020-02-10, 3.0000 u @ ₹10.33333333 (1_033_333_333), stamp 1 paisa:
///   whole lot value = 30000 × 1033333333 / 1e10 = 3099.999999 → 3100
/// Sale 0 2021-01-05, 1.0000 u @ ₹11.00 (C=0, P=1 u):
///   purchase value 10000 × 1033333333 / 1e10 = 1033.333333 → 1033
///   stamp 1 × 10000 / 30000 = 0.333 → 0
///   gross 1100; no load; no STT (debt); cost 1033; gain 67
///   held < 36 months (sale before 2024-07-23) → Short; FY 2020-21
/// Sale 1 2022-03-31, 2.0000 u @ ₹12.00 (C=1 u, P=2 u):
///   purchase value 3100 − 1033 = 2067; stamp round(1 × 30000/30000) − 0 = 1
///   gross 2400; cost 2068; gain 332; Short; FY 2021-22 (31 March is the year's last day)
/// The pieces add up to the lot: 1033 + 2067 = 3100, 0 + 1 = 1.
#[test]
fn lot_split_across_two_sales() {
    let lots = [lot(d(2020, 2, 10), 30_000, 1_033_333_333, 1)];
    let sales = [
        sale(d(2021, 1, 5), 10_000, rupees(11, 0)),
        sale(d(2022, 3, 31), 20_000, rupees(12, 0)),
    ];
    let (gains, totals) =
        oracle_gains(&lots, &sales, &rules(TaxClass::Debt, vec![(7, 25)], None)).expect("ok");
    assert_eq!(gains.len(), 2);

    let a = &gains[0];
    assert_eq!((a.sale_index, a.lot_index, a.units), (0, 0, 10_000));
    assert_eq!((a.purchase_value, a.stamp_duty), (1_033, 0));
    assert_eq!((a.gross_sale_value, a.exit_load, a.stt), (1_100, 0, 0));
    assert_eq!((a.cost, a.gain), (1_033, 67));
    assert_eq!((a.term, a.fy.as_str()), (Term::Short, "2020-21"));

    let b = &gains[1];
    assert_eq!((b.sale_index, b.lot_index, b.units), (1, 0, 20_000));
    assert_eq!((b.purchase_value, b.stamp_duty), (2_067, 1));
    assert_eq!((b.gross_sale_value, b.exit_load, b.stt), (2_400, 0, 0));
    assert_eq!((b.cost, b.gain), (2_068, 332));
    assert_eq!((b.term, b.fy.as_str()), (Term::Short, "2021-22"));

    assert_eq!(a.purchase_value + b.purchase_value, 3_100);
    assert_eq!(a.stamp_duty + b.stamp_duty, 1);
    assert_eq!(
        totals,
        vec![
            OracleSaleTotals {
                gross: 1_100,
                exit_load: 0,
                stt: 0,
                net_proceeds: 1_100,
            },
            OracleSaleTotals {
                gross: 2_400,
                exit_load: 0,
                stt: 0,
                net_proceeds: 2_400,
            },
        ]
    );
}

/// (cost, gain) of 10.0000 units bought on `bought` at ₹100.00 (actual cost 100000, no stamp)
/// sold on 2020-06-01 at `sale_nav`.
fn grandfathered(
    tax_class: TaxClass,
    bought: NaiveDate,
    sale_nav: i64,
    fmv: Option<i64>,
    exit_load: Vec<(i64, i64)>,
) -> (i64, i64) {
    let (gains, _) = oracle_gains(
        &[lot(bought, 100_000, rupees(100, 0), 0)],
        &[sale(d(2020, 6, 1), 100_000, sale_nav)],
        &rules(tax_class, exit_load, fmv),
    )
    .expect("ok");
    assert_eq!(gains.len(), 1);
    (gains[0].cost, gains[0].gain)
}

/// Equity lot of 2017-06-01, 10 units, actual cost 100000; cost = max(actual, min(fmv value,
/// sale value)).
#[test]
fn grandfathered_lot_each_branch() {
    let old = d(2017, 6, 1);
    let fmv150 = Some(rupees(150, 0)); // fmv value of 10 units = 150000

    // Sale ₹200: sale value 200000 > fmv 150000 → min = 150000; max(100000, 150000) = 150000;
    // gain 50000.
    assert_eq!(
        grandfathered(TaxClass::Equity, old, rupees(200, 0), fmv150, vec![]),
        (150_000, 50_000)
    );
    // Sale ₹120: actual 100000 < sale value 120000 < fmv 150000 → min = 120000;
    // max(100000, 120000) = 120000; gain 0.
    assert_eq!(
        grandfathered(TaxClass::Equity, old, rupees(120, 0), fmv150, vec![]),
        (120_000, 0)
    );
    // Sale ₹80: sale value 80000 < actual → min = 80000; max(100000, 80000) = 100000 (actual);
    // gain −20000.
    assert_eq!(
        grandfathered(TaxClass::Equity, old, rupees(80, 0), fmv150, vec![]),
        (100_000, -20_000)
    );
    // FMV ₹90 below actual cost: min(90000, 200000) = 90000; max(100000, 90000) = 100000;
    // gain 100000.
    assert_eq!(
        grandfathered(
            TaxClass::Equity,
            old,
            rupees(200, 0),
            Some(rupees(90, 0)),
            vec![]
        ),
        (100_000, 100_000)
    );
    // Sale value is net of exit load: sale ₹120, 1% load → gross 120000, load 1200,
    // sale value 118800; min(150000, 118800) = 118800; max(100000, 118800) = 118800; gain 0.
    assert_eq!(
        grandfathered(
            TaxClass::Equity,
            old,
            rupees(120, 0),
            fmv150,
            vec![(100_000, 100)]
        ),
        (118_800, 0)
    );
    // No FMV known: actual cost 100000, gain 100000 where the first case gained 50000.
    assert_eq!(
        grandfathered(TaxClass::Equity, old, rupees(200, 0), None, vec![]),
        (100_000, 100_000)
    );
    // Bought on 31-Jan-2018 itself: grandfathered (cost 150000); on 1-Feb-2018: not (100000).
    assert_eq!(
        grandfathered(
            TaxClass::Equity,
            d(2018, 1, 31),
            rupees(200, 0),
            fmv150,
            vec![]
        ),
        (150_000, 50_000)
    );
    assert_eq!(
        grandfathered(
            TaxClass::Equity,
            d(2018, 2, 1),
            rupees(200, 0),
            fmv150,
            vec![]
        ),
        (100_000, 100_000)
    );
    // Only equity is grandfathered.
    assert_eq!(
        grandfathered(TaxClass::Other, old, rupees(200, 0), fmv150, vec![]),
        (100_000, 100_000)
    );
    assert_eq!(
        grandfathered(TaxClass::Debt, old, rupees(200, 0), fmv150, vec![]),
        (100_000, 100_000)
    );
}

/// The fmv value is per piece, not cumulative. Lot 2017-06-01, 2.0000 u @ ₹9.00, FMV
/// ₹10.005; two sales of 1.0000 u @ ₹12.00.
///   piece 0: purchase 900; gross 1200; fmv value 10000 × 1000500000 / 1e10 = 1000.5 → 1001;
///            cost max(900, min(1001, 1200)) = 1001; gain 199
///   piece 1: purchase 1800 − 900 = 900; fmv value again 1001 (cumulative would be
///            2001 − 1001 = 1000); cost 1001; gain 199
#[test]
fn grandfathering_fmv_value_is_per_piece() {
    let (gains, _) = oracle_gains(
        &[lot(d(2017, 6, 1), 20_000, rupees(9, 0), 0)],
        &[
            sale(d(2020, 6, 1), 10_000, rupees(12, 0)),
            sale(d(2020, 6, 2), 10_000, rupees(12, 0)),
        ],
        &rules(TaxClass::Equity, vec![], Some(1_000_500_000)),
    )
    .expect("ok");
    let summary: Vec<(i64, i64, i64, i64)> = gains
        .iter()
        .map(|g| (g.purchase_value, g.gross_sale_value, g.cost, g.gain))
        .collect();
    assert_eq!(
        summary,
        vec![(900, 1_200, 1_001, 199), (900, 1_200, 1_001, 199)]
    );
}

/// Equity is long-term when sold after purchase date + 12 months.
#[test]
fn equity_long_vs_short_at_twelve_months() {
    // 2023-03-15 + 12 months = 2024-03-15: sold that day → Short; the day after → Long.
    assert_eq!(
        term_for(TaxClass::Equity, d(2023, 3, 15), d(2024, 3, 15)),
        Term::Short
    );
    assert_eq!(
        term_for(TaxClass::Equity, d(2023, 3, 15), d(2024, 3, 16)),
        Term::Long
    );
    // 2024-02-29 + 12 months clamps to 2025-02-28: sold then → Short; 2025-03-01 → Long.
    assert_eq!(
        term_for(TaxClass::Equity, d(2024, 2, 29), d(2025, 2, 28)),
        Term::Short
    );
    assert_eq!(
        term_for(TaxClass::Equity, d(2024, 2, 29), d(2025, 3, 1)),
        Term::Long
    );
}

/// Debt bought on or after 2023-04-01 is short-term however long it is held.
#[test]
fn specified_debt_is_always_short_term() {
    // Bought 2023-04-01, sold 2028-04-03 (five years and two days) → Short.
    assert_eq!(
        term_for(TaxClass::Debt, d(2023, 4, 1), d(2028, 4, 3)),
        Term::Short
    );
    // Bought a day earlier, 2023-03-31: sale on/after 2024-07-23, held > 24 months → Long.
    assert_eq!(
        term_for(TaxClass::Debt, d(2023, 3, 31), d(2028, 4, 3)),
        Term::Long
    );
    // The same dates in an "other" scheme: Long (the specified-debt rule is debt only).
    assert_eq!(
        term_for(TaxClass::Other, d(2023, 4, 1), d(2028, 4, 3)),
        Term::Long
    );
}

/// "Other" (and debt bought before 2023-04-01): more than 36 months for sales before
/// 2024-07-23, more than 24 months for sales on or after.
#[test]
fn other_at_thirty_months_before_and_after_2024_07_23() {
    // 2022-01-20 + 30 months = 2024-07-20, sold 2024-07-20 (before the change): 30 ≤ 36 → Short.
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 1, 20), d(2024, 7, 20)),
        Term::Short
    );
    // 2022-01-25 + 30 months = 2024-07-25, sold 2024-07-25 (after the change): 30 > 24 → Long.
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 1, 25), d(2024, 7, 25)),
        Term::Long
    );
    // The change day itself uses 24: 30 months to the day on 2024-07-23 → Long;
    // 30 months to the day on 2024-07-22 → Short.
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 1, 23), d(2024, 7, 23)),
        Term::Long
    );
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 1, 22), d(2024, 7, 22)),
        Term::Short
    );
    // Before the change: exactly 36 months → Short; 36 months and a day → Long.
    assert_eq!(
        term_for(TaxClass::Other, d(2021, 7, 22), d(2024, 7, 22)),
        Term::Short
    );
    assert_eq!(
        term_for(TaxClass::Other, d(2021, 7, 21), d(2024, 7, 22)),
        Term::Long
    );
    // After the change: exactly 24 months → Short; 24 months and a day → Long.
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 8, 1), d(2024, 8, 1)),
        Term::Short
    );
    assert_eq!(
        term_for(TaxClass::Other, d(2022, 8, 1), d(2024, 8, 2)),
        Term::Long
    );
    // Debt bought before 2023-04-01 follows the same rule.
    assert_eq!(
        term_for(TaxClass::Debt, d(2022, 1, 20), d(2024, 7, 20)),
        Term::Short
    );
    assert_eq!(
        term_for(TaxClass::Debt, d(2022, 1, 25), d(2024, 7, 25)),
        Term::Long
    );
}

#[test]
fn financial_year_boundaries() {
    // Through the oracle: 31-Mar-2026 is in 2025-26, 1-Apr-2026 in 2026-27.
    let (gains, _) = oracle_gains(
        &[lot(d(2025, 1, 1), 20_000, rupees(10, 0), 0)],
        &[
            sale(d(2026, 3, 31), 10_000, rupees(10, 0)),
            sale(d(2026, 4, 1), 10_000, rupees(10, 0)),
        ],
        &rules(TaxClass::Equity, vec![], None),
    )
    .expect("ok");
    let fys: Vec<&str> = gains.iter().map(|g| g.fy.as_str()).collect();
    assert_eq!(fys, vec!["2025-26", "2026-27"]);

    // The second part is two digits, wrapping at the century.
    assert_eq!(financial_year(d(1999, 4, 1)), "1999-00");
    assert_eq!(financial_year(d(2000, 3, 31)), "1999-00");
    assert_eq!(financial_year(d(2000, 4, 1)), "2000-01");
    assert_eq!(financial_year(d(2009, 12, 31)), "2009-10");
    assert_eq!(financial_year(d(2026, 1, 1)), "2025-26");
}

/// Schedule: 2% up to 30 days, 1% up to 365 days, then nothing. Lot 2024-01-01; each sale of
/// 10.0000 u @ ₹100.00 has gross 100000.
///   2024-01-31: 30 days → 2% = 2000
///   2024-02-01: 31 days → 1% = 1000
///   2024-12-31: 365 days (2024 is a leap year) → 1% = 1000
///   2025-01-01: 366 days → 0
/// "Other" pays no STT. And halves round up: 1.2350 u @ ₹100.00 = 12350, 1% = 123.5 → 124.
#[test]
fn exit_load_schedule_tiers() {
    let load = |sold: NaiveDate, units: i64| -> (i64, i64) {
        let (gains, totals) = oracle_gains(
            &[lot(d(2024, 1, 1), units, rupees(50, 0), 0)],
            &[sale(sold, units, rupees(100, 0))],
            &rules(TaxClass::Other, vec![(30, 200), (365, 100)], None),
        )
        .expect("ok");
        assert_eq!(totals[0].stt, 0);
        assert_eq!(totals[0].exit_load, gains[0].exit_load);
        (gains[0].exit_load, gains[0].stt)
    };
    assert_eq!(load(d(2024, 1, 31), 100_000), (2_000, 0));
    assert_eq!(load(d(2024, 2, 1), 100_000), (1_000, 0));
    assert_eq!(load(d(2024, 12, 31), 100_000), (1_000, 0));
    assert_eq!(load(d(2025, 1, 1), 100_000), (0, 0));
    assert_eq!(load(d(2024, 6, 1), 12_350), (124, 0));
}

#[test]
fn selling_more_than_held_or_nothing_is_an_error() {
    let lots = [lot(d(2024, 1, 1), 10_000, rupees(10, 0), 0)];
    let r = rules(TaxClass::Equity, vec![], None);

    // 0.6 then 0.5 units of a 1-unit lot: the second sale (index 1) fails.
    let err = oracle_gains(
        &lots,
        &[
            sale(d(2024, 2, 1), 6_000, rupees(11, 0)),
            sale(d(2024, 3, 1), 5_000, rupees(11, 0)),
        ],
        &r,
    )
    .expect_err("only 0.4 units left");
    assert!(err.contains("sale 1"), "{err}");

    // Exactly all of it is fine.
    assert!(oracle_gains(
        &lots,
        &[
            sale(d(2024, 2, 1), 6_000, rupees(11, 0)),
            sale(d(2024, 3, 1), 4_000, rupees(11, 0)),
        ],
        &r,
    )
    .is_ok());

    // A sale of nothing.
    let err =
        oracle_gains(&lots, &[sale(d(2024, 2, 1), 0, rupees(11, 0))], &r).expect_err("zero units");
    assert!(err.contains("sale 0"), "{err}");

    // Nothing held yet on the sale date.
    let err = oracle_gains(&lots, &[sale(d(2023, 12, 31), 1, rupees(11, 0))], &r)
        .expect_err("lot not yet allotted");
    assert!(err.contains("sale 0"), "{err}");

    // No lots at all.
    let err = oracle_gains(&[], &[sale(d(2024, 2, 1), 1, rupees(11, 0))], &r).expect_err("no lots");
    assert!(err.contains("sale 0"), "{err}");
}
