//! Finding a fund: `GET /v1/schemes` searches the scheme master (typo-tolerant, over name, fund
//! house, ISINs and code; migration 0010) with filters and a bounded, cursor-paged result, and
//! `GET /v1/schemes/{scheme_code}` is one scheme with its latest NAV and SIP rules.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery, Authed};
use super::{json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/schemes", get(search_schemes))
        .route("/schemes/{scheme_code}", get(scheme_detail))
}

const MAX_PAGE: i64 = 50;
const MAX_QUERY_CHARS: usize = 100;
const MAX_FILTER_CHARS: usize = 200;

const SCHEME_COLUMNS: &str =
    "s.scheme_code, s.scheme_name, s.fund_house, s.category, s.plan, s.option, \
     s.isin_growth, s.isin_reinvestment, sipline_open_ended(s.scheme_type) AS open_for_sip";

/// Filters shared by both searches: `$1` category, `$2` fund house, `$3` plan, `$4` option,
/// `$5` open for SIP; each NULL when not asked for.
const FILTERS: &str = "($1::text IS NULL OR lower(s.category) = lower($1)) \
     AND ($2::text IS NULL OR lower(s.fund_house) = lower($2)) \
     AND ($3::text IS NULL OR lower(s.plan) = lower($3)) \
     AND ($4::text IS NULL OR lower(s.option) = lower($4)) \
     AND ($5::boolean IS NULL OR sipline_open_ended(s.scheme_type) = $5)";

#[derive(Deserialize)]
struct SchemeQuery {
    q: Option<String>,
    category: Option<String>,
    fund_house: Option<String>,
    plan: Option<String>,
    option: Option<String>,
    open_for_sip: Option<bool>,
    limit: Option<i64>,
    after: Option<String>,
}

#[derive(sqlx::FromRow, Serialize)]
struct SchemeSummary {
    scheme_code: i64,
    scheme_name: String,
    fund_house: Option<String>,
    category: Option<String>,
    plan: Option<String>,
    option: Option<String>,
    isin_growth: Option<String>,
    isin_reinvestment: Option<String>,
    open_for_sip: bool,
    /// How well the name, house, ISIN or code matches `q` (0–1); absent without `q`.
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

#[derive(Serialize)]
struct SchemePage {
    schemes: Vec<SchemeSummary>,
    /// Pass as `after` for the next page; null on the last.
    next_after: Option<String>,
}

/// The position after which a page starts: by score then code when searching, by code when
/// listing. Opaque to clients (`0.7058824:120465`, `120465`).
fn parse_after(after: Option<&str>, searching: bool) -> Result<(f32, i64), Problem> {
    let bad = || Problem::bad_request("after: not a cursor this search returned");
    let Some(after) = after else {
        return Ok((f32::INFINITY, i64::MIN));
    };
    // `score:code` when searching, `code` when listing; either form is read in either mode (a
    // listing's cursor starts a search after that code), so any cursor of the documented shape
    // is a position, never a 400.
    let (score, code) = match after.split_once(':') {
        Some((score, code)) => (Some(score), code),
        None => (None, after),
    };
    let digits = |part: &str, most: usize| {
        (1..=most).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    let score_shaped = |score: &str| match score.split_once('.') {
        Some((whole, fraction)) => digits(whole, 3) && digits(fraction, 17),
        None => digits(score, 3),
    };
    if !digits(code, 18) || score.is_some_and(|s| !score_shaped(s)) {
        return Err(bad());
    }
    let code: i64 = code.parse().map_err(|_| bad())?;
    let score = match score {
        Some(score) if searching => score.parse::<f32>().map_err(|_| bad())?,
        _ => f32::INFINITY,
    };
    Ok((score, code))
}

/// The exact lookup a search text can be, over the parameter `p` holding it (lower case): a
/// scheme code (all digits), an ISIN (12 characters, `INF…`-shaped), else a fund house by its
/// full name or its leading words ("nippon india" is Nippon India Mutual Fund).
fn exact_condition(text: &str, p: &str) -> String {
    let bytes = text.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 18 && bytes.iter().all(u8::is_ascii_digit) {
        format!("s.scheme_code = {p}::bigint")
    } else if bytes.len() == 12
        && bytes[..2].iter().all(u8::is_ascii_alphabetic)
        && bytes.iter().all(u8::is_ascii_alphanumeric)
    {
        format!("(s.isin_growth = upper({p}) OR s.isin_reinvestment = upper({p}))")
    } else {
        // `LIKE` with the text's own wildcards escaped; the prefix is served by the
        // `text_pattern_ops` index.
        format!(
            "(lower(s.fund_house) = {p} OR lower(s.fund_house) LIKE \
              replace(replace(replace({p}, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || ' %')"
        )
    }
}

async fn search_schemes(
    State(state): State<Shared>,
    _authed: Authed,
    ApiQuery(query): ApiQuery<SchemeQuery>,
) -> Result<Response, Problem> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    // Text goes to PostgreSQL, which refuses NUL: control characters are a 400, not a 500.
    for (name, value, most) in [
        ("q", &query.q, MAX_QUERY_CHARS),
        ("category", &query.category, MAX_FILTER_CHARS),
        ("fund_house", &query.fund_house, MAX_FILTER_CHARS),
        ("plan", &query.plan, MAX_FILTER_CHARS),
        ("option", &query.option, MAX_FILTER_CHARS),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().count() > most || v.chars().any(char::is_control))
        {
            return Err(Problem::bad_request(format!(
                "{name}: at most {most} characters, none of them control characters"
            )));
        }
    }
    let text = query
        .q
        .as_deref()
        .map(|q| q.trim().to_lowercase())
        .filter(|q| !q.is_empty());
    let (after_score, after_code) = parse_after(query.after.as_deref(), text.is_some())?;
    // Unnamed statements: each search is planned with its own text, so a broad one ("nippon
    // india") and a narrow one get their own plans, never a generic plan that scans the table.
    let filtered = |sql: String| {
        sqlx::query_as::<_, SchemeSummary>(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(query.category.clone())
            .bind(query.fund_house.clone())
            .bind(query.plan.clone())
            .bind(query.option.clone())
            .bind(query.open_for_sip)
    };
    let schemes: Vec<SchemeSummary> = match text {
        Some(text) => {
            let page = |sql: String| {
                let (filtered, text) = (&filtered, &text);
                state.read_published(None, move |pool| {
                    filtered(sql.clone())
                        .bind(text.clone())
                        .bind(after_score)
                        .bind(after_code)
                        .bind(limit)
                        .fetch_all(pool)
                })
            };
            let which = format!(
                "SELECT EXISTS (SELECT 1 FROM schemes s WHERE {}), \
                        EXISTS (SELECT 1 FROM schemes s \
                                WHERE s.search_words @@ sipline_prefix_query($1))",
                exact_condition(&text, "$1")
            );
            let (exact, words): (bool, bool) = timed(
                &state,
                state.read_published(None, |pool| {
                    sqlx::query_as(sqlx::AssertSqlSafe(which.clone()))
                        .persistent(false)
                        .bind(text.clone())
                        .fetch_one(pool)
                }),
            )
            .await?;
            let scored = |score: &str, matches: &str| {
                format!(
                    "SELECT * FROM (SELECT {SCHEME_COLUMNS}, {score} AS score \
                       FROM schemes s WHERE {matches} AND {FILTERS}) m \
                     WHERE m.score < $7 OR (m.score = $7 AND m.scheme_code > $8) \
                     ORDER BY m.score DESC, m.scheme_code LIMIT $9"
                )
            };
            let sql = if exact {
                format!(
                    "SELECT {SCHEME_COLUMNS}, 1::real AS score FROM schemes s \
                     WHERE {} AND {FILTERS} AND (1 < $7 OR (1 = $7 AND s.scheme_code > $8)) \
                     ORDER BY s.scheme_code LIMIT $9",
                    exact_condition(&text, "$6")
                )
            } else if words {
                // Rank normalised into 0–0.5 (rank / (rank + 1), halved), and 0.5 more when
                // the name itself starts with what was typed ("hdfc mid" puts HDFC Mid-Cap
                // Opportunities above an HDFC fund whose other words merely start the same):
                // always below an exact match's 1.
                scored(
                    "(0.5 * ts_rank_cd(s.search_words, sipline_prefix_query($6), 32) \
                      + CASE WHEN starts_with(lower(s.scheme_name), $6) THEN 0.5 ELSE 0 END)::real",
                    "s.search_words @@ sipline_prefix_query($6)",
                )
            } else {
                // `<%` is word similarity above pg_trgm's threshold (0.6), served by the
                // trigram index over the short name (migration 0012).
                scored("word_similarity($6, s.search_name)", "$6 <% s.search_name")
            };
            timed(&state, page(sql)).await?
        }
        None => {
            let sql = format!(
                "SELECT {SCHEME_COLUMNS}, NULL::real AS score FROM schemes s \
                 WHERE {FILTERS} AND s.scheme_code > $6 ORDER BY s.scheme_code LIMIT $7"
            );
            timed(
                &state,
                state.read_published(None, |pool| {
                    filtered(sql.clone())
                        .bind(after_code)
                        .bind(limit)
                        .fetch_all(pool)
                }),
            )
            .await?
        }
    };
    let next_after = (schemes.len() as i64 == limit)
        .then(|| schemes.last())
        .flatten()
        .map(|last| match last.score {
            Some(score) => format!("{score}:{}", last.scheme_code),
            None => last.scheme_code.to_string(),
        });
    Ok(json_value(&SchemePage {
        schemes,
        next_after,
    }))
}

const SCHEME_DETAIL: &str = "SELECT s.scheme_code, s.scheme_name, s.fund_house, s.category, s.scheme_type, s.plan, s.option, \
            s.isin_growth, s.isin_reinvestment, sipline_open_ended(s.scheme_type) AS open_for_sip, \
            s.sip_min_amount::text AS sip_min_amount, s.sip_max_amount::text AS sip_max_amount, s.unit_decimals, \
            sipline_nav_text(n.nav) AS nav, n.nav_date \
     FROM schemes s LEFT JOIN LATERAL (SELECT nav, nav_date FROM navs WHERE scheme_code = s.scheme_code \
                                       ORDER BY nav_date DESC LIMIT 1) n ON true \
     WHERE s.scheme_code = $1";

#[derive(sqlx::FromRow, Serialize)]
struct SchemeDetail {
    scheme_code: i64,
    scheme_name: String,
    fund_house: Option<String>,
    category: Option<String>,
    scheme_type: Option<String>,
    plan: Option<String>,
    option: Option<String>,
    isin_growth: Option<String>,
    isin_reinvestment: Option<String>,
    open_for_sip: bool,
    sip_min_amount: String,
    sip_max_amount: Option<String>,
    /// Decimals units are allotted to.
    unit_decimals: i32,
    /// The latest NAV, as published; null before any.
    nav: Option<String>,
    nav_date: Option<NaiveDate>,
}

async fn scheme_detail(
    State(state): State<Shared>,
    _authed: Authed,
    ApiPath(scheme_code): ApiPath<i64>,
) -> Result<Response, Problem> {
    let scheme: Option<SchemeDetail> = timed(
        &state,
        state.read_published(None, |pool| {
            sqlx::query_as(SCHEME_DETAIL)
                .bind(scheme_code)
                .fetch_optional(pool)
        }),
    )
    .await?;
    match scheme {
        Some(scheme) => Ok(json_value(&scheme)),
        None => Err(Problem::not_found("no such scheme")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_a_search_never_returned() {
        assert_eq!(
            parse_after(Some("0.7058824:120465"), true).ok(),
            Some((0.705_882_4, 120465))
        );
        assert_eq!(
            parse_after(Some("120465"), false).ok(),
            Some((f32::INFINITY, 120465))
        );
        assert_eq!(
            parse_after(None, true).ok(),
            Some((f32::INFINITY, i64::MIN))
        );
        // A listing's cursor continues a search after that code (any documented shape is a
        // position).
        assert_eq!(
            parse_after(Some("120465"), true).ok(),
            Some((f32::INFINITY, 120465))
        );
        for (cursor, searching) in [
            ("x", false),
            ("", true),
            ("-1", false),
            ("1.2.3:4", true),
            ("99999999999999999999", false),
            ("inf:1", true),
            ("0.5:x", true),
        ] {
            assert!(parse_after(Some(cursor), searching).is_err(), "{cursor}");
        }
    }
}
