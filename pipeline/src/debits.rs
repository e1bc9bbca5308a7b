//! The bank's debit report: what the sponsor bank says became of each SIP debit it presented
//! under an e-mandate (NACH/UPI AutoPay). Banks and aggregators each have their own layouts;
//! sipline takes one CSV that an integration maps them to (documented in the README):
//!
//! ```text
//! sip_id,due_date,amount,status,reason_code
//! 1042,2025-06-10,5000.00,paid,
//! 1043,2025-06-10,2500.00,returned,04
//! ```
//!
//! * `sip_id`: the SIP the mandate debit was presented for (sipline's mandate reference);
//! * `due_date`: the instalment's due date, `YYYY-MM-DD`;
//! * `amount`: the debit in rupees, at most two decimals, as presented;
//! * `status`: `paid` or `returned` (bounced, rejected, or reversed by the bank);
//! * `reason_code`: the return reason (NPCI's code, e.g. `04` insufficient balance), 1–8
//!   letters or digits; required when returned, empty when paid.
//!
//! A file is checked whole before anything is used: every problem is reported as
//! `file:line: field: problem`, and one (sip_id, due_date) may appear only once.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::money::{parse_scaled, Paise};

pub const DEBIT_REPORT_HEADER: &str = "sip_id,due_date,amount,status,reason_code";

/// What the bank did with a presented debit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebitOutcome {
    Paid,
    Returned,
}

/// One line of a debit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitReportLine {
    /// 1-based line number in the file, for errors found later (an unknown SIP).
    pub line: usize,
    pub sip_id: i64,
    pub due_date: NaiveDate,
    pub amount: Paise,
    pub outcome: DebitOutcome,
    /// Empty when paid.
    pub reason_code: String,
}

/// A problem in a debit report, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {problem}")]
pub struct DebitReportError {
    pub file: String,
    pub line: usize,
    pub field: &'static str,
    pub problem: String,
}

/// Parses a whole report; the first problem found is returned, nothing partial.
pub fn parse_debit_report(
    file: &str,
    text: &str,
) -> Result<Vec<DebitReportLine>, DebitReportError> {
    let bad = |line: usize, field: &'static str, problem: String| DebitReportError {
        file: file.to_string(),
        line,
        field,
        problem,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header))
            if header.trim().trim_start_matches('\u{feff}') == DEBIT_REPORT_HEADER => {}
        Some((n, header)) => {
            return Err(bad(
                n,
                "header",
                format!(
                    "expected `{DEBIT_REPORT_HEADER}`, found `{}`",
                    header.trim()
                ),
            ))
        }
        None => {
            return Err(bad(
                1,
                "header",
                format!("empty file, expected `{DEBIT_REPORT_HEADER}`"),
            ))
        }
    }
    let mut seen: HashMap<(i64, NaiveDate), usize> = HashMap::new();
    let mut out = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 5 {
            return Err(bad(
                n,
                "line",
                format!("expected 5 fields, found {}", fields.len()),
            ));
        }
        let sip_id: i64 = fields[0].parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            bad(
                n,
                "sip_id",
                format!("`{}` is not a positive integer", fields[0]),
            )
        })?;
        let due_date = NaiveDate::parse_from_str(fields[1], "%Y-%m-%d").map_err(|_| {
            bad(
                n,
                "due_date",
                format!("`{}` is not a YYYY-MM-DD date", fields[1]),
            )
        })?;
        let amount = parse_scaled(fields[2], 2)
            .map_err(|e| bad(n, "amount", e.to_string()))
            .and_then(|paise| {
                if paise > 0 {
                    Ok(Paise(paise))
                } else {
                    Err(bad(
                        n,
                        "amount",
                        format!("`{}` is not above zero", fields[2]),
                    ))
                }
            })?;
        let outcome = match fields[3] {
            "paid" => DebitOutcome::Paid,
            "returned" => DebitOutcome::Returned,
            other => {
                return Err(bad(
                    n,
                    "status",
                    format!("`{other}` is neither `paid` nor `returned`"),
                ))
            }
        };
        let reason_code = fields[4];
        match outcome {
            DebitOutcome::Returned
                if reason_code.is_empty()
                    || reason_code.len() > 8
                    || !reason_code.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                return Err(bad(
                    n,
                    "reason_code",
                    format!("`{reason_code}`: a returned debit needs its reason code, 1–8 letters or digits"),
                ))
            }
            DebitOutcome::Paid if !reason_code.is_empty() => {
                return Err(bad(
                    n,
                    "reason_code",
                    format!("`{reason_code}`: a paid debit has no reason code"),
                ))
            }
            _ => {}
        }
        if let Some(first) = seen.insert((sip_id, due_date), n) {
            return Err(bad(
                n,
                "sip_id",
                format!("SIP {sip_id}'s debit due {due_date} is already reported on line {first}"),
            ));
        }
        out.push(DebitReportLine {
            line: n,
            sip_id,
            due_date,
            amount,
            outcome,
            reason_code: reason_code.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_read_whole_and_every_problem_names_its_line_and_field() {
        let ok = parse_debit_report(
            "d.csv",
            "sip_id,due_date,amount,status,reason_code\r\n7,2025-06-10,500,paid,\r\n\r\n8,2025-06-10,2500.50,returned,04\r\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].line, 4);
        assert_eq!(ok[1].amount, Paise(250_050));
        assert_eq!(ok[1].outcome, DebitOutcome::Returned);
        assert_eq!(ok[1].reason_code, "04");
        let header = DEBIT_REPORT_HEADER;
        for (body, expected) in [
            ("x", "d.csv:1: header: expected"),
            (
                "7,2025-06-10,500,paid",
                "d.csv:2: line: expected 5 fields, found 4",
            ),
            (
                "0,2025-06-10,500,paid,",
                "d.csv:2: sip_id: `0` is not a positive integer",
            ),
            (
                "7,10/06/2025,500,paid,",
                "d.csv:2: due_date: `10/06/2025` is not a YYYY-MM-DD date",
            ),
            (
                "7,2025-06-10,500.001,paid,",
                "d.csv:2: amount: '500.001' has more than 2 decimal places",
            ),
            (
                "7,2025-06-10,-5,paid,",
                "d.csv:2: amount: `-5` is not above zero",
            ),
            (
                "7,2025-06-10,five,paid,",
                "d.csv:2: amount: 'five' is not a number",
            ),
            (
                "7,2025-06-10,500,bounced,01",
                "d.csv:2: status: `bounced` is neither",
            ),
            (
                "7,2025-06-10,500,returned,",
                "d.csv:2: reason_code: ``: a returned debit needs",
            ),
            ("7,2025-06-10,500,returned,04;DROP", "d.csv:2: reason_code"),
            (
                "7,2025-06-10,500,paid,04",
                "d.csv:2: reason_code: `04`: a paid debit has no reason code",
            ),
            (
                "7,2025-06-10,500,paid,\n7,2025-06-10,500,returned,04",
                "d.csv:3: sip_id: SIP 7's debit due 2025-06-10 is already reported on line 2",
            ),
        ] {
            let text = if body == "x" {
                "sip,date\n".to_string()
            } else {
                format!("{header}\n{body}\n")
            };
            let err = parse_debit_report("d.csv", &text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{body:?}: {err}");
        }
        assert!(parse_debit_report("d.csv", "")
            .unwrap_err()
            .to_string()
            .contains("empty file"));
    }
}
