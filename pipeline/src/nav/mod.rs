//! The NAV files AMFI and BSE publish: their records, the readers that stream them line by line,
//! and writers for the same formats (used by the generator and by round-trip tests).
//!
//! A reader yields three kinds of outcome. A [`Entry::Nav`] is a usable NAV. A
//! [`Entry::SetAside`] is a line the publisher really does emit but that carries no usable NAV
//! (`N.A.`, zero): it is reported with its line number and skipped. A [`NavFileError`] is a file
//! that is not what it claims to be (unknown header, wrong field count, a date that is not a
//! date): the reader stops there, because nothing in such a file can be trusted.

pub mod amfi;
pub mod bse;
pub mod collect;
pub mod format;
mod lines;

use chrono::NaiveDate;
use std::fmt;

use crate::money::Nav;

/// Where a NAV came from; AMFI is the authority when both publish one for a scheme and date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NavSource {
    Amfi,
    Bse,
}

impl NavSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            NavSource::Amfi => "amfi",
            NavSource::Bse => "bse",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "amfi" => Some(NavSource::Amfi),
            "bse" => Some(NavSource::Bse),
            _ => None,
        }
    }
}

/// A scheme as the AMFI files describe it. `category` and `scheme_type` come from the section
/// line above the row (`Open Ended Schemes(Equity Scheme - Large Cap Fund)`), `fund_house` from
/// the section line after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub scheme_code: i64,
    pub isin_growth: Option<String>,
    pub isin_reinvestment: Option<String>,
    pub scheme_name: String,
    pub fund_house: Option<String>,
    pub category: Option<String>,
    pub scheme_type: Option<String>,
    pub plan: Option<String>,
    pub option: Option<String>,
}

impl Scheme {
    /// The prefix of `scheme_type` that marks a scheme open for purchases (AMFI's section
    /// lines: "Open Ended Schemes(…)"); PostgreSQL's `sipline_open_ended` (migration 0022)
    /// applies the same rule and a test checks both agree.
    pub const OPEN_ENDED_PREFIX: &'static str = "open ended";

    /// Whether the scheme is open-ended: the only schemes that take SIPs and orders and that
    /// publish a NAV every business day.
    pub fn is_open_ended(&self) -> bool {
        self.scheme_type.as_deref().is_some_and(|t| {
            t.trim_start()
                .to_ascii_lowercase()
                .starts_with(Self::OPEN_ENDED_PREFIX)
        })
    }
}

/// A `schemes` row: the scheme as published plus the allotment rule sipline keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeRow {
    pub scheme: Scheme,
    pub unit_decimals: i32,
}

/// A `navs` row within one `nav_date` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavRow {
    pub scheme_code: i64,
    pub nav: Nav,
    pub source: NavSource,
}

/// One usable row of an AMFI daily or history file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmfiNav {
    pub line: u64,
    pub scheme: Scheme,
    pub nav: Nav,
    pub nav_date: NaiveDate,
}

/// One usable row of a BSE StAR MF NAV export. BSE's scheme code is its own; the AMFI scheme is
/// found through the ISIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BseNav {
    pub line: u64,
    pub nav_date: NaiveDate,
    pub bse_scheme_code: String,
    pub scheme_name: String,
    pub rta_scheme_code: String,
    pub reinvest_flag: String,
    pub isin: Option<String>,
    pub nav: Nav,
    pub rta_code: String,
}

/// A row that the publisher emitted without a usable NAV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub line: u64,
    /// The scheme as the file names it (an AMFI scheme code or a BSE scheme code).
    pub scheme: String,
    pub reason: String,
    /// The scheme an AMFI row describes: a scheme without today's NAV is still a scheme.
    pub described: Option<Box<Scheme>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<T> {
    Nav(T),
    SetAside(SetAside),
}

/// A file that cannot be read as the NAV format it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {}{problem}", field.map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct NavFileError {
    /// The path or URL the file was read from.
    pub file: String,
    /// 1-based line number; 0 when the problem is the file as a whole.
    pub line: u64,
    pub field: Option<&'static str>,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Io(String),
    Empty,
    NotAHeader(String),
    UnknownHeaderColumn(String),
    DuplicateHeaderColumn(String),
    MissingHeaderColumn(&'static str),
    HeaderOnly,
    FieldCount {
        expected: usize,
        found: usize,
    },
    /// The text, and the forms the format accepts (as a reader would write them).
    BadDate {
        text: String,
        expected: &'static str,
    },
    BadSchemeCode(String),
    MissingValue,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "read failed: {e}"),
            Problem::Empty => write!(f, "the file is empty: no header and no NAV rows"),
            Problem::NotAHeader(text) => write!(f, "expected the header line, found '{text}'"),
            Problem::UnknownHeaderColumn(c) => write!(f, "unknown header column '{c}' (not a NAV file form sipline knows)"),
            Problem::DuplicateHeaderColumn(c) => write!(f, "header names column '{c}' twice"),
            Problem::MissingHeaderColumn(c) => write!(f, "header has no '{c}' column"),
            Problem::HeaderOnly => write!(f, "the file holds only a header and no NAV rows (an error response, not an empty day)"),
            Problem::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found} (truncated or malformed line)")
            }
            Problem::BadDate { text, expected } => write!(f, "'{text}' is not a date (expected {expected})"),
            Problem::BadSchemeCode(text) => write!(f, "'{text}' is not a scheme code"),
            Problem::MissingValue => write!(f, "is empty"),
        }
    }
}

/// The date form AMFI uses everywhere: `27-Dec-2024`.
pub const AMFI_DATE_FORMAT: &str = "%d-%b-%Y";

/// An ISIN column's value: AMFI writes `-` (and sometimes nothing) when there is none.
fn optional_text(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text != "-").then(|| text.to_string())
}

/// Why a NAV field yields no usable NAV, if it does not: the two cases real files carry.
fn unusable_nav(text: &str) -> Result<Nav, String> {
    match text.trim().parse::<Nav>() {
        Ok(nav) if nav.is_positive() => Ok(nav),
        Ok(nav) => Err(format!("NAV {nav} is zero or negative")),
        Err(e) => Err(format!("NAV {e}")),
    }
}
