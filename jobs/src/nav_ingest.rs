//! `sipline nav ingest`: a NAV file (path or URL) into the warehouse's `schemes` and `navs`
//! tables and, when a database is configured, into PostgreSQL.
//!
//! The whole file is read and checked before anything is written, so a bad file leaves every
//! partition as it was. Each affected `nav_date=` partition is then merged with what it held
//! (a daily file also carries stale NAVs of earlier dates, which must not wipe those days) and
//! rewritten with one atomic put; an unchanged partition is not rewritten at all.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::BufRead;

use anyhow::Context;
use chrono::NaiveDate;
use pipeline::nav::collect::{merge_navs, merge_schemes, IsinIndex, NavFormat};
use pipeline::nav::{NavRow, SchemeRow};
use sqlx::PgPool;
use warehouse::{Part, Warehouse};

use crate::plumbing::exit::JobFailure;
use crate::plumbing::fetch::{self, RetryPolicy};
use crate::plumbing::postgres;

/// The file formats `--source` names.
/// An input ready to read: its name for messages, and its bytes.
pub struct NavInput {
    pub name: String,
    pub reader: Box<dyn BufRead + Send>,
    /// Keeps a downloaded file alive until it has been read.
    _download: Option<tempfile::NamedTempFile>,
}

impl NavInput {
    pub fn from_reader(name: impl Into<String>, reader: Box<dyn BufRead + Send>) -> Self {
        Self {
            name: name.into(),
            reader,
            _download: None,
        }
    }

    /// Opens a local path, or downloads an `http(s)://` URL first.
    pub async fn open(location: &str, retry: RetryPolicy) -> anyhow::Result<Self> {
        if location.starts_with("http://") || location.starts_with("https://") {
            let download = fetch::download(location, retry).await?;
            let file = download
                .reopen()
                .with_context(|| format!("reopening the download of {location}"))?;
            Ok(Self {
                name: location.to_string(),
                reader: Box::new(std::io::BufReader::new(file)),
                _download: Some(download),
            })
        } else {
            let file = std::fs::File::open(location)
                .map_err(|e| JobFailure::BadInput(format!("{location}: {e}")))?;
            Ok(Self::from_reader(
                location,
                Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
            ))
        }
    }
}

/// What an ingest did, for the log line and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    pub file: String,
    pub navs: usize,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    pub dates: usize,
    pub schemes_in_file: usize,
    pub set_aside: usize,
    pub duplicates: u64,
    pub partitions_written: usize,
    pub partitions_unchanged: usize,
    pub schemes_written: bool,
    pub database_rows_changed: Option<u64>,
    /// The expected day's publishers against the previous NAV date's.
    pub publishers: Option<Publishers>,
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let range = match (self.first_date, self.last_date) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".to_string(),
        };
        write!(
            f,
            "nav ingest ok: file={} navs={} dates={} ({range}) schemes={} set_aside={} duplicates={} partitions_written={} unchanged={} schemes_table={}",
            // A URL may carry a signed query or a token in its path.
            crate::plumbing::redact::urls(&self.file),
            self.navs,
            self.dates,
            self.schemes_in_file,
            self.set_aside,
            self.duplicates,
            self.partitions_written,
            self.partitions_unchanged,
            if self.schemes_written { "written" } else { "unchanged" },
        )?;
        if let Some(p) = self.publishers {
            write!(
                f,
                " open_ended_publishers={} previous={} ({})",
                p.today, p.previous, p.previous_date
            )?;
        }
        if let Some(rows) = self.database_rows_changed {
            write!(f, " postgres_rows_changed={rows}")?;
        }
        Ok(())
    }
}

/// By default, the day's file is complete when at least this share of the open-ended schemes
/// that have a NAV for the previous NAV date have one for the day. On AMFI's real file of
/// 16 May 2025, 7,187 open-ended schemes carry that day's NAV and 467 (funds of funds,
/// overseas funds) still the day before's: 94% of the previous day's publishers.
pub const MIN_PUBLISHER_SHARE: f64 = 0.85;

/// The day a daily ingest is for, and how complete its file must be.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedDay {
    pub date: NaiveDate,
    /// See [`MIN_PUBLISHER_SHARE`]; 0 accepts any file holding a NAV dated `date`.
    pub min_publisher_share: f64,
}

/// How many open-ended schemes published the expected day, against the previous NAV date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publishers {
    pub today: usize,
    pub previous_date: NaiveDate,
    pub previous: usize,
}

/// Runs the ingest. With `expected`, the file must hold NAVs dated that day for enough of the
/// open-ended schemes that published the previous NAV date; otherwise it is not yet the
/// day's complete file (exit 4, nothing written).
pub async fn ingest(
    format: NavFormat,
    input: NavInput,
    expected: Option<ExpectedDay>,
    warehouse: &Warehouse,
    database: Option<&PgPool>,
) -> anyhow::Result<IngestSummary> {
    let existing_schemes = warehouse
        .read_rows::<SchemeRow>(Part::WHOLE)
        .await?
        .unwrap_or_default();
    let isins = IsinIndex::new(&existing_schemes);
    if format == NavFormat::Bse && isins.is_empty() {
        return Err(JobFailure::MissingUpstream(
            "BSE NAVs are matched to AMFI schemes by ISIN, and the warehouse has no scheme master yet: ingest an AMFI file first".into(),
        )
        .into());
    }
    let file = input.name.clone();
    // Parsing is CPU-bound and reads a blocking file: keep it off the async workers.
    let collector =
        tokio::task::spawn_blocking(move || format.collect(&input.name, input.reader, &isins))
            .await??;
    for row in &collector.set_aside {
        tracing::warn!(file = %crate::plumbing::redact::urls(&file), line = row.line, scheme = %row.scheme, reason = %row.reason, "row set aside");
    }
    if let Some(expected) = expected {
        if !collector.dates().any(|d| d == expected.date) {
            return Err(JobFailure::NoNavDatedYet(format!(
                "{file} holds no NAV dated {}: the file for that day is not published yet, or {} is a market holiday (the next business day's file settles which)",
                expected.date, expected.date
            ))
            .into());
        }
    }

    let by_date = collector.navs_by_date();
    let merged_schemes = merge_schemes(&existing_schemes, collector.schemes());
    let publishers = match expected {
        None => None,
        Some(expected) => {
            let publishers =
                count_publishers(warehouse, &merged_schemes, &by_date, expected.date).await?;
            if let Some(p) = publishers {
                tracing::info!(date = %expected.date, today = p.today, previous_date = %p.previous_date, previous = p.previous, "open-ended schemes with a NAV");
                if (p.today as f64) < expected.min_publisher_share * p.previous as f64 {
                    return Err(JobFailure::MissingUpstream(format!(
                        "{file}: only {} open-ended schemes have a NAV dated {}, fewer than {:.0}% of the {} that published {}: the day's NAVs are not all out yet (nothing written)",
                        p.today,
                        expected.date,
                        expected.min_publisher_share * 100.0,
                        p.previous,
                        p.previous_date
                    ))
                    .into());
                }
            }
            publishers
        }
    };
    let (mut written, mut unchanged) = (0, 0);
    for (date, incoming) in &by_date {
        let existing = warehouse
            .read_rows::<NavRow>(Part::date(*date))
            .await?
            .unwrap_or_default();
        let merged = merge_navs(&existing, incoming);
        if merged == existing {
            unchanged += 1;
            continue;
        }
        warehouse.write_rows(Part::date(*date), &merged).await?;
        written += 1;
    }
    let schemes_written = merged_schemes != existing_schemes;
    if schemes_written {
        warehouse.write_rows(Part::WHOLE, &merged_schemes).await?;
    }

    let database_rows_changed = match database {
        None => None,
        Some(pool) => {
            let incoming_codes: BTreeSet<i64> =
                collector.schemes().map(|s| s.scheme_code).collect();
            let schemes: Vec<SchemeRow> = merged_schemes
                .into_iter()
                .filter(|s| incoming_codes.contains(&s.scheme.scheme_code))
                .collect();
            let navs: Vec<(NaiveDate, NavRow)> = by_date
                .iter()
                .flat_map(|(d, rows)| rows.iter().map(|r| (*d, *r)))
                .collect();
            let changed_schemes = postgres::upsert_schemes(pool, &schemes)
                .await
                .context("upserting schemes into PostgreSQL")?;
            let changed_navs = postgres::upsert_navs(pool, &navs)
                .await
                .context("upserting NAVs into PostgreSQL")?;
            Some(changed_schemes + changed_navs)
        }
    };

    let dates: Vec<NaiveDate> = by_date.keys().copied().collect();
    Ok(IngestSummary {
        file,
        navs: collector.nav_count(),
        first_date: dates.first().copied(),
        last_date: dates.last().copied(),
        dates: dates.len(),
        schemes_in_file: collector.schemes().count(),
        set_aside: collector.set_aside.len(),
        duplicates: collector.duplicates,
        partitions_written: written,
        partitions_unchanged: unchanged,
        schemes_written,
        database_rows_changed,
        publishers,
    })
}

/// Open-ended schemes with a NAV dated `date`, and with one dated the NAV date before it,
/// each counted over what the warehouse holds plus this file. `None` without an earlier date.
async fn count_publishers(
    warehouse: &Warehouse,
    schemes: &[SchemeRow],
    incoming: &BTreeMap<NaiveDate, Vec<NavRow>>,
    date: NaiveDate,
) -> anyhow::Result<Option<Publishers>> {
    let open: HashSet<i64> = schemes
        .iter()
        .filter(|s| s.scheme.is_open_ended())
        .map(|s| s.scheme.scheme_code)
        .collect();
    let previous_date = warehouse
        .dates(warehouse::Table::Navs)
        .await?
        .into_iter()
        .chain(incoming.keys().copied())
        .filter(|d| *d < date)
        .max();
    let Some(previous_date) = previous_date else {
        return Ok(None);
    };
    let mut counts = [0; 2];
    for (slot, day) in [date, previous_date].into_iter().enumerate() {
        let existing = warehouse
            .read_rows::<NavRow>(Part::date(day))
            .await?
            .unwrap_or_default();
        let merged = match incoming.get(&day) {
            Some(rows) => merge_navs(&existing, rows),
            None => existing,
        };
        counts[slot] = merged
            .iter()
            .filter(|n| open.contains(&n.scheme_code))
            .count();
    }
    Ok(Some(Publishers {
        today: counts[0],
        previous_date,
        previous: counts[1],
    }))
}
