//! Every kind on every channel, rendered from the cases in `tests/cases/` and compared with
//! `tests/golden/<case>.txt`. `UPDATE_GOLDEN=1 cargo test -p messages` rewrites the goldens;
//! read the diff before committing it, it is what people will read.

use std::path::{Path, PathBuf};

use messages::{Messages, Notification, KINDS, MAX_SMS_SEGMENTS};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

fn load(path: &Path) -> Notification {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = |field: &str| case.get(field).and_then(|v| v.as_str()).map(String::from);
    Notification {
        kind: text("kind").unwrap(),
        payload: case["payload"].clone(),
        scheme_name: text("scheme_name"),
        target_scheme_name: text("target_scheme_name"),
        unit_decimals: case
            .get("unit_decimals")
            .and_then(|v| v.as_u64())
            .map(|d| d as u32),
        local_time: text("local_time"),
        unsubscribe_url: text("unsubscribe_url"),
        statement_url: text("statement_url"),
        generic: false,
    }
}

fn render_all(messages: &Messages, notification: &Notification) -> String {
    let email = messages.email(notification).unwrap();
    let sms = messages.sms(notification).unwrap();
    let push = messages.push(notification).unwrap();
    format!(
        "== email subject\n{}\n== email text\n{}== email html\n{}== sms ({}, {} units, {} segment(s))\n{}\n== push title\n{}\n== push body\n{}\n",
        email.subject,
        email.text,
        email.html,
        sms.length.encoding.as_str(),
        sms.length.units,
        sms.length.segments,
        sms.text,
        push.title,
        push.body
    )
}

#[test]
fn every_kind_renders_on_every_channel_as_the_golden_files_say() {
    let messages = Messages::new().unwrap();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut kinds_seen = std::collections::BTreeSet::new();
    let mut mismatches = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let notification = load(&path);
        kinds_seen.insert(notification.kind.clone());
        let rendered = render_all(&messages, &notification);
        let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(path.file_stem().unwrap())
            .with_extension("txt");
        if update {
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            mismatches.push(format!("{}:\n{rendered}", golden.display()));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    for kind in KINDS {
        assert!(kinds_seen.contains(*kind), "no golden case for {kind}");
    }
}

#[test]
fn what_people_read_has_no_template_syntax_no_raw_json_and_indian_amounts() {
    let messages = Messages::new().unwrap();
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let notification = load(&entry.unwrap().path());
        let rendered = render_all(&messages, &notification);
        for leftover in [
            "{{",
            "{%",
            "}}",
            "undefined",
            "none",
            "\"payload\"",
            "sip_id",
        ] {
            assert!(
                !rendered.contains(leftover),
                "{}: {leftover:?} in\n{rendered}",
                notification.kind
            );
        }
        let sms = messages.sms(&notification).unwrap();
        assert!(
            !sms.text.contains('₹'),
            "an SMS with ₹ is UCS-2: {}",
            sms.text
        );
        assert!(sms.text.ends_with("-sipline"), "{}", sms.text);
    }
    let case = load(&cases_dir().join("statement_ready.json"));
    let email = messages.email(&case).unwrap();
    assert!(email.text.contains("₹12,34,567.50"), "{}", email.text);
    assert!(email.html.contains("₹13,98,765.43"), "{}", email.html);
    assert!(email.text.contains("13.42%"), "{}", email.text);
    assert!(email.subject.contains("November 2026"), "{}", email.subject);
}

#[test]
fn scheme_names_are_html_escaped_in_html_and_only_there() {
    let messages = Messages::new().unwrap();
    let mut case = load(&cases_dir().join("sip_cancelled.json"));
    case.scheme_name = Some("A & B <Growth>".into());
    let email = messages.email(&case).unwrap();
    assert!(
        email.html.contains("A &amp; B &lt;Growth&gt;"),
        "{}",
        email.html
    );
    assert!(email.text.contains("A & B <Growth>"), "{}", email.text);
    assert!(
        email.subject.contains("A & B <Growth>"),
        "{}",
        email.subject
    );
}

/// Every scheme on AMFI's real master (a day's NAVAll.txt) with the widest figures each kind
/// can carry still fits an SMS in two GSM-7 segments.
#[test]
fn every_real_scheme_name_fits_every_sms_kind_in_two_segments() {
    let navall = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pipeline/tests/fixtures/NAVAll_real_2025-05-16.txt"),
    )
    .unwrap();
    let names: Vec<&str> = navall
        .lines()
        .filter_map(|line| line.split(';').nth(3))
        .filter(|name| !name.trim().is_empty() && *name != "Scheme Name")
        .collect();
    assert!(names.len() > 10_000, "{} names", names.len());
    // A name is either sent whole or cut to the same budget, so the longest names are the
    // worst case once every name is GSM-7 as sent (one that is not makes the SMS UCS-2).
    let mut transliterated = 0;
    for name in &names {
        let sent = messages::to_gsm7(name);
        assert_eq!(
            messages::sms_length(&sent).encoding,
            messages::Encoding::Gsm7,
            "{name}"
        );
        assert_eq!(
            sent.chars().count(),
            name.chars().count(),
            "{name}: a character dropped"
        );
        transliterated += usize::from(sent != *name);
    }
    // The one real name with a backtick ("...Regular` Plan") is still found.
    assert!(transliterated >= 1);
    let mut names = names;
    names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    names.truncate(300);
    let messages = Messages::new().unwrap();
    let wide = serde_json::json!({
        "sip_id": 9_999_999_999i64, "order_id": 9_999_999_999i64, "alert_id": 9_999_999_999i64,
        "plan_id": 9_999_999_999i64, "reason": "insufficient_units",
        "scheme_code": 999_999, "target_scheme_code": 999_999,
        "due_date": "2026-09-28", "run_date": "2026-09-28", "nav_date": "2026-09-28",
        "payout_date": "2026-09-30", "amount": "99999999.99", "net_amount": "99999999.99",
        "nav": "99999.9999", "previous_nav": "99999.9999", "units": "9999999.9999",
        "threshold": "99999.9999", "month": "2026-09", "as_of": "2026-09-30",
        "invested": "99999999999.99", "current_value": "99999999999.99",
    });
    let mut worst = 0;
    for kind in KINDS {
        for name in &names {
            for (order_kind, failure, condition) in [
                ("redemption", "amount_too_small", "daily_move_pct"),
                ("switch", "insufficient_units", "above"),
            ] {
                let mut payload = wide.clone();
                payload["kind"] = order_kind.into();
                payload["failure"] = failure.into();
                payload["condition"] = condition.into();
                let notification = Notification {
                    kind: kind.to_string(),
                    payload,
                    scheme_name: Some(name.to_string()),
                    target_scheme_name: Some(name.to_string()),
                    unit_decimals: Some(4),
                    ..Notification::default()
                };
                let sms = messages
                    .sms(&notification)
                    .unwrap_or_else(|e| panic!("{kind} with {name:?}: {e}"));
                assert!(sms.length.segments <= MAX_SMS_SEGMENTS);
                worst = worst.max(sms.length.units);
            }
        }
    }
    // GSM-7 for every name: AMFI's master is ASCII.
    assert!(worst <= 306, "{worst} septets");
}

#[test]
fn a_payload_missing_a_field_gets_the_generic_words_and_the_reason() {
    let messages = Messages::new().unwrap();
    let mut case = load(&cases_dir().join("sip_executed.json"));
    case.payload.as_object_mut().unwrap().remove("units");
    assert!(messages.email(&case).is_err());
    let (email, reason) = messages.email_or_generic(&case).unwrap();
    assert!(reason.unwrap().to_string().contains("sip_executed"));
    assert!(email.text.contains("sip executed"), "{}", email.text);
    let (sms, reason) = messages.sms_or_generic(&case).unwrap();
    assert!(
        reason.is_some() && sms.text.contains("sip executed"),
        "{}",
        sms.text
    );
    let (_, reason) = messages.push_or_generic(&case).unwrap();
    assert!(reason.is_some());
}
