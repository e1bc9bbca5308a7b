//! BSE StAR MF's NAV export: `|`-separated, no header, eight fields:
//! `NAV Date|Scheme Code|Scheme Name|RTA Scheme Code|Div Reinvest Flag|ISIN|NAV Value|RTA Code`.
//! The scheme code is BSE's own; ingest joins rows to AMFI schemes by ISIN.

use std::io::BufRead;

use chrono::NaiveDate;

use super::lines::LineReader;
use super::{
    optional_text, unusable_nav, BseNav, Entry, NavFileError, Problem, SetAside, AMFI_DATE_FORMAT,
};

pub const FIELDS: [&str; 8] = [
    "NAV Date",
    "Scheme Code",
    "Scheme Name",
    "RTA Scheme Code",
    "Div Reinvest Flag",
    "ISIN",
    "NAV Value",
    "RTA Code",
];

/// BSE exports have carried more than one date form; all of these are unambiguous.
const DATE_FORMATS: [&str; 4] = ["%Y-%m-%d", AMFI_DATE_FORMAT, "%d/%m/%Y", "%d-%m-%Y"];

fn parse_date(text: &str) -> Option<NaiveDate> {
    DATE_FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(text, f).ok())
}

/// Streams a BSE NAV export; stops at the first [`NavFileError`].
pub struct BseReader<R> {
    file: String,
    lines: LineReader<R>,
    rows: u64,
    finished: bool,
}

impl<R: BufRead> BseReader<R> {
    pub fn new(file: impl Into<String>, input: R) -> Self {
        Self {
            file: file.into(),
            lines: LineReader::new(input),
            rows: 0,
            finished: false,
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<BseNav>>, NavFileError> {
        let error = |line, field, problem| NavFileError {
            file: self.file.clone(),
            line,
            field,
            problem,
        };
        loop {
            match self.lines.advance() {
                Ok(true) => {}
                Ok(false) if self.rows == 0 => return Err(error(0, None, Problem::Empty)),
                Ok(false) => return Ok(None),
                Err(e) => {
                    return Err(error(
                        self.lines.number + 1,
                        None,
                        Problem::Io(e.to_string()),
                    ))
                }
            }
            if self.lines.is_blank() {
                continue;
            }
            let line = self.lines.number;
            let fields: Vec<&str> = self.lines.text.split('|').map(str::trim).collect();
            if fields.len() != FIELDS.len() {
                return Err(error(
                    line,
                    None,
                    Problem::FieldCount {
                        expected: FIELDS.len(),
                        found: fields.len(),
                    },
                ));
            }
            // The export has no header, but a copy saved from a spreadsheet may: skip exactly that.
            if self.rows == 0 && fields[0].eq_ignore_ascii_case(FIELDS[0]) {
                continue;
            }
            self.rows += 1;
            let bse_scheme_code = fields[1];
            if bse_scheme_code.is_empty() {
                return Err(error(line, Some(FIELDS[1]), Problem::MissingValue));
            }
            let nav = match unusable_nav(fields[6]) {
                Ok(nav) => nav,
                Err(reason) => {
                    return Ok(Some(Entry::SetAside(SetAside {
                        line,
                        scheme: bse_scheme_code.to_string(),
                        reason,
                        described: None,
                    })))
                }
            };
            let nav_date = parse_date(fields[0]).ok_or_else(|| {
                error(
                    line,
                    Some(FIELDS[0]),
                    Problem::BadDate {
                        text: fields[0].to_string(),
                        expected: "like 2024-12-27, 27-Dec-2024, 27/12/2024 or 27-12-2024",
                    },
                )
            })?;
            return Ok(Some(Entry::Nav(BseNav {
                line,
                nav_date,
                bse_scheme_code: bse_scheme_code.to_string(),
                scheme_name: fields[2].to_string(),
                rta_scheme_code: fields[3].to_string(),
                reinvest_flag: fields[4].to_string(),
                isin: optional_text(fields[5]),
                nav,
                rta_code: fields[7].to_string(),
            })));
        }
    }
}

impl<R: BufRead> Iterator for BseReader<R> {
    type Item = Result<Entry<BseNav>, NavFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.next_entry().transpose();
        self.finished = !matches!(item, Some(Ok(_)));
        item
    }
}
