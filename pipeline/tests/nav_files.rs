//! Golden tests for the NAV readers on hand-written files in the published formats, and
//! round-trip properties: what the writers produce, the readers give back.

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use pipeline::money::Nav;
use pipeline::nav::amfi::{option_from_name, plan_from_name, AmfiReader};
use pipeline::nav::bse::BseReader;
use pipeline::nav::format::{write_bse_row, AmfiHeaderForm, AmfiWriter};
use pipeline::nav::{AmfiNav, BseNav, Entry, NavFileError, Scheme};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn show_opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn render_amfi(item: &Result<Entry<AmfiNav>, NavFileError>) -> String {
    match item {
        Ok(Entry::Nav(n)) => {
            let s = &n.scheme;
            format!(
                "{}: NAV {} {} {} | isin {} / {} | {} | house {} | {} / {} | plan {} option {}",
                n.line,
                s.scheme_code,
                n.nav_date,
                n.nav,
                show_opt(&s.isin_growth),
                show_opt(&s.isin_reinvestment),
                s.scheme_name,
                show_opt(&s.fund_house),
                show_opt(&s.scheme_type),
                show_opt(&s.category),
                show_opt(&s.plan),
                show_opt(&s.option)
            )
        }
        Ok(Entry::SetAside(a)) => format!("{}: SET ASIDE {}: {}", a.line, a.scheme, a.reason),
        Err(e) => format!("ERROR {e}"),
    }
}

fn render_bse(item: &Result<Entry<BseNav>, NavFileError>) -> String {
    match item {
        Ok(Entry::Nav(n)) => format!(
            "{}: NAV {} {} {} | isin {} | {} | rta {} {} | reinvest {}",
            n.line,
            n.bse_scheme_code,
            n.nav_date,
            n.nav,
            show_opt(&n.isin),
            n.scheme_name,
            n.rta_code,
            n.rta_scheme_code,
            n.reinvest_flag
        ),
        Ok(Entry::SetAside(a)) => format!("{}: SET ASIDE {}: {}", a.line, a.scheme, a.reason),
        Err(e) => format!("ERROR {e}"),
    }
}

/// Compares the reader's rendering with the committed `.golden` file; `UPDATE_GOLDEN=1`
/// rewrites it (review the diff before committing).
///
/// The goldens were first written by the readers themselves, so each was then checked by hand
/// against its fixture, line by line (2026-11-25): every NAV row's line number, code, date,
/// NAV, ISINs (`-` for none), name, fund house and the section's type and category; every
/// `N.A.` row set aside with its line; each error naming the right line, field and expected
/// form (`bse_bad_date`'s message now names the forms a BSE file may use, not AMFI's alone).
/// A golden changed by `UPDATE_GOLDEN` needs the same reading before it is committed.
fn check_golden(name: &str, rendered: Vec<String>) {
    let mut text = String::new();
    for line in rendered {
        writeln!(text, "{line}").unwrap();
    }
    let golden = fixture(&format!("{name}.golden"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    assert_eq!(text, expected, "{name} differs from its golden file");
}

fn golden_amfi(name: &str) {
    let file = std::fs::File::open(fixture(name)).unwrap();
    let rendered = AmfiReader::new(name, BufReader::new(file))
        .map(|i| render_amfi(&i))
        .collect();
    check_golden(name, rendered);
}

fn golden_bse(name: &str) {
    let file = std::fs::File::open(fixture(name)).unwrap();
    let rendered = BseReader::new(name, BufReader::new(file))
        .map(|i| render_bse(&i))
        .collect();
    check_golden(name, rendered);
}

#[test]
fn amfi_daily_six_column_form() {
    golden_amfi("amfi_navall_6col.txt");
}

#[test]
fn amfi_daily_plan_option_form() {
    golden_amfi("amfi_navall_8col.txt");
}

#[test]
fn amfi_history_report() {
    golden_amfi("amfi_history.txt");
}

#[test]
fn amfi_header_only_history_is_an_error() {
    golden_amfi("amfi_history_header_only.txt");
}

#[test]
fn amfi_unknown_header_is_an_error() {
    golden_amfi("amfi_unknown_header.txt");
}

#[test]
fn amfi_truncated_file_is_an_error() {
    golden_amfi("amfi_truncated.txt");
}

#[test]
fn amfi_bad_date_is_an_error() {
    golden_amfi("amfi_bad_date.txt");
}

#[test]
fn amfi_empty_file_is_an_error() {
    golden_amfi("amfi_empty.txt");
}

#[test]
fn bse_export() {
    golden_bse("bse_navs.txt");
}

#[test]
fn bse_bad_date_is_an_error() {
    golden_bse("bse_bad_date.txt");
}

#[test]
fn errors_name_file_line_and_field() {
    let file = std::fs::File::open(fixture("amfi_bad_date.txt")).unwrap();
    let err = AmfiReader::new("NAVAll.txt", BufReader::new(file))
        .find_map(Result::err)
        .expect("an error");
    assert_eq!((err.line, err.field), (8, Some("Date")));
    assert!(
        err.to_string()
            .starts_with("NAVAll.txt:8: field `Date`: '31-Feb-2024' is not a date"),
        "{err}"
    );
}

#[test]
fn a_reader_stops_at_its_first_error() {
    let text = "Scheme Code;Scheme Name;Net Asset Value;Date\n1;A;1.0;xx\n2;B;2.0;27-Dec-2024\n";
    let items: Vec<_> = AmfiReader::new("f", text.as_bytes()).collect();
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

// ---- round trips -------------------------------------------------------------------------

fn text_field() -> impl Strategy<Value = String> {
    // What a real field can hold: no separators, no line ends, no edge whitespace.
    "[A-Za-z0-9&().,'/-]([A-Za-z0-9&().,'/ -]{0,30}[A-Za-z0-9&().,'/-])?"
}

fn isin() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("IN[A-Z0-9]{10}")
}

fn nav() -> impl Strategy<Value = Nav> {
    (1_i64..100_000_000_000).prop_map(Nav::from_scaled)
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (0_i64..20_000)
        .prop_map(|d| NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Duration::days(d))
}

fn scheme(with_plan_option: bool) -> impl Strategy<Value = Scheme> {
    (
        1_i64..1_000_000,
        isin(),
        isin(),
        text_field(),
        prop::sample::select(vec![
            "Aditya Birla Sun Life Mutual Fund",
            "Bank of India Mutual Fund (formerly BOI AXA)",
            "HDFC Mutual Fund",
        ]),
        prop::sample::select(vec![
            ("Open Ended", "Equity Scheme - Large Cap Fund"),
            ("Close Ended", "Income"),
            ("Interval Fund", "Income"),
        ]),
        proptest::option::of(prop::sample::select(vec!["Direct", "Regular"])),
        proptest::option::of(prop::sample::select(vec!["Growth", "IDCW"])),
    )
        .prop_map(
            move |(code, growth, reinvest, name, house, (scheme_type, category), plan, option)| {
                let (plan, option) = if with_plan_option {
                    (plan.map(String::from), option.map(String::from))
                } else {
                    // Forms without the columns derive them from the name.
                    (plan_from_name(&name), option_from_name(&name))
                };
                Scheme {
                    scheme_code: code,
                    isin_growth: growth,
                    isin_reinvestment: reinvest,
                    scheme_name: name,
                    fund_house: Some(house.to_string()),
                    category: Some(category.to_string()),
                    scheme_type: Some(scheme_type.to_string()),
                    plan,
                    option,
                }
            },
        )
}

fn amfi_rows() -> impl Strategy<Value = (AmfiHeaderForm, bool, Vec<(Scheme, Nav, NaiveDate)>)> {
    (
        prop::sample::select(AmfiHeaderForm::ALL.to_vec()),
        any::<bool>(),
    )
        .prop_flat_map(|(form, crlf)| {
            let rows =
                prop::collection::vec((scheme(form.has_plan_option()), nav(), date()), 1..40)
                    .prop_map(|mut rows| {
                        // AMFI groups rows by category, then fund house.
                        rows.sort_by(|a, b| {
                            (&a.0.scheme_type, &a.0.category, &a.0.fund_house).cmp(&(
                                &b.0.scheme_type,
                                &b.0.category,
                                &b.0.fund_house,
                            ))
                        });
                        rows
                    });
            (Just(form), Just(crlf), rows)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn amfi_parse_of_format_is_identity((form, crlf, rows) in amfi_rows()) {
        let mut writer = AmfiWriter::new(Vec::new(), form, crlf).unwrap();
        for (scheme, nav, date) in &rows {
            writer.write_row(scheme, &nav.to_string(), *date).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let parsed: Vec<(Scheme, Nav, NaiveDate)> = AmfiReader::new("generated", bytes.as_slice())
            .map(|item| match item {
                Ok(Entry::Nav(n)) => (n.scheme, n.nav, n.nav_date),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        prop_assert_eq!(parsed, rows);
    }

    #[test]
    fn bse_parse_of_format_is_identity(rows in prop::collection::vec(("[A-Z0-9-]{1,12}", text_field(), "[A-Z0-9]{0,10}", prop::sample::select(vec!["Y", "Z", "N"]), isin(), nav(), date(), prop::sample::select(vec!["CAMS", "KFIN"])), 1..40)) {
        let mut bytes = Vec::new();
        for (code, name, rta_scheme, flag, isin, nav, date, rta) in &rows {
            write_bse_row(&mut bytes, *date, code, name, rta_scheme, flag, isin.as_deref(), &nav.to_string(), rta).unwrap();
        }
        let parsed: Vec<_> = BseReader::new("generated", bytes.as_slice())
            .map(|item| match item {
                Ok(Entry::Nav(n)) => (n.bse_scheme_code, n.scheme_name, n.rta_scheme_code, n.reinvest_flag, n.isin, n.nav, n.nav_date, n.rta_code),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let expected: Vec<_> = rows.into_iter().map(|(c, n, rs, f, i, v, d, r)| (c, n, rs, f.to_string(), i, v, d, r.to_string())).collect();
        prop_assert_eq!(parsed, expected);
    }
}
