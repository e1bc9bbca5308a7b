//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand next to the routes it
//! describes. It is the contract Schemathesis checks the API against (`api/tests/schemathesis.sh`):
//! every status code a route can answer, parameter constraints equal to the validation, and
//! links from the operations that create SIPs and alerts to those that read and change them.

use pipeline::orders::plans::{PlanKind, PlanStatus};
use pipeline::orders::{OrderKind, OrderStatus};
use pipeline::sip::{SipStatus, COMPLETED};
use serde_json::{json, Value};

/// The schema of a query or path parameter, by the name the routes use for it.
fn parameter(p: &str) -> (&str, &'static str, Value) {
    let id = json!({"type": "integer", "format": "int64"});
    match p {
        "graph_type" => (
            "graph_type",
            "path",
            json!({"type": "string", "enum": serving::GraphType::ALL.map(|g| g.as_str())}),
        ),
        "action" => (
            "action",
            "path",
            json!({"type": "string", "enum": ["pause", "resume", "cancel"]}),
        ),
        "from" | "to" => (p, "query", json!({"type": "string", "format": "date"})),
        "from_required" | "to_required" => (
            &p[..p.len() - "_required".len()],
            "query",
            json!({"type": "string", "format": "date"}),
        ),
        "limit" => (
            "limit",
            "query",
            json!({"type": "integer", "minimum": 1, "maximum": 200}),
        ),
        "nav_limit" => (
            "limit",
            "query",
            json!({"type": "integer", "minimum": 1, "maximum": 5000}),
        ),
        "scheme_limit" => (
            "limit",
            "query",
            json!({"type": "integer", "minimum": 1, "maximum": 50}),
        ),
        "after" => (
            "after",
            "query",
            json!({"type": "integer", "format": "int64"}),
        ),
        "before" => (
            "before",
            "query",
            json!({"type": "integer", "format": "int64"}),
        ),
        "unread" => ("unread", "query", json!({"type": "boolean"})),
        "open_for_sip" => ("open_for_sip", "query", json!({"type": "boolean"})),
        "q" => (
            "q",
            "query",
            json!({"type": "string", "maxLength": 100, "pattern": NO_CONTROL}),
        ),
        "category" | "fund_house" | "plan" | "option" => (
            p,
            "query",
            json!({"type": "string", "maxLength": 200, "pattern": NO_CONTROL}),
        ),
        // Opaque cursors: the `next_after` / `next_before` of the previous page.
        "scheme_cursor" => (
            "after",
            "query",
            json!({"type": "string", "pattern": "^([0-9]{1,3}(\\.[0-9]{1,17})?:)?[0-9]{1,18}$"}),
        ),
        "investment_cursor" => (
            "before",
            "query",
            json!({"type": "string", "description": "next_before of the previous page (a date and a SIP id)",
                   "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}:[0-9]{1,18}$"}),
        ),
        "status" => (
            "status",
            "query",
            json!({"type": "string", "enum": pipeline::sip::InstalmentStatus::ALL.map(|s| s.as_str())}),
        ),
        "sip_filter" => (
            "sip_id",
            "query",
            json!({"type": "integer", "format": "int64"}),
        ),
        "scheme_filter" => (
            "scheme_code",
            "query",
            json!({"type": "integer", "format": "int64"}),
        ),
        "user_id" => (
            "user_id",
            "path",
            json!({"description": "a user id, or `me` for the caller",
                   "oneOf": [{"type": "integer", "format": "int64"}, {"const": "me"}]}),
        ),
        "fy" => (
            "fy",
            "query",
            json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$", "example": "2025-26"}),
        ),
        "statement_format" => (
            "format",
            "query",
            json!({"type": "string", "enum": ["json", "csv", "pdf"]}),
        ),
        "format" => (
            "format",
            "query",
            json!({"type": "string", "enum": ["json", "csv"]}),
        ),
        "scheme_code" => (
            "scheme_code",
            "path",
            json!({"type": "integer", "format": "int64"}),
        ),
        other => (other, "path", id),
    }
}

const PROBLEM: &str = "#/components/responses/Problem";
/// Text without control characters (PostgreSQL refuses NUL; the rest has no business in a name).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// An operation: its id, the success status, and the problems every route can answer — 400
/// (a parameter), 401 (the token), 404 (nothing there, or not the caller's), 429 (a rate
/// limit) and 503 (the database busy or away; both with `Retry-After`).
fn op(id: &str, summary: &str, tag: &str, params: &[&str], ok: &str) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| {
            let (name, location, schema) = parameter(p);
            let required = location == "path" || p.ends_with("_required");
            json!({"name": name, "in": location, "required": required, "schema": schema})
        })
        .collect();
    let mut responses = json!({
        "400": {"$ref": PROBLEM},
        "401": {"$ref": PROBLEM},
        "404": {"$ref": PROBLEM},
        "429": {"$ref": "#/components/responses/TooManyRequests"},
        "503": {"$ref": "#/components/responses/Unavailable"},
    });
    responses[ok] = if ok == "204" {
        json!({"description": "done"})
    } else {
        json!({"description": "success", "content": {"application/json": {}}})
    };
    json!({
        "operationId": id,
        "summary": summary,
        "tags": [tag],
        "parameters": parameters,
        "responses": responses,
    })
}

/// The success body's schema.
fn returns(mut op: Value, ok: &str, schema: &str) -> Value {
    op["responses"][ok]["content"]["application/json"] =
        json!({"schema": {"$ref": format!("#/components/schemas/{schema}")}});
    op
}

/// A JSON request body (415 without a JSON content type, 422 when it breaks the rules).
fn with_body(mut op: Value, schema: &str, required: bool) -> Value {
    op["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    op["responses"]["415"] = json!({"$ref": PROBLEM});
    op["responses"]["422"] = json!({"$ref": PROBLEM});
    op
}

fn also(mut op: Value, status: &str) -> Value {
    op["responses"][status] = json!({"$ref": PROBLEM});
    op
}

/// `Idempotency-Key`: the same key and request within 24 hours answers the stored response.
fn idempotent(mut op: Value, what: &str) -> Value {
    if let Some(parameters) = op["parameters"].as_array_mut() {
        parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": format!("Retry-safe: the same key and request within 24 hours returns the stored response (header idempotent-replayed: true) and {what} again; the same key with another request is a 422, and while the first request with the key is still running a 409"),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}));
    }
    op = also(op, "409");
    op = also(op, "422");
    op
}

/// Links from a response to the operations that take its `field` as their `parameter`.
fn links(mut op: Value, ok: &str, field: &str, parameter: &str, to: &[&str]) -> Value {
    for target in to {
        op["responses"][ok]["links"][*target] = json!({
            "operationId": target,
            "parameters": {"user_id": "$request.path.user_id", parameter: format!("$response.body#/{field}")},
        });
    }
    op
}

pub fn document() -> Value {
    let user_sip = ["user_id", "sip_id"];
    let create_sip = idempotent(
        with_body(
            op("createSip", "Start a SIP in a scheme open for SIPs (amount within its limits, a start date not in the past); the response says from which batch date it applies (effective_from) and its first instalment. At most 50 active or paused SIPs per user (409)", "sips", &["user_id"], "201"),
            "NewSip",
            true,
        ),
        "creates no second SIP",
    );
    let create_sip = links(
        returns(create_sip, "201", "ScheduledSip"),
        "201",
        "sip_id",
        "sip_id",
        &["getSip", "amendSip", "changeSip"],
    );
    let amend_sip = idempotent(
        with_body(
            op("amendSip", "Change a SIP's amount, step-up, SIP day or end date. The response's effective_from is the first batch date the new terms apply to (changes made after the daily cut-off, 15:00 IST unless configured, apply from the next day), and next_instalment the first instalment they settle", "sips", &user_sip, "200"),
            "SipAmendment",
            true,
        ),
        "changes nothing more",
    );
    let amend_sip = links(
        returns(amend_sip, "200", "ScheduledSip"),
        "200",
        "sip_id",
        "sip_id",
        &["getSip"],
    );
    let change_sip = idempotent(
        with_body(
            op("changeSip", "Pause, resume or cancel a SIP. Pause takes an optional body {\"until\": date}: paused_until is the last day whose instalment is skipped (one due on it is skipped, one due the day after runs); without it the SIP stays paused until resumed. The response says from which batch date the change applies (effective_from) and the next instalment it leaves. A change the SIP's status does not allow (resume an active SIP, anything on a cancelled one) is a 409", "sips", &["user_id", "sip_id", "action"], "200"),
            "SipPause",
            false,
        ),
        "changes nothing more",
    );
    let change_sip = links(
        returns(change_sip, "200", "ScheduledSip"),
        "200",
        "sip_id",
        "sip_id",
        &["getSip"],
    );
    let list_sips = returns(
        op(
            "listSips",
            "The user's SIPs by id, a page at a time (limit ≤ 200; next_after continues)",
            "sips",
            &["user_id", "limit", "after"],
            "200",
        ),
        "200",
        "SipList",
    );
    let list_sips = links(
        list_sips,
        "200",
        "sips/0/sip_id",
        "sip_id",
        &["getSip", "amendSip", "changeSip"],
    );
    let user_order = ["user_id", "order_id"];
    let place_order = idempotent(
        with_body(
            op("placeOrder", "Place an order: a lumpsum purchase (amount, at least ₹100), a redemption (exactly one of amount, units or all: true; not more than is held and not already in waiting orders, else 422 naming the field), or a switch (a redemption whose proceeds buy target_scheme_code, of the same fund house). The response has the NAV date SEBI's cut-off gives (15:00 IST; liquid and overnight purchases 13:30 and the previous calendar day's NAV) and cancel_before. At most 20 orders waiting per user (409)", "orders", &["user_id"], "201"),
            "NewOrder",
            true,
        ),
        "places no second order",
    );
    let place_order = links(
        returns(place_order, "201", "Order"),
        "201",
        "order_id",
        "order_id",
        &["getOrder", "cancelOrder"],
    );
    let list_orders = returns(
        op("listOrders", "The user's orders by id, a page at a time (limit ≤ 200; next_after continues), each with its state (received, executed, failed, cancelled) and, once executed, NAV, units, charges, net amount, realised gain and payout date", "orders", &["user_id", "limit", "after"], "200"),
        "200",
        "OrderList",
    );
    let get_order = returns(
        op("getOrder", "One order", "orders", &user_order, "200"),
        "200",
        "Order",
    );
    let cancel_order = also(
        idempotent(
            returns(
                op("cancelOrder", "Cancel an order before its cut-off (cancel_before); after it, or once executed, failed or cancelled, a 409", "orders", &user_order, "200"),
                "200",
                "Order",
            ),
            "changes nothing more",
        ),
        "409",
    );
    let user_plan = ["user_id", "plan_id"];
    let create_plan = idempotent(
        with_body(
            op("createPlan", "Start an SWP (kind swp: amount redeemed from scheme_code on plan_day of each month) or an STP (kind stp: amount switched into target_scheme_code, of the same fund house) from start_date (default today, IST) to end_date. The source must be held; the amount at least ₹100 and the scheme's minimum redemption. Each instalment is an order for the due date's NAV (a weekend or holiday: the next business day's), listed in the orders with its plan_id; one the holding cannot pay stops the plan (status stopped, stopped_reason) and says so in a notification. At most 20 active or paused plans per user (409)", "plans", &["user_id"], "201"),
            "NewPlan",
            true,
        ),
        "creates no second plan",
    );
    let create_plan = links(
        returns(create_plan, "201", "Plan"),
        "201",
        "plan_id",
        "plan_id",
        &["getPlan", "changePlan"],
    );
    let list_plans = links(
        returns(
            op("listPlans", "The user's SWPs and STPs by id, a page at a time (limit ≤ 200; next_after continues)", "plans", &["user_id", "limit", "after"], "200"),
            "200",
            "PlanList",
        ),
        "200",
        "plans/0/plan_id",
        "plan_id",
        &["getPlan", "changePlan"],
    );
    let get_plan = returns(
        op(
            "getPlan",
            "One SWP or STP, with its next instalment while active",
            "plans",
            &user_plan,
            "200",
        ),
        "200",
        "Plan",
    );
    let change_plan = also(
        returns(
            op("changePlan", "Pause, resume or cancel an SWP or STP, from now: an instalment whose NAV date's cut-off (15:00 IST) is still to come is skipped while paused. A stopped plan (its source ran dry) can be resumed after a top-up, or cancelled. A change the plan's status does not allow is a 409", "plans", &["user_id", "plan_id", "action"], "200"),
            "200",
            "Plan",
        ),
        "409",
    );
    let mut capital_gains = op("getCapitalGains", "The capital-gains statement of a financial year (fy, e.g. 2025-26; default the current one): every lot a redemption or switch consumed, first in first out, with purchase and sale dates and NAVs, units, purchase value, stamp duty, gross sale value, exit load, STT, cost of acquisition (grandfathered for equity units bought by 31-Jan-2018) and gain, short- or long-term by the scheme's tax class, and totals by class and term; format=csv gives the same as CSV for a tax preparer", "orders", &["user_id", "fy", "format"], "200");
    capital_gains["responses"]["200"]["content"] = json!({
        "application/json": {"schema": {"$ref": "#/components/schemas/CapitalGains"}},
        "text/csv": {"schema": {"type": "string"}},
    });
    let mut statement = op("getStatement", "An account statement for any period (from..to, at most 3,660 days): per scheme the units and value at the start (the day before from) and the end, at that day's NAV or the last before it; every transaction in between (SIP instalments and the bank's reversals, purchases, redemptions, both legs of switches) with its charges; format=csv for a spreadsheet, format=pdf to open or print", "portfolio", &["user_id", "from_required", "to_required", "statement_format"], "200");
    statement["responses"]["200"]["content"] = json!({
        "application/json": {"schema": {"type": "object", "required": ["user_id", "from", "to", "holdings", "transactions"]}},
        "text/csv": {"schema": {"type": "string"}},
        "application/pdf": {"schema": {"type": "string", "format": "binary"}},
    });
    let put_preferences = idempotent(
        with_body(
            op("putPreferences", "Set where notifications go (every field; what is left out is cleared, but muted_kinds, which is kept): channels (webhook, email, sms, push) with the address each needs, quiet hours HH:MM and the IANA time zone they are read in. An unknown zone or a channel without its address is a 422", "notifications", &["user_id"], "200"),
            "Preferences",
            true,
        ),
        "changes nothing more",
    );
    let create_alert = idempotent(
        with_body(
            op("createAlert", "Create a NAV alert on a scheme: above or below a NAV, or a daily move of at least threshold percent. It fires for NAV dates after it was created. At most 100 active alerts per user (409)", "alerts", &["user_id"], "201"),
            "NewAlert",
            true,
        ),
        "creates no second alert",
    );
    let create_alert = links(
        returns(create_alert, "201", "Alert"),
        "201",
        "alert_id",
        "alert_id",
        &["deleteAlert"],
    );
    let list_alerts = returns(
        op(
            "listAlerts",
            "The user's NAV alerts by id, a page at a time (limit ≤ 200; next_after continues)",
            "alerts",
            &["user_id", "limit", "after"],
            "200",
        ),
        "200",
        "AlertList",
    );
    let list_alerts = links(
        list_alerts,
        "200",
        "alerts/0/alert_id",
        "alert_id",
        &["deleteAlert"],
    );
    let delete_alert = idempotent(
        op(
            "deleteAlert",
            "Delete a NAV alert",
            "alerts",
            &["user_id", "alert_id"],
            "204",
        ),
        "deletes nothing more",
    );
    let list_notifications = returns(
        op(
            "listNotifications",
            "The user's notifications, newest first (limit ≤ 200; next_before continues), each with its delivery state overall and per channel (attempts, when delivered, when the next attempt is due)",
            "notifications",
            &["user_id", "limit", "before", "unread"],
            "200",
        ),
        "200",
        "NotificationPage",
    );
    let list_notifications = links(
        list_notifications,
        "200",
        "notifications/0/notification_id",
        "notification_id",
        &["markRead"],
    );
    let mark_read = idempotent(
        op(
            "markRead",
            "Mark a notification read",
            "notifications",
            &["user_id", "notification_id"],
            "200",
        ),
        "changes nothing more",
    );
    // A provider's delivery report: no bearer token, a signed URL, a form body.
    let sms_status = json!({"post": {"operationId": "exotelSmsStatus", "summary": "Exotel's delivery report for an SMS (its StatusCallback): sent, failed or failed_dnd. The URL the dispatcher gave Exotel carries the delivery and its signature; a report for another delivery, or another message, changes nothing. An operator's failure makes the delivery dead", "tags": ["notifications"], "security": [],
        "parameters": [
            {"name": "delivery", "in": "query", "required": true, "schema": {"type": "integer", "format": "int64"}},
            {"name": "sig", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
        "requestBody": {"required": true, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["SmsSid", "Status"], "properties": {
            "SmsSid": {"type": "string"}, "Status": {"type": "string", "enum": ["queued", "sending", "submitted", "sent", "failed_dnd", "failed"]},
            "DetailedStatus": {"type": "string"}, "DetailedStatusCode": {"type": "string"}, "DateSent": {"type": "string"}, "To": {"type": "string"}, "CustomField": {"type": "string"}}}}}},
        "responses": {"204": {"description": "recorded"}, "400": {"$ref": PROBLEM}, "403": {"$ref": PROBLEM}, "404": {"$ref": PROBLEM}, "429": {"$ref": "#/components/responses/TooManyRequests"}, "503": {"$ref": "#/components/responses/Unavailable"}}}});
    // The signed link of unsubscribe e-mails: no bearer token, HTML answers.
    let unsubscribe = json!({
                "get": {"operationId": "showUnsubscribe", "summary": "The page an e-mail's unsubscribe link opens: what it stops, and a button to confirm. Changes nothing. No bearer token: the signed, expiring link is the credential", "tags": ["notifications"], "security": [],
                    "parameters": [{"name": "token", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9]{1,18}\\.[a-z_]{1,40}\\.[0-9]{1,18}\\.[0-9a-f]{64}$", "description": "user.kind.expiry.signature, as the e-mail's link carries it"}}],
                    "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}}, "400": {"$ref": PROBLEM}, "403": {"$ref": PROBLEM}, "404": {"$ref": PROBLEM}, "429": {"$ref": "#/components/responses/TooManyRequests"}, "503": {"$ref": "#/components/responses/Unavailable"}}},
                "post": {"operationId": "confirmUnsubscribe", "summary": "Unsubscribe the link's person from the link's kind on e-mail, SMS and push (RFC 8058 one-click: the body List-Unsubscribe=One-Click is accepted and not needed). Repeating it changes nothing more", "tags": ["notifications"], "security": [],
                    "parameters": [{"name": "token", "in": "query", "required": true, "schema": {"type": "string", "pattern": "^[0-9]{1,18}\\.[a-z_]{1,40}\\.[0-9]{1,18}\\.[0-9a-f]{64}$", "description": "user.kind.expiry.signature, as the e-mail's link carries it"}}],
                    "responses": {"200": {"description": "an HTML page", "content": {"text/html": {}}}, "400": {"$ref": PROBLEM}, "403": {"$ref": PROBLEM}, "404": {"$ref": PROBLEM}, "429": {"$ref": "#/components/responses/TooManyRequests"}, "503": {"$ref": "#/components/responses/Unavailable"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sipline API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Portfolios, charts, SIPs, NAVs, notifications and NAV alerts. Money is a decimal string in rupees. Every route is rate limited per caller and per client address (429 with Retry-After)."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/me": {"get": op("getMe", "The signed-in user: id and profile (provisioned on the first call of a new token subject)", "me", &[], "200")},
            "/v1/schemes": {"get": op("searchSchemes", "Find a fund: typo-tolerant search (q) over scheme name, fund house, ISIN and code, best match first; filters by category, fund house, plan (Direct, Regular), option (Growth, IDCW) and open_for_sip; at most 50 a page, next_after continues", "schemes", &["q", "category", "fund_house", "plan", "option", "open_for_sip", "scheme_limit", "scheme_cursor"], "200")},
            "/v1/schemes/{scheme_code}": {"get": op("getScheme", "One scheme: category, plan, option, ISINs, SIP limits, unit decimals and the latest NAV with its date", "schemes", &["scheme_code"], "200")},
            "/v1/schemes/{scheme_code}/nav": {"get": op("getLatestNav", "Latest NAV of a scheme (cached 24 h)", "navs", &["scheme_code"], "200")},
            "/v1/schemes/{scheme_code}/navs": {"get": op("listNavs", "NAV history of a scheme, newest first (to must not be before from)", "navs", &["scheme_code", "from", "to", "nav_limit"], "200")},
            "/v1/users/{user_id}/portfolio": {"get": op("getPortfolio", "Portfolio summary and per-scheme lines of the latest published date, each line with its own XIRR (null when it cannot be computed) and one-day change, and `intraday`: the newest hourly valuation after that date (its hour, valued_at and numbers; null when the daily is the newest) (cached 15 min, dropped on every publish)", "portfolio", &["user_id"], "200")},
            "/v1/users/{user_id}/investments": {"get": op("listInvestments", "Every instalment with its latest status (executed, pending, failed, reversed), amount, stamp duty, NAV, NAV date and units; filters by SIP, scheme, status and due-date range (to must not be before from); newest due first, at most 200 a page, next_before continues", "portfolio", &["user_id", "sip_filter", "scheme_filter", "status", "from", "to", "limit", "investment_cursor"], "200")},
            "/v1/users/{user_id}/portfolio/history": {"get": op("getPortfolioHistory", "The published daily snapshots from..to (from first, at most 1,100 days apart) as a series: invested, value, gain, returns, XIRR", "portfolio", &["user_id", "from_required", "to_required"], "200")},
            "/v1/users/{user_id}/charts/{graph_type}": {"get": op("getChart", "Chart data: pie, line or bar (cached 30 min)", "portfolio", &["user_id", "graph_type"], "200")},
            "/v1/users/{user_id}/sips": {"get": list_sips, "post": create_sip},
            "/v1/users/{user_id}/sips/{sip_id}": {"get": returns(op("getSip", "A SIP: its terms, effective_from, next_instalment, and its change history (newest first, at most 100)", "sips", &user_sip, "200"), "200", "ScheduledSip"), "patch": amend_sip},
            "/v1/users/{user_id}/sips/{sip_id}/{action}": {"post": change_sip},
            "/v1/users/{user_id}/orders": {"get": list_orders, "post": place_order},
            "/v1/users/{user_id}/orders/{order_id}": {"get": get_order},
            "/v1/users/{user_id}/orders/{order_id}/cancel": {"post": cancel_order},
            "/v1/users/{user_id}/plans": {"get": list_plans, "post": create_plan},
            "/v1/users/{user_id}/plans/{plan_id}": {"get": get_plan},
            "/v1/users/{user_id}/plans/{plan_id}/{action}": {"post": change_plan},
            "/v1/users/{user_id}/capital-gains": {"get": capital_gains},
            "/v1/users/{user_id}/statement": {"get": statement},
            "/v1/users/{user_id}/notifications": {"get": list_notifications},
            "/v1/users/{user_id}/notifications/{notification_id}/read": {"post": mark_read},
            "/v1/users/{user_id}/notification-preferences": {"get": op("getPreferences", "Where the user's notifications go (defaults when never set: webhook only, Asia/Kolkata)", "notifications", &["user_id"], "200"), "put": put_preferences},
            "/v1/users/{user_id}/alerts": {"get": list_alerts, "post": create_alert},
            "/v1/users/{user_id}/alerts/{alert_id}": {"delete": delete_alert},
            "/v1/unsubscribe": unsubscribe,
            "/v1/providers/exotel/sms-status": sms_status,
            "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness: database reachable, migrations current", "security": [], "responses": {"200": {"description": "ready"}, "503": {"$ref": PROBLEM}}}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {
                "Problem": {"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "TooManyRequests": {"description": "A rate limit: wait Retry-After seconds", "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "Unavailable": {"description": "The database is busy or away, or the request took too long: retry after Retry-After seconds", "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
            "schemas": schemas(),
        }
    })
}

/// An address as the API keeps it and SMTP sends it: visible ASCII without `<` `>`, an `@`,
/// and a domain with a dot that neither starts nor ends with one.
const EMAIL: &str = "^[!-;=?-~]+@[!-\\-/-;=?A-~][!-;=?A-~]*\\.[!-;=?A-~]*[!-\\-/-;=?A-~]$";

/// Decimal strings as the validation reads them: digits, no leading zero, at most 20 places.
/// ₹100 to ₹1,00,00,000 with at most 2 significant places (a scheme may ask more: a 422).
/// An order's amount: rupees with at most two places, above zero, within ₹1,00,00,000.
const ORDER_AMOUNT: &str = "^(0\\.(0[1-9]|[1-9][0-9]?)0{0,18}|[1-9][0-9]{0,6}(\\.[0-9]{1,2}0{0,18})?|10000000(\\.0{1,20})?)$";
/// Units: at most four places, above zero.
const UNITS: &str = "^(0\\.[0-9]{0,3}[1-9]0{0,16}|[1-9][0-9]{0,11}(\\.[0-9]{1,4}0{0,16})?)$";
const AMOUNT: &str = "^([1-9][0-9]{2,6}(\\.[0-9]{1,2}0{0,18})?|10000000(\\.0{1,20})?)$";
const PERCENT: &str = "^(100(\\.0{1,20})?|(0|[1-9][0-9]?)(\\.[0-9]{1,20})?)$";
/// A positive NAV or percentage below 10^14 with at most 4 significant places.
const THRESHOLD: &str = "^([1-9][0-9]{0,13}(\\.[0-9]{1,4}0{0,16})?|0\\.[0-9]{0,3}[1-9]0{0,16})$";

fn schemas() -> Value {
    // The names of kinds and statuses come from the types that validate and store them.
    let order_kinds: Vec<&str> = OrderKind::ALL.iter().map(|k| k.as_str()).collect();
    let order_statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    let plan_kinds: Vec<&str> = PlanKind::ALL.iter().map(|k| k.as_str()).collect();
    // `completed` is shown, never stored: a mandate past its end date (`has_run_its_course`).
    let plan_statuses: Vec<&str> = PlanStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain([COMPLETED])
        .collect();
    let sip_statuses: Vec<&str> = SipStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain([COMPLETED])
        .collect();
    // One notification's deliveries (its own value: the schema document nests deeper than
    // `json!` expands in one go).
    let deliveries = json!({"type": "array", "description": "one per channel it goes to", "items": {"type": "object", "required": ["channel", "status", "attempts"], "properties": {
                "channel": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "delivering", "delivered", "dead"]},
                "attempts": {"type": "integer"}, "delivered_at": {"type": ["string", "null"]}, "next_attempt_at": {"type": ["string", "null"]},
                "report": {"type": ["string", "null"], "description": "the provider's delivery report (SMS: sent, failed, failed_dnd, ...)"}}}});
    json!({
        "Problem": {"type": "object", "required": ["title", "status"], "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}},
        "NewSip": {"type": "object", "required": ["scheme_code", "amount", "sip_day", "start_date"], "properties": {
            "scheme_code": {"type": "integer", "format": "int64"},
            "amount": {"type": "string", "pattern": AMOUNT, "description": "₹100 to ₹1,00,00,000, at most 2 places, within the scheme's SIP limits", "example": "1500.00"},
            "sip_day": {"type": "integer", "minimum": 1, "maximum": 28}, "start_date": {"type": "string", "format": "date", "description": "today (IST) or later"},
            "end_date": {"type": "string", "format": "date", "description": "not before start_date"}, "step_up_pct": {"type": "string", "pattern": PERCENT, "example": "10"}}},
        "NewOrder": {"type": "object", "additionalProperties": false, "required": ["kind", "scheme_code"], "properties": {
            "kind": {"type": "string", "enum": order_kinds},
            "scheme_code": {"type": "integer", "format": "int64"},
            "target_scheme_code": {"type": "integer", "format": "int64", "description": "a switch's target, same fund house"},
            "amount": {"type": "string", "pattern": ORDER_AMOUNT, "description": "rupees, at most 2 places: a purchase's amount (at least ₹100, at most ₹1,00,00,000), or the value to redeem", "example": "5000.00"},
            "units": {"type": "string", "pattern": UNITS, "description": "units to redeem or switch, at most 4 places", "example": "12.5"},
            "all": {"type": "boolean", "description": "redeem or switch everything held"}}},
        "Order": {"type": "object", "required": ["order_id", "user_id", "kind", "scheme_code", "status", "received_at", "nav_date", "cancel_before"], "properties": {
            "order_id": {"type": "integer"}, "user_id": {"type": "integer"}, "kind": {"type": "string", "enum": order_kinds},
            "scheme_code": {"type": "integer"}, "target_scheme_code": {"type": ["integer", "null"]},
            "amount": {"type": ["string", "null"]}, "units": {"type": ["string", "null"]}, "redeem_all": {"type": "boolean"},
            "status": {"type": "string", "enum": order_statuses},
            "received_at": {"type": "string", "format": "date-time"}, "nav_date": {"type": "string", "format": "date"},
            "cancel_before": {"type": "string", "format": "date-time"},
            "executed_nav": {"type": ["string", "null"]}, "executed_units": {"type": ["string", "null"]},
            "gross_amount": {"type": ["string", "null"]}, "stamp_duty": {"type": ["string", "null"]}, "exit_load": {"type": ["string", "null"]},
            "stt": {"type": ["string", "null"]}, "net_amount": {"type": ["string", "null"]}, "realised_gain": {"type": ["string", "null"]},
            "payout_date": {"type": ["string", "null"], "format": "date"}, "target_nav": {"type": ["string", "null"]},
            "target_units": {"type": ["string", "null"]}, "target_stamp_duty": {"type": ["string", "null"]},
            "failure": {"type": ["string", "null"]},
            "plan_id": {"type": ["integer", "null"], "description": "the SWP or STP this order is an instalment of"},
            "plan_due_date": {"type": ["string", "null"], "format": "date"}}},
        "NewPlan": {"type": "object", "additionalProperties": false, "required": ["kind", "scheme_code", "amount", "plan_day"], "properties": {
            "kind": {"type": "string", "enum": plan_kinds},
            "scheme_code": {"type": "integer", "format": "int64", "description": "the scheme redeemed from (held)"},
            "target_scheme_code": {"type": "integer", "format": "int64", "description": "an STP's target, same fund house"},
            "amount": {"type": "string", "pattern": ORDER_AMOUNT, "description": "rupees an instalment, at most 2 places, ₹100 to ₹1,00,00,000", "example": "5000.00"},
            "plan_day": {"type": "integer", "minimum": 1, "maximum": 28},
            "start_date": {"type": "string", "format": "date", "description": "today (IST) or later; default today"},
            "end_date": {"type": "string", "format": "date", "description": "not before start_date"}}},
        "Plan": {"type": "object", "required": ["plan_id", "user_id", "kind", "scheme_code", "amount", "plan_day", "start_date", "status", "created_at"], "properties": {
            "plan_id": {"type": "integer"}, "user_id": {"type": "integer"}, "kind": {"type": "string", "enum": plan_kinds},
            "scheme_code": {"type": "integer"}, "target_scheme_code": {"type": ["integer", "null"]}, "amount": {"type": "string"},
            "plan_day": {"type": "integer"}, "start_date": {"type": "string", "format": "date"}, "end_date": {"type": ["string", "null"], "format": "date"},
            "status": {"type": "string", "enum": plan_statuses, "description": "completed: past the end date and its last NAV date (shown, never set)"},
            "stopped_reason": {"type": ["string", "null"], "description": "insufficient_units or nothing_held: the instalment the holding could not pay"},
            "created_at": {"type": "string", "format": "date-time"},
            "next_instalment": {"type": ["object", "null"], "properties": {"due_date": {"type": "string", "format": "date"}, "nav_date": {"type": "string", "format": "date"}}}}},
        "PlanList": {"type": "object", "required": ["plans"], "properties": {"plans": {"type": "array", "items": {"$ref": "#/components/schemas/Plan"}}, "next_after": {"type": ["integer", "null"]}}},
        "OrderList": {"type": "object", "required": ["orders"], "properties": {"orders": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}}, "next_after": {"type": ["integer", "null"]}}},
        "CapitalGains": {"type": "object", "required": ["user_id", "fy", "totals", "lots"], "properties": {
            "user_id": {"type": "integer"}, "fy": {"type": "string"},
            "totals": {"type": "array", "items": {"type": "object"}}, "lots": {"type": "array", "items": {"type": "object"}}}},
        "SipAmendment": {"type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
            "amount": {"type": "string", "pattern": AMOUNT, "example": "2000.00"}, "step_up_pct": {"type": "string", "pattern": PERCENT, "example": "10"},
            "sip_day": {"type": "integer", "minimum": 1, "maximum": 28}, "end_date": {"type": "string", "format": "date"}}},
        "SipPause": {"type": "object", "additionalProperties": false, "properties": {"until": {"type": "string", "format": "date"}}},
        "Preferences": {"type": "object", "additionalProperties": false, "required": ["channels"], "properties": {
            "channels": {"type": "array", "uniqueItems": true, "items": {"type": "string", "enum": ["webhook", "email", "sms", "push"]}},
            "email": {"type": ["string", "null"], "maxLength": 254, "pattern": EMAIL},
            "phone": {"type": ["string", "null"], "pattern": "^\\+[0-9]{8,15}$"},
            "push_token": {"type": ["string", "null"], "minLength": 1, "maxLength": 4096, "pattern": NO_CONTROL},
            "quiet_start": {"type": ["string", "null"], "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "22:00"},
            "quiet_end": {"type": ["string", "null"], "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "example": "07:00"},
            "time_zone": {"type": "string", "maxLength": 64, "example": "Asia/Kolkata", "description": "an IANA zone PostgreSQL knows"},
            "push_platform": {"type": "string", "enum": ["fcm", "apns"], "description": "the push service push_token belongs to (default fcm)"},
            "muted_kinds": {"type": ["array", "null"], "uniqueItems": true, "description": "kinds unsubscribed from on e-mail, SMS and push (left out: kept as stored)",
                "items": {"type": "string", "enum": serving::unsubscribe::KINDS}}}},
        "NewAlert": {"type": "object", "required": ["scheme_code", "kind", "threshold"], "properties": {
            "scheme_code": {"type": "integer", "format": "int64"}, "kind": {"type": "string", "enum": ["above", "below", "daily_move_pct"]},
            "threshold": {"type": "string", "pattern": THRESHOLD, "example": "45.50"}}},
        "Sip": {"type": "object", "required": ["sip_id", "user_id", "scheme_code", "amount", "sip_day", "start_date", "status"], "properties": {
            "sip_id": {"type": "integer"}, "user_id": {"type": "integer"}, "scheme_code": {"type": "integer"}, "amount": {"type": "string"},
            "sip_day": {"type": "integer"}, "start_date": {"type": "string", "format": "date"}, "end_date": {"type": ["string", "null"], "format": "date"},
            "step_up_pct": {"type": "string"}, "status": {"type": "string", "enum": sip_statuses, "description": "completed: past the end date and its last NAV date (shown, never set)"},
            "paused_until": {"type": ["string", "null"], "format": "date"}}},
        "ScheduledSip": {"allOf": [{"$ref": "#/components/schemas/Sip"}, {"type": "object", "properties": {
            "effective_from": {"type": ["string", "null"], "format": "date"},
            "next_instalment": {"type": ["object", "null"]}}}]},
        "SipList": {"type": "object", "required": ["sips"], "properties": {"sips": {"type": "array", "items": {"$ref": "#/components/schemas/Sip"}}, "next_after": {"type": ["integer", "null"]}}},
        "Alert": {"type": "object", "required": ["alert_id", "scheme_code", "kind", "threshold", "active"], "properties": {
            "alert_id": {"type": "integer"}, "scheme_code": {"type": "integer"}, "kind": {"type": "string"}, "threshold": {"type": "string"},
            "active": {"type": "boolean"}, "last_triggered_on": {"type": ["string", "null"], "format": "date"}}},
        "AlertList": {"type": "object", "required": ["alerts"], "properties": {"alerts": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}, "next_after": {"type": ["integer", "null"]}}},
        "NotificationPage": {"type": "object", "required": ["notifications"], "properties": {"notifications": {"type": "array", "items": {"type": "object", "required": ["notification_id", "kind"], "properties": {
            "notification_id": {"type": "integer"}, "kind": {"type": "string"}, "payload": {}, "created_at": {"type": "string"}, "read_at": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["pending", "delivering", "delivered", "dead"], "description": "all channels together: delivered when every one is, dead when none is left to try and one died"},
            "deliveries": deliveries}}},
            "next_before": {"type": ["integer", "null"]}}},
    })
}
