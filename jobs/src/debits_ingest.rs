//! `sipline debits ingest --input PATH_OR_URL --date D`: the bank's debit report
//! ([`pipeline::debits`] documents the CSV) into the `debit_failures` the run of `D` reads.
//!
//! `D` is the execution run that applies the report: ingest before `sip execute --date D`.
//! A returned debit of an instalment due in that run fails it on the day; one of an instalment
//! an earlier run allotted (returns come T+1 to T+3) is reversed by that run. Paid lines are
//! checked and counted, nothing more.
//!
//! The whole file is checked before anything is written: the format, then every line against
//! the warehouse — the SIP is in the `sips` snapshot the run uses, the instalment falls due on
//! that date (an executed or pending one is found in `investments`, else the mandate's
//! schedule), the amount is the instalment's, the due date is not after `D`. Every problem names
//! `file:line: field`. Then every bucket's `debit_failures` partition of `D` is replaced (a
//! bucket without returns gets an empty one), so a re-run with the same file writes the same
//! bytes and a corrected file replaces a wrong one. Once `sip execute` has run for `D`, a report
//! that differs from the one it used is refused (exit 6): give it the next run date.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::NaiveDate;
use pipeline::bucket::{bucket_of, BUCKETS};
use pipeline::debits::{parse_debit_report, DebitOutcome, DebitReportLine};
use pipeline::money::Paise;
use pipeline::sip::{DebitFailure, Investment, Mandate};
use warehouse::{Part, Table, Warehouse};

use crate::plumbing::exit::JobFailure;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct DebitsSummary {
    pub file: String,
    pub date: Option<NaiveDate>,
    pub lines: usize,
    pub paid: usize,
    pub returned: usize,
    /// Whether the partitions were already exactly this report.
    pub unchanged: bool,
}

impl fmt::Display for DebitsSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "debits ingest ok: file={} date={} lines={} paid={} returned={} {}",
            // A URL may carry a signed query or a token in its path.
            crate::plumbing::redact::urls(&self.file),
            self.date.map(|d| d.to_string()).unwrap_or_default(),
            self.lines,
            self.paid,
            self.returned,
            if self.unchanged {
                "unchanged"
            } else {
                "written"
            }
        )
    }
}

/// Checks and stores the debit report `text`, read from `file`, for the run of `date`.
pub async fn ingest(
    file: &str,
    text: &str,
    date: NaiveDate,
    warehouse: &Warehouse,
) -> anyhow::Result<DebitsSummary> {
    let lines = parse_debit_report(file, text)?;
    let bad = |line: &DebitReportLine, field: &str, problem: String| -> anyhow::Error {
        JobFailure::BadInput(format!("{file}:{}: {field}: {problem}", line.line)).into()
    };
    if let Some(line) = lines.iter().find(|l| l.due_date > date) {
        return Err(bad(
            line,
            "due_date",
            format!("{} is after the run date {date}", line.due_date),
        ));
    }

    let reported: HashSet<i64> = lines.iter().map(|l| l.sip_id).collect();
    let mandates = mandates_as_of(warehouse, date, &reported).await?;
    let mut reported_buckets: BTreeMap<u32, Vec<&DebitReportLine>> = BTreeMap::new();
    for line in &lines {
        let Some(mandate) = mandates.get(&line.sip_id) else {
            return Err(bad(
                line,
                "sip_id",
                format!(
                    "SIP {} is not in the `sips` snapshot as of {date}",
                    line.sip_id
                ),
            ));
        };
        reported_buckets
            .entry(bucket_of(mandate.user_id))
            .or_default()
            .push(line);
    }
    let attempted = instalments_attempted(warehouse, date, &reported_buckets).await?;
    for line in &lines {
        let mandate = &mandates[&line.sip_id];
        let expected = match attempted.get(&(line.sip_id, line.due_date)) {
            Some(amount) => *amount,
            None if mandate
                .due_dates(line.due_date, line.due_date)
                .contains(&line.due_date) =>
            {
                mandate.instalment_amount(line.due_date)
            }
            None => {
                return Err(bad(
                    line,
                    "due_date",
                    format!(
                        "no instalment of SIP {} falls due on {}",
                        line.sip_id, line.due_date
                    ),
                ))
            }
        };
        if line.amount != expected {
            return Err(bad(
                line,
                "amount",
                format!("{} is not the instalment's amount {expected}", line.amount),
            ));
        }
    }

    // Every bucket's partition, so a corrected report also clears a bucket it no longer names.
    let mut partitions: Vec<Vec<DebitFailure>> = vec![Vec::new(); BUCKETS as usize];
    for (bucket, reported) in &reported_buckets {
        let rows = &mut partitions[*bucket as usize];
        rows.extend(
            reported
                .iter()
                .filter(|l| l.outcome == DebitOutcome::Returned)
                .map(|l| DebitFailure {
                    sip_id: l.sip_id,
                    due_date: l.due_date,
                    reason: l.reason_code.clone(),
                }),
        );
        rows.sort_by_key(|f| (f.sip_id, f.due_date));
    }
    let mut unchanged = true;
    let mut executed = false;
    for (bucket, rows) in partitions.iter().enumerate() {
        let part = Part::dated_bucket(date, bucket as u32);
        let stored = warehouse.read_rows::<DebitFailure>(part).await?;
        unchanged &= stored.as_deref() == Some(rows.as_slice());
        executed |= warehouse.is_published(Table::Investments, part).await?;
    }
    if !unchanged {
        if executed {
            return Err(JobFailure::LaterDatesRan(format!(
                "`sip execute` already ran for {date} with another debit report: ingest {file} with the next run date (returns apply to instalments of any earlier date)"
            ))
            .into());
        }
        for (bucket, rows) in partitions.iter().enumerate() {
            warehouse
                .write_rows(Part::dated_bucket(date, bucket as u32), rows)
                .await?;
        }
    }
    let returned = lines
        .iter()
        .filter(|l| l.outcome == DebitOutcome::Returned)
        .count();
    Ok(DebitsSummary {
        file: file.to_string(),
        date: Some(date),
        lines: lines.len(),
        paid: lines.len() - returned,
        returned,
        unchanged,
    })
}

/// The mandates among `wanted` of the `sips` snapshot a run on `date` uses, by SIP. Every
/// bucket is read (a SIP's bucket is its user's, which the report does not carry), but only the
/// reported SIPs are kept: at millions of SIPs the snapshot would not fit in memory.
async fn mandates_as_of(
    warehouse: &Warehouse,
    date: NaiveDate,
    wanted: &HashSet<i64>,
) -> anyhow::Result<HashMap<i64, Mandate>> {
    let as_of = warehouse
        .sips_snapshot_on_or_before(date)
        .await?
        .ok_or_else(|| JobFailure::no_sips_snapshot(date))?;
    let mut mandates = HashMap::new();
    for bucket in 0..BUCKETS {
        let part = Part::dated_bucket(as_of, bucket);
        for mandate in warehouse
            .read_rows::<Mandate>(part)
            .await?
            .unwrap_or_default()
        {
            if wanted.contains(&mandate.sip_id) {
                mandates.insert(mandate.sip_id, mandate);
            }
        }
    }
    Ok(mandates)
}

/// The amounts of the reported instalments that runs before `date` recorded (executed,
/// pending, failed or reversed), from the buckets the report names and the dates since its
/// earliest due date.
async fn instalments_attempted(
    warehouse: &Warehouse,
    date: NaiveDate,
    reported: &BTreeMap<u32, Vec<&DebitReportLine>>,
) -> anyhow::Result<HashMap<(i64, NaiveDate), Paise>> {
    let mut out = HashMap::new();
    let Some(earliest) = reported.values().flatten().map(|l| l.due_date).min() else {
        return Ok(out);
    };
    let dates: Vec<NaiveDate> = warehouse
        .dates(Table::Investments)
        .await?
        .into_iter()
        .filter(|d| *d >= earliest && *d < date)
        .collect();
    for (bucket, lines) in reported {
        let keys: HashSet<(i64, NaiveDate)> =
            lines.iter().map(|l| (l.sip_id, l.due_date)).collect();
        for run in &dates {
            let rows = warehouse
                .read_rows::<Investment>(Part::dated_bucket(*run, *bucket))
                .await?
                .unwrap_or_default();
            for row in rows {
                if keys.contains(&(row.sip_id, row.due_date)) {
                    out.insert((row.sip_id, row.due_date), row.amount);
                }
            }
        }
    }
    Ok(out)
}
