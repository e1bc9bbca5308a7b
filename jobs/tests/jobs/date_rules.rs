//! The date rules at the instants that break them (issue 41), with the clock set, never read:
//! the API (`serve --now`) and the batch (`sips export --now`, `sip execute`) agree on the
//! first instalment of a SIP created on a Saturday, a Sunday, a market holiday, the 28th to
//! 31st, 28/29 February, 31 December and 1 January, just before and just after the 15:00 IST
//! cut-off, and on a date after the embedded holiday list ends (2026-12-31).
//!
//! The rule (DESIGN.md, "When a change applies"): a change applies from its batch date (the
//! day it is made, or the next day when made at or after the cut-off), and a batch takes every
//! instalment whose NAV date — the due date, rolled forward to a business day — is its own
//! date. So an instalment belongs to the batch of its NAV date, and a change applies to every
//! instalment whose NAV date is on or after the change's effective date, whatever its due
//! date. Each expected date below is worked out by hand from that rule and the NSE list, not
//! by sipline's code.

use chrono::{Datelike, NaiveDate};
use reqwest::StatusCode;
use serde_json::json;

use crate::api::{claims, hs256, Api};
use crate::sip::csv;
use crate::support::{ingest_fixture_into_postgres, sipline_async, Postgres};

/// One instant, in IST, and what a SIP created then with `sip_day` = the day of the month
/// (at most 28) and `start_date` = today answers.
struct Case {
    at: &'static str,
    why: &'static str,
    effective_from: &'static str,
    due_date: &'static str,
    nav_date: &'static str,
    /// The batch run before the one that takes the instalment: the chain starts there (a
    /// run's window starts the day after the previous run). Where the SIP was created after a
    /// business day's cut-off, it is that day, and shows that its batch did not take it.
    run_before: &'static str,
}

const CASES: &[Case] = &[
    Case {
        at: "2026-12-06T16:00:00+05:30",
        why: "a Sunday after the cut-off: due today, taken by Monday's batch, which the change reaches",
        effective_from: "2026-12-07",
        due_date: "2026-12-06",
        nav_date: "2026-12-07",
        run_before: "2026-12-04",
    },
    Case {
        at: "2026-12-05T10:00:00+05:30",
        why: "a Saturday before the cut-off",
        effective_from: "2026-12-05",
        due_date: "2026-12-05",
        nav_date: "2026-12-07",
        run_before: "2026-12-04",
    },
    Case {
        at: "2026-12-04T14:59:00+05:30",
        why: "a Friday, a minute before the cut-off: today's batch takes it",
        effective_from: "2026-12-04",
        due_date: "2026-12-04",
        nav_date: "2026-12-04",
        run_before: "2026-12-03",
    },
    Case {
        at: "2026-12-04T15:00:00+05:30",
        why: "a Friday at the cut-off: today's batch has closed, the first instalment is next month's",
        effective_from: "2026-12-05",
        due_date: "2027-01-04",
        nav_date: "2027-01-04",
        run_before: "2026-12-04",
    },
    Case {
        at: "2026-12-25T10:00:00+05:30",
        why: "Christmas, an NSE holiday on a Friday: bought at Monday's NAV",
        effective_from: "2026-12-25",
        due_date: "2026-12-25",
        nav_date: "2026-12-28",
        run_before: "2026-12-24",
    },
    Case {
        at: "2026-12-31T16:00:00+05:30",
        why: "31 December after the cut-off: the SIP day is the 28th, the first in January",
        effective_from: "2027-01-01",
        due_date: "2027-01-28",
        nav_date: "2027-01-28",
        run_before: "2026-12-31",
    },
    Case {
        at: "2027-01-01T09:00:00+05:30",
        why: "1 January, after the embedded holiday list ends: a weekday is a business day",
        effective_from: "2027-01-01",
        due_date: "2027-01-01",
        nav_date: "2027-01-01",
        run_before: "2026-12-31",
    },
    Case {
        at: "2027-01-31T12:00:00+05:30",
        why: "the 31st, a Sunday: the 28th of February 2027 is a Sunday too, bought on 1 March",
        effective_from: "2027-01-31",
        due_date: "2027-02-28",
        nav_date: "2027-03-01",
        run_before: "2027-02-26",
    },
    Case {
        at: "2027-02-27T16:00:00+05:30",
        why: "a Saturday after the cut-off at the end of February: the change reaches Monday's batch",
        effective_from: "2027-02-28",
        due_date: "2027-02-27",
        nav_date: "2027-03-01",
        run_before: "2027-02-26",
    },
    Case {
        at: "2028-02-28T16:00:00+05:30",
        why: "28 February of a leap year after the cut-off: effective the 29th, first due in March",
        effective_from: "2028-02-29",
        due_date: "2028-03-28",
        nav_date: "2028-03-28",
        run_before: "2028-02-28",
    },
    Case {
        at: "2028-02-29T10:00:00+05:30",
        why: "29 February: the SIP day is the 28th, already past, so March's",
        effective_from: "2028-02-29",
        due_date: "2028-03-28",
        nav_date: "2028-03-28",
        run_before: "2028-03-27",
    },
];

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Exports the snapshot as of `day` (with the clock after that day's cut-off) and executes it.
async fn run_batch(wh: &str, database_url: &str, day: &str) {
    let after_cut_off = format!("{day}T23:00:00+05:30");
    sipline_async(&[
        "sips",
        "export",
        "--date",
        day,
        "--now",
        &after_cut_off,
        "--warehouse",
        wh,
        "--database-url",
        database_url,
    ])
    .await
    .assert_ok();
    sipline_async(&["sip", "execute", "--date", day, "--warehouse", wh])
        .await
        .assert_ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_batch_agree_on_the_first_instalment_at_every_awkward_instant() {
    let pg = Postgres::start().await;
    for (n, case) in CASES.iter().enumerate() {
        let warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
        let wh = warehouse.path().to_str().unwrap().to_string();
        let api = Api::start_at(&pg.url, case.at).await;
        let token = hs256(&claims(&format!("auth0|date-rules-{n}")));
        let today = date(&case.at[..10]);
        let body = json!({ "scheme_code": 119552, "amount": "1000.00",
                           "sip_day": today.day().min(28), "start_date": today });
        let (status, sip) = api.post("/v1/users/me/sips", &token, body).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {sip}", case.why);
        let said = (
            sip["effective_from"].clone(),
            sip["next_instalment"]["due_date"].clone(),
            sip["next_instalment"]["nav_date"].clone(),
        );
        assert_eq!(
            said,
            (
                json!(case.effective_from),
                json!(case.due_date),
                json!(case.nav_date)
            ),
            "{} ({}): {sip}",
            case.why,
            case.at
        );
        drop(api);

        // The batch: the run before, then the batch of the NAV date. The instalment is in the
        // NAV date's run (pending: the fixture has no NAV for it), due when the API said, and
        // in no earlier run.
        run_batch(&wh, &pg.url, case.run_before).await;
        run_batch(&wh, &pg.url, case.nav_date).await;
        let sip_id = sip["sip_id"].as_i64().unwrap();
        let rows = csv(
            warehouse.path(),
            &format!(
                "SELECT exec_date, due_date, status FROM investments WHERE sip_id = {sip_id} ORDER BY exec_date"
            ),
        );
        assert_eq!(
            rows.lines().skip(1).collect::<Vec<_>>(),
            vec![format!("{},{},pending", case.nav_date, case.due_date)],
            "{} ({}): the batch disagrees with the API",
            case.why,
            case.at
        );
        assert!(date(case.run_before) < date(case.nav_date));
    }
}

/// "Today" follows the clock, not the wall: a SIP starting yesterday (by India's date) is
/// refused, one starting today is not; the history records the clock's instant; the export's
/// cut-off check reads the same clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_and_the_past_are_the_clocks() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    // Just after midnight in India on 1 January 2027 is still 31 December in UTC.
    let api = Api::start_at(&pg.url, "2027-01-01T00:00:30+05:30").await;
    let token = hs256(&claims("auth0|new-year"));
    let sip = |start: &str| json!({ "scheme_code": 119552, "amount": "500.00", "sip_day": 1, "start_date": start });
    let (status, problem) = api
        .post("/v1/users/me/sips", &token, sip("2026-12-31"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("start_date"), "{problem}");
    let (status, created) = api
        .post("/v1/users/me/sips", &token, sip("2027-01-01"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["effective_from"], "2027-01-01", "{created}");
    assert_eq!(created["next_instalment"]["due_date"], "2027-01-01");
    let id = created["sip_id"].as_i64().unwrap();
    let (status, problem) = api
        .post(
            &format!("/v1/users/me/sips/{id}/pause"),
            &token,
            json!({ "until": "2026-12-31" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    // The history records the change at the clock's instant, not the wall's.
    let (_, detail) = api
        .get(&format!("/v1/users/me/sips/{id}"), Some(&token))
        .await;
    let changed_at = detail["changes"][0]["changed_at"].as_str().unwrap();
    // Ten minutes of margin for a slow start.
    assert!(changed_at.starts_with("2026-12-31T18:3"), "{detail}");
    drop(api);

    // The export refuses a date whose cut-off has not passed by the clock.
    let wh = _warehouse.path().to_str().unwrap();
    let early = sipline_async(&[
        "sips",
        "export",
        "--date",
        "2027-01-01",
        "--now",
        "2027-01-01T14:59:00+05:30",
        "--warehouse",
        wh,
        "--database-url",
        &pg.url,
    ])
    .await;
    assert_eq!(early.code, 4, "{}", early.stderr);
    let late = sipline_async(&[
        "sips",
        "export",
        "--date",
        "2027-01-01",
        "--now",
        "2027-01-01T15:00:00+05:30",
        "--warehouse",
        wh,
        "--database-url",
        &pg.url,
    ])
    .await;
    late.assert_ok();
    assert!(late.stdout.contains(" sips=1 "), "{}", late.stdout);
}
