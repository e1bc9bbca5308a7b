//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand next to the routes it
//! describes (a test checks that every route is in it).

use serde_json::{json, Value};

fn op(summary: &str, tag: &str, params: &[&str], ok: &str) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|p| {
            let (name, location, schema) = match *p {
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
                "from" | "to" => (*p, "query", json!({"type": "string", "format": "date"})),
                "limit" | "before" | "after" => (*p, "query", json!({"type": "integer"})),
                "unread" => ("unread", "query", json!({"type": "boolean"})),
                "open_for_sip" => ("open_for_sip", "query", json!({"type": "boolean"})),
                "q" => ("q", "query", json!({"type": "string", "maxLength": 100})),
                "category" | "fund_house" | "plan" | "option" => {
                    (*p, "query", json!({"type": "string"}))
                }
                "scheme_limit" => (
                    "limit",
                    "query",
                    json!({"type": "integer", "minimum": 1, "maximum": 50}),
                ),
                "cursor" => ("after", "query", json!({"type": "string"})),
                "before_cursor" => ("before", "query", json!({"type": "string"})),
                "status" => (
                    "status",
                    "query",
                    json!({"type": "string", "enum": ["executed", "pending", "failed", "reversed"]}),
                ),
                "sip_filter" => ("sip_id", "query", json!({"type": "integer", "format": "int64"})),
                "scheme_filter" => (
                    "scheme_code",
                    "query",
                    json!({"type": "integer", "format": "int64"}),
                ),
                "from_required" | "to_required" => (
                    &p[..p.len() - "_required".len()],
                    "query",
                    json!({"type": "string", "format": "date"}),
                ),
                "user_id" => (
                    "user_id",
                    "path",
                    json!({"description": "a user id, or `me` for the caller",
                           "oneOf": [{"type": "integer", "format": "int64"}, {"const": "me"}]}),
                ),
                other => (other, "path", json!({"type": "integer", "format": "int64"})),
            };
            let required = location == "path" || p.ends_with("_required");
            json!({"name": name, "in": location, "required": required, "schema": schema})
        })
        .collect();
    json!({
        "summary": summary,
        "tags": [tag],
        "parameters": parameters,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {}}},
            "400": {"$ref": "#/components/responses/Problem"},
            "401": {"$ref": "#/components/responses/Problem"},
            "404": {"$ref": "#/components/responses/Problem"},
        }
    })
}

pub fn document() -> Value {
    let mut create_sip = op("Create a SIP", "sips", &["user_id"], "201");
    create_sip["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewSip"}}}});
    create_sip["responses"]["422"] = json!({"$ref": "#/components/responses/Problem"});
    create_sip["responses"]["409"] = json!({"$ref": "#/components/responses/Problem"});
    if let Some(parameters) = create_sip["parameters"].as_array_mut() {
        parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Retry-safe creation: the same key and request within 24 hours returns the stored response (header idempotent-replayed: true) and creates no second SIP; the same key with another request is a 422",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
    }
    let mut amend_sip = op(
        "Change a SIP's amount, step-up, SIP day or end date. The response's effective_from is the first batch date the new terms apply to (changes made after the daily cut-off, 15:00 IST unless configured, apply from the next day), and next_instalment the first instalment they settle",
        "sips",
        &["user_id", "sip_id"],
        "200",
    );
    amend_sip["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SipAmendment"}}}});
    amend_sip["responses"]["409"] = json!({"$ref": "#/components/responses/Problem"});
    amend_sip["responses"]["422"] = json!({"$ref": "#/components/responses/Problem"});
    let mut change_sip = op(
        "Pause, resume or cancel a SIP. Pause takes an optional body {\"until\": date}: paused_until is the last day whose instalment is skipped (one due on it is skipped, one due the day after runs); without it the SIP stays paused until resumed. The response says from which batch date the change applies (effective_from) and the next instalment it leaves",
        "sips",
        &["user_id", "sip_id", "action"],
        "200",
    );
    change_sip["responses"]["409"] = json!({"$ref": "#/components/responses/Problem"});
    let mut put_preferences = op(
        "Set where notifications go (every field; what is left out is cleared): channels (webhook, email, sms, push) with the address each needs, quiet hours HH:MM and the IANA time zone they are read in. An unknown zone, a channel without its address or an address with control characters is a 422",
        "notifications",
        &["user_id"],
        "200",
    );
    put_preferences["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Preferences"}}}});
    put_preferences["responses"]["422"] = json!({"$ref": "#/components/responses/Problem"});
    let mut create_alert = op("Create a NAV alert", "alerts", &["user_id"], "201");
    create_alert["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewAlert"}}}});
    create_alert["responses"]["409"] = json!({"$ref": "#/components/responses/Problem"});
    create_alert["responses"]["422"] = json!({"$ref": "#/components/responses/Problem"});
    if let Some(parameters) = create_alert["parameters"].as_array_mut() {
        parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Retry-safe creation: the same key and request within 24 hours returns the stored response (header idempotent-replayed: true) and creates no second alert; the same key with another request is a 422",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "sipline API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Portfolios, charts, SIPs, NAVs, notifications and NAV alerts. Money is a decimal string in rupees."},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/me": {"get": op("The signed-in user: id and profile (provisioned on the first call of a new token subject)", "me", &[], "200")},
            "/v1/schemes": {"get": op("Find a fund: typo-tolerant search (q) over scheme name, fund house, ISIN and code, best match first; filters by category, fund house, plan (Direct, Regular), option (Growth, IDCW) and open_for_sip; at most 50 a page, next_after continues", "schemes", &["q", "category", "fund_house", "plan", "option", "open_for_sip", "scheme_limit", "cursor"], "200")},
            "/v1/schemes/{scheme_code}": {"get": op("One scheme: category, plan, option, ISINs, SIP limits, unit decimals and the latest NAV with its date", "schemes", &["scheme_code"], "200")},
            "/v1/schemes/{scheme_code}/nav": {"get": op("Latest NAV of a scheme (cached 24 h)", "navs", &["scheme_code"], "200")},
            "/v1/schemes/{scheme_code}/navs": {"get": op("NAV history of a scheme, newest first", "navs", &["scheme_code", "from", "to", "limit"], "200")},
            "/v1/users/{user_id}/portfolio": {"get": op("Portfolio summary and per-scheme lines of the latest published date, each line with its own XIRR (null when it cannot be computed) and one-day change (cached 15 min)", "portfolio", &["user_id"], "200")},
            "/v1/users/{user_id}/investments": {"get": op("Every instalment with its latest status (executed, pending, failed, reversed), amount, stamp duty, NAV, NAV date and units; filters by SIP, scheme, status and due-date range; newest due first, at most 200 a page, next_before continues", "portfolio", &["user_id", "sip_filter", "scheme_filter", "status", "from", "to", "limit", "before_cursor"], "200")},
            "/v1/users/{user_id}/portfolio/history": {"get": op("The published daily snapshots from..to (at most 1,100 days) as a series: invested, value, gain, returns, XIRR", "portfolio", &["user_id", "from_required", "to_required"], "200")},
            "/v1/users/{user_id}/charts/{graph_type}": {"get": op("Chart data: pie, line or bar (cached 30 min)", "portfolio", &["user_id", "graph_type"], "200")},
            "/v1/users/{user_id}/sips": {"get": op("The user's SIPs by id, a page at a time (limit ≤ 200; next_after continues)", "sips", &["user_id", "limit", "after"], "200"), "post": create_sip},
            "/v1/users/{user_id}/sips/{sip_id}": {"get": op("A SIP: its terms, effective_from, next_instalment, and its change history (newest first, at most 100)", "sips", &["user_id", "sip_id"], "200"), "patch": amend_sip},
            "/v1/users/{user_id}/sips/{sip_id}/{action}": {"post": change_sip},
            "/v1/users/{user_id}/notifications": {"get": op("The user's notifications, newest first", "notifications", &["user_id", "limit", "before", "unread"], "200")},
            "/v1/users/{user_id}/notifications/{notification_id}/read": {"post": op("Mark a notification read", "notifications", &["user_id", "notification_id"], "200")},
            "/v1/users/{user_id}/notification-preferences": {"get": op("Where the user's notifications go (defaults when never set: webhook only, Asia/Kolkata)", "notifications", &["user_id"], "200"), "put": put_preferences},
            "/v1/users/{user_id}/alerts": {"get": op("The user's NAV alerts by id, a page at a time (limit ≤ 200; next_after continues)", "alerts", &["user_id", "limit", "after"], "200"), "post": create_alert},
            "/v1/users/{user_id}/alerts/{alert_id}": {"delete": op("Delete a NAV alert", "alerts", &["user_id", "alert_id"], "204")},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: database reachable, migrations current", "security": [], "responses": {"200": {"description": "ready"}, "503": {"$ref": "#/components/responses/Problem"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition format"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "responses": {"Problem": {"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                            "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}},
                "NewSip": {"type": "object", "required": ["scheme_code", "amount", "sip_day", "start_date"], "properties": {
                    "scheme_code": {"type": "integer"}, "amount": {"type": "string", "example": "1500.00"},
                    "sip_day": {"type": "integer", "minimum": 1, "maximum": 28}, "start_date": {"type": "string", "format": "date"},
                    "end_date": {"type": "string", "format": "date"}, "step_up_pct": {"type": "string", "example": "10"}}},
                "SipAmendment": {"type": "object", "additionalProperties": false, "minProperties": 1, "properties": {
                    "amount": {"type": "string", "example": "2000.00"}, "step_up_pct": {"type": "string", "example": "10"},
                    "sip_day": {"type": "integer", "minimum": 1, "maximum": 28}, "end_date": {"type": "string", "format": "date"}}},
                "Preferences": {"type": "object", "additionalProperties": false, "required": ["channels"], "properties": {
                    "channels": {"type": "array", "uniqueItems": true, "items": {"type": "string", "enum": ["webhook", "email", "sms", "push"]}},
                    "email": {"type": ["string", "null"], "maxLength": 254}, "phone": {"type": ["string", "null"], "pattern": "^\\+[0-9]{8,15}$"},
                    "push_token": {"type": ["string", "null"], "maxLength": 4096},
                    "quiet_start": {"type": ["string", "null"], "example": "22:00"}, "quiet_end": {"type": ["string", "null"], "example": "07:00"},
                    "time_zone": {"type": "string", "example": "Asia/Kolkata"}}},
                "NewAlert": {"type": "object", "required": ["scheme_code", "kind", "threshold"], "properties": {
                    "scheme_code": {"type": "integer"}, "kind": {"type": "string", "enum": ["above", "below", "daily_move_pct"]},
                    "threshold": {"type": "string", "example": "45.50"}}},
            }
        }
    })
}
