//! `sipline schemes rules --input FILE`: the allotment rules AMFI's files do not carry. Most
//! schemes allot units to 3 decimals, some (liquid and overnight funds at several AMCs) to 4;
//! the registrar's rule for a scheme is set here and kept by every later NAV ingest.
//!
//! The file is CSV with the header `scheme_code,unit_decimals`, or with the order terms too
//! (issue 36): `scheme_code,unit_decimals,exit_load,tax_class,payout_days,min_redemption`,
//! where an empty field keeps the category's default — `exit_load` a schedule `365:100;730:50`
//! (days held at most : basis points, ascending), `tax_class` `equity`/`debt`/`other`,
//! `payout_days` 1–3, `min_redemption` rupees. It is checked whole before anything is written
//! (`file:line: field: problem`), so a bad file changes nothing; the warehouse `schemes` table
//! is then replaced in one put, and PostgreSQL's in one transaction. Order terms live in
//! PostgreSQL only (where `orders execute` and the API read them), so a file with them needs
//! `--database-url`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use pipeline::money::parse_scaled;
use pipeline::nav::SchemeRow;
use pipeline::orders::{ExitLoad, TaxClass};
use sqlx::PgPool;
use warehouse::{Part, Warehouse};

use crate::plumbing::exit::JobFailure;

pub const HEADER: &str = "scheme_code,unit_decimals";
/// The header with the order terms.
pub const HEADER_WITH_TERMS: &str =
    "scheme_code,unit_decimals,exit_load,tax_class,payout_days,min_redemption";

/// One line of a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeRule {
    pub scheme_code: i64,
    pub unit_decimals: i32,
    /// Present when the file has the order-terms columns.
    pub terms: Option<OrderTerms>,
}

/// A scheme's order terms; `None` fields keep the category's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderTerms {
    /// The schedule as written, checked by `ExitLoad::parse`.
    pub exit_load: Option<String>,
    pub tax_class: Option<TaxClass>,
    pub payout_days: Option<i32>,
    /// Paise.
    pub min_redemption: Option<i64>,
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
    let with_terms = match lines.next() {
        Some((_, header)) if header.trim().trim_start_matches('\u{feff}') == HEADER => false,
        Some((_, header)) if header.trim().trim_start_matches('\u{feff}') == HEADER_WITH_TERMS => {
            true
        }
        Some((n, header)) => {
            return Err(bad(
                n,
                "header",
                format!(
                    "expected `{HEADER}` or `{HEADER_WITH_TERMS}`, found `{}`",
                    header.trim()
                ),
            ))
        }
        None => return Err(bad(1, "header", format!("empty file, expected `{HEADER}`"))),
    };
    let width = if with_terms { 6 } else { 2 };
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut rules = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != width {
            return Err(bad(
                n,
                "line",
                format!("expected {width} fields, found {}", fields.len()),
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
        let terms = if with_terms {
            let exit_load = match fields[2] {
                "" => None,
                text => {
                    ExitLoad::parse(text).map_err(|e| bad(n, "exit_load", e))?;
                    Some(text.to_string())
                }
            };
            let tax_class = match fields[3] {
                "" => None,
                text => Some(TaxClass::parse(text).ok_or_else(|| {
                    bad(
                        n,
                        "tax_class",
                        format!("`{text}` is not equity, debt or other"),
                    )
                })?),
            };
            let payout_days = match fields[4] {
                "" => None,
                text => Some(
                    text.parse::<i32>()
                        .ok()
                        .filter(|d| (1..=3).contains(d))
                        .ok_or_else(|| {
                            bad(
                                n,
                                "payout_days",
                                format!("`{text}` is not 1, 2 or 3 (SEBI's limit)"),
                            )
                        })?,
                ),
            };
            let min_redemption =
                match fields[5] {
                    "" => None,
                    text => Some(parse_scaled(text, 2).ok().filter(|p| *p > 0).ok_or_else(
                        || {
                            bad(
                                n,
                                "min_redemption",
                                format!("`{text}` is not an amount above zero"),
                            )
                        },
                    )?),
                };
            Some(OrderTerms {
                exit_load,
                tax_class,
                payout_days,
                min_redemption,
            })
        } else {
            None
        };
        rules.push(SchemeRule {
            scheme_code,
            unit_decimals,
            terms,
        });
    }
    Ok(rules)
}

const UPDATE_UNIT_DECIMALS: &str = "UPDATE schemes s SET unit_decimals = r.unit_decimals \
     FROM unnest($1::bigint[], $2::integer[]) AS r(scheme_code, unit_decimals) \
     WHERE s.scheme_code = r.scheme_code AND s.unit_decimals <> r.unit_decimals";

const UPDATE_ORDER_TERMS: &str = "UPDATE schemes s SET exit_load = r.exit_load, \
       tax_class = r.tax_class, payout_days = r.payout_days, \
       min_redemption = r.min_redemption::numeric / 100 \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::bigint[]) \
       AS r(scheme_code, exit_load, tax_class, payout_days, min_redemption) \
     WHERE s.scheme_code = r.scheme_code";

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
    let with_terms: Vec<(i64, &OrderTerms)> = rules
        .iter()
        .filter_map(|r| r.terms.as_ref().map(|t| (r.scheme_code, t)))
        .collect();
    // Refused before anything is written: a bad run changes nothing.
    if database.is_none() && !with_terms.is_empty() {
        return Err(JobFailure::BadInput(format!(
            "{file}: order terms are kept in PostgreSQL: give --database-url"
        ))
        .into());
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
            let mut tx = pool.begin().await?;
            let mut changed = sqlx::query(UPDATE_UNIT_DECIMALS)
                .bind(codes)
                .bind(decimals)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if !with_terms.is_empty() {
                changed += sqlx::query(UPDATE_ORDER_TERMS)
                    .bind(with_terms.iter().map(|(c, _)| *c).collect::<Vec<_>>())
                    .bind(
                        with_terms
                            .iter()
                            .map(|(_, t)| t.exit_load.clone())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        with_terms
                            .iter()
                            .map(|(_, t)| t.tax_class.map(TaxClass::as_str))
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        with_terms
                            .iter()
                            .map(|(_, t)| t.payout_days)
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        with_terms
                            .iter()
                            .map(|(_, t)| t.min_redemption)
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Some(changed)
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
                    unit_decimals: 4,
                    terms: None,
                },
                SchemeRule {
                    scheme_code: 120001,
                    unit_decimals: 3,
                    terms: None,
                }
            ]
        );
        let with_terms = parse_rules(
            "r.csv",
            &format!(
                "{HEADER_WITH_TERMS}\n119551,3,30:50;365:100,equity,2,500\n120001,4,,debt,,\n"
            ),
        )
        .unwrap();
        assert_eq!(
            with_terms[0].terms,
            Some(OrderTerms {
                exit_load: Some("30:50;365:100".into()),
                tax_class: Some(TaxClass::Equity),
                payout_days: Some(2),
                min_redemption: Some(50_000),
            })
        );
        assert_eq!(
            with_terms[1].terms,
            Some(OrderTerms {
                tax_class: Some(TaxClass::Debt),
                ..OrderTerms::default()
            })
        );
        for (line, expected) in [
            (
                "1,3,365,,,",
                "r.csv:2: exit_load: `365`: expected days:basis_points",
            ),
            (
                "1,3,,shares,,",
                "r.csv:2: tax_class: `shares` is not equity, debt or other",
            ),
            ("1,3,,,4,", "r.csv:2: payout_days: `4` is not 1, 2 or 3"),
            (
                "1,3,,,,0",
                "r.csv:2: min_redemption: `0` is not an amount above zero",
            ),
            ("1,3,,,", "r.csv:2: line: expected 6 fields, found 5"),
        ] {
            let err = parse_rules("r.csv", &format!("{HEADER_WITH_TERMS}\n{line}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{line:?}: {err}");
        }
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
