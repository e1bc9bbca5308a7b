//! `GET /v1/users/{id}/statement?from=&to=&format=json|csv|pdf`: an account statement for any
//! period. Per scheme the units held and their value at the start (the day before `from`) and
//! the end (`to`), at the NAV of that day or the last before it; every transaction in between:
//! executed SIP instalments (and the bank's reversals of them), purchases, redemptions and
//! both legs of switches, with their charges (stamp duty, exit load, STT).
//!
//! Transactions come from the serving store's system of record (`investments`, whose whole
//! history is kept, and `orders`); units are summed and valued exactly (`rust_decimal`,
//! values rounded half up to the paisa), then `messages::statement` lays them out.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use messages::statement::{Holding, Statement, Transaction};
use pipeline::money::{Nav, Units};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery, Authed, UserRef};
use super::{json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route("/users/{user_id}/statement", get(statement))
}

/// A statement covers at most this many days (ten years and leap days).
const MAX_DAYS: i64 = 3_660;

/// Every transaction of user `$1` up to `$2`, oldest first: an instalment's latest state as of
/// `$2` (executed; reversed, as its allotment then its reversal), and executed orders (a
/// switch as its two legs).
const TRANSACTIONS: &str = "WITH inst AS ( \
       SELECT DISTINCT ON (sip_id, due_date) sip_id, due_date, exec_date, scheme_code, status, \
              amount, stamp_duty, nav_date, nav, units \
         FROM investments WHERE user_id = $1 AND exec_date <= $2 \
        ORDER BY sip_id, due_date, exec_date DESC), \
     tx AS ( \
       SELECT nav_date AS date, scheme_code, 'SIP instalment' AS description, amount, \
              stamp_duty AS charges, nav, units, 1 AS leg \
         FROM inst WHERE status IN ('executed', 'reversed') AND nav_date <= $2 \
       UNION ALL \
       SELECT exec_date, scheme_code, 'SIP instalment reversed by the bank', -amount, \
              -stamp_duty, nav, -units, 2 \
         FROM inst WHERE status = 'reversed' \
       UNION ALL \
       SELECT nav_date, scheme_code, \
              CASE kind WHEN 'purchase' THEN 'Purchase' WHEN 'redemption' THEN 'Redemption' \
                        ELSE 'Switch out' END, \
              CASE WHEN kind = 'purchase' THEN gross_amount ELSE -gross_amount END, \
              coalesce(stamp_duty, 0) + coalesce(exit_load, 0) + coalesce(stt, 0), \
              executed_nav, CASE WHEN kind = 'purchase' THEN executed_units ELSE -executed_units END, 3 \
         FROM orders WHERE user_id = $1 AND status = 'executed' AND nav_date <= $2 \
       UNION ALL \
       SELECT nav_date, target_scheme_code, 'Switch in', net_amount, coalesce(target_stamp_duty, 0), \
              target_nav, target_units, 4 \
         FROM orders WHERE user_id = $1 AND status = 'executed' AND kind = 'switch' \
          AND target_units IS NOT NULL AND nav_date <= $2) \
     SELECT tx.date, tx.scheme_code, coalesce(s.scheme_name, 'Scheme ' || tx.scheme_code) AS scheme_name, \
            tx.description, tx.amount::text AS amount, tx.charges::text AS charges, \
            sipline_nav_text(tx.nav) AS nav, tx.units::text AS units, coalesce(s.unit_decimals, 3) AS unit_decimals \
       FROM tx LEFT JOIN schemes s USING (scheme_code) \
      ORDER BY tx.date, tx.scheme_code, tx.leg, tx.description";

/// The NAV of each scheme `$1` on `$2` or the last day before it that has one.
const NAVS_ON: &str = "SELECT c.code AS scheme_code, sipline_nav_text(n.nav) AS nav \
     FROM unnest($1::bigint[]) AS c(code) \
     LEFT JOIN LATERAL (SELECT nav FROM navs WHERE scheme_code = c.code AND nav_date <= $2 \
                        ORDER BY nav_date DESC LIMIT 1) n ON true";

#[derive(Deserialize)]
struct StatementQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    format: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TransactionRow {
    date: NaiveDate,
    scheme_code: i64,
    scheme_name: String,
    description: String,
    amount: String,
    charges: String,
    nav: Option<String>,
    units: String,
    unit_decimals: i32,
}

#[derive(Serialize)]
struct HoldingJson<'a> {
    scheme_code: i64,
    scheme_name: &'a str,
    opening_units: &'a str,
    opening_nav: Option<&'a str>,
    opening_value: &'a str,
    closing_units: &'a str,
    closing_nav: Option<&'a str>,
    closing_value: &'a str,
}

#[derive(Serialize)]
struct TransactionJson<'a> {
    date: NaiveDate,
    scheme_code: i64,
    scheme_name: &'a str,
    description: &'a str,
    amount: &'a str,
    charges: &'a str,
    nav: Option<&'a str>,
    units: &'a str,
}

#[derive(Serialize)]
struct StatementJson<'a> {
    user_id: i64,
    from: NaiveDate,
    to: NaiveDate,
    opening_value: &'a str,
    closing_value: &'a str,
    charges: &'a str,
    holdings: Vec<HoldingJson<'a>>,
    transactions: Vec<TransactionJson<'a>>,
}

fn decimal(text: &str) -> Result<Decimal, Problem> {
    Decimal::from_str(text).map_err(|e| {
        tracing::error!(error = %e, text, "a statement figure does not read back");
        Problem::internal()
    })
}

/// Units × NAV to the paisa, half up, by the one rule every value in sipline is rounded with
/// (`pipeline::money`): units at four decimals, the NAV at eight, the product in 10^-12 rupees.
fn value(units: Decimal, nav: Option<&str>) -> Result<Decimal, Problem> {
    let Some(nav) = nav else {
        return Ok(Decimal::ZERO);
    };
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, what, "a statement figure does not read back");
        Problem::internal()
    };
    let units = pipeline::money::parse_scaled(&units.normalize().to_string(), Units::SCALE)
        .map_err(|e| unreadable("units", &e))?;
    let nav = Nav::from_str(nav).map_err(|e| unreadable("nav", &e))?;
    // 10^-12 rupees to paise.
    let paise = pipeline::money::div_round_half_up(
        pipeline::money::cost_e12(Units(units), nav),
        10_i128.pow(10),
    );
    let paise = i64::try_from(paise).map_err(|e| unreadable("value", &e))?;
    Ok(Decimal::new(paise, 2))
}

fn money(d: Decimal) -> String {
    format!(
        "{:.2}",
        d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
    )
}

async fn navs_on(
    state: &Shared,
    codes: &[i64],
    date: NaiveDate,
) -> Result<BTreeMap<i64, Option<String>>, Problem> {
    let rows: Vec<(i64, Option<String>)> = timed(
        state,
        state.read_published(None, |pool| {
            sqlx::query_as(NAVS_ON)
                .bind(codes)
                .bind(date)
                .fetch_all(pool)
        }),
    )
    .await?;
    Ok(rows.into_iter().collect())
}

async fn statement(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let (Some(from), Some(to)) = (query.from, query.to) else {
        return Err(Problem::bad_request("from and to: required dates"));
    };
    if to < from || (to - from).num_days() > MAX_DAYS {
        return Err(Problem::bad_request(format!(
            "from must not be after to, and the period at most {MAX_DAYS} days"
        )));
    }
    let format = query.format.as_deref().unwrap_or("json");
    if !["json", "csv", "pdf"].contains(&format) {
        return Err(Problem::bad_request("format is json, csv or pdf"));
    }
    let Some(day_before) = from.pred_opt() else {
        return Err(Problem::bad_request("from: too early"));
    };
    let rows: Vec<TransactionRow> = timed(
        &state,
        state.read_published(Some(user_id), |pool| {
            sqlx::query_as(TRANSACTIONS)
                .bind(user_id)
                .bind(to)
                .fetch_all(pool)
        }),
    )
    .await?;
    // Units per scheme before the period and at its end; the decimals each scheme shows.
    let mut opening: BTreeMap<i64, Decimal> = BTreeMap::new();
    let mut closing: BTreeMap<i64, Decimal> = BTreeMap::new();
    let mut names: BTreeMap<i64, (String, u32)> = BTreeMap::new();
    let mut transactions = Vec::new();
    let mut charges = Decimal::ZERO;
    for row in rows {
        let units = decimal(&row.units)?;
        names.entry(row.scheme_code).or_insert_with(|| {
            (
                row.scheme_name.clone(),
                u32::try_from(row.unit_decimals).unwrap_or(3),
            )
        });
        *closing.entry(row.scheme_code).or_default() += units;
        if row.date < from {
            *opening.entry(row.scheme_code).or_default() += units;
            continue;
        }
        charges += decimal(&row.charges)?;
        let decimals = names.get(&row.scheme_code).map_or(3, |n| n.1);
        transactions.push(Transaction {
            date: row.date,
            scheme_code: row.scheme_code,
            scheme_name: row.scheme_name,
            description: row.description,
            amount: row.amount,
            charges: row.charges,
            nav: row.nav,
            units: format!("{:.*}", decimals as usize, units),
        });
    }
    let codes: Vec<i64> = closing.keys().copied().collect();
    let opening_navs = navs_on(&state, &codes, day_before).await?;
    let closing_navs = navs_on(&state, &codes, to).await?;
    let mut holdings = Vec::new();
    let (mut opening_total, mut closing_total) = (Decimal::ZERO, Decimal::ZERO);
    for code in codes {
        let (name, decimals) = names.get(&code).cloned().unwrap_or_default();
        let start = opening.get(&code).copied().unwrap_or_default();
        let end = closing.get(&code).copied().unwrap_or_default();
        if start.is_zero() && end.is_zero() && !transactions.iter().any(|t| t.scheme_code == code) {
            continue;
        }
        let opening_nav = opening_navs.get(&code).cloned().flatten();
        let closing_nav = closing_navs.get(&code).cloned().flatten();
        let start_value = value(start, opening_nav.as_deref())?;
        let end_value = value(end, closing_nav.as_deref())?;
        opening_total += start_value;
        closing_total += end_value;
        holdings.push(Holding {
            scheme_code: code,
            scheme_name: name,
            opening_units: format!("{:.*}", decimals as usize, start),
            opening_nav,
            opening_value: money(start_value),
            closing_units: format!("{:.*}", decimals as usize, end),
            closing_nav,
            closing_value: money(end_value),
        });
    }
    let statement = Statement {
        user_id,
        from,
        to,
        holdings,
        transactions,
        opening_value: money(opening_total),
        closing_value: money(closing_total),
        charges: money(charges),
    };
    let attachment = |extension: &str, content_type: &'static str, body: Vec<u8>| {
        let mut response = body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&format!(
            "attachment; filename=\"statement-{from}-{to}.{extension}\""
        )) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
        response
    };
    Ok(match format {
        "csv" => attachment(
            "csv",
            "text/csv; charset=utf-8",
            messages::statement::to_csv(&statement).into_bytes(),
        ),
        "pdf" => attachment(
            "pdf",
            "application/pdf",
            messages::statement::to_pdf(&statement, state.clock.today_ist()),
        ),
        _ => json_value(&StatementJson {
            user_id,
            from,
            to,
            opening_value: &statement.opening_value,
            closing_value: &statement.closing_value,
            charges: &statement.charges,
            holdings: statement
                .holdings
                .iter()
                .map(|h| HoldingJson {
                    scheme_code: h.scheme_code,
                    scheme_name: &h.scheme_name,
                    opening_units: &h.opening_units,
                    opening_nav: h.opening_nav.as_deref(),
                    opening_value: &h.opening_value,
                    closing_units: &h.closing_units,
                    closing_nav: h.closing_nav.as_deref(),
                    closing_value: &h.closing_value,
                })
                .collect(),
            transactions: statement
                .transactions
                .iter()
                .map(|t| TransactionJson {
                    date: t.date,
                    scheme_code: t.scheme_code,
                    scheme_name: &t.scheme_name,
                    description: &t.description,
                    amount: &t.amount,
                    charges: &t.charges,
                    nav: t.nav.as_deref(),
                    units: &t.units,
                })
                .collect(),
        }),
    })
}
