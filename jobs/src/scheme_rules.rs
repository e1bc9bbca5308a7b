//! `sipline schemes rules --input FILE`: the allotment rules AMFI's files do not carry. Most
//! schemes allot units to 3 decimals, some (liquid and overnight funds at several AMCs) to 4;
//! the registrar's rule for a scheme is set here and kept by every later NAV ingest.
//!
//! The file is CSV with the header `scheme_code,unit_decimals`. It is checked whole before
//! anything is written (`file:line: field: problem`), so a bad file changes nothing; the
//! warehouse `schemes` table is then replaced in one put, and PostgreSQL's in one transaction.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use pipeline::nav::SchemeRow;
use sqlx::PgPool;
use warehouse::{Part, Warehouse};

use crate::plumbing::exit::JobFailure;

pub const HEADER: &str = "scheme_code,unit_decimals";

/// One line of a rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeRule {
    pub scheme_code: i64,
    pub unit_decimals: i32,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct RulesSummary {
    pub rules: usize,
    pub changed: usize,
    pub database_rows_changed: Option<u64>,
}

impl fmt::Display for RulesSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schemes rules ok: rules={} changed={}",
            self.rules, self.changed
        )?;
        if let Some(rows) = self.database_rows_changed {
            write!(f, " postgres_rows_changed={rows}")?;
        }
        Ok(())
    }
}

/// Parses a rules file; every problem names the file, the line and the field.
pub fn parse_rules(file: &str, text: &str) -> Result<Vec<SchemeRule>, JobFailure> {
    let bad = |line: usize, field: &str, problem: String| {
        JobFailure::BadInput(format!("{file}:{line}: {field}: {problem}"))
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header)) if header.trim().trim_start_matches('\u{feff}') == HEADER => {}
        Some((n, header)) => {
            return Err(bad(
                n,
                "header",
                format!("expected `{HEADER}`, found `{}`", header.trim()),
            ))
        }
        None => return Err(bad(1, "header", format!("empty file, expected `{HEADER}`"))),
    }
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut rules = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            return Err(bad(
                n,
                "line",
                format!("expected 2 fields, found {}", fields.len()),
            ));
        }
        let scheme_code: i64 = fields[0].parse().ok().filter(|c| *c > 0).ok_or_else(|| {
            bad(
                n,
                "scheme_code",
                format!("`{}` is not a positive integer", fields[0]),
            )
        })?;
        let unit_decimals: i32 = fields[1]
            .parse()
            .ok()
            .filter(|d| (0..=4).contains(d))
            .ok_or_else(|| {
                bad(
                    n,
                    "unit_decimals",
                    format!("`{}` is not a whole number from 0 to 4", fields[1]),
                )
            })?;
        if let Some(first) = seen.insert(scheme_code, n) {
            return Err(bad(
                n,
                "scheme_code",
                format!("{scheme_code} is already set on line {first}"),
            ));
        }
        rules.push(SchemeRule {
            scheme_code,
            unit_decimals,
        });
    }
    Ok(rules)
}

const UPDATE_UNIT_DECIMALS: &str = "UPDATE schemes s SET unit_decimals = r.unit_decimals \
     FROM unnest($1::bigint[], $2::integer[]) AS r(scheme_code, unit_decimals) \
     WHERE s.scheme_code = r.scheme_code AND s.unit_decimals <> r.unit_decimals";

/// Applies checked rules: every scheme must be in the warehouse's scheme master.
pub async fn apply(
    file: &str,
    rules: &[SchemeRule],
    warehouse: &Warehouse,
    database: Option<&PgPool>,
) -> anyhow::Result<RulesSummary> {
    let schemes = warehouse
        .read_rows::<SchemeRow>(Part::WHOLE)
        .await?
        .ok_or_else(|| {
            JobFailure::MissingUpstream("no `schemes` table: ingest an AMFI file first".into())
        })?;
    let mut by_code: BTreeMap<i64, SchemeRow> = schemes
        .iter()
        .map(|s| (s.scheme.scheme_code, s.clone()))
        .collect();
    let mut changed = 0;
    for rule in rules {
        let Some(row) = by_code.get_mut(&rule.scheme_code) else {
            return Err(JobFailure::BadInput(format!(
                "{file}: scheme_code: {} is not in the scheme master",
                rule.scheme_code
            ))
            .into());
        };
        if row.unit_decimals != rule.unit_decimals {
            row.unit_decimals = rule.unit_decimals;
            changed += 1;
        }
    }
    if changed > 0 {
        let rows: Vec<SchemeRow> = by_code.into_values().collect();
        warehouse.write_rows(Part::WHOLE, &rows).await?;
    }
    let database_rows_changed = match database {
        None => None,
        Some(pool) => {
            let codes: Vec<i64> = rules.iter().map(|r| r.scheme_code).collect();
            let decimals: Vec<i32> = rules.iter().map(|r| r.unit_decimals).collect();
            Some(
                sqlx::query(UPDATE_UNIT_DECIMALS)
                    .bind(codes)
                    .bind(decimals)
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        }
    };
    Ok(RulesSummary {
        rules: rules.len(),
        changed,
        database_rows_changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_file_is_read_whole_and_every_problem_names_its_line_and_field() {
        let ok = parse_rules(
            "r.csv",
            "scheme_code,unit_decimals\n119551,4\n\n120001, 3\n",
        )
        .unwrap();
        assert_eq!(
            ok,
            vec![
                SchemeRule {
                    scheme_code: 119551,
                    unit_decimals: 4
                },
                SchemeRule {
                    scheme_code: 120001,
                    unit_decimals: 3
                }
            ]
        );
        for (text, expected) in [
            ("code,decimals\n1,4\n", "r.csv:1: header: expected"),
            ("", "r.csv:1: header: empty file"),
            (
                "scheme_code,unit_decimals\n1,4\nx,3\n",
                "r.csv:3: scheme_code: `x` is not a positive integer",
            ),
            (
                "scheme_code,unit_decimals\n1,5\n",
                "r.csv:2: unit_decimals: `5` is not a whole number from 0 to 4",
            ),
            (
                "scheme_code,unit_decimals\n1,4,9\n",
                "r.csv:2: line: expected 2 fields, found 3",
            ),
            (
                "scheme_code,unit_decimals\n7,4\n7,3\n",
                "r.csv:3: scheme_code: 7 is already set on line 2",
            ),
        ] {
            let err = parse_rules("r.csv", text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
