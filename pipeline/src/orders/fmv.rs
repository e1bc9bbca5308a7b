//! The NAVs of 31-Jan-2018, the fair market value s.112A's grandfathering uses for equity
//! units bought on or before that day (`lots::LotBook::redeem`). Embedded, as the holiday
//! list is: 11,352 ISINs, ~300 KB, parsed once on first use. A scheme is found by its AMFI
//! code, else by its ISIN.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::money::Nav;

const FMV_CSV: &str = include_str!("../../data/fmv_2018-01-31.csv");

struct Fmv {
    by_code: HashMap<i64, Nav>,
    by_isin: HashMap<&'static str, Nav>,
}

fn table() -> &'static Fmv {
    static TABLE: OnceLock<Fmv> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut fmv = Fmv {
            by_code: HashMap::new(),
            by_isin: HashMap::new(),
        };
        // The file is ours and checked by a test: a line that does not read is skipped.
        for line in FMV_CSV.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let mut fields = line.split(',');
            let (Some(isin), Some(code), Some(nav)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Ok(nav) = nav.parse::<Nav>() else {
                continue;
            };
            fmv.by_isin.insert(isin, nav);
            if let Ok(code) = code.parse::<i64>() {
                fmv.by_code.entry(code).or_insert(nav);
            }
        }
        fmv
    })
}

/// The scheme's NAV on 31-Jan-2018, by AMFI code or ISIN; `None` for a scheme that did not
/// exist then (no unit of it can be grandfathered).
pub fn nav_on_31_jan_2018(scheme_code: i64, isin: Option<&str>) -> Option<Nav> {
    let fmv = table();
    fmv.by_code
        .get(&scheme_code)
        .or_else(|| isin.and_then(|i| fmv.by_isin.get(i)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_and_known_schemes_are_found() {
        let lines = FMV_CSV
            .lines()
            .filter(|l| !l.starts_with('#'))
            .skip(1)
            .count();
        assert_eq!(lines, 11_352);
        assert_eq!(
            table().by_isin.len(),
            lines,
            "every line parsed, no ISIN twice"
        );
        // Taurus Liquid Fund Super Institutional Growth, AMFI code 111915.
        let nav: Nav = "1744.9953".parse().unwrap();
        assert_eq!(nav_on_31_jan_2018(111_915, None), Some(nav));
        assert_eq!(nav_on_31_jan_2018(1, Some("INF044D01534")), Some(nav));
        assert_eq!(nav_on_31_jan_2018(1, Some("INF000000000")), None);
    }
}
