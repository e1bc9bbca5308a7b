//! Scheme NAVs: the latest published NAV (cached until the next publish) and a date range.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery, Authed};
use super::{json_body, json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/schemes/{scheme_code}/nav", get(latest_nav))
        .route("/schemes/{scheme_code}/navs", get(nav_history))
}

const LATEST_NAV: &str =
    "SELECT s.scheme_code, s.scheme_name, s.fund_house, s.category, sipline_nav_text(n.nav) AS nav, n.nav_date \
     FROM schemes s JOIN LATERAL (SELECT nav, nav_date FROM navs WHERE scheme_code = s.scheme_code \
                                  ORDER BY nav_date DESC LIMIT 1) n ON true \
     WHERE s.scheme_code = $1";

const NAV_HISTORY: &str =
    "SELECT nav_date, sipline_nav_text(nav) AS nav FROM navs WHERE scheme_code = $1 \
     AND ($2::date IS NULL OR nav_date >= $2) AND ($3::date IS NULL OR nav_date <= $3) \
     ORDER BY nav_date DESC LIMIT $4";

/// A scheme's latest NAV; the NAV as published (at least four decimals, up to eight).
#[derive(sqlx::FromRow, Serialize)]
struct LatestNav {
    scheme_code: i64,
    scheme_name: String,
    fund_house: Option<String>,
    category: Option<String>,
    nav: String,
    nav_date: NaiveDate,
}

#[derive(sqlx::FromRow, Serialize)]
struct DatedNav {
    nav_date: NaiveDate,
    nav: String,
}

#[derive(Serialize)]
struct NavHistory {
    scheme_code: i64,
    navs: Vec<DatedNav>,
}

async fn latest_nav(
    State(state): State<Shared>,
    _authed: Authed,
    ApiPath(scheme_code): ApiPath<i64>,
) -> Result<Response, Problem> {
    let load = async {
        let nav: Option<LatestNav> = timed(
            &state,
            state.read_published(None, |pool| {
                sqlx::query_as(LATEST_NAV)
                    .bind(scheme_code)
                    .fetch_optional(pool)
            }),
        )
        .await?;
        nav.map(|nav| serde_json::to_vec(&nav).map(Bytes::from))
            .transpose()
            .map_err(|_| Problem::internal())
    };
    let body = state.caches.nav.get_or_load(scheme_code, load).await?;
    Ok(json_body(body.ok_or_else(|| {
        Problem::not_found("no NAV published for this scheme")
    })?))
}

#[derive(Deserialize)]
struct HistoryQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    limit: Option<i64>,
}

async fn nav_history(
    State(state): State<Shared>,
    _authed: Authed,
    ApiPath(scheme_code): ApiPath<i64>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, Problem> {
    let limit = query.limit.unwrap_or(366);
    if !(1..=5000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 5000"));
    }
    let navs: Vec<DatedNav> = timed(
        &state,
        state.read_published(None, |pool| {
            sqlx::query_as(NAV_HISTORY)
                .bind(scheme_code)
                .bind(query.from)
                .bind(query.to)
                .bind(limit)
                .fetch_all(pool)
        }),
    )
    .await?;
    if navs.is_empty() {
        return Err(Problem::not_found("no NAVs for this scheme in that range"));
    }
    Ok(json_value(&NavHistory { scheme_code, navs }))
}
