//! `serve --read-database-url` against a real hot standby (issue 40 §3): two PostgreSQL 15
//! clusters, a primary and a standby made with `pg_basebackup -R` streaming its WAL. Published
//! reads go to the standby; a person's reads after their own write, and every read while the
//! standby has not replayed the latest publish, go to the primary; readers of the standby see
//! whole dates while a publish replays; a stopped standby costs nobody an error; the lag and
//! the state are metrics.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{claims, hs256, Api};
use crate::crash::served;
use crate::publish::{publish, published_universe, FIRST, SECOND};
use crate::support::Postgres;

/// One metric's value from `/metrics`.
async fn metric(api: &Api, name: &str) -> Option<f64> {
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (30 s at most) until `metric` satisfies `wanted`.
async fn wait_for_metric(api: &Api, name: &str, wanted: impl Fn(f64) -> bool) {
    for _ in 0..300 {
        if metric(api, name).await.is_some_and(&wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} never reached the wanted value: {:?}",
        metric(api, name).await
    );
}

async fn portfolio(api: &Api, token: &str, user: &str) -> (StatusCode, Value) {
    api.get(&format!("/v1/users/{user}/portfolio"), Some(token))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_reads_go_to_a_standby_that_has_replayed_and_to_the_primary_otherwise() {
    let started = std::time::Instant::now();
    let step = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let primary = Postgres::own_cluster();
    let warehouse = published_universe(&primary.url).await;
    step("universe published");
    let standby = primary.standby();
    step("standby made");
    let primary_pool = primary.pool().await;
    let standby_pool = standby.pool().await;
    let api = Api::start_with(
        &primary.url,
        &[
            "--rate-per-user",
            "0",
            "--rate-per-address",
            "0",
            "--read-database-url",
            &standby.url,
            // Replay is paused below for longer than the default bound of 5 s.
            "--max-replica-lag-secs",
            "600",
        ],
    )
    .await;
    step("api started");
    let mut service_claims = claims("backend");
    service_claims["role"] = "service_role".into();
    let service = hs256(&service_claims);
    wait_for_metric(&api, "sipline_api_replica_up", |v| v == 1.0).await;
    let users: Vec<i64> =
        sqlx::query_scalar("SELECT user_id FROM portfolio_latest ORDER BY user_id LIMIT 40")
            .fetch_all(&primary_pool)
            .await
            .unwrap();

    step("standby up");
    // 1. Published reads are the standby's: with its replay paused, a change on the primary
    // (made by hand, no publish) is not what the API answers.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby_pool)
        .await
        .unwrap();
    let changed = users[0];
    sqlx::query(
        "UPDATE portfolio_snapshots SET current_value = current_value + 1 \
         WHERE user_id = $1 AND as_of = $2::date",
    )
    .bind(changed)
    .bind(FIRST)
    .execute(&primary_pool)
    .await
    .unwrap();
    let value_on = |pool: &sqlx::PgPool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT current_value::text FROM portfolio_latest WHERE user_id = $1",
            )
            .bind(changed)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (on_standby, on_primary) = (value_on(&standby_pool).await, value_on(&primary_pool).await);
    assert_ne!(on_standby, on_primary);
    let (status, answered) = portfolio(&api, &service, &changed.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert_eq!(
        answered["current_value"], on_standby,
        "answered from the primary, not the standby: {answered}"
    );

    step("step 1");
    // 2. Read-your-writes: a person who has just placed an order sees it pending in their
    // (not yet published) portfolio, although the paused standby has neither them nor it.
    let scheme: i64 = sqlx::query_scalar("SELECT scheme_code FROM sips ORDER BY sip_id LIMIT 1")
        .fetch_one(&primary_pool)
        .await
        .unwrap();
    let person = hs256(&claims("auth0|replica-person"));
    let (status, order) = api
        .post(
            "/v1/users/me/orders",
            &person,
            json!({ "kind": "purchase", "scheme_code": scheme, "amount": "10000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let (status, mine) = portfolio(&api, &person, "me").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["pending"]["orders_received"], 1, "{mine}");

    step("step 2");
    // 3. A publish the standby has not replayed: the API answers the new date (from the
    // primary, whose NOTIFY cleared the caches), never the standby's previous one.
    publish(&primary.url, &warehouse, SECOND, &[])
        .await
        .assert_ok();
    assert_eq!(served(&standby_pool).await.0.to_string(), FIRST);
    assert_eq!(served(&primary_pool).await.0.to_string(), SECOND);
    // The NOTIFY reaches the API a moment after the commit; until it does, the standby still
    // serves (the date flips within milliseconds, as on the primary). The first answer of
    // the new date can only come from the primary: from then on, no read may go back.
    let mut waited = 0;
    while portfolio(&api, &service, &users[1].to_string()).await.1["as_of"] != SECOND {
        waited += 1;
        assert!(waited < 100, "the publish's NOTIFY never reached the API");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for user in &users[2..10] {
        let (status, answered) = portfolio(&api, &service, &user.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{answered}");
        assert_eq!(
            answered["as_of"], SECOND,
            "a date the primary superseded: {answered}"
        );
    }

    step("step 3");
    // 4. The standby replays the publish while readers read it: each sees one date whole
    // (its publication's snapshot count, all rows); the API never answers the old date.
    let watcher = {
        let standby_pool = standby_pool.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..600 {
                let now = served(&standby_pool).await;
                seen.push(now);
                if now.0.to_string() == SECOND {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&standby_pool)
        .await
        .unwrap();
    let mut answered_during = 0;
    while !watcher.is_finished() {
        for user in &users[10..20] {
            let (status, answered) = portfolio(&api, &service, &user.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{answered}");
            assert_eq!(answered["as_of"], SECOND, "{answered}");
            answered_during += 1;
        }
    }
    let seen = watcher.await.unwrap();
    for (as_of, snapshots, rows) in &seen {
        assert_eq!(
            snapshots, rows,
            "the standby showed {as_of} part-way: {seen:?}"
        );
    }
    assert_eq!(seen.last().unwrap().0.to_string(), SECOND, "{seen:?}");
    wait_for_metric(&api, "sipline_api_replica_lag_bytes", |v| v == 0.0).await;
    wait_for_metric(&api, "sipline_api_replica_up", |v| v == 1.0).await;
    eprintln!(
        "standby: {} looks while it replayed the publish, each one date whole; {answered_during} API reads meanwhile, all of {SECOND}",
        seen.len()
    );

    step("step 4");
    // 5. The standby stops: reads go on, from the primary, with no error to anyone, and the
    // metrics say so.
    standby.stop_immediately();
    for user in &users[20..40] {
        let (status, answered) = portfolio(&api, &service, &user.to_string()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "with the standby stopped: {answered}"
        );
        assert_eq!(answered["as_of"], SECOND, "{answered}");
    }
    let (status, _) = api.get("/v1/schemes?q=franklin", Some(&person)).await;
    assert_eq!(status, StatusCode::OK);
    wait_for_metric(&api, "sipline_api_replica_up", |v| v == 0.0).await;
    assert!(metric(&api, "sipline_api_replica_fallbacks_total")
        .await
        .is_some());
}
