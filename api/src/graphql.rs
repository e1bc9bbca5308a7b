//! The GraphQL subgraph at `/graphql` (issue 20), for an Apollo Federation v2 gateway.
//!
//! Every field resolves through the REST route that serves the same data, called in process
//! with the caller's own `Authorization` (and `Idempotency-Key` for mutations): one set of
//! rules for both interfaces — the JWT checks and per-user isolation, validation, quotas,
//! idempotent changes, rate limits (a field that reads a resource costs what its request
//! costs), the byte-bounded caches and their invalidation on publish, metrics and traces. A
//! portfolio with its lines is one REST read, so one SQL statement (or a cache hit), however
//! many lines it has. Queries are bounded by depth and complexity; there are no persisted
//! queries, so nothing is stored per client.

use std::sync::{Arc, OnceLock};

use async_graphql::{
    ComplexObject, Context, EmptySubscription, Enum, ErrorExtensions, InputObject, Object, Schema,
    SimpleObject, ID,
};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

use serving::GraphType;

use crate::problem::Problem;
use crate::routes::extract::Authed;

/// How deep a query may nest (`me { portfolio { lines { … } } }` is 4).
pub const MAX_DEPTH: usize = 8;
/// The most fields a query may select (lists count once per selection).
pub const MAX_COMPLEXITY: usize = 250;
/// The largest query document, as the REST routes' largest body.
const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The largest response a field may read from its route.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub type SiplineSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn schema() -> SiplineSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .enable_federation()
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(16)
        .finish()
}

/// The subgraph's SDL with its federation directives, as a gateway or `rover` composes it.
pub fn sdl() -> String {
    schema().sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// The schema and the application router the fields call; the router holds this, so it is
/// set once the router is built.
#[derive(Clone)]
pub struct GraphQl {
    schema: SiplineSchema,
    app: Arc<OnceLock<Router>>,
}

impl GraphQl {
    pub fn new() -> (Self, Arc<OnceLock<Router>>) {
        let app = Arc::new(OnceLock::new());
        (
            Self {
                schema: schema(),
                app: app.clone(),
            },
            app,
        )
    }
}

/// What a field needs to call a route as the caller.
struct Caller {
    app: Router,
    authorization: HeaderValue,
    address: Option<ConnectInfo<std::net::SocketAddr>>,
    /// The caller's user id; none for a service token.
    user_id: Option<i64>,
}

/// `POST /graphql`: the token is verified first, as on every REST route (401 and 429 as
/// there); the query's own errors are GraphQL errors in a 200, as gateways expect.
pub async fn execute(
    authed: Authed,
    Extension(graphql): Extension<GraphQl>,
    request: Request,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    let (Some(authorization), Some(app)) = (
        request.headers().get(header::AUTHORIZATION).cloned(),
        graphql.app.get().cloned(),
    ) else {
        return Problem::internal().into_response();
    };
    let body = match axum::body::to_bytes(request.into_body(), MAX_QUERY_BYTES).await {
        Ok(body) => body,
        Err(e) => return Problem::bad_request(format!("reading the body: {e}")).into_response(),
    };
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return Problem::bad_request(format!("not a GraphQL request: {e}")).into_response()
        }
    };
    let caller = Caller {
        app,
        authorization,
        address,
        user_id: authed.user_id(),
    };
    let response = graphql.schema.execute(request.data(caller)).await;
    axum::Json(response).into_response()
}

/// `GET /graphql`: the SDL, for `rover subgraph introspect` and people. Built once: it never
/// changes while the process runs, and building it walks the whole schema.
pub async fn describe() -> Response {
    static SDL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SDL.get_or_init(sdl).clone();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

enum Refused {
    Status(StatusCode, Value),
    Internal(String),
}

impl From<Refused> for async_graphql::Error {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Status(status, problem) => {
                let detail = problem["detail"]
                    .as_str()
                    .or(problem["title"].as_str())
                    .unwrap_or("refused")
                    .to_string();
                let code = match status {
                    StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
                    StatusCode::FORBIDDEN => "FORBIDDEN",
                    StatusCode::NOT_FOUND => "NOT_FOUND",
                    StatusCode::CONFLICT => "CONFLICT",
                    StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
                    s if s.is_server_error() => "UNAVAILABLE",
                    _ => "BAD_USER_INPUT",
                };
                async_graphql::Error::new(detail).extend_with(|_, e| {
                    e.set("code", code);
                    e.set("status", status.as_u16());
                    if let Some(errors) = problem.get("errors") {
                        if let Ok(errors) = async_graphql::Value::from_json(errors.clone()) {
                            e.set("errors", errors);
                        }
                    }
                })
            }
            Refused::Internal(detail) => {
                tracing::error!(error = detail, "graphql: a route call failed");
                async_graphql::Error::new("internal error")
                    .extend_with(|_, e| e.set("code", "INTERNAL_SERVER_ERROR"))
            }
        }
    }
}

async fn call(
    caller: &Caller,
    method: Method,
    path: String,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Result<Value, Refused> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, caller.authorization.clone());
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = request
        .body(body)
        .map_err(|e| Refused::Internal(e.to_string()))?;
    if let Some(address) = caller.address {
        request.extensions_mut().insert(address);
    }
    let response = caller
        .app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_BODY)
        .await
        .map_err(|e| Refused::Internal(e.to_string()))?;
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| Refused::Internal(e.to_string()))?
    };
    if status.is_success() {
        Ok(value)
    } else {
        Err(Refused::Status(status, value))
    }
}

async fn read<T: DeserializeOwned>(ctx: &Context<'_>, path: String) -> async_graphql::Result<T> {
    let caller = ctx.data::<Caller>()?;
    let value = call(caller, Method::GET, path, None, None).await?;
    Ok(serde_json::from_value(value)?)
}

/// A read where "not there" is an answer (`null`), not an error.
async fn read_optional<T: DeserializeOwned>(
    ctx: &Context<'_>,
    path: String,
) -> async_graphql::Result<Option<T>> {
    match read(ctx, path).await {
        Err(e)
            if e.extensions.as_ref().and_then(|x| x.get("status"))
                == Some(&async_graphql::Value::from(404)) =>
        {
            Ok(None)
        }
        other => other.map(Some),
    }
}

async fn write<T: DeserializeOwned>(
    ctx: &Context<'_>,
    path: String,
    body: Option<Value>,
    idempotency_key: &str,
) -> async_graphql::Result<T> {
    let caller = ctx.data::<Caller>()?;
    let value = call(caller, Method::POST, path, body, Some(idempotency_key)).await?;
    Ok(serde_json::from_value(value)?)
}

/// Query parameters from optional values, percent-encoded.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            value.as_ref().map(|v| {
                let v: String = url_encode(v);
                format!("{key}={v}")
            })
        })
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct Query;

#[Object]
impl Query {
    /// The signed-in person.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        read(ctx, "/v1/me".to_string()).await
    }

    /// A user by id: yourself, or anyone with a service token; otherwise null.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        user_by_id(ctx, &id).await
    }

    /// Funds by name (typo-tolerant), ISIN or code, with the REST route's filters.
    #[allow(clippy::too_many_arguments)]
    async fn schemes(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        category: Option<String>,
        fund_house: Option<String>,
        open_for_sip: Option<bool>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<SchemePage> {
        read(
            ctx,
            format!(
                "/v1/schemes{}",
                self::query(&[
                    ("q", query),
                    ("category", category),
                    ("fund_house", fund_house),
                    ("open_for_sip", open_for_sip.map(|b| b.to_string())),
                    ("limit", Some(first.to_string())),
                    ("after", after),
                ])
            ),
        )
        .await
    }

    /// Federation: `User` is an entity other subgraphs extend (`@key(fields: "id")`).
    #[graphql(entity)]
    async fn find_user_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<User>> {
        user_by_id(ctx, &id).await
    }
}

/// A user the caller may see: themselves, or anyone that exists for a service token;
/// another person's id is null, as another person's REST route is a 404.
async fn user_by_id(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Option<User>> {
    let Ok(user_id) = id.parse::<i64>() else {
        return Ok(None);
    };
    match ctx.data::<Caller>()?.user_id {
        Some(own) if own == user_id => read(ctx, "/v1/me".to_string()).await.map(Some),
        Some(_) => Ok(None),
        None => {
            let exists: Option<Value> =
                read_optional(ctx, format!("/v1/users/{user_id}/sips?limit=1")).await?;
            Ok(exists.map(|_| User::bare(user_id)))
        }
    }
}

#[derive(SimpleObject, Deserialize)]
#[graphql(complex)]
pub struct User {
    #[graphql(skip)]
    user_id: i64,
    #[serde(default)]
    auth_subject: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

impl User {
    fn bare(user_id: i64) -> Self {
        Self {
            user_id,
            auth_subject: None,
            email: None,
            phone: None,
            created_at: None,
        }
    }
}

/// `serving::GraphType` as a GraphQL enum (the derive needs a local type); a test checks the
/// two list the same charts, so a chart added to the contract fails the build's tests here.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ChartType {
    Pie,
    Line,
    Bar,
}

impl From<ChartType> for GraphType {
    fn from(chart: ChartType) -> Self {
        match chart {
            ChartType::Pie => GraphType::Pie,
            ChartType::Line => GraphType::Line,
            ChartType::Bar => GraphType::Bar,
        }
    }
}

impl ChartType {
    fn path(self) -> &'static str {
        GraphType::from(self).as_str()
    }
}

#[ComplexObject]
impl User {
    async fn id(&self) -> ID {
        ID(self.user_id.to_string())
    }

    /// The latest published portfolio; before the first valuation, an empty one (`asOf`
    /// null) with what is `pending`.
    async fn portfolio(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Portfolio>> {
        read_optional(ctx, format!("/v1/users/{}/portfolio", self.user_id)).await
    }

    /// A chart's document (pie, line or bar) as the REST route serves it.
    async fn chart(
        &self,
        ctx: &Context<'_>,
        r#type: ChartType,
    ) -> async_graphql::Result<Option<async_graphql::Json<Value>>> {
        let chart: Option<Value> = read_optional(
            ctx,
            format!("/v1/users/{}/charts/{}", self.user_id, r#type.path()),
        )
        .await?;
        Ok(chart.map(async_graphql::Json))
    }

    /// SIPs by id, `first` at a time after the cursor `after`.
    async fn sips(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        after: Option<ID>,
    ) -> async_graphql::Result<SipPage> {
        read(
            ctx,
            format!(
                "/v1/users/{}/sips{}",
                self.user_id,
                query(&[
                    ("limit", Some(first.to_string())),
                    ("after", after.map(|a| a.0)),
                ])
            ),
        )
        .await
    }

    /// Orders (lumpsums, redemptions, switches) by id, `first` at a time after `after`.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        after: Option<ID>,
    ) -> async_graphql::Result<OrderPage> {
        read(
            ctx,
            format!(
                "/v1/users/{}/orders{}",
                self.user_id,
                query(&[
                    ("limit", Some(first.to_string())),
                    ("after", after.map(|a| a.0)),
                ])
            ),
        )
        .await
    }

    /// SWPs and STPs by id, `first` at a time after `after`.
    async fn plans(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        after: Option<ID>,
    ) -> async_graphql::Result<PlanPage> {
        read(
            ctx,
            format!(
                "/v1/users/{}/plans{}",
                self.user_id,
                query(&[
                    ("limit", Some(first.to_string())),
                    ("after", after.map(|a| a.0)),
                ])
            ),
        )
        .await
    }

    /// Instalments, newest first.
    async fn investments(
        &self,
        ctx: &Context<'_>,
        sip_id: Option<ID>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        before: Option<String>,
    ) -> async_graphql::Result<InvestmentPage> {
        read(
            ctx,
            format!(
                "/v1/users/{}/investments{}",
                self.user_id,
                query(&[
                    ("sip_id", sip_id.map(|s| s.0)),
                    ("limit", Some(first.to_string())),
                    ("before", before),
                ])
            ),
        )
        .await
    }

    /// Notifications, newest first.
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        unread: Option<bool>,
        #[graphql(default = 50, validator(minimum = 1, maximum = 200))] first: i32,
        before: Option<ID>,
    ) -> async_graphql::Result<NotificationPage> {
        read(
            ctx,
            format!(
                "/v1/users/{}/notifications{}",
                self.user_id,
                query(&[
                    ("unread", unread.map(|u| u.to_string())),
                    ("limit", Some(first.to_string())),
                    ("before", before.map(|b| b.0)),
                ])
            ),
        )
        .await
    }
}

/// Money and units are exact decimal strings, as on REST.
#[derive(SimpleObject, Deserialize)]
pub struct Portfolio {
    /// Null before the first valuation of this person is published.
    as_of: Option<String>,
    invested: String,
    current_value: String,
    gain: String,
    abs_return_pct: Option<String>,
    /// A fraction (0.12 is 12% a year); null when it cannot be computed.
    xirr: Option<f64>,
    schemes: i32,
    nav_date: Option<String>,
    lines: Vec<PortfolioLine>,
    /// The newest valuation when an hourly one was published after this date's: its time and
    /// the numbers then (no XIRR or lines: daily figures). Null when the daily is the newest.
    intraday: Option<IntradayValuation>,
    /// Before the first valuation only: what will show once the batch runs.
    #[serde(default)]
    pending: Option<PortfolioPending>,
}

/// What is on its way into an empty portfolio.
#[derive(SimpleObject, Deserialize)]
pub struct PortfolioPending {
    /// The first instalment any SIP settles next; null when none falls due.
    next_instalment: Option<UpcomingInstalment>,
    /// SIPs that may still fall due.
    sips: i32,
    /// Orders placed and not yet executed.
    orders_received: i64,
}

/// The next instalment across a person's SIPs.
#[derive(SimpleObject, Deserialize)]
pub struct UpcomingInstalment {
    sip_id: i64,
    scheme_code: i64,
    due_date: String,
    nav_date: String,
    amount: String,
}

/// An hourly valuation of the portfolio (`publish --hourly`).
#[derive(SimpleObject, Deserialize)]
pub struct IntradayValuation {
    as_of: String,
    hour: i32,
    /// When the hour was published (RFC 3339).
    valued_at: String,
    invested: String,
    current_value: String,
    gain: String,
    abs_return_pct: Option<String>,
    schemes: i32,
    nav_date: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct PortfolioLine {
    scheme_code: i64,
    scheme_name: Option<String>,
    units: String,
    invested: String,
    nav: Option<String>,
    nav_date: Option<String>,
    current_value: String,
    weight_pct: Option<String>,
    xirr: Option<f64>,
    day_change: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct Sip {
    sip_id: i64,
    scheme_code: i64,
    amount: String,
    sip_day: i32,
    start_date: String,
    end_date: Option<String>,
    step_up_pct: String,
    status: String,
    paused_until: Option<String>,
    /// The first batch date the current terms apply to (on a created or changed SIP).
    #[serde(default)]
    effective_from: Option<String>,
    #[serde(default)]
    next_instalment: Option<NextInstalment>,
}

/// An order as `GET /v1/users/{id}/orders/{order_id}` serves it: money, units and NAVs as
/// decimal strings, the execution's fields null until it executes.
#[derive(SimpleObject, Deserialize)]
pub struct Order {
    order_id: i64,
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: Option<String>,
    units: Option<String>,
    redeem_all: bool,
    status: String,
    received_at: String,
    nav_date: String,
    cancel_before: String,
    executed_nav: Option<String>,
    executed_units: Option<String>,
    gross_amount: Option<String>,
    stamp_duty: Option<String>,
    exit_load: Option<String>,
    stt: Option<String>,
    net_amount: Option<String>,
    realised_gain: Option<String>,
    payout_date: Option<String>,
    failure: Option<String>,
    /// The SWP or STP this order is an instalment of, and the day it fell due.
    #[serde(default)]
    plan_id: Option<i64>,
    #[serde(default)]
    plan_due_date: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct OrderPage {
    orders: Vec<Order>,
    next_after: Option<i64>,
}

/// An SWP or STP as `GET /v1/users/{id}/plans/{plan_id}` serves it.
#[derive(SimpleObject, Deserialize)]
pub struct Plan {
    plan_id: i64,
    /// swp or stp.
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: String,
    plan_day: i32,
    start_date: String,
    end_date: Option<String>,
    /// active, paused, cancelled or stopped.
    status: String,
    /// Why it stopped: the instalment the holding could not pay.
    stopped_reason: Option<String>,
    created_at: String,
    next_instalment: Option<PlanInstalment>,
}

#[derive(SimpleObject, Deserialize)]
pub struct PlanInstalment {
    due_date: String,
    nav_date: String,
}

#[derive(SimpleObject, Deserialize)]
pub struct PlanPage {
    plans: Vec<Plan>,
    next_after: Option<i64>,
}

/// A new SWP or STP, as `POST /v1/users/me/plans` takes it.
#[derive(InputObject)]
pub struct NewPlan {
    /// swp or stp.
    kind: String,
    scheme_code: i64,
    /// An STP's target, of the same fund house.
    target_scheme_code: Option<i64>,
    amount: String,
    /// 1–28.
    plan_day: i32,
    start_date: Option<String>,
    end_date: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum PlanAction {
    Pause,
    Resume,
    Cancel,
}

/// A new order, as `POST /v1/users/me/orders` takes it.
#[derive(InputObject)]
pub struct NewOrder {
    /// purchase, redemption or switch.
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: Option<String>,
    units: Option<String>,
    all: Option<bool>,
}

#[derive(SimpleObject, Deserialize)]
pub struct NextInstalment {
    due_date: String,
    nav_date: String,
    amount: String,
}

#[derive(SimpleObject, Deserialize)]
pub struct SipPage {
    sips: Vec<Sip>,
    next_after: Option<i64>,
}

#[derive(SimpleObject, Deserialize)]
pub struct Investment {
    sip_id: i64,
    due_date: String,
    exec_date: String,
    scheme_code: i64,
    status: String,
    amount: String,
    stamp_duty: String,
    nav_date: Option<String>,
    nav: Option<String>,
    units: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct InvestmentPage {
    investments: Vec<Investment>,
    next_before: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct Notification {
    notification_id: i64,
    kind: String,
    payload: async_graphql::Json<Value>,
    created_at: String,
    read_at: Option<String>,
    /// Over all channels: pending, delivering, delivered or dead.
    status: String,
    /// One per channel it goes to.
    deliveries: Vec<NotificationDelivery>,
}

/// A notification's delivery on one channel.
#[derive(SimpleObject, Deserialize)]
pub struct NotificationDelivery {
    channel: String,
    status: String,
    attempts: i32,
    delivered_at: Option<String>,
    next_attempt_at: Option<String>,
    /// The provider's delivery report (SMS: sent, failed, failed_dnd, ...).
    report: Option<String>,
}

#[derive(SimpleObject, Deserialize)]
pub struct NotificationPage {
    notifications: Vec<Notification>,
    next_before: Option<i64>,
}

#[derive(SimpleObject, Deserialize)]
pub struct Scheme {
    scheme_code: i64,
    scheme_name: String,
    fund_house: Option<String>,
    category: Option<String>,
    plan: Option<String>,
    option: Option<String>,
    isin_growth: Option<String>,
    open_for_sip: bool,
}

#[derive(SimpleObject, Deserialize)]
pub struct SchemePage {
    schemes: Vec<Scheme>,
    #[serde(default)]
    next_after: Option<String>,
}

/// A new SIP, as `POST /v1/users/me/sips` takes it: amounts as decimal strings.
#[derive(InputObject)]
pub struct NewSip {
    scheme_code: i64,
    amount: String,
    sip_day: i32,
    start_date: Option<String>,
    end_date: Option<String>,
    step_up_pct: Option<String>,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SipAction {
    Pause,
    Resume,
    Cancel,
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Starts a SIP for the signed-in person. `idempotencyKey` as the REST header: a retry
    /// with the same key and input returns the first answer and creates nothing more.
    async fn create_sip(
        &self,
        ctx: &Context<'_>,
        input: NewSip,
        idempotency_key: String,
    ) -> async_graphql::Result<Sip> {
        let mut body = json!({
            "scheme_code": input.scheme_code,
            "amount": input.amount,
            "sip_day": input.sip_day,
        });
        for (key, value) in [
            ("start_date", input.start_date),
            ("end_date", input.end_date),
            ("step_up_pct", input.step_up_pct),
        ] {
            if let Some(value) = value {
                body[key] = Value::String(value);
            }
        }
        write(
            ctx,
            "/v1/users/me/sips".to_string(),
            Some(body),
            &idempotency_key,
        )
        .await
    }

    /// Places an order: a lumpsum purchase, a redemption or a switch (see the REST route).
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: NewOrder,
        idempotency_key: String,
    ) -> async_graphql::Result<Order> {
        let mut body = json!({ "kind": input.kind, "scheme_code": input.scheme_code });
        if let Some(target) = input.target_scheme_code {
            body["target_scheme_code"] = json!(target);
        }
        for (key, value) in [("amount", input.amount), ("units", input.units)] {
            if let Some(value) = value {
                body[key] = Value::String(value);
            }
        }
        if let Some(all) = input.all {
            body["all"] = json!(all);
        }
        write(
            ctx,
            "/v1/users/me/orders".to_string(),
            Some(body),
            &idempotency_key,
        )
        .await
    }

    /// Cancels an order before its cut-off.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        idempotency_key: String,
    ) -> async_graphql::Result<Order> {
        write(
            ctx,
            format!("/v1/users/me/orders/{}/cancel", url_encode(&order_id.0)),
            None,
            &idempotency_key,
        )
        .await
    }

    /// Starts an SWP or STP for the signed-in person (see the REST route).
    async fn start_plan(
        &self,
        ctx: &Context<'_>,
        input: NewPlan,
        idempotency_key: String,
    ) -> async_graphql::Result<Plan> {
        let mut body = json!({
            "kind": input.kind,
            "scheme_code": input.scheme_code,
            "amount": input.amount,
            "plan_day": input.plan_day,
        });
        if let Some(target) = input.target_scheme_code {
            body["target_scheme_code"] = json!(target);
        }
        for (key, value) in [
            ("start_date", input.start_date),
            ("end_date", input.end_date),
        ] {
            if let Some(value) = value {
                body[key] = Value::String(value);
            }
        }
        write(
            ctx,
            "/v1/users/me/plans".to_string(),
            Some(body),
            &idempotency_key,
        )
        .await
    }

    /// Pauses, resumes or cancels an SWP or STP.
    async fn change_plan(
        &self,
        ctx: &Context<'_>,
        plan_id: ID,
        action: PlanAction,
        idempotency_key: String,
    ) -> async_graphql::Result<Plan> {
        let action = match action {
            PlanAction::Pause => "pause",
            PlanAction::Resume => "resume",
            PlanAction::Cancel => "cancel",
        };
        let plan_id: i64 = plan_id
            .parse()
            .map_err(|_| async_graphql::Error::new("a plan id is a number"))?;
        write(
            ctx,
            format!("/v1/users/me/plans/{plan_id}/{action}"),
            None,
            &idempotency_key,
        )
        .await
    }

    /// Pauses (until a date, or until resumed), resumes or cancels a SIP.
    async fn change_sip(
        &self,
        ctx: &Context<'_>,
        sip_id: ID,
        action: SipAction,
        until: Option<String>,
        idempotency_key: String,
    ) -> async_graphql::Result<Sip> {
        let action = match action {
            SipAction::Pause => "pause",
            SipAction::Resume => "resume",
            SipAction::Cancel => "cancel",
        };
        let sip_id: i64 = sip_id
            .parse()
            .map_err(|_| async_graphql::Error::new("a SIP id is a number"))?;
        let body = until.map(|until| json!({ "until": until }));
        write(
            ctx,
            format!("/v1/users/me/sips/{sip_id}/{action}"),
            body,
            &idempotency_key,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::resolver_utils::EnumType;

    use super::*;

    #[test]
    fn the_graphql_chart_enum_is_the_serving_contract() {
        let graphql: Vec<(String, &str)> = ChartType::items()
            .iter()
            .map(|item| (item.name.to_ascii_lowercase(), item.value.path()))
            .collect();
        let contract: Vec<(String, &str)> = GraphType::ALL
            .iter()
            .map(|g| (g.as_str().to_string(), g.as_str()))
            .collect();
        assert_eq!(graphql, contract);
    }
}
