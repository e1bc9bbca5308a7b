//! AMFI's `;`-separated NAV files: the daily `NAVAll.txt` and the NAV history report
//! (`DownloadNAVHistoryReport`). Both are a header line, then data rows grouped under section
//! lines (scheme category, then fund house). Columns are found by header name, because AMFI
//! has added columns (`Plan`, `Option`) and reordered them between the two reports.

use std::io::BufRead;

use chrono::NaiveDate;

use super::lines::LineReader;
use super::{
    optional_text, unusable_nav, AmfiNav, Entry, NavFileError, Problem, Scheme, SetAside,
    AMFI_DATE_FORMAT,
};

/// A column sipline knows in an AMFI header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    SchemeCode,
    IsinGrowth,
    IsinReinvestment,
    SchemeName,
    Plan,
    Option,
    Nav,
    RepurchasePrice,
    SalePrice,
    Date,
}

impl Column {
    /// Header names are compared without case and whitespace: AMFI writes both
    /// `ISIN Div Payout/ ISIN Growth` and `ISIN Div Payout/ISIN Growth`.
    fn from_header(name: &str) -> Option<Self> {
        let key: String = name
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "schemecode" => Column::SchemeCode,
            "isindivpayout/isingrowth" | "isingrowth" => Column::IsinGrowth,
            "isindivreinvestment" => Column::IsinReinvestment,
            "schemename" => Column::SchemeName,
            "plan" => Column::Plan,
            "option" => Column::Option,
            "netassetvalue" => Column::Nav,
            "repurchaseprice" => Column::RepurchasePrice,
            "saleprice" => Column::SalePrice,
            "date" => Column::Date,
            _ => return None,
        })
    }

    const fn header_name(self) -> &'static str {
        match self {
            Column::SchemeCode => "Scheme Code",
            Column::IsinGrowth => "ISIN Div Payout/ISIN Growth",
            Column::IsinReinvestment => "ISIN Div Reinvestment",
            Column::SchemeName => "Scheme Name",
            Column::Plan => "Plan",
            Column::Option => "Option",
            Column::Nav => "Net Asset Value",
            Column::RepurchasePrice => "Repurchase Price",
            Column::SalePrice => "Sale Price",
            Column::Date => "Date",
        }
    }
}

/// Field positions resolved from the header.
#[derive(Debug, Clone)]
struct Layout {
    width: usize,
    scheme_code: usize,
    scheme_name: usize,
    nav: usize,
    date: usize,
    isin_growth: Option<usize>,
    isin_reinvestment: Option<usize>,
    plan: Option<usize>,
    option: Option<usize>,
}

impl Layout {
    fn from_header(header: &str) -> Result<Self, (Option<&'static str>, Problem)> {
        if !header.contains(';') {
            let shown: String = header.trim().chars().take(80).collect();
            return Err((None, Problem::NotAHeader(shown)));
        }
        let mut columns: Vec<Column> = Vec::new();
        for name in header.split(';') {
            let column = Column::from_header(name)
                .ok_or_else(|| (None, Problem::UnknownHeaderColumn(name.trim().to_string())))?;
            if columns.contains(&column) {
                return Err((
                    None,
                    Problem::DuplicateHeaderColumn(name.trim().to_string()),
                ));
            }
            columns.push(column);
        }
        let find = |c: Column| columns.iter().position(|&x| x == c);
        let require =
            |c: Column| find(c).ok_or((None, Problem::MissingHeaderColumn(c.header_name())));
        Ok(Layout {
            width: columns.len(),
            scheme_code: require(Column::SchemeCode)?,
            scheme_name: require(Column::SchemeName)?,
            nav: require(Column::Nav)?,
            date: require(Column::Date)?,
            isin_growth: find(Column::IsinGrowth),
            isin_reinvestment: find(Column::IsinReinvestment),
            plan: find(Column::Plan),
            option: find(Column::Option),
        })
    }
}

/// The section a data row sits in.
#[derive(Debug, Default, Clone)]
struct Section {
    scheme_type: Option<String>,
    category: Option<String>,
    fund_house: Option<String>,
}

impl Section {
    /// A section line is either a scheme category (`Open Ended Schemes(Equity Scheme - Large
    /// Cap Fund)`, `Open Ended Schemes ( Income )`) or a fund house. Fund house names can carry
    /// brackets too, so a category is recognised by its `… Schemes` prefix, not by brackets.
    fn enter(&mut self, line: &str) {
        let line = line.trim();
        if let Some((scheme_type, category)) = parse_category_line(line) {
            self.scheme_type = Some(scheme_type);
            self.category = category;
            self.fund_house = None;
        } else {
            self.fund_house = Some(line.to_string());
        }
    }
}

const SCHEME_TYPES: [&str; 4] = ["open ended", "close ended", "closed ended", "interval fund"];

fn parse_category_line(line: &str) -> Option<(String, Option<String>)> {
    let at = line.find("Schemes")?;
    let scheme_type = line[..at].trim();
    if !SCHEME_TYPES.contains(&scheme_type.to_lowercase().as_str()) {
        return None;
    }
    let rest = line[at + "Schemes".len()..].trim();
    let category = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    Some((scheme_type.to_string(), category))
}

/// Plan and option as sipline stores them, whichever header form the file has: `Direct`,
/// `Regular` (or the publisher's text for rarer plans such as `Retail`), and `Growth`, `IDCW`
/// or `Bonus`. The 8-column form spells them freely (`Direct Plan`, `IDCW-Re-investment`,
/// `Dividend Payout`); the 6-column form has them only inside the scheme name, which is kept
/// whole as the display name.
pub fn normalise_plan(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    if lower.contains("direct") {
        Some("Direct".to_string())
    } else if lower.contains("regular") {
        Some("Regular".to_string())
    } else {
        optional_text(text)
    }
}

pub fn normalise_option(text: &str) -> Option<String> {
    option_word(text)
        .map(str::to_string)
        .or_else(|| optional_text(text))
}

/// The option a piece of text names, if any. "Dividend Yield" is an equity category, not the
/// dividend option, so it does not count.
fn option_word(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase().replace("dividend yield", "");
    if lower.contains("idcw") || lower.contains("dividend") {
        Some("IDCW")
    } else if lower.contains("growth") {
        Some("Growth")
    } else if lower.contains("bonus") {
        Some("Bonus")
    } else {
        None
    }
}

/// Plan for the header forms that have no such column, from the scheme name the way AMFI's
/// names spell it (`… - Direct Plan - Growth`).
pub fn plan_from_name(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    if lower.contains("direct") {
        Some("Direct".to_string())
    } else if lower.contains("regular") {
        Some("Regular".to_string())
    } else {
        None
    }
}

/// Option from the scheme name: the last ` - `-separated part that names one (`… Fund -
/// Regular Plan - IDCW`), so words of the fund's own name ("Dividend Yield Fund - Growth")
/// do not decide it.
pub fn option_from_name(name: &str) -> Option<String> {
    name.split(['-', '–'])
        .rev()
        .find_map(option_word)
        .map(str::to_string)
}

/// Streams an AMFI daily or history file. Yields each NAV row and each set-aside row; stops at
/// the first [`NavFileError`].
pub struct AmfiReader<R> {
    file: String,
    lines: LineReader<R>,
    layout: Option<Layout>,
    section: Section,
    rows: u64,
    finished: bool,
}

impl<R: BufRead> AmfiReader<R> {
    /// `file` names the input in every error and report (a path or a URL).
    pub fn new(file: impl Into<String>, input: R) -> Self {
        Self {
            file: file.into(),
            lines: LineReader::new(input),
            layout: None,
            section: Section::default(),
            rows: 0,
            finished: false,
        }
    }

    fn error(&self, line: u64, field: Option<&'static str>, problem: Problem) -> NavFileError {
        NavFileError {
            file: self.file.clone(),
            line,
            field,
            problem,
        }
    }

    fn next_entry(&mut self) -> Result<Option<Entry<AmfiNav>>, NavFileError> {
        loop {
            match self.lines.advance() {
                Ok(true) => {}
                Ok(false) => {
                    return match self.layout {
                        None => Err(self.error(0, None, Problem::Empty)),
                        Some(_) if self.rows == 0 => Err(self.error(0, None, Problem::HeaderOnly)),
                        Some(_) => Ok(None),
                    };
                }
                Err(e) => {
                    return Err(self.error(self.lines.number + 1, None, Problem::Io(e.to_string())))
                }
            }
            if self.lines.is_blank() {
                continue;
            }
            let Some(layout) = &self.layout else {
                let layout = Layout::from_header(&self.lines.text)
                    .map_err(|(f, p)| self.error(self.lines.number, f, p))?;
                self.layout = Some(layout);
                continue;
            };
            if !self.lines.text.contains(';') {
                self.section.enter(&self.lines.text);
                continue;
            }
            let entry = parse_row(layout, &self.section, self.lines.number, &self.lines.text)
                .map_err(|(f, p)| self.error(self.lines.number, f, p))?;
            self.rows += 1;
            return Ok(Some(entry));
        }
    }
}

fn parse_row(
    layout: &Layout,
    section: &Section,
    line: u64,
    text: &str,
) -> Result<Entry<AmfiNav>, (Option<&'static str>, Problem)> {
    let fields: Vec<&str> = text.split(';').collect();
    if fields.len() != layout.width {
        return Err((
            None,
            Problem::FieldCount {
                expected: layout.width,
                found: fields.len(),
            },
        ));
    }
    let code_text = fields[layout.scheme_code].trim();
    let scheme_code = code_text
        .parse::<i64>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| {
            (
                Some(Column::SchemeCode.header_name()),
                Problem::BadSchemeCode(code_text.to_string()),
            )
        })?;
    let scheme_name = fields[layout.scheme_name].trim();
    if scheme_name.is_empty() {
        return Err((
            Some(Column::SchemeName.header_name()),
            Problem::MissingValue,
        ));
    }
    let column = |at: Option<usize>| at.and_then(|i| optional_text(fields[i]));
    let plan = match layout.plan {
        Some(i) => normalise_plan(fields[i]),
        None => plan_from_name(scheme_name),
    };
    let option = match layout.option {
        Some(i) => normalise_option(fields[i]),
        None => option_from_name(scheme_name),
    };
    let scheme = Scheme {
        scheme_code,
        isin_growth: column(layout.isin_growth),
        isin_reinvestment: column(layout.isin_reinvestment),
        scheme_name: scheme_name.to_string(),
        fund_house: section.fund_house.clone(),
        category: section.category.clone(),
        scheme_type: section.scheme_type.clone(),
        plan,
        option,
    };
    let nav = match unusable_nav(fields[layout.nav]) {
        Ok(nav) => nav,
        Err(reason) => {
            return Ok(Entry::SetAside(SetAside {
                line,
                scheme: scheme_code.to_string(),
                reason,
                described: Some(Box::new(scheme)),
            }))
        }
    };
    let date_text = fields[layout.date].trim();
    let nav_date = NaiveDate::parse_from_str(date_text, AMFI_DATE_FORMAT).map_err(|_| {
        (
            Some(Column::Date.header_name()),
            Problem::BadDate {
                text: date_text.to_string(),
                expected: "like 27-Dec-2024",
            },
        )
    })?;
    Ok(Entry::Nav(AmfiNav {
        line,
        scheme,
        nav,
        nav_date,
    }))
}

impl<R: BufRead> Iterator for AmfiReader<R> {
    type Item = Result<Entry<AmfiNav>, NavFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let item = self.next_entry().transpose();
        self.finished = !matches!(item, Some(Ok(_)));
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_lines_are_told_from_fund_houses_with_brackets() {
        assert_eq!(
            parse_category_line("Open Ended Schemes(Equity Scheme - Large Cap Fund)"),
            Some((
                "Open Ended".into(),
                Some("Equity Scheme - Large Cap Fund".into())
            ))
        );
        assert_eq!(
            parse_category_line("Open Ended Schemes ( Income )"),
            Some(("Open Ended".into(), Some("Income".into())))
        );
        assert_eq!(
            parse_category_line("Interval Fund Schemes(Income)"),
            Some(("Interval Fund".into(), Some("Income".into())))
        );
        assert_eq!(
            parse_category_line("Bank of India Mutual Fund (formerly BOI AXA Mutual Fund)"),
            None
        );
        assert_eq!(parse_category_line("Schemes Mutual Fund (India)"), None);
    }

    #[test]
    fn plan_and_option_are_read_from_names() {
        assert_eq!(
            plan_from_name("X Fund - Direct Plan - Growth"),
            Some("Direct".into())
        );
        assert_eq!(
            option_from_name("X Fund - Direct Plan - Growth"),
            Some("Growth".into())
        );
        assert_eq!(
            option_from_name("X Fund - Regular - IDCW"),
            Some("IDCW".into())
        );
        assert_eq!(plan_from_name("X Fund"), None);
        // A fund named for dividend yield is not the dividend option.
        assert_eq!(
            option_from_name("Templeton India Equity Income Fund - Dividend Yield Fund - Growth"),
            Some("Growth".into())
        );
        assert_eq!(
            option_from_name("UTI Dividend Yield Fund – Direct Plan – IDCW"),
            Some("IDCW".into())
        );
        assert_eq!(
            option_from_name("X Fund - Direct Plan - Dividend Payout"),
            Some("IDCW".into())
        );
        // Names from AMFI's NAVAll.txt of 16 May 2025 (pipeline/tests/fixtures) that a
        // whole-name search got wrong: the option is the last part that names one.
        for (name, option) in [
            (
                "Nippon India Gilt Securities Fund- Growth Plan- Bonus Option",
                "Bonus",
            ),
            (
                "Franklin India Liquid Fund - Unclaimed IDCW Plan - Growth",
                "Growth",
            ),
            (
                "quant Liquid Fund-Unclaimed Dividend-Growth Option",
                "Growth",
            ),
        ] {
            assert_eq!(option_from_name(name).as_deref(), Some(option), "{name}");
        }
    }

    /// The 8-column header's own Plan and Option columns, as AMFI spells them, are stored in
    /// the same words as the 6-column form's names give.
    #[test]
    fn eight_column_plan_and_option_are_normalised() {
        let file = "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Plan;Option;Net Asset Value;Date\n\
                    \n\
                    Open Ended Schemes(Equity Scheme - Dividend Yield Fund)\n\
                    \n\
                    UTI Mutual Fund\n\
                    \n\
                    1;INF789F01AA1;-;UTI Dividend Yield Fund - Direct Plan - IDCW;Direct Plan;IDCW-Re-investment;41.2000;27-Dec-2024\n\
                    2;INF789F01AA2;-;UTI Dividend Yield Fund - Regular Plan - Growth;Regular Plan;Growth Option;150.1000;27-Dec-2024\n\
                    3;INF789F01AA3;-;UTI Dividend Yield Fund - Retail Plan - Growth;Retail Plan;Growth;150.1000;27-Dec-2024\n";
        let rows: Vec<(Option<String>, Option<String>, String)> =
            AmfiReader::new("8col.txt", file.as_bytes())
                .map(|entry| match entry.unwrap() {
                    Entry::Nav(row) => (row.scheme.plan, row.scheme.option, row.scheme.scheme_name),
                    Entry::SetAside(row) => panic!("set aside: {row:?}"),
                })
                .collect();
        let plan_option: Vec<(Option<&str>, Option<&str>)> = rows
            .iter()
            .map(|(p, o, _)| (p.as_deref(), o.as_deref()))
            .collect();
        assert_eq!(
            plan_option,
            [
                (Some("Direct"), Some("IDCW")),
                (Some("Regular"), Some("Growth")),
                (Some("Retail Plan"), Some("Growth")),
            ]
        );
        // The display name stays as published.
        assert_eq!(rows[0].2, "UTI Dividend Yield Fund - Direct Plan - IDCW");
    }
}
