//! Orders other than SIP instalments (issue 36): place a lumpsum purchase, a redemption (by
//! amount, by units, or everything held) or a switch to another scheme of the same fund house;
//! list them with their state; cancel one until its cut-off; and the capital-gains statement of
//! a financial year, as JSON or as the CSV a person hands a tax preparer.
//!
//! An order gets the NAV date SEBI's cut-off rule gives at the instant it is received (the
//! API's clock; `pipeline::orders::applicable_nav_date`), fixed then and shown at once with the
//! instant until which it can be cancelled, and the date whose nightly run executes it
//! (`executes_on`: the NAV date, or a liquid purchase's next day). `orders execute --date D`
//! executes the orders due by D and writes the outcome back here.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pipeline::money::{Nav, Paise, Units};
use pipeline::orders::lots::{RealizedLot, Term};
use pipeline::orders::statement::{capital_gains_csv, totals, GainsRow};
use pipeline::orders::{
    applicable_nav_date, NavRule, OrderKind, OrderStatus, Side, TaxClass, CUT_OFF, LIQUID_CUT_OFF,
};

use super::extract::{locked_count, ApiJson, ApiPath, ApiQuery, Authed, UserRef};
use super::idempotency::{claim_or_replay, idempotency_key, store_response};
use super::sips::decimal;
use super::{json_body, json_value, next_cursor, timed, IdPage};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/users/{user_id}/orders",
            get(list_orders).post(place_order),
        )
        .route("/users/{user_id}/orders/{order_id}", get(order_detail))
        .route(
            "/users/{user_id}/orders/{order_id}/cancel",
            post(cancel_order),
        )
        .route("/users/{user_id}/capital-gains", get(capital_gains))
}

/// Orders one user may have waiting for execution: each is work for the next batch.
const MAX_OPEN_ORDERS: i64 = 20;
/// The platform's ceiling on one order: ₹1 crore, as for a SIP instalment.
pub(super) const MAX_ORDER_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 2);

const OPEN_ORDERS: &str = "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'received'";

const ORDER_COLUMNS: &str = "order_id, user_id, kind, scheme_code, target_scheme_code, \
     amount::text AS amount, units::text AS units, redeem_all, status, received_at, nav_date, \
     cancel_before, sipline_nav_text(executed_nav) AS executed_nav, \
     executed_units::text AS executed_units, gross_amount::text AS gross_amount, \
     stamp_duty::text AS stamp_duty, exit_load::text AS exit_load, stt::text AS stt, \
     net_amount::text AS net_amount, realised_gain::text AS realised_gain, payout_date, \
     sipline_nav_text(target_nav) AS target_nav, target_units::text AS target_units, \
     target_stamp_duty::text AS target_stamp_duty, failure, plan_id, plan_due_date";

/// What an order needs to know of a scheme.
pub(super) const SCHEME_ORDER_RULES: &str = "SELECT sipline_open_ended(scheme_type) AS open, \
            coalesce(category, '') AS category, fund_house, min_redemption::text AS min_redemption, \
            unit_decimals \
     FROM schemes WHERE scheme_code = $1";

/// Units of the scheme the latest publication shows held, less those that orders already
/// waiting will take (by units; by amount at the latest NAV; everything: all of it), and the
/// latest NAV. A redemption is checked against this when placed, and again at execution.
const AVAILABLE_UNITS: &str = "WITH held AS ( \
       SELECT coalesce(sum(units), 0) AS units, max(nav) AS nav \
       FROM portfolio_lines_latest WHERE user_id = $1 AND scheme_code = $2), \
     waiting AS ( \
       SELECT bool_or(redeem_all) AS all_taken, \
              coalesce(sum(coalesce(o.units, o.amount / nullif(h.nav, 0))), 0) AS units \
       FROM orders o, held h \
       WHERE o.user_id = $1 AND o.scheme_code = $2 AND o.status = 'received' \
         AND o.kind IN ('redemption', 'switch')) \
     SELECT CASE WHEN coalesce(w.all_taken, false) THEN 0 \
                 ELSE greatest(h.units - w.units, 0) END::text AS units, \
            h.nav::text AS nav \
     FROM held h, waiting w";

const ORDER_STATUS: &str =
    "SELECT status, cancel_before FROM orders WHERE order_id = $1 AND user_id = $2 FOR UPDATE";

/// An order as the API shows it: money, units and NAVs as exact decimal strings; the
/// execution's fields are null until it executes.
#[derive(sqlx::FromRow, Serialize)]
struct Order {
    order_id: i64,
    user_id: i64,
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: Option<String>,
    units: Option<String>,
    redeem_all: bool,
    status: String,
    received_at: DateTime<Utc>,
    /// The date of the NAV the order is executed at (SEBI's cut-off rule).
    nav_date: NaiveDate,
    /// Until this instant the order can be cancelled.
    cancel_before: DateTime<Utc>,
    executed_nav: Option<String>,
    executed_units: Option<String>,
    gross_amount: Option<String>,
    stamp_duty: Option<String>,
    exit_load: Option<String>,
    stt: Option<String>,
    net_amount: Option<String>,
    realised_gain: Option<String>,
    payout_date: Option<NaiveDate>,
    target_nav: Option<String>,
    target_units: Option<String>,
    target_stamp_duty: Option<String>,
    failure: Option<String>,
    /// The SWP or STP this order is an instalment of, and the day it fell due.
    plan_id: Option<i64>,
    plan_due_date: Option<NaiveDate>,
}

#[derive(Serialize)]
struct OrderList {
    orders: Vec<Order>,
    next_after: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct SchemeOrderRules {
    pub(super) open: bool,
    category: String,
    pub(super) fund_house: Option<String>,
    /// The smallest redemption (`schemes rules`), except of everything held.
    pub(super) min_redemption: Option<String>,
    unit_decimals: i32,
}

#[derive(sqlx::FromRow)]
struct Available {
    units: String,
    nav: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    kind: Option<String>,
    scheme_code: Option<i64>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    target_scheme_code: Option<i64>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    amount: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    units: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    all: Option<bool>,
}

async fn list_orders(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(page): ApiQuery<IdPage>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let (after, limit) = page.bounds()?;
    let orders: Vec<Order> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND order_id > $2 \
             ORDER BY order_id LIMIT $3"
        )))
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let next_after = next_cursor(orders.iter().map(|o| o.order_id), limit);
    Ok(json_value(&OrderList { orders, next_after }))
}

async fn order_detail(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, order_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let order: Option<Order> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 AND user_id = $2"
        )))
        .bind(order_id)
        .bind(user_id)
        .fetch_optional(&state.pool),
    )
    .await?;
    order
        .map(|o| json_value(&o))
        .ok_or_else(|| Problem::not_found("no such order"))
}

fn fail(errors: &mut Vec<(String, String)>, field: &str, message: &str) {
    errors.push((field.to_string(), message.to_string()));
}

/// A positive decimal of at most `scale` places, or `None`.
pub(super) fn positive(value: &Value, scale: u32) -> Option<Decimal> {
    decimal(value).filter(|d| *d > Decimal::ZERO && d.normalize().scale() <= scale)
}

async fn place_order(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let key = idempotency_key(&headers)?;
    let request = body.to_string();
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        if let Some(replay) =
            claim_or_replay(&mut tx, user_id, key, "place_order", &request).await?
        {
            return Ok(replay);
        }
    }
    let order: NewOrder = serde_json::from_value(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            e.to_string(),
        )
    })?;
    let mut errors: Vec<(String, String)> = Vec::new();
    // The person's row is locked first: two orders at once see each other's units taken.
    let open_orders = locked_count(&mut tx, user_id, OPEN_ORDERS).await?;
    let kind = order.kind.as_deref().and_then(OrderKind::parse);
    if kind.is_none() {
        fail(
            &mut errors,
            "kind",
            &format!("required, one of {}", OrderKind::listed()),
        );
    }
    let side = kind.map(OrderKind::side);
    let switch = kind == Some(OrderKind::Switch);
    let amount = order.amount.as_ref().map(|a| positive(a, 2));
    let units = order.units.as_ref().map(|u| positive(u, 4));
    let all = order.all.unwrap_or(false);
    if matches!(amount, Some(None)) {
        fail(
            &mut errors,
            "amount",
            "a decimal amount in rupees, above zero, at most two decimal places",
        );
    }
    if matches!(amount, Some(Some(a)) if a > MAX_ORDER_AMOUNT) {
        fail(&mut errors, "amount", "at most ₹1,00,00,000 per order");
    }
    if matches!(units, Some(Some(u)) if u >= Decimal::from(1_000_000_000_000_i64)) {
        fail(&mut errors, "units", "fewer than 10^12 units");
    }
    if matches!(units, Some(None)) {
        fail(
            &mut errors,
            "units",
            "a decimal number of units, above zero, at most four decimal places",
        );
    }
    match side {
        Some(Side::Purchase) => {
            if !matches!(amount, Some(Some(a)) if a >= Decimal::from(100)) {
                fail(
                    &mut errors,
                    "amount",
                    "required for a purchase, at least ₹100",
                );
            }
            if units.is_some() || all {
                fail(&mut errors, "units", "a purchase is by amount only");
            }
        }
        Some(Side::Redemption) => {
            let given =
                usize::from(amount.is_some()) + usize::from(units.is_some()) + usize::from(all);
            if given != 1 {
                fail(
                    &mut errors,
                    "units",
                    "exactly one of amount, units or all: true",
                );
            }
        }
        None => {}
    }
    if switch != order.target_scheme_code.is_some() {
        fail(
            &mut errors,
            "target_scheme_code",
            "required for a switch, and only for a switch",
        );
    }
    let mut rule = NavRule::Standard;
    let mut min_redemption: Option<Decimal> = None;
    match order.scheme_code {
        None => fail(&mut errors, "scheme_code", "required"),
        Some(code) => {
            let rules: Option<SchemeOrderRules> = timed(
                &state,
                sqlx::query_as(SCHEME_ORDER_RULES)
                    .bind(code)
                    .fetch_optional(&mut *tx),
            )
            .await?;
            match rules {
                None => fail(&mut errors, "scheme_code", "no such scheme"),
                Some(rules) => {
                    if !rules.open {
                        fail(&mut errors, "scheme_code", "the scheme is not open-ended");
                    }
                    rule = NavRule::for_category(&rules.category);
                    if let Some(Some(u)) = units {
                        if u.normalize().scale() > rules.unit_decimals.clamp(0, 4) as u32 {
                            fail(
                                &mut errors,
                                "units",
                                &format!(
                                    "the scheme's units have {} decimal places",
                                    rules.unit_decimals
                                ),
                            );
                        }
                    }
                    min_redemption = rules
                        .min_redemption
                        .as_deref()
                        .and_then(|m| Decimal::from_str(m).ok());
                    if let Some(target) = order.target_scheme_code.filter(|_| switch) {
                        if let Some(problem) =
                            switch_target_problem(&state, &mut tx, &rules, code, target).await?
                        {
                            fail(&mut errors, "target_scheme_code", problem);
                        }
                    }
                }
            }
            if side == Some(Side::Redemption) && errors.is_empty() {
                let available: Available = timed(
                    &state,
                    sqlx::query_as(AVAILABLE_UNITS)
                        .bind(user_id)
                        .bind(code)
                        .fetch_one(&mut *tx),
                )
                .await?;
                let held = Decimal::from_str(&available.units).unwrap_or(Decimal::ZERO);
                let nav = available
                    .nav
                    .as_deref()
                    .and_then(|n| Decimal::from_str(n).ok());
                if held <= Decimal::ZERO {
                    fail(
                        &mut errors,
                        if all {
                            "all"
                        } else if units.is_some() {
                            "units"
                        } else {
                            "amount"
                        },
                        "no units of the scheme are held (or all are in orders already)",
                    );
                } else if let Some(Some(u)) = units {
                    if u > held {
                        fail(
                            &mut errors,
                            "units",
                            &format!("more than the {held} units held"),
                        );
                    } else if let (Some(min), Some(nav)) = (min_redemption, nav) {
                        if u * nav < min {
                            fail(
                                &mut errors,
                                "units",
                                &format!("worth less than the scheme's minimum redemption, ₹{min}"),
                            );
                        }
                    }
                } else if let (Some(Some(a)), Some(nav)) = (amount, nav) {
                    if a > held * nav {
                        fail(
                            &mut errors,
                            "amount",
                            "more than the holding is worth at the latest NAV",
                        );
                    } else if min_redemption.is_some_and(|min| a < min) {
                        fail(
                            &mut errors,
                            "amount",
                            "below the scheme's minimum redemption",
                        );
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if open_orders >= MAX_OPEN_ORDERS {
        return Err(Problem::conflict(format!(
            "at most {MAX_OPEN_ORDERS} orders waiting for execution per user"
        )));
    }
    let side = side.unwrap_or(Side::Purchase);
    let received = now.with_timezone(&serving::clock::ist()).naive_local();
    let nav_date = applicable_nav_date(received, side, rule, &state.calendar);
    let cancel_before = cancel_before(nav_date, side, rule);
    // The run that executes it: its NAV date's, or a liquid purchase's next day's (when the
    // previous calendar day's NAV is published).
    let executes_on = if side == Side::Purchase && rule == NavRule::Liquid {
        nav_date + Days::new(1)
    } else {
        nav_date
    };
    let created: Order = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO orders (user_id, kind, scheme_code, target_scheme_code, amount, units, \
                                 redeem_all, received_at, nav_date, cancel_before, executes_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {ORDER_COLUMNS}"
        )))
        .bind(user_id)
        .bind(kind.map(OrderKind::as_str))
        .bind(order.scheme_code)
        .bind(order.target_scheme_code)
        .bind(amount.flatten())
        .bind(units.flatten())
        .bind(all)
        .bind(now)
        .bind(nav_date)
        .bind(cancel_before)
        .bind(executes_on)
        .fetch_one(&mut *tx),
    )
    .await?;
    let body = serde_json::to_string(&created).map_err(|e| {
        tracing::error!(error = %e, "response not serialisable");
        Problem::internal()
    })?;
    if let Some(key) = &key {
        store_response(&mut tx, user_id, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    let mut response = json_body(Bytes::from(body));
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// What is wrong with `target` as the scheme a switch (or an STP) from `code` buys: it must
/// exist, be open-ended, differ from the source and belong to the same fund house.
pub(super) async fn switch_target_problem(
    state: &Shared,
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    from: &SchemeOrderRules,
    code: i64,
    target: i64,
) -> Result<Option<&'static str>, Problem> {
    let to: Option<SchemeOrderRules> = timed(
        state,
        sqlx::query_as(SCHEME_ORDER_RULES)
            .bind(target)
            .fetch_optional(&mut **tx),
    )
    .await?;
    Ok(match to {
        None => Some("no such scheme"),
        Some(to) if !to.open => Some("the scheme is not open-ended"),
        Some(_) if target == code => Some("must differ from scheme_code"),
        Some(to) if to.fund_house.is_none() || to.fund_house != from.fund_house => {
            Some("must be of the same fund house")
        }
        Some(_) => None,
    })
}

/// The cut-off instant that fixed an order's NAV date: until then it can be cancelled, since
/// until then an order placed instead would have got the same NAV.
fn cancel_before(nav_date: NaiveDate, side: Side, rule: NavRule) -> DateTime<Utc> {
    let (day, time) = if side == Side::Purchase && rule == NavRule::Liquid {
        // A liquid purchase's NAV date is the calendar day before the day its money counts.
        (nav_date + Days::new(1), LIQUID_CUT_OFF)
    } else {
        (nav_date, CUT_OFF)
    };
    day.and_time(time)
        .and_local_timezone(serving::clock::ist())
        .single()
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
}

async fn cancel_order(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, order_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let mut tx = state.pool.begin().await?;
    let found: Option<(String, DateTime<Utc>)> = timed(
        &state,
        sqlx::query_as(ORDER_STATUS)
            .bind(order_id)
            .bind(user_id)
            .fetch_optional(&mut *tx),
    )
    .await?;
    let Some((status, before)) = found else {
        return Err(Problem::not_found("no such order"));
    };
    if status != OrderStatus::Received.as_str() {
        return Err(Problem::conflict(format!("the order is {status}")));
    }
    if now >= before {
        return Err(Problem::conflict(
            "the order's cut-off has passed: it is being executed",
        ));
    }
    let cancelled: Order = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE orders SET status = 'cancelled', updated_at = now() \
             WHERE order_id = $1 RETURNING {ORDER_COLUMNS}"
        )))
        .bind(order_id)
        .fetch_one(&mut *tx),
    )
    .await?;
    tx.commit().await?;
    Ok(json_value(&cancelled))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GainsQuery {
    fy: Option<String>,
    format: Option<String>,
}

const REALIZED_GAINS: &str = "SELECT g.order_id, g.scheme_code, s.scheme_name, g.isin, \
            g.tax_class, g.term, g.fy, g.purchase_date, g.purchase_nav::text AS purchase_nav, \
            g.units::text AS units, g.purchase_value::text AS purchase_value, \
            g.stamp_duty::text AS stamp_duty, g.sale_date, g.sale_nav::text AS sale_nav, \
            g.gross_sale_value::text AS gross_sale_value, g.exit_load::text AS exit_load, \
            g.stt::text AS stt, g.cost::text AS cost, g.gain::text AS gain \
     FROM realized_gains g JOIN schemes s USING (scheme_code) \
     WHERE g.user_id = $1 AND g.fy = $2 ORDER BY g.sale_date, g.order_id, g.seq";

#[derive(sqlx::FromRow)]
struct GainRecord {
    order_id: i64,
    scheme_code: i64,
    scheme_name: String,
    isin: Option<String>,
    tax_class: String,
    term: String,
    fy: String,
    purchase_date: NaiveDate,
    purchase_nav: String,
    units: String,
    purchase_value: String,
    stamp_duty: String,
    sale_date: NaiveDate,
    sale_nav: String,
    gross_sale_value: String,
    exit_load: String,
    stt: String,
    cost: String,
    gain: String,
}

/// A scaled integer from PostgreSQL's exact text of a numeric.
fn scaled(text: &str, scale: u32) -> Option<i64> {
    pipeline::money::parse_scaled(text.trim_start_matches('-'), scale)
        .ok()
        .map(|v| if text.starts_with('-') { -v } else { v })
}

impl GainRecord {
    fn row(&self) -> Option<GainsRow> {
        let paise = |t: &str| scaled(t, 2).map(Paise);
        Some(GainsRow {
            scheme_code: self.scheme_code,
            scheme_name: self.scheme_name.clone(),
            isin: self.isin.clone(),
            tax_class: TaxClass::parse(&self.tax_class)?,
            lot: RealizedLot {
                purchase_date: self.purchase_date,
                purchase_nav: Nav::from_scaled(scaled(&self.purchase_nav, Nav::SCALE)?),
                units: Units(scaled(&self.units, Units::SCALE)?),
                purchase_value: paise(&self.purchase_value)?,
                stamp_duty: paise(&self.stamp_duty)?,
                sale_date: self.sale_date,
                sale_nav: Nav::from_scaled(scaled(&self.sale_nav, Nav::SCALE)?),
                gross_sale_value: paise(&self.gross_sale_value)?,
                exit_load: paise(&self.exit_load)?,
                stt: paise(&self.stt)?,
                cost: paise(&self.cost)?,
                gain: paise(&self.gain)?,
                term: if self.term == "long" {
                    Term::Long
                } else {
                    Term::Short
                },
                fy: self.fy.clone(),
            },
        })
    }
}

#[derive(Serialize)]
struct GainLine {
    order_id: i64,
    scheme_code: i64,
    scheme_name: String,
    isin: Option<String>,
    tax_class: &'static str,
    term: &'static str,
    purchase_date: NaiveDate,
    purchase_nav: String,
    units: String,
    purchase_value: String,
    stamp_duty: String,
    sale_date: NaiveDate,
    sale_nav: String,
    gross_sale_value: String,
    exit_load: String,
    stt: String,
    cost_of_acquisition: String,
    gain: String,
}

#[derive(Serialize)]
struct GainTotal {
    tax_class: &'static str,
    term: &'static str,
    gross_sale_value: String,
    exit_load: String,
    stt: String,
    cost_of_acquisition: String,
    gain: String,
}

#[derive(Serialize)]
struct GainsStatement {
    user_id: i64,
    fy: String,
    totals: Vec<GainTotal>,
    lots: Vec<GainLine>,
}

/// "2025-26": a financial year as the statement names it.
fn financial_year(text: &str) -> Option<String> {
    let (start, end) = text.split_once('-')?;
    let start: i32 = start.parse().ok().filter(|y| (1990..=2200).contains(y))?;
    (end.len() == 2 && end.parse::<i32>().ok()? == (start + 1) % 100).then(|| text.to_string())
}

async fn capital_gains(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(query): ApiQuery<GainsQuery>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let fy = match query.fy.as_deref() {
        None => pipeline::orders::financial_year(state.clock.today_ist()),
        Some(text) => financial_year(text)
            .ok_or_else(|| Problem::bad_request("fy is a financial year such as 2025-26"))?,
    };
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Problem::bad_request("format is json or csv")),
    };
    let records: Vec<GainRecord> = timed(
        &state,
        sqlx::query_as(REALIZED_GAINS)
            .bind(user_id)
            .bind(&fy)
            .fetch_all(&state.pool),
    )
    .await?;
    let rows = records
        .iter()
        .map(|r| r.row().map(|row| (r.order_id, row)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            tracing::error!(user_id, "a realized_gains row does not read back");
            Problem::internal()
        })?;
    let gains: Vec<GainsRow> = rows.iter().map(|(_, r)| r.clone()).collect();
    if csv {
        let mut response = capital_gains_csv(&gains).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(value) =
            HeaderValue::from_str(&format!("attachment; filename=\"capital-gains-{fy}.csv\""))
        {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    let totals = totals(&gains)
        .into_iter()
        .map(|((_, term), (class, t))| GainTotal {
            tax_class: class.as_str(),
            term: term.as_str(),
            gross_sale_value: t.gross_sale_value.to_string(),
            exit_load: t.exit_load.to_string(),
            stt: t.stt.to_string(),
            cost_of_acquisition: t.cost.to_string(),
            gain: t.gain.to_string(),
        })
        .collect();
    let lots = rows
        .into_iter()
        .map(|(order_id, r)| GainLine {
            order_id,
            scheme_code: r.scheme_code,
            scheme_name: r.scheme_name,
            isin: r.isin,
            tax_class: r.tax_class.as_str(),
            term: r.lot.term.as_str(),
            purchase_date: r.lot.purchase_date,
            purchase_nav: r.lot.purchase_nav.to_string(),
            units: r.lot.units.to_string(),
            purchase_value: r.lot.purchase_value.to_string(),
            stamp_duty: r.lot.stamp_duty.to_string(),
            sale_date: r.lot.sale_date,
            sale_nav: r.lot.sale_nav.to_string(),
            gross_sale_value: r.lot.gross_sale_value.to_string(),
            exit_load: r.lot.exit_load.to_string(),
            stt: r.lot.stt.to_string(),
            cost_of_acquisition: r.lot.cost.to_string(),
            gain: r.lot.gain.to_string(),
        })
        .collect();
    Ok(json_value(&GainsStatement {
        user_id,
        fy,
        totals,
        lots,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn financial_years_are_checked() {
        assert_eq!(financial_year("2025-26").as_deref(), Some("2025-26"));
        assert_eq!(financial_year("1999-00").as_deref(), Some("1999-00"));
        assert_eq!(financial_year("2025-27"), None);
        assert_eq!(financial_year("2025"), None);
    }

    #[test]
    fn an_order_can_be_cancelled_until_the_cut_off_that_fixed_its_nav() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 9).unwrap();
        // 15:00 IST is 09:30 UTC.
        assert_eq!(
            cancel_before(d, Side::Redemption, NavRule::Standard).to_rfc3339(),
            "2026-12-09T09:30:00+00:00"
        );
        // A liquid purchase with Wednesday's NAV counted on Thursday: 13:30 IST Thursday.
        assert_eq!(
            cancel_before(d, Side::Purchase, NavRule::Liquid).to_rfc3339(),
            "2026-12-10T08:00:00+00:00"
        );
    }

    #[test]
    fn negative_gains_read_back() {
        assert_eq!(scaled("-105.00", 2), Some(-10_500));
        assert_eq!(scaled("14.25207048", 8), Some(1_425_207_048));
    }
}
