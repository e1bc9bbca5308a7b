//! The capital-gains statement of a financial year: every realised piece of a lot, and totals
//! by tax class and term, as a person hands them to a tax preparer (CSV) and as the API serves
//! them. Amounts are rupees with two decimals, units with four, NAVs as published.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::lots::{RealizedLot, Term};
use super::TaxClass;
use crate::money::Paise;

/// One realised piece with the scheme it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GainsRow {
    pub scheme_code: i64,
    pub scheme_name: String,
    pub isin: Option<String>,
    pub tax_class: TaxClass,
    pub lot: RealizedLot,
}

/// Sums of one (tax class, term) group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GainsTotals {
    pub gross_sale_value: Paise,
    pub exit_load: Paise,
    pub stt: Paise,
    pub cost: Paise,
    pub gain: Paise,
}

/// Totals per (tax class, term), in a fixed order (equity before debt before other, short
/// before long); groups without a piece are absent.
pub fn totals(rows: &[GainsRow]) -> BTreeMap<(usize, Term), (TaxClass, GainsTotals)> {
    let mut out: BTreeMap<(usize, Term), (TaxClass, GainsTotals)> = BTreeMap::new();
    for row in rows {
        let order = TaxClass::ALL
            .iter()
            .position(|c| *c == row.tax_class)
            .unwrap_or(TaxClass::ALL.len());
        let entry = out
            .entry((order, row.lot.term))
            .or_insert((row.tax_class, GainsTotals::default()));
        let t = &mut entry.1;
        t.gross_sale_value.0 += row.lot.gross_sale_value.0;
        t.exit_load.0 += row.lot.exit_load.0;
        t.stt.0 += row.lot.stt.0;
        t.cost.0 += row.lot.cost.0;
        t.gain.0 += row.lot.gain.0;
    }
    out
}

/// The header of [`capital_gains_csv`].
pub const CSV_HEADER: &str = "scheme_code,scheme_name,isin,tax_class,term,purchase_date,units,\
purchase_nav,purchase_value,stamp_duty,sale_date,sale_nav,gross_sale_value,exit_load,stt,\
cost_of_acquisition,gain";

/// The statement as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break
/// quoted): one line per piece in the order given, then one `TOTAL` line per (class, term).
pub fn capital_gains_csv(rows: &[GainsRow]) -> String {
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for row in rows {
        let l = &row.lot;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            row.scheme_code,
            csv_field(&row.scheme_name),
            csv_field(row.isin.as_deref().unwrap_or("")),
            row.tax_class.as_str(),
            l.term.as_str(),
            l.purchase_date,
            l.units,
            l.purchase_nav,
            l.purchase_value,
            l.stamp_duty,
            l.sale_date,
            l.sale_nav,
            l.gross_sale_value,
            l.exit_load,
            l.stt,
            l.cost,
            l.gain,
        );
    }
    for ((_, term), (tax_class, t)) in totals(rows) {
        let _ = write!(
            out,
            "TOTAL,,,{},{},,,,,,,,{},{},{},{},{}\r\n",
            tax_class.as_str(),
            term.as_str(),
            t.gross_sale_value,
            t.exit_load,
            t.stt,
            t.cost,
            t.gain,
        );
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::money::{Nav, Units};

    fn piece(term: Term, gross: i64, cost: i64, load: i64, stt: i64) -> RealizedLot {
        RealizedLot {
            purchase_date: NaiveDate::from_ymd_opt(2024, 5, 2).unwrap(),
            purchase_nav: "105.0576".parse::<Nav>().unwrap(),
            units: Units(12_345),
            purchase_value: Paise(cost - 1),
            stamp_duty: Paise(1),
            sale_date: NaiveDate::from_ymd_opt(2025, 6, 3).unwrap(),
            sale_nav: "14.25207048".parse::<Nav>().unwrap(),
            gross_sale_value: Paise(gross),
            exit_load: Paise(load),
            stt: Paise(stt),
            cost: Paise(cost),
            gain: Paise(gross - load - cost),
            term,
            fy: "2025-26".into(),
        }
    }

    #[test]
    fn the_statement_lists_pieces_then_totals_by_class_and_term() {
        let rows = vec![
            GainsRow {
                scheme_code: 120_503,
                scheme_name: "Axis ELSS Tax Saver Fund - Direct Plan - Growth".into(),
                isin: Some("INF846K01EW2".into()),
                tax_class: TaxClass::Equity,
                lot: piece(Term::Long, 150_000, 100_000, 0, 2),
            },
            GainsRow {
                scheme_code: 1,
                scheme_name: "Fund, \"Quoted\"".into(),
                isin: None,
                tax_class: TaxClass::Debt,
                lot: piece(Term::Short, 50_000, 60_000, 500, 0),
            },
            GainsRow {
                scheme_code: 120_503,
                scheme_name: "Axis ELSS Tax Saver Fund - Direct Plan - Growth".into(),
                isin: Some("INF846K01EW2".into()),
                tax_class: TaxClass::Equity,
                lot: piece(Term::Long, 10_000, 9_000, 0, 1),
            },
        ];
        let csv = capital_gains_csv(&rows);
        let expected = format!(
            "{CSV_HEADER}\r\n\
120503,Axis ELSS Tax Saver Fund - Direct Plan - Growth,INF846K01EW2,equity,long,2024-05-02,1.2345,105.0576,999.99,0.01,2025-06-03,14.25207048,1500.00,0.00,0.02,1000.00,500.00\r\n\
1,\"Fund, \"\"Quoted\"\"\",,debt,short,2024-05-02,1.2345,105.0576,599.99,0.01,2025-06-03,14.25207048,500.00,5.00,0.00,600.00,-105.00\r\n\
120503,Axis ELSS Tax Saver Fund - Direct Plan - Growth,INF846K01EW2,equity,long,2024-05-02,1.2345,105.0576,89.99,0.01,2025-06-03,14.25207048,100.00,0.00,0.01,90.00,10.00\r\n\
TOTAL,,,equity,long,,,,,,,,1600.00,0.00,0.03,1090.00,510.00\r\n\
TOTAL,,,debt,short,,,,,,,,500.00,5.00,0.00,600.00,-105.00\r\n"
        );
        assert_eq!(csv, expected);
    }
}
