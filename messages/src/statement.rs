//! An account statement for a period, as a person keeps it: per scheme the units and value at
//! the start and the end, every transaction in between with its charges, as CSV (for a
//! spreadsheet or a tax preparer) and as a PDF (to open, print, or forward).
//!
//! The figures arrive as exact decimal text (the API computes them in PostgreSQL and
//! `rust_decimal`); this module lays them out and never does arithmetic on money. The PDF uses
//! the standard Helvetica and Courier fonts (no embedding, every reader has them) in
//! WinAnsiEncoding, so "₹" is written "Rs" there, as in an SMS.

use chrono::NaiveDate;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::format::{calendar_date, indian_grouping};

/// One scheme's position at the start and the end of the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub scheme_code: i64,
    pub scheme_name: String,
    pub opening_units: String,
    /// Null when the scheme had no NAV yet on that date.
    pub opening_nav: Option<String>,
    pub opening_value: String,
    pub closing_units: String,
    pub closing_nav: Option<String>,
    pub closing_value: String,
}

/// One transaction: money in is positive, money out negative; units likewise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub date: NaiveDate,
    pub scheme_code: i64,
    pub scheme_name: String,
    pub description: String,
    pub amount: String,
    /// Stamp duty, exit load and STT together.
    pub charges: String,
    pub nav: Option<String>,
    pub units: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub user_id: i64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub holdings: Vec<Holding>,
    pub transactions: Vec<Transaction>,
    pub opening_value: String,
    pub closing_value: String,
    pub charges: String,
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Two sections under one header row each: the holdings, then the transactions. Numbers are
/// plain decimals (no grouping) so a spreadsheet reads them as numbers.
pub fn to_csv(statement: &Statement) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "statement,user_id,from,to,opening_value,closing_value,charges\r\nsummary,{},{},{},{},{},{}\r\n\r\n",
        statement.user_id,
        statement.from,
        statement.to,
        statement.opening_value,
        statement.closing_value,
        statement.charges
    ));
    out.push_str("holding,scheme_code,scheme_name,opening_units,opening_nav,opening_value,closing_units,closing_nav,closing_value\r\n");
    for h in &statement.holdings {
        out.push_str(&format!(
            "holding,{},{},{},{},{},{},{},{}\r\n",
            h.scheme_code,
            field(&h.scheme_name),
            h.opening_units,
            h.opening_nav.as_deref().unwrap_or(""),
            h.opening_value,
            h.closing_units,
            h.closing_nav.as_deref().unwrap_or(""),
            h.closing_value
        ));
    }
    out.push_str(
        "\r\ntransaction,date,scheme_code,scheme_name,description,amount,charges,nav,units\r\n",
    );
    for t in &statement.transactions {
        out.push_str(&format!(
            "transaction,{},{},{},{},{},{},{},{}\r\n",
            t.date,
            t.scheme_code,
            field(&t.scheme_name),
            field(&t.description),
            t.amount,
            t.charges,
            t.nav.as_deref().unwrap_or(""),
            t.units
        ));
    }
    out
}

/// Latin-1 for the standard fonts' WinAnsiEncoding: "₹" as "Rs", anything else outside it
/// as "?", so no byte is misread.
fn win_ansi(text: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '₹' => bytes.extend_from_slice(b"Rs "),
            '\u{2013}' | '\u{2014}' => bytes.push(b'-'),
            '\u{2018}' | '\u{2019}' | '`' => bytes.push(b'\''),
            c if (c as u32) < 0x7f && !c.is_control() => bytes.push(c as u8),
            c if (0xa0..=0xff).contains(&(c as u32)) => bytes.push(c as u32 as u8),
            _ => bytes.push(b'?'),
        }
    }
    bytes
}

fn rupees(text: &str) -> String {
    match indian_grouping(text) {
        Some(g) => match g.strip_prefix('-') {
            Some(rest) => format!("-Rs {rest}"),
            None => format!("Rs {g}"),
        },
        None => text.to_string(),
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max.saturating_sub(3)).collect::<String>() + "..."
    }
}

/// A4 in points, margins, the table font's size and line height. Tables are in Courier, whose
/// every glyph is 0.6 em wide, so columns align by character count.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 40.0;
const SIZE: f32 = 7.5;
const LINE: f32 = 11.0;

/// A page being filled, top to bottom.
struct PageText {
    content: Content,
    y: f32,
}

struct Layout {
    pages: Vec<PageText>,
}

impl Layout {
    fn new() -> Self {
        let mut layout = Self { pages: Vec::new() };
        layout.new_page();
        layout
    }

    fn new_page(&mut self) {
        self.pages.push(PageText {
            content: Content::new(),
            y: PAGE_H - MARGIN,
        });
    }

    fn page(&mut self) -> &mut PageText {
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Writes one line in `font` at `size`, starting a page when this one is full.
    fn line(&mut self, font: &[u8], size: f32, text: &str) {
        if self.page().y < MARGIN + LINE {
            self.new_page();
        }
        let page = self.page();
        page.y -= size.max(SIZE) * 1.45;
        let y = page.y;
        page.content
            .begin_text()
            .set_font(Name(font), size)
            .next_line(MARGIN, y)
            .show(Str(&win_ansi(text)))
            .end_text();
    }

    fn gap(&mut self) {
        self.page().y -= LINE / 2.0;
    }
}

/// Columns of a monospace row: each text left- or right-aligned in its width.
fn row(cells: &[(&str, usize, bool)]) -> String {
    let mut out = String::new();
    for (text, width, right) in cells {
        let text = cut(text, *width);
        let pad = " ".repeat(width.saturating_sub(text.chars().count()));
        if *right {
            out.push_str(&pad);
            out.push_str(&text);
        } else {
            out.push_str(&text);
            out.push_str(&pad);
        }
        out.push(' ');
    }
    out.trim_end().to_string()
}

/// The statement as a PDF: a title, the period and totals, the holdings, the transactions;
/// as many A4 pages as it takes, each numbered.
pub fn to_pdf(statement: &Statement, generated_on: NaiveDate) -> Vec<u8> {
    let mut layout = Layout::new();
    let day = |d: NaiveDate| calendar_date(&d.to_string()).unwrap_or_else(|| d.to_string());
    layout.line(b"HB", 14.0, "Account statement");
    layout.line(
        b"H",
        9.0,
        &format!(
            "Investor {}  |  {} to {}  |  generated {}",
            statement.user_id,
            day(statement.from),
            day(statement.to),
            day(generated_on)
        ),
    );
    layout.line(
        b"H",
        9.0,
        &format!(
            "Value at the start {}  |  at the end {}  |  charges in the period {}",
            rupees(&statement.opening_value),
            rupees(&statement.closing_value),
            rupees(&statement.charges)
        ),
    );
    layout.gap();
    layout.line(b"HB", 10.0, "Holdings");
    let widths = [44usize, 13, 16, 13, 16];
    layout.line(
        b"C",
        SIZE,
        &row(&[
            ("Scheme", widths[0], false),
            ("Units (start)", widths[1], true),
            ("Value (start)", widths[2], true),
            ("Units (end)", widths[3], true),
            ("Value (end)", widths[4], true),
        ]),
    );
    for h in &statement.holdings {
        layout.line(
            b"C",
            SIZE,
            &row(&[
                (&h.scheme_name, widths[0], false),
                (&h.opening_units, widths[1], true),
                (&rupees(&h.opening_value), widths[2], true),
                (&h.closing_units, widths[3], true),
                (&rupees(&h.closing_value), widths[4], true),
            ]),
        );
    }
    if statement.holdings.is_empty() {
        layout.line(b"C", SIZE, "No holdings in this period.");
    }
    layout.gap();
    layout.line(b"HB", 10.0, "Transactions");
    let widths = [11usize, 30, 22, 15, 9, 10, 12];
    layout.line(
        b"C",
        SIZE,
        &row(&[
            ("Date", widths[0], false),
            ("Scheme", widths[1], false),
            ("Transaction", widths[2], false),
            ("Amount", widths[3], true),
            ("Charges", widths[4], true),
            ("NAV", widths[5], true),
            ("Units", widths[6], true),
        ]),
    );
    for t in &statement.transactions {
        layout.line(
            b"C",
            SIZE,
            &row(&[
                (&day(t.date), widths[0], false),
                (&t.scheme_name, widths[1], false),
                (&t.description, widths[2], false),
                (&rupees(&t.amount), widths[3], true),
                (
                    &indian_grouping(&t.charges).unwrap_or(t.charges.clone()),
                    widths[4],
                    true,
                ),
                (t.nav.as_deref().unwrap_or("-"), widths[5], true),
                (&t.units, widths[6], true),
            ]),
        );
    }
    if statement.transactions.is_empty() {
        layout.line(b"C", SIZE, "No transactions in this period.");
    }

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let (helvetica, helvetica_bold, courier) = (Ref::new(4), Ref::new(5), Ref::new(6));
    let first_page = 7;
    let count = layout.pages.len();
    let page_ids: Vec<Ref> = (0..count)
        .map(|i| Ref::new(first_page + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(count as i32);
    pdf.document_info(info)
        .title(TextStr("Account statement"))
        .producer(TextStr("sipline"));
    for (id, name) in [
        (helvetica, b"Helvetica".as_slice()),
        (helvetica_bold, b"Helvetica-Bold".as_slice()),
        (courier, b"Courier".as_slice()),
    ] {
        pdf.type1_font(id)
            .base_font(Name(name))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, mut text) in layout.pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        text.content
            .begin_text()
            .set_font(Name(b"H"), 7.0)
            .next_line(PAGE_W - MARGIN - 60.0, MARGIN / 2.0)
            .show(Str(format!("Page {} of {count}", i + 1).as_bytes()))
            .end_text();
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"H"), helvetica);
        fonts.pair(Name(b"HB"), helvetica_bold);
        fonts.pair(Name(b"C"), courier);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &text.content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(transactions: usize) -> Statement {
        let date = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        Statement {
            user_id: 7,
            from: date("2026-04-01"),
            to: date("2027-03-31"),
            holdings: vec![Holding {
                scheme_code: 122639,
                scheme_name: "Parag Parikh Flexi Cap Fund - Direct Plan - Growth, \"PPFAS\"".into(),
                opening_units: "0.000".into(),
                opening_nav: None,
                opening_value: "0.00".into(),
                closing_units: "712.116".into(),
                closing_nav: Some("84.2512".into()),
                closing_value: "59997.00".into(),
            }],
            transactions: (0..transactions)
                .map(|i| Transaction {
                    date: date("2026-04-07"),
                    scheme_code: 122639,
                    scheme_name: "Parag Parikh Flexi Cap Fund - Direct Plan - Growth".into(),
                    description: format!("SIP instalment {i}"),
                    amount: "5000.00".into(),
                    charges: "0.25".into(),
                    nav: Some("84.2512".into()),
                    units: "59.343".into(),
                })
                .collect(),
            opening_value: "0.00".into(),
            closing_value: "59997.00".into(),
            charges: "3.00".into(),
        }
    }

    #[test]
    fn the_csv_quotes_what_needs_quoting_and_keeps_numbers_plain() {
        let csv = to_csv(&statement(2));
        assert!(csv.contains("holding,122639,\"Parag Parikh Flexi Cap Fund - Direct Plan - Growth, \"\"PPFAS\"\"\",0.000,,0.00,712.116,84.2512,59997.00\r\n"), "{csv}");
        assert!(csv.contains("transaction,2026-04-07,122639,Parag Parikh Flexi Cap Fund - Direct Plan - Growth,SIP instalment 0,5000.00,0.25,84.2512,59.343\r\n"), "{csv}");
        assert_eq!(csv.matches("transaction,2026").count(), 2);
    }

    #[test]
    fn the_pdf_is_a_pdf_with_a_page_per_screenful() {
        let one = to_pdf(&statement(3), NaiveDate::from_ymd_opt(2027, 4, 1).unwrap());
        assert!(one.starts_with(b"%PDF-"));
        assert!(one.ends_with(b"%%EOF") || one.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&one);
        assert!(text.contains("/Count 1"), "one page");
        assert!(text.contains("Rs 59,997.00"));
        let long = to_pdf(
            &statement(200),
            NaiveDate::from_ymd_opt(2027, 4, 1).unwrap(),
        );
        let text = String::from_utf8_lossy(&long);
        assert!(
            text.contains("/Count 4") || text.contains("/Count 3"),
            "several pages"
        );
        assert_eq!(win_ansi("₹5 – ok`"), b"Rs 5 - ok'".to_vec());
    }
}
