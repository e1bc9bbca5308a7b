//! `GET`/`PUT /v1/users/me/notification-preferences` through the real API process: defaults,
//! a round trip, and every invalid value refused with a 422 naming the field and nothing stored.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::api::{claims, hs256, Api};
use crate::support::Postgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_are_checked_before_they_are_stored() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let api = Api::start(&pg.url).await;
    let token = hs256(&claims("auth0|prefers-quiet"));
    let path = "/v1/users/me/notification-preferences";
    let put = |body: Value| {
        let api = &api;
        let token = token.clone();
        async move {
            let (status, _, body) = api
                .send(reqwest::Method::PUT, path, Some(&token), Some(body))
                .await;
            (status, body)
        }
    };

    let (status, defaults) = api.get(path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{defaults}");
    assert_eq!(defaults["channels"], json!(["webhook"]));
    assert_eq!(defaults["time_zone"], "Asia/Kolkata");

    let good = json!({ "channels": ["email", "sms"], "email": "asha@example.in",
                       "phone": "+919812345678", "quiet_start": "22:00", "quiet_end": "07:00",
                       "time_zone": "Europe/London" });
    let (status, stored) = put(good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, read) = api.get(path, Some(&token)).await;
    assert_eq!(read["channels"], json!(["email", "sms"]));
    assert_eq!(read["quiet_start"], "22:00");
    assert_eq!(read["time_zone"], "Europe/London");

    for (change, field) in [
        (json!({ "time_zone": "Mars/Olympus_Mons" }), "time_zone"),
        (
            json!({ "email": "asha@example.in\r\nBcc: everyone@example.com" }),
            "email",
        ),
        (json!({ "email": null }), "email"),
        (json!({ "phone": "98123" }), "phone"),
        (json!({ "channels": ["email", "fax"] }), "channels"),
        (json!({ "channels": ["sms", "sms"] }), "channels"),
        (json!({ "quiet_end": null }), "quiet_end"),
        (json!({ "quiet_start": "25:00" }), "quiet_start"),
        (json!({ "channels": ["push"] }), "push_token"),
    ] {
        let mut body = good.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, problem) = put(body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {problem}"
        );
    }
    let (status, _) = put(json!({ "channels": ["webhook"], "pager": "1" })).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused"
    );
    // Nothing of the refused ones was stored.
    let zone: String = sqlx::query_scalar("SELECT time_zone FROM notification_preferences")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(zone, "Europe/London");
    // Another user's preferences are not reachable.
    let other = hs256(&claims("auth0|someone-else"));
    let me: i64 =
        sqlx::query_scalar("SELECT user_id FROM users WHERE auth_subject = 'auth0|prefers-quiet'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (status, _) = api
        .get(
            &format!("/v1/users/{me}/notification-preferences"),
            Some(&other),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
