//! The GraphQL subgraph at `/graphql` of a real `sipline serve` over a real PostgreSQL: each
//! query and mutation against what the REST routes answer, auth failures, another user's data
//! refused, the depth and complexity limits, federation's `_entities`, and how many SQL
//! statements a portfolio with many lines costs.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::api::{claims, hs256, Api};
use crate::publish::{published_universe, FIRST};
use crate::support::{ingest_fixture_into_postgres, Postgres};

pub(crate) async fn graphql(
    api: &Api,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (StatusCode, Value) {
    let mut request = api
        .http
        .post(format!("{}/graphql", api.base))
        .header("content-type", "application/json")
        .body(json!({ "query": query, "variables": variables }).to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The API's count of SQL statements run so far (every query is timed into this histogram).
async fn statements(api: &Api) -> u64 {
    let (_, metrics) = api.get("/metrics", None).await;
    metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("sipline_api_db_query_duration_seconds_count "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_reads_what_rest_serves_to_its_owner_only_within_its_limits() {
    let pg = Postgres::start().await;
    let _warehouse = published_universe(&pg.url).await;
    let pool = pg.pool().await;
    // The user with the most lines, and another.
    let rows = sqlx::query(
        "SELECT u.user_id, u.auth_subject FROM users u JOIN portfolio_latest p USING (user_id) \
         ORDER BY p.schemes DESC, u.user_id LIMIT 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let (a, a_sub): (i64, String) = (rows[0].get(0), rows[0].get(1));
    let b: i64 = rows[1].get(0);
    let token = hs256(&claims(&a_sub));
    let api = Api::start(&pg.url).await;

    // Auth: no token and a forged one are 401s, as on REST; nothing runs.
    let query = "{ me { id } }";
    assert_eq!(
        graphql(&api, None, query, json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        graphql(&api, Some(&forged), query, json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The portfolio with every line: one SQL statement beyond the caller's profile, however
    // many lines (a cold cache: nothing of this user's was read yet).
    let before = statements(&api).await;
    let (status, body) = graphql(
        &api,
        Some(&token),
        "{ me { id authSubject portfolio { asOf invested currentValue xirr schemes \
           lines { schemeCode schemeName units currentValue weightPct } } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    let ran = statements(&api).await - before;
    let me = &body["data"]["me"];
    let lines = me["portfolio"]["lines"].as_array().unwrap();
    assert!(lines.len() >= 3, "{body}");
    assert!(
        ran <= 2,
        "{ran} statements for a portfolio of {} lines",
        lines.len()
    );
    assert_eq!(me["id"], a.to_string());
    assert_eq!(me["authSubject"], a_sub);
    let (_, rest) = api
        .get(&format!("/v1/users/{a}/portfolio"), Some(&token))
        .await;
    assert_eq!(me["portfolio"]["invested"], rest["invested"]);
    assert_eq!(me["portfolio"]["asOf"], FIRST);
    assert_eq!(lines[0]["schemeCode"], rest["lines"][0]["scheme_code"]);
    assert_eq!(lines[0]["units"], rest["lines"][0]["units"]);

    // SIPs, investments, notifications and a chart, each as its route answers.
    let (status, body) = graphql(
        &api,
        Some(&token),
        "query($first: Int!) { me { sips(first: $first) { sips { sipId schemeCode amount status } nextAfter } \
           investments(first: 5) { investments { sipId status amount units } nextBefore } \
           notifications(first: 5) { notifications { notificationId kind payload } } \
           chart(type: PIE) } }",
        json!({ "first": 2 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    let me = &body["data"]["me"];
    let (_, sips) = api.get("/v1/users/me/sips?limit=2", Some(&token)).await;
    assert_eq!(me["sips"]["sips"][0]["sipId"], sips["sips"][0]["sip_id"]);
    assert_eq!(me["sips"]["sips"][0]["amount"], sips["sips"][0]["amount"]);
    let (_, investments) = api
        .get("/v1/users/me/investments?limit=5", Some(&token))
        .await;
    assert_eq!(
        me["investments"]["investments"].as_array().unwrap().len(),
        investments["investments"].as_array().unwrap().len()
    );
    let (_, pie) = api
        .get(&format!("/v1/users/{a}/charts/pie"), Some(&token))
        .await;
    assert_eq!(me["chart"], pie);

    // Schemes: search as on REST.
    let (_, body) = graphql(
        &api,
        Some(&token),
        "{ schemes(query: \"fund\", first: 3) { schemes { schemeCode schemeName } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        body["data"]["schemes"]["schemes"].as_array().unwrap().len(),
        3,
        "{body}"
    );

    // Another user's data: null, by id and as a federation entity; one's own resolves.
    let (_, body) = graphql(
        &api,
        Some(&token),
        "query($b: ID!) { user(id: $b) { id portfolio { invested } } }",
        json!({ "b": b.to_string() }),
    )
    .await;
    assert!(body["data"]["user"].is_null(), "{body}");
    let (_, body) = graphql(
        &api,
        Some(&token),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id portfolio { invested } } } }",
        json!({ "r": [{ "__typename": "User", "id": b.to_string() }, { "__typename": "User", "id": a.to_string() }] }),
    )
    .await;
    assert!(body["data"]["_entities"][0].is_null(), "{body}");
    assert_eq!(body["data"]["_entities"][1]["id"], a.to_string(), "{body}");
    assert_eq!(
        body["data"]["_entities"][1]["portfolio"]["invested"],
        rest["invested"]
    );
    // The federation SDL is served for the gateway.
    let (_, body) = graphql(&api, Some(&token), "{ _service { sdl } }", json!({})).await;
    assert!(
        body["data"]["_service"]["sdl"]
            .as_str()
            .unwrap()
            .contains("type User @key(fields: \"id\")"),
        "{body}"
    );

    // Bounded: too deep, too complex.
    let (status, body) = graphql(
        &api,
        Some(&token),
        "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"].is_null(), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    let wide: String = (0..300).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let (_, body) = graphql(&api, Some(&token), &format!("{{ {wide} }}"), json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_mutations_validate_and_replay_as_rest_does() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    // A clock set, not read: the start date is three days ahead of it whatever the date.
    let api = Api::start_at(&pg.url, "2027-03-10T12:00:00+05:30").await;
    let token = hs256(&claims("auth0|graphql-saver"));
    let start = "2027-03-13";
    let create = "mutation($input: NewSip!, $key: String!) { createSip(input: $input, idempotencyKey: $key) \
        { sipId schemeCode amount sipDay status effectiveFrom nextInstalment { dueDate amount } } }";
    let input =
        json!({ "schemeCode": 119552, "amount": "1000.00", "sipDay": 10, "startDate": start });

    let (status, first) = graphql(
        &api,
        Some(&token),
        create,
        json!({ "input": input, "key": "g-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["errors"].is_null(), "{first}");
    let sip = &first["data"]["createSip"];
    assert_eq!(sip["amount"], "1000.00");
    assert_eq!(sip["status"], "active");
    assert!(sip["nextInstalment"]["dueDate"].is_string(), "{first}");
    // The same key and input: the first answer, no second SIP.
    let (_, again) = graphql(
        &api,
        Some(&token),
        create,
        json!({ "input": input, "key": "g-1" }),
    )
    .await;
    assert_eq!(again["data"]["createSip"]["sipId"], sip["sipId"], "{again}");
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sips s JOIN users u USING (user_id) WHERE u.auth_subject = 'auth0|graphql-saver'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 1);
    // The same key with other input: refused, as REST refuses it (422).
    let other =
        json!({ "schemeCode": 119552, "amount": "2000.00", "sipDay": 10, "startDate": start });
    let (_, refused) = graphql(
        &api,
        Some(&token),
        create,
        json!({ "input": other, "key": "g-1" }),
    )
    .await;
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["status"], 422,
        "{refused}"
    );
    // REST's validation: an amount that is no amount, with the field named.
    let bad = json!({ "schemeCode": 119552, "amount": "1e3", "sipDay": 10, "startDate": start });
    let (_, invalid) = graphql(
        &api,
        Some(&token),
        create,
        json!({ "input": bad, "key": "g-2" }),
    )
    .await;
    assert_eq!(
        invalid["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{invalid}"
    );
    assert_eq!(
        invalid["errors"][0]["extensions"]["status"], 422,
        "{invalid}"
    );
    assert!(invalid.to_string().contains("amount"), "{invalid}");

    // Pause, then cancel; another person cannot touch it.
    let change = "mutation($id: ID!, $action: SipAction!, $key: String!) { changeSip(sipId: $id, action: $action, idempotencyKey: $key) { sipId status } }";
    let id = sip["sipId"].to_string();
    let (_, paused) = graphql(
        &api,
        Some(&token),
        change,
        json!({ "id": id, "action": "PAUSE", "key": "g-3" }),
    )
    .await;
    assert_eq!(paused["data"]["changeSip"]["status"], "paused", "{paused}");
    let stranger = hs256(&claims("auth0|graphql-stranger"));
    let (_, theirs) = graphql(
        &api,
        Some(&stranger),
        change,
        json!({ "id": id, "action": "CANCEL", "key": "g-4" }),
    )
    .await;
    assert_eq!(
        theirs["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{theirs}"
    );
    let (_, cancelled) = graphql(
        &api,
        Some(&token),
        change,
        json!({ "id": id, "action": "CANCEL", "key": "g-5" }),
    )
    .await;
    assert_eq!(
        cancelled["data"]["changeSip"]["status"], "cancelled",
        "{cancelled}"
    );
}

/// Orders through the subgraph (issue 36): `placeOrder` answers what the REST route answers
/// (the NAV date the cut-off gives, replay by key), a redemption of nothing held is a
/// `BAD_USER_INPUT` error naming the field, and `cancelOrder` cancels before the cut-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_places_replays_refuses_and_cancels_orders() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "amfi_navall_6col.txt").await;
    // Wednesday 10 March 2027, noon IST: before the cut-off, so today's NAV.
    let api = Api::start_at(&pg.url, "2027-03-10T12:00:00+05:30").await;
    let token = hs256(&claims("auth0|graphql-orderer"));
    let place = "mutation($input: NewOrder!, $key: String!) { placeOrder(input: $input, idempotencyKey: $key) \
        { orderId kind status navDate cancelBefore amount } }";
    let input = json!({ "kind": "purchase", "schemeCode": 119552, "amount": "5000" });
    let (status, first) = graphql(
        &api,
        Some(&token),
        place,
        json!({ "input": input, "key": "o-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["errors"].is_null(), "{first}");
    let order = &first["data"]["placeOrder"];
    assert_eq!(order["status"], "received");
    assert_eq!(order["navDate"], "2027-03-10", "{first}");
    assert_eq!(order["amount"], "5000.00");
    let (_, again) = graphql(
        &api,
        Some(&token),
        place,
        json!({ "input": input, "key": "o-1" }),
    )
    .await;
    assert_eq!(
        again["data"]["placeOrder"]["orderId"], order["orderId"],
        "{again}"
    );

    let redeem = json!({ "kind": "redemption", "schemeCode": 119552, "units": "1" });
    let (_, refused) = graphql(
        &api,
        Some(&token),
        place,
        json!({ "input": redeem, "key": "o-2" }),
    )
    .await;
    let error = &refused["errors"][0];
    assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{refused}");
    assert_eq!(
        error["extensions"]["errors"][0]["field"], "units",
        "{refused}"
    );

    let cancel = "mutation($id: ID!, $key: String!) { cancelOrder(orderId: $id, idempotencyKey: $key) { orderId status } }";
    let id = order["orderId"].as_i64().unwrap().to_string();
    let (_, cancelled) = graphql(
        &api,
        Some(&token),
        cancel,
        json!({ "id": id, "key": "c-1" }),
    )
    .await;
    assert_eq!(
        cancelled["data"]["cancelOrder"]["status"], "cancelled",
        "{cancelled}"
    );
    let (_, listed) = graphql(
        &api,
        Some(&token),
        "{ me { orders { orders { orderId status } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        listed["data"]["me"]["orders"]["orders"][0]["status"], "cancelled",
        "{listed}"
    );
}
