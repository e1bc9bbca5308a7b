//! From a stream of parsed rows to what ingest writes: one NAV per scheme and date, the scheme
//! master, and merges with what the warehouse already holds. Pure functions, so the rules
//! (duplicates, conflicts, AMFI over BSE, idempotent merges) are tested without any I/O.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use std::io::BufRead;

use super::amfi::AmfiReader;
use super::bse::BseReader;
use super::{AmfiNav, BseNav, Entry, NavFileError, NavRow, NavSource, Scheme, SchemeRow, SetAside};
use crate::money::{Nav, DEFAULT_UNIT_DECIMALS};

/// Two rows of one file give different NAVs for the same scheme and date: the file cannot be
/// trusted for that scheme, and guessing which one is right would put a wrong price on money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: scheme {scheme_code} has NAV {nav} for {nav_date}, but line {first_line} gave {first_nav}")]
pub struct ConflictingNav {
    pub file: String,
    pub line: u64,
    pub first_line: u64,
    pub scheme_code: i64,
    pub nav_date: NaiveDate,
    pub nav: Nav,
    pub first_nav: Nav,
}

/// The NAV file formats sipline reads, by the name `nav ingest --source` takes. A new format
/// is a reader module, a variant here and its arm in [`NavFormat::collect`]: nothing outside
/// `pipeline::nav` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavFormat {
    /// AMFI's daily `NAVAll.txt`.
    Amfi,
    /// AMFI's NAV history report.
    AmfiHistory,
    /// BSE StAR MF's NAV export.
    Bse,
}

/// Why a file could not be collected: it is not what it claims to be, or it contradicts itself.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    File(#[from] NavFileError),
    #[error(transparent)]
    Conflict(#[from] ConflictingNav),
}

impl NavFormat {
    pub const ALL: [NavFormat; 3] = [NavFormat::Amfi, NavFormat::AmfiHistory, NavFormat::Bse];

    pub const fn name(self) -> &'static str {
        match self {
            NavFormat::Amfi => "amfi",
            NavFormat::AmfiHistory => "amfi-history",
            NavFormat::Bse => "bse",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == text)
    }

    /// Who publishes NAVs in this format.
    pub const fn source(self) -> NavSource {
        match self {
            NavFormat::Amfi | NavFormat::AmfiHistory => NavSource::Amfi,
            NavFormat::Bse => NavSource::Bse,
        }
    }

    /// Reads a whole file of this format into a collector; the first malformed line or
    /// conflicting NAV is an error. `isins` joins BSE rows to AMFI schemes.
    pub fn collect(
        self,
        file: &str,
        reader: impl BufRead,
        isins: &IsinIndex,
    ) -> Result<NavCollector, CollectError> {
        let mut collector = NavCollector::new(file, self.source());
        match self {
            NavFormat::Amfi | NavFormat::AmfiHistory => {
                for entry in AmfiReader::new(file, reader) {
                    match entry? {
                        Entry::Nav(row) => collector.add_amfi(row)?,
                        Entry::SetAside(row) => collector.set_aside(row),
                    }
                }
            }
            NavFormat::Bse => {
                for entry in BseReader::new(file, reader) {
                    match entry? {
                        Entry::Nav(row) => collector.add_bse(row, isins)?,
                        Entry::SetAside(row) => collector.set_aside(row),
                    }
                }
            }
        }
        Ok(collector)
    }
}

#[derive(Debug, Clone, Copy)]
struct Collected {
    nav: Nav,
    line: u64,
}

/// Gathers the NAVs and schemes of one input file.
#[derive(Debug)]
pub struct NavCollector {
    file: String,
    source: NavSource,
    navs: BTreeMap<NaiveDate, BTreeMap<i64, Collected>>,
    schemes: BTreeMap<i64, Scheme>,
    /// Rows without a usable NAV, and BSE rows no AMFI scheme matches.
    pub set_aside: Vec<SetAside>,
    /// Rows repeated verbatim (same scheme, date and NAV), dropped.
    pub duplicates: u64,
}

impl NavCollector {
    pub fn new(file: impl Into<String>, source: NavSource) -> Self {
        Self {
            file: file.into(),
            source,
            navs: BTreeMap::new(),
            schemes: BTreeMap::new(),
            set_aside: Vec::new(),
            duplicates: 0,
        }
    }

    fn add(
        &mut self,
        line: u64,
        scheme_code: i64,
        nav_date: NaiveDate,
        nav: Nav,
    ) -> Result<(), ConflictingNav> {
        let day = self.navs.entry(nav_date).or_default();
        match day.get(&scheme_code) {
            None => {
                day.insert(scheme_code, Collected { nav, line });
                Ok(())
            }
            Some(first) if first.nav == nav => {
                self.duplicates += 1;
                Ok(())
            }
            Some(first) => Err(ConflictingNav {
                file: self.file.clone(),
                line,
                first_line: first.line,
                scheme_code,
                nav_date,
                nav,
                first_nav: first.nav,
            }),
        }
    }

    /// An AMFI row: its NAV, and its scheme as the latest row describes it.
    pub fn add_amfi(&mut self, row: AmfiNav) -> Result<(), ConflictingNav> {
        self.add(row.line, row.scheme.scheme_code, row.nav_date, row.nav)?;
        self.schemes.insert(row.scheme.scheme_code, row.scheme);
        Ok(())
    }

    /// A BSE row, joined to its AMFI scheme through the ISIN; a row no scheme matches is set
    /// aside with the reason.
    pub fn add_bse(
        &mut self,
        row: BseNav,
        schemes_by_isin: &IsinIndex,
    ) -> Result<(), ConflictingNav> {
        let Some(scheme_code) = row
            .isin
            .as_deref()
            .and_then(|isin| schemes_by_isin.get(isin))
        else {
            let reason = match &row.isin {
                None => "row has no ISIN to match an AMFI scheme".to_string(),
                Some(isin) => format!("ISIN {isin} matches no AMFI scheme"),
            };
            self.set_aside.push(SetAside {
                line: row.line,
                scheme: row.bse_scheme_code,
                reason,
                described: None,
            });
            return Ok(());
        };
        self.add(row.line, scheme_code, row.nav_date, row.nav)
    }

    /// A row without a usable NAV; the scheme it describes still joins the scheme master.
    pub fn set_aside(&mut self, mut row: SetAside) {
        if let Some(scheme) = row.described.take() {
            self.schemes.entry(scheme.scheme_code).or_insert(*scheme);
        }
        self.set_aside.push(row);
    }

    /// The dates the file holds NAVs for.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.navs.keys().copied()
    }

    pub fn nav_count(&self) -> usize {
        self.navs.values().map(BTreeMap::len).sum()
    }

    /// The NAVs of each date, sorted by scheme code.
    pub fn navs_by_date(&self) -> BTreeMap<NaiveDate, Vec<NavRow>> {
        self.navs
            .iter()
            .map(|(date, day)| {
                let rows = day
                    .iter()
                    .map(|(&scheme_code, c)| NavRow {
                        scheme_code,
                        nav: c.nav,
                        source: self.source,
                    })
                    .collect();
                (*date, rows)
            })
            .collect()
    }

    /// The schemes the file describes (empty for BSE, which describes none the AMFI way).
    pub fn schemes(&self) -> impl Iterator<Item = &Scheme> {
        self.schemes.values()
    }
}

/// ISIN → AMFI scheme code, over both the growth/payout and the reinvestment ISIN.
#[derive(Debug, Default)]
pub struct IsinIndex(HashMap<String, i64>);

impl IsinIndex {
    pub fn new(schemes: &[SchemeRow]) -> Self {
        let mut index = HashMap::new();
        for row in schemes {
            for isin in [&row.scheme.isin_growth, &row.scheme.isin_reinvestment]
                .into_iter()
                .flatten()
            {
                index.insert(isin.clone(), row.scheme.scheme_code);
            }
        }
        Self(index)
    }

    pub fn get(&self, isin: &str) -> Option<i64> {
        self.0.get(isin).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One date's NAVs after an ingest: what was there, updated by what came in. AMFI is the
/// authority: a BSE NAV never replaces an AMFI one; otherwise the incoming NAV wins. Sorted by
/// scheme code, so the same inputs always give the same rows (and the same file bytes).
pub fn merge_navs(existing: &[NavRow], incoming: &[NavRow]) -> Vec<NavRow> {
    let mut merged: BTreeMap<i64, NavRow> = existing.iter().map(|r| (r.scheme_code, *r)).collect();
    for row in incoming {
        match merged.get(&row.scheme_code) {
            Some(old) if old.source == NavSource::Amfi && row.source != NavSource::Amfi => {}
            _ => {
                merged.insert(row.scheme_code, *row);
            }
        }
    }
    merged.into_values().collect()
}

/// The scheme master after an ingest: every scheme ever seen (a wound-up scheme still prices
/// old holdings), described as the latest file describes it, keeping sipline's own
/// `unit_decimals` for schemes it knew.
pub fn merge_schemes<'a>(
    existing: &[SchemeRow],
    incoming: impl IntoIterator<Item = &'a Scheme>,
) -> Vec<SchemeRow> {
    let mut merged: BTreeMap<i64, SchemeRow> = existing
        .iter()
        .map(|r| (r.scheme.scheme_code, r.clone()))
        .collect();
    for scheme in incoming {
        let unit_decimals = merged
            .get(&scheme.scheme_code)
            .map_or(DEFAULT_UNIT_DECIMALS, |r| r.unit_decimals);
        merged.insert(
            scheme.scheme_code,
            SchemeRow {
                scheme: scheme.clone(),
                unit_decimals,
            },
        );
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_are_named_for_the_command_line_and_collect_their_files() {
        for format in NavFormat::ALL {
            assert_eq!(NavFormat::parse(format.name()), Some(format));
        }
        assert_eq!(NavFormat::parse("AMFI"), None);
        assert_eq!(NavFormat::AmfiHistory.source(), NavSource::Amfi);
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let amfi = NavFormat::Amfi
            .collect(
                "8col",
                &fixture("amfi_navall_8col.txt")[..],
                &IsinIndex::default(),
            )
            .unwrap();
        assert!(amfi.nav_count() > 0);
        // BSE rows need the AMFI schemes' ISINs; without them every row is set aside.
        let bse = NavFormat::Bse
            .collect("bse", &fixture("bse_navs.txt")[..], &IsinIndex::default())
            .unwrap();
        assert_eq!(bse.nav_count(), 0);
        assert!(!bse.set_aside.is_empty());
        let bad = NavFormat::Amfi.collect(
            "bad",
            &fixture("amfi_unknown_header.txt")[..],
            &IsinIndex::default(),
        );
        assert!(matches!(bad, Err(CollectError::File(_))), "{bad:?}");
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 12, 27).unwrap()
    }

    fn scheme(code: i64, isin: &str) -> Scheme {
        Scheme {
            scheme_code: code,
            isin_growth: Some(isin.into()),
            isin_reinvestment: None,
            scheme_name: format!("Scheme {code}"),
            fund_house: None,
            category: None,
            scheme_type: None,
            plan: None,
            option: None,
        }
    }

    /// A NAV row, the NAV given in 1/10,000 rupee.
    fn amfi(line: u64, code: i64, nav: i64) -> AmfiNav {
        AmfiNav {
            line,
            scheme: scheme(code, "INF000000001"),
            nav: Nav::from_scaled(nav * 10_000),
            nav_date: date(),
        }
    }

    #[test]
    fn exact_duplicates_are_dropped_and_conflicts_are_errors() {
        let mut c = NavCollector::new("NAVAll.txt", NavSource::Amfi);
        c.add_amfi(amfi(3, 1, 10_0000)).unwrap();
        c.add_amfi(amfi(4, 1, 10_0000)).unwrap();
        assert_eq!((c.duplicates, c.nav_count()), (1, 1));
        let err = c.add_amfi(amfi(9, 1, 10_5000)).unwrap_err();
        assert_eq!((err.line, err.first_line), (9, 3));
        assert!(err.to_string().starts_with(
            "NAVAll.txt:9: scheme 1 has NAV 10.5000 for 2024-12-27, but line 3 gave 10.0000"
        ));
    }

    #[test]
    fn bse_rows_join_amfi_schemes_by_isin() {
        let index = IsinIndex::new(&[SchemeRow {
            scheme: scheme(119552, "INF209K01YM3"),
            unit_decimals: 3,
        }]);
        let mut c = NavCollector::new("bse.txt", NavSource::Bse);
        let row = |line, isin: Option<&str>| BseNav {
            line,
            nav_date: date(),
            bse_scheme_code: "02-DP".into(),
            scheme_name: "x".into(),
            rta_scheme_code: "r".into(),
            reinvest_flag: "Z".into(),
            isin: isin.map(String::from),
            nav: Nav::from_scaled(1),
            rta_code: "CAMS".into(),
        };
        c.add_bse(row(1, Some("INF209K01YM3")), &index).unwrap();
        c.add_bse(row(2, Some("INF999999999")), &index).unwrap();
        c.add_bse(row(3, None), &index).unwrap();
        let by_date = c.navs_by_date();
        assert_eq!(
            by_date[&date()],
            vec![NavRow {
                scheme_code: 119552,
                nav: Nav::from_scaled(1),
                source: NavSource::Bse
            }]
        );
        assert_eq!(
            c.set_aside.iter().map(|s| s.line).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn bse_never_replaces_amfi() {
        let amfi = NavRow {
            scheme_code: 1,
            nav: Nav::from_scaled(100),
            source: NavSource::Amfi,
        };
        let bse = NavRow {
            scheme_code: 1,
            nav: Nav::from_scaled(101),
            source: NavSource::Bse,
        };
        assert_eq!(merge_navs(&[amfi], &[bse]), vec![amfi]);
        assert_eq!(merge_navs(&[bse], &[amfi]), vec![amfi]);
    }

    #[test]
    fn merged_schemes_keep_unit_decimals() {
        let old = SchemeRow {
            scheme: scheme(1, "A"),
            unit_decimals: 4,
        };
        let renamed = Scheme {
            scheme_name: "New name".into(),
            ..scheme(1, "A")
        };
        let merged = merge_schemes(&[old], [&renamed, &scheme(2, "B")]);
        assert_eq!(
            merged[0],
            SchemeRow {
                scheme: renamed.clone(),
                unit_decimals: 4
            }
        );
        assert_eq!(merged[1].unit_decimals, DEFAULT_UNIT_DECIMALS);
    }

    fn nav_rows() -> impl Strategy<Value = Vec<NavRow>> {
        prop::collection::vec(
            (0_i64..50, 1_i64..1_000_000, prop::bool::ANY).prop_map(|(code, nav, amfi)| NavRow {
                scheme_code: code,
                nav: Nav::from_scaled(nav),
                source: if amfi {
                    NavSource::Amfi
                } else {
                    NavSource::Bse
                },
            }),
            0..40,
        )
    }

    proptest! {
        /// Re-running an ingest changes nothing: merging the same input again is a no-op.
        #[test]
        fn merging_is_idempotent(existing in nav_rows(), incoming in nav_rows()) {
            let once = merge_navs(&existing, &incoming);
            prop_assert_eq!(merge_navs(&once, &incoming), once.clone());
            prop_assert!(once.windows(2).all(|w| w[0].scheme_code < w[1].scheme_code));
        }

        /// Every scheme present before or in the input is present after, and only those.
        #[test]
        fn merging_keeps_every_scheme(existing in nav_rows(), incoming in nav_rows()) {
            let merged = merge_navs(&existing, &incoming);
            let mut codes: Vec<i64> = existing.iter().chain(&incoming).map(|r| r.scheme_code).collect();
            codes.sort_unstable();
            codes.dedup();
            prop_assert_eq!(merged.iter().map(|r| r.scheme_code).collect::<Vec<_>>(), codes);
        }
    }
}
