//! `publish --hourly` against a real PostgreSQL and the real API process: an hour writes only
//! the users whose numbers changed (here, a scheme's NAV corrected during the day, as AMFI
//! does), the portfolio route shows the newest valuation with its time, a re-run writes
//! nothing, an older hour or date is skipped, a failed hour leaves the previous one served, a
//! changed-back user is written again, and the next daily publish supersedes the intraday
//! points.

use std::path::Path;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::api::{claims, hs256, Api};
use crate::publish::{publish, published_universe, FIRST, SECOND};
use crate::sip::csv;
use crate::support::{sipline_async, Postgres};

async fn value_hourly(warehouse: &Path, date: &str, hour: &str) {
    sipline_async(&[
        "portfolio",
        "value",
        "--hourly",
        "--date",
        date,
        "--hour",
        hour,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
    .await
    .assert_ok();
}

async fn publish_hourly(url: &str, warehouse: &Path, date: &str) -> crate::support::Run {
    publish(url, warehouse, date, &["--hourly"]).await
}

/// The scheme held by the most users on `SECOND`, and those users' ids.
fn most_held_scheme(warehouse: &Path) -> (i64, Vec<i64>) {
    let top = csv(
        warehouse,
        &format!(
            "SELECT scheme_code FROM portfolio_lines WHERE as_of = DATE '{SECOND}' \
             GROUP BY scheme_code ORDER BY count(*) DESC, scheme_code LIMIT 1"
        ),
    );
    let code: i64 = top.lines().nth(1).unwrap().parse().unwrap();
    let holders = csv(
        warehouse,
        &format!(
            "SELECT DISTINCT user_id FROM portfolio_lines WHERE as_of = DATE '{SECOND}' \
             AND scheme_code = {code} ORDER BY user_id"
        ),
    );
    let users = holders
        .lines()
        .skip(1)
        .map(|l| l.parse().unwrap())
        .collect();
    (code, users)
}

/// An AMFI NAVAll file holding one scheme's NAV for `SECOND`, described as the warehouse's
/// scheme master describes it (so only the NAV changes).
fn amfi_file_with_nav(warehouse: &Path, code: i64, nav: &str) -> tempfile::NamedTempFile {
    let scheme = csv(
        warehouse,
        &format!(
            "SELECT concat_ws('|', coalesce(isin_growth, '-'), coalesce(isin_reinvestment, '-'), \
             scheme_name, fund_house, category, scheme_type) AS s FROM schemes WHERE scheme_code = {code}"
        ),
    );
    // One CSV field, quoted if the name holds a comma.
    let row = scheme.lines().nth(1).unwrap().trim_matches('"').to_string();
    let fields: Vec<&str> = row.split('|').collect();
    let (growth, reinvest, name, house, category, kind) = (
        fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
    );
    let text = format!(
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\n \n\
         {kind} Schemes({category})\n \n{house}\n \n\
         {code};{growth};{reinvest};{name};{nav};04-Mar-2025\n"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn ingest(warehouse: &Path, file: &Path) {
    crate::support::sipline(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        file.to_str().unwrap(),
        "--warehouse",
        warehouse.to_str().unwrap(),
    ])
    .assert_ok();
}

/// The NAV of `code` on `SECOND` in the warehouse, as text.
fn nav_of(warehouse: &Path, code: i64) -> String {
    let out = csv(
        warehouse,
        &format!(
            "SELECT CAST(nav AS VARCHAR) AS nav FROM navs WHERE nav_date = DATE '{SECOND}' AND scheme_code = {code}"
        ),
    );
    out.lines().nth(1).unwrap().to_string()
}

/// Everything the intraday tables hold, as text.
async fn intraday_state(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(' | ',
           (SELECT string_agg(concat_ws(',', as_of, hour, user_id, invested, current_value, gain, abs_return_pct, schemes, nav_date), ';' ORDER BY as_of, hour, user_id) FROM portfolio_intraday),
           (SELECT string_agg(concat_ws(',', as_of, hour, published_at, users, changed), ';' ORDER BY as_of, hour) FROM intraday_publications))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn users_written(pool: &PgPool, hour: i16) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT user_id FROM portfolio_intraday WHERE as_of = $1 AND hour = $2 ORDER BY user_id",
    )
    .bind(chrono::NaiveDate::parse_from_str(SECOND, "%Y-%m-%d").unwrap())
    .bind(hour)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_publish_writes_only_changed_users_and_the_api_shows_the_newest_valuation() {
    let pg = Postgres::start().await;
    let warehouse = published_universe(&pg.url).await;
    publish(&pg.url, &warehouse, SECOND, &[]).await.assert_ok();
    let pool = pg.pool().await;

    // Nothing valued hourly yet: a missing upstream (exit 4), nothing written.
    let missing = publish_hourly(&pg.url, &warehouse, SECOND).await;
    assert_eq!(missing.code, 4, "{}", missing.stderr);

    // Hour 10 values the same holdings at the same NAVs as the daily run: every user is
    // valued, none changed, and the hour is recorded.
    value_hourly(&warehouse, SECOND, "10").await;
    let ten = publish_hourly(&pg.url, &warehouse, SECOND).await;
    ten.assert_ok();
    assert!(
        ten.stdout.contains(&format!(
            "publish hourly ok: date={SECOND} hour=10 users=300 changed=0 daily={SECOND}"
        )),
        "{}",
        ten.stdout
    );

    // A user holding the most held scheme, and one who does not.
    let (code, holders) = most_held_scheme(&warehouse);
    assert!(holders.len() > 1 && holders.len() < 300, "{holders:?}");
    let holder = holders[0];
    let other: i64 = sqlx::query_scalar(
        "SELECT user_id FROM portfolio_latest WHERE schemes > 0 AND user_id <> ALL($1) ORDER BY user_id LIMIT 1",
    )
    .bind(&holders)
    .fetch_one(&pool)
    .await
    .unwrap();
    let subject: String = sqlx::query_scalar("SELECT auth_subject FROM users WHERE user_id = $1")
        .bind(holder)
        .fetch_one(&pool)
        .await
        .unwrap();
    let token = hs256(&claims(&subject));
    let api = Api::start(&pg.url).await;
    let portfolio = format!("/v1/users/{holder}/portfolio");
    let (status, daily) = api.get(&portfolio, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{daily}");
    assert_eq!(daily["as_of"], SECOND);
    // The newest valuation is hour 10's, with the daily numbers (the hour changed nothing).
    let intraday = &daily["intraday"];
    assert_eq!(intraday["as_of"], SECOND, "{daily}");
    assert_eq!(intraday["hour"], 10, "{daily}");
    assert!(intraday["valued_at"].is_string(), "{daily}");
    for field in [
        "invested",
        "current_value",
        "gain",
        "abs_return_pct",
        "schemes",
        "nav_date",
    ] {
        assert_eq!(intraday[field], daily[field], "{field}: {daily}");
    }

    // AMFI corrects the scheme's NAV of the day by 10%: hour 11 changes exactly its holders.
    let original = nav_of(&warehouse, code);
    let corrected = format!("{:.4}", original.parse::<f64>().unwrap() * 1.1);
    let file = amfi_file_with_nav(&warehouse, code, &corrected);
    ingest(&warehouse, file.path());
    value_hourly(&warehouse, SECOND, "11").await;
    let eleven = publish_hourly(&pg.url, &warehouse, SECOND).await;
    eleven.assert_ok();
    assert!(
        eleven.stdout.contains(&format!(
            "publish hourly ok: date={SECOND} hour=11 users=300 changed={}",
            holders.len()
        )),
        "{}",
        eleven.stdout
    );
    assert_eq!(users_written(&pool, 11).await, holders);
    // The rows written are the warehouse's hourly valuation, to the paisa.
    let warehouse_value = csv(
        &warehouse,
        &format!(
            "SELECT sum(current_value) AS v FROM portfolio_hourly WHERE as_of = DATE '{SECOND}' \
             AND user_id IN ({})",
            holders
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    let served_value: String = sqlx::query_scalar(
        "SELECT sum(current_value)::text FROM portfolio_intraday WHERE hour = 11",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(warehouse_value, format!("v\n{served_value}\n"));

    // The API dropped its cached body on the hour's NOTIFY: the holder sees hour 11, a higher
    // value, the daily XIRR and lines unchanged.
    let (status, now) = api.get(&portfolio, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{now}");
    assert_eq!(now["intraday"]["hour"], 11, "{now}");
    assert_eq!(now["current_value"], daily["current_value"]);
    assert_eq!(now["lines"], daily["lines"]);
    let before: f64 = daily["current_value"].as_str().unwrap().parse().unwrap();
    let after: f64 = now["intraday"]["current_value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before, "{before} -> {after}");
    assert_eq!(now["intraday"]["invested"], daily["invested"]);
    // A user not holding the scheme: the hour's time, the daily numbers.
    let other_subject: String =
        sqlx::query_scalar("SELECT auth_subject FROM users WHERE user_id = $1")
            .bind(other)
            .fetch_one(&pool)
            .await
            .unwrap();
    let (status, theirs) = api
        .get(
            &format!("/v1/users/{other}/portfolio"),
            Some(&hs256(&claims(&other_subject))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["intraday"]["hour"], 11, "{theirs}");
    assert_eq!(theirs["intraday"]["current_value"], theirs["current_value"]);

    // Re-publishing the hour writes nothing and changes nothing.
    let state = intraday_state(&pool).await;
    let again = publish_hourly(&pg.url, &warehouse, SECOND).await;
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("publish hourly unchanged: date=2025-03-04 hour=11 users=300 changed=0"),
        "{}",
        again.stdout
    );
    assert_eq!(intraday_state(&pool).await, state);

    // An older hour is skipped (exit 0: the newer hour supersedes it), writing nothing.
    value_hourly(&warehouse, SECOND, "9").await;
    let late = publish_hourly(&pg.url, &warehouse, SECOND).await;
    late.assert_ok();
    assert!(
        late.stdout
            .contains("skipped (hour 11 of 2025-03-04 is published)"),
        "{}",
        late.stdout
    );
    assert_eq!(intraday_state(&pool).await, state);

    // The NAV corrected back: hour 12 writes the same holders again, now equal to the daily
    // numbers (compared with their hour-11 points, not with the daily snapshot).
    let file = amfi_file_with_nav(&warehouse, code, &original);
    ingest(&warehouse, file.path());
    value_hourly(&warehouse, SECOND, "12").await;
    // First with the last bucket corrupt, found after the others' changed rows were copied:
    // the publish fails naming the file, and hour 11 stays served, untouched.
    let corrupt = warehouse.join(format!(
        "portfolio_hourly/as_of={SECOND}/bucket=63/part-00000.parquet"
    ));
    let good = std::fs::read(&corrupt).unwrap();
    std::fs::write(&corrupt, b"not parquet").unwrap();
    let failed = publish_hourly(&pg.url, &warehouse, SECOND).await;
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(failed.stderr.contains("bucket=63"), "{}", failed.stderr);
    assert_eq!(intraday_state(&pool).await, state);
    let (_, still) = api.get(&portfolio, Some(&token)).await;
    assert_eq!(still["intraday"]["hour"], 11, "{still}");
    std::fs::write(&corrupt, good).unwrap();
    let twelve = publish_hourly(&pg.url, &warehouse, SECOND).await;
    twelve.assert_ok();
    assert!(
        twelve
            .stdout
            .contains(&format!("hour=12 users=300 changed={}", holders.len())),
        "{}",
        twelve.stdout
    );
    assert_eq!(users_written(&pool, 12).await, holders);
    let (_, back) = api.get(&portfolio, Some(&token)).await;
    assert_eq!(back["intraday"]["hour"], 12, "{back}");
    assert_eq!(back["intraday"]["current_value"], daily["current_value"]);
    // History: one point per changed user and hour of the day.
    let hours: Vec<i16> =
        sqlx::query_scalar("SELECT hour FROM portfolio_intraday WHERE user_id = $1 ORDER BY hour")
            .bind(holder)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(hours, vec![11, 12]);

    // The daily publish of the date supersedes every intraday figure up to it.
    publish(&pg.url, &warehouse, SECOND, &[]).await.assert_ok();
    let (_, daily_again) = api.get(&portfolio, Some(&token)).await;
    assert!(daily_again["intraday"].is_null(), "{daily_again}");
    assert_eq!(intraday_state(&pool).await, "");
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'portfolio_intraday'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(partitions, 0);

    // A date older than the latest daily publication is skipped.
    value_hourly(&warehouse, FIRST, "13").await;
    let old = publish_hourly(&pg.url, &warehouse, FIRST).await;
    old.assert_ok();
    assert!(
        old.stdout
            .contains("skipped (the daily valuation of 2025-03-04 is published)"),
        "{}",
        old.stdout
    );
    assert_eq!(intraday_state(&pool).await, "");
}
