//! Writers for the NAV file formats, byte-compatible with what the readers accept. The
//! generator uses them to publish synthetic files, and the round-trip property tests check that
//! reading what was written gives back the rows.

use std::io::{self, Write};

use chrono::NaiveDate;

use super::{bse::FIELDS as BSE_FIELDS, Scheme, AMFI_DATE_FORMAT};

/// The AMFI header forms known to be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmfiHeaderForm {
    /// `NAVAll.txt`, six columns.
    Daily,
    /// `NAVAll.txt`, the newer form with `Plan` and `Option` before the NAV.
    DailyWithPlanOption,
    /// The NAV history report.
    History,
    /// The NAV history report with `Plan` and `Option`.
    HistoryWithPlanOption,
}

impl AmfiHeaderForm {
    pub const ALL: [AmfiHeaderForm; 4] = [
        AmfiHeaderForm::Daily,
        AmfiHeaderForm::DailyWithPlanOption,
        AmfiHeaderForm::History,
        AmfiHeaderForm::HistoryWithPlanOption,
    ];

    pub const fn header(self) -> &'static str {
        match self {
            AmfiHeaderForm::Daily => "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date",
            AmfiHeaderForm::DailyWithPlanOption => {
                "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Plan;Option;Net Asset Value;Date"
            }
            AmfiHeaderForm::History => {
                "Scheme Code;Scheme Name;ISIN Div Payout/ISIN Growth;ISIN Div Reinvestment;Net Asset Value;Repurchase Price;Sale Price;Date"
            }
            AmfiHeaderForm::HistoryWithPlanOption => {
                "Scheme Code;Scheme Name;ISIN Div Payout/ISIN Growth;ISIN Div Reinvestment;Plan;Option;Net Asset Value;Repurchase Price;Sale Price;Date"
            }
        }
    }

    /// Whether the form has `Plan` and `Option` columns (otherwise readers derive them from the name).
    pub const fn has_plan_option(self) -> bool {
        matches!(
            self,
            AmfiHeaderForm::DailyWithPlanOption | AmfiHeaderForm::HistoryWithPlanOption
        )
    }
}

/// Writes an AMFI file: the header, then rows with a category line and a fund-house line
/// written whenever they change, with the single-space blank lines AMFI puts around them. Rows must come
/// grouped by category and fund house, as AMFI publishes them.
pub struct AmfiWriter<W: Write> {
    out: W,
    form: AmfiHeaderForm,
    line_end: &'static str,
    category: Option<(Option<String>, Option<String>)>,
    fund_house: Option<Option<String>>,
}

impl<W: Write> AmfiWriter<W> {
    /// Writes the header. `crlf` chooses the line end; AMFI serves CRLF.
    pub fn new(mut out: W, form: AmfiHeaderForm, crlf: bool) -> io::Result<Self> {
        let line_end = if crlf { "\r\n" } else { "\n" };
        write!(out, "{}{line_end}", form.header())?;
        Ok(Self {
            out,
            form,
            line_end,
            category: None,
            fund_house: None,
        })
    }

    /// Writes one row; `nav` is the NAV field's text, so `N.A.` rows can be written too.
    pub fn write_row(&mut self, scheme: &Scheme, nav: &str, nav_date: NaiveDate) -> io::Result<()> {
        let e = self.line_end;
        let category = (scheme.scheme_type.clone(), scheme.category.clone());
        if self.category.as_ref() != Some(&category) {
            if let Some(scheme_type) = &scheme.scheme_type {
                let inner = scheme.category.as_deref().unwrap_or_default();
                write!(self.out, " {e}{scheme_type} Schemes({inner}){e}")?;
            }
            self.category = Some(category);
            self.fund_house = None;
        }
        if self.fund_house.as_ref() != Some(&scheme.fund_house) {
            if let Some(fund_house) = &scheme.fund_house {
                write!(self.out, " {e}{fund_house}{e} {e}")?;
            }
            self.fund_house = Some(scheme.fund_house.clone());
        }
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        let date = nav_date.format(AMFI_DATE_FORMAT);
        let (code, name) = (scheme.scheme_code, &scheme.scheme_name);
        let (growth, reinvest) = (dash(&scheme.isin_growth), dash(&scheme.isin_reinvestment));
        let (plan, option) = (dash(&scheme.plan), dash(&scheme.option));
        match self.form {
            AmfiHeaderForm::Daily => write!(
                self.out,
                "{code};{growth};{reinvest};{name};{nav};{date}{e}"
            ),
            AmfiHeaderForm::DailyWithPlanOption => {
                write!(
                    self.out,
                    "{code};{growth};{reinvest};{name};{plan};{option};{nav};{date}{e}"
                )
            }
            AmfiHeaderForm::History => write!(
                self.out,
                "{code};{name};{growth};{reinvest};{nav};;;{date}{e}"
            ),
            AmfiHeaderForm::HistoryWithPlanOption => {
                write!(
                    self.out,
                    "{code};{name};{growth};{reinvest};{plan};{option};{nav};;;{date}{e}"
                )
            }
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The date form the BSE writer uses.
pub const BSE_DATE_FORMAT: &str = "%Y-%m-%d";

/// Writes one BSE export row (no header: the export has none).
#[allow(clippy::too_many_arguments)]
pub fn write_bse_row(
    out: &mut impl Write,
    nav_date: NaiveDate,
    bse_scheme_code: &str,
    scheme_name: &str,
    rta_scheme_code: &str,
    reinvest_flag: &str,
    isin: Option<&str>,
    nav: &str,
    rta_code: &str,
) -> io::Result<()> {
    debug_assert_eq!(BSE_FIELDS.len(), 8);
    let date = nav_date.format(BSE_DATE_FORMAT);
    let isin = isin.unwrap_or("");
    writeln!(out, "{date}|{bse_scheme_code}|{scheme_name}|{rta_scheme_code}|{reinvest_flag}|{isin}|{nav}|{rta_code}")
}
