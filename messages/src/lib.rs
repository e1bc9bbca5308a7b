//! What a person reads when something happens to their money: one template per notification
//! kind, rendered for each channel (an e-mail's subject, plain text and HTML; an SMS counted in
//! GSM-7 segments; a push title and body).
//!
//! Templates are Jinja (`minijinja`), embedded from `messages/templates/<kind>.jinja`, one file
//! per kind with a block per channel part, so the words of one event stay together. Amounts are
//! regrouped as text in Indian grouping (`format`), never through a float. An SMS longer than
//! [`MAX_SMS_SEGMENTS`] is an error, not a surprise on an operator's bill.
//!
//! The dispatcher (`jobs::notify`) renders a claimed delivery with [`Messages`]; the golden
//! files in `messages/tests/golden/` hold every kind on every channel.

pub mod format;
pub mod sms;
pub mod statement;

use minijinja::{value::Value, Environment, UndefinedBehavior};
use serde_json::Value as Json;

pub use sms::{sms_length, to_gsm7, Encoding, SmsLength};

/// The notification kinds the batch and the API create (`notifications.kind`), each with its
/// own template (the golden test fails for a kind without a case); any other kind renders with
/// a generic one. The list is the serving contract's.
pub use serving::unsubscribe::KINDS;

/// Two segments at most: an alert worth more than that belongs in an e-mail.
pub const MAX_SMS_SEGMENTS: usize = 2;

/// The longest scheme name an SMS spells out in full; longer ones are cut at a word (AMFI's
/// names run past 100 characters, which alone would fill most of a segment).
pub const SMS_SCHEME_CHARS: usize = 48;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "sip_executed",
        include_str!("../templates/sip_executed.jinja"),
    ),
    (
        "sip_pending",
        include_str!("../templates/sip_pending.jinja"),
    ),
    ("sip_failed", include_str!("../templates/sip_failed.jinja")),
    ("sip_no_nav", include_str!("../templates/sip_no_nav.jinja")),
    (
        "sip_cancelled",
        include_str!("../templates/sip_cancelled.jinja"),
    ),
    (
        "sip_reversed",
        include_str!("../templates/sip_reversed.jinja"),
    ),
    (
        "order_executed",
        include_str!("../templates/order_executed.jinja"),
    ),
    (
        "order_failed",
        include_str!("../templates/order_failed.jinja"),
    ),
    (
        "plan_stopped",
        include_str!("../templates/plan_stopped.jinja"),
    ),
    ("nav_alert", include_str!("../templates/nav_alert.jinja")),
    (
        "statement_ready",
        include_str!("../templates/statement_ready.jinja"),
    ),
    ("fallback", include_str!("../templates/fallback.jinja")),
];
const LAYOUT_HTML: &str = include_str!("../templates/layout.html");
const FOOTER_TEXT: &str = include_str!("../templates/footer.txt");

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {source}")]
    Template {
        template: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("{kind}: the SMS is {segments} segments ({units} {encoding} units); at most {MAX_SMS_SEGMENTS}")]
    SmsTooLong {
        kind: String,
        segments: usize,
        units: usize,
        encoding: &'static str,
    },
}

/// One notification as the templates see it: the event's payload and what the dispatcher
/// looked up for it.
#[derive(Debug, Clone, Default)]
pub struct Notification {
    pub kind: String,
    /// The event's JSON (`notifications.payload`).
    pub payload: Json,
    /// The scheme's name as AMFI spells it, when the event names a scheme.
    pub scheme_name: Option<String>,
    /// A switch's target scheme.
    pub target_scheme_name: Option<String>,
    /// Decimals the scheme allots units to.
    pub unit_decimals: Option<u32>,
    /// When the event happened, already written in the person's time zone ("7 Dec 2026, 18:05 IST").
    pub local_time: Option<String>,
    /// A signed link that unsubscribes the person from this kind without signing in.
    pub unsubscribe_url: Option<String>,
    /// Where the app opens a statement (the monthly statement's link adds the period and
    /// `format=pdf`); signing in happens there, so no credential travels in a message.
    pub statement_url: Option<String>,
    /// Render with the generic template whatever the kind.
    pub generic: bool,
}

impl Notification {
    fn as_generic(&self) -> Notification {
        Notification {
            generic: true,
            ..self.clone()
        }
    }
}

/// An e-mail: subject, and the same words as plain text and as HTML (multipart/alternative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub text: String,
    pub length: SmsLength,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub title: String,
    pub body: String,
}

/// The templates, parsed once; cheap to share between the dispatcher's tasks.
pub struct Messages {
    env: Environment<'static>,
}

impl Messages {
    pub fn new() -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // A kind's template is loaded twice: as `<kind>.html` its output is HTML-escaped (a
        // scheme name with "&" in it), as `<kind>.txt` it is not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for (kind, source) in TEMPLATES {
            for suffix in ["txt", "html"] {
                let name = format!("{kind}.{suffix}");
                env.add_template_owned(name.clone(), *source)
                    .map_err(|source| RenderError::Template {
                        template: name,
                        source,
                    })?;
            }
        }
        for (name, source) in [("layout.html", LAYOUT_HTML), ("footer.txt", FOOTER_TEXT)] {
            env.add_template(name, source)
                .map_err(|source| RenderError::Template {
                    template: name.to_string(),
                    source,
                })?;
        }
        // Every filter refuses an undefined value: a field missing from the payload is an
        // error (and the generic words), never an empty amount in a sentence.
        env.add_filter("inr", |v: Value| money(&defined(v)?, format::rupees));
        env.add_filter("rs", |v: Value| money(&defined(v)?, format::rupees_gsm));
        env.add_filter("day", |v: Value| {
            let text = defined(v)?.to_string();
            Ok(format::calendar_date(&text).unwrap_or(text))
        });
        env.add_filter("month", |v: Value| {
            let text = defined(v)?.to_string();
            Ok(format::calendar_month(&text).unwrap_or(text))
        });
        env.add_filter("units", |v: Value, decimals: Option<u32>| {
            Ok(format::with_decimals(
                &defined(v)?.to_string(),
                decimals.unwrap_or(3) as usize,
            ))
        });
        env.add_filter("pct", |v: Value| {
            let v = defined(v)?;
            Ok(match f64::try_from(v.clone()) {
                Ok(rate) => format!("{:.2}%", rate * 100.0),
                Err(_) => v.to_string(),
            })
        });
        env.add_filter("short", |v: Value| {
            Ok(shorten(&defined(v)?.to_string(), SMS_SCHEME_CHARS))
        });
        Ok(Self { env })
    }

    fn template_of<'a>(&self, notification: &'a Notification) -> &'a str {
        if notification.generic || !KINDS.contains(&notification.kind.as_str()) {
            "fallback"
        } else {
            &notification.kind
        }
    }

    /// The kind's e-mail, or when its template cannot render this payload (a field missing:
    /// an event written by an older or newer batch) the generic one, with the reason to log:
    /// a person still hears that something happened, and the operator learns why the words
    /// were generic. The same for [`Self::sms_or_generic`] and [`Self::push_or_generic`].
    pub fn email_or_generic(
        &self,
        notification: &Notification,
    ) -> Result<(Email, Option<RenderError>), RenderError> {
        match self.email(notification) {
            Ok(email) => Ok((email, None)),
            Err(e) => Ok((self.email(&notification.as_generic())?, Some(e))),
        }
    }

    pub fn sms_or_generic(
        &self,
        notification: &Notification,
    ) -> Result<(Sms, Option<RenderError>), RenderError> {
        match self.sms(notification) {
            Ok(sms) => Ok((sms, None)),
            Err(e) => Ok((self.sms(&notification.as_generic())?, Some(e))),
        }
    }

    pub fn push_or_generic(
        &self,
        notification: &Notification,
    ) -> Result<(Push, Option<RenderError>), RenderError> {
        match self.push(notification) {
            Ok(push) => Ok((push, None)),
            Err(e) => Ok((self.push(&notification.as_generic())?, Some(e))),
        }
    }

    fn context(notification: &Notification) -> Value {
        let code = |field: &str| {
            notification
                .payload
                .get(field)
                .map(|c| format!("scheme {c}"))
                .unwrap_or_else(|| "your scheme".to_string())
        };
        let scheme = notification
            .scheme_name
            .clone()
            .unwrap_or_else(|| code("scheme_code"));
        let target_scheme = notification
            .target_scheme_name
            .clone()
            .unwrap_or_else(|| code("target_scheme_code"));
        minijinja::context! {
            kind => notification.kind.as_str(),
            p => Value::from_serialize(&notification.payload),
            scheme => scheme,
            target_scheme => target_scheme,
            unit_decimals => notification.unit_decimals.unwrap_or(3),
            local_time => notification.local_time.as_deref(),
            unsubscribe_url => notification.unsubscribe_url.as_deref(),
            statement_url => notification.statement_url.as_deref(),
        }
    }

    /// Renders `blocks` of the kind's template (`.txt` or `.html`), each trimmed.
    fn blocks<const N: usize>(
        &self,
        notification: &Notification,
        suffix: &str,
        blocks: [&str; N],
    ) -> Result<[String; N], RenderError> {
        let name = format!("{}.{suffix}", self.template_of(notification));
        let error = |source| RenderError::Template {
            template: name.clone(),
            source,
        };
        let template = self.env.get_template(&name).map_err(error)?;
        // Rendering the whole template once runs its top-level `set`s, which blocks share.
        let mut captured = template
            .render_captured(Self::context(notification))
            .map_err(error)?;
        let mut out: [String; N] = std::array::from_fn(|_| String::new());
        for (slot, block) in out.iter_mut().zip(blocks) {
            *slot = captured
                .with_state_mut(|state| state.render_block(block))
                .map_err(error)?
                .trim()
                .to_string();
        }
        Ok(out)
    }

    pub fn email(&self, notification: &Notification) -> Result<Email, RenderError> {
        let [subject, text] = self.blocks(notification, "txt", ["subject", "text"])?;
        let [content] = self.blocks(notification, "html", ["html"])?;
        let error = |template: &str| {
            let template = template.to_string();
            move |source| RenderError::Template { template, source }
        };
        let footer = self
            .env
            .get_template("footer.txt")
            .and_then(|t| t.render(Self::context(notification)))
            .map_err(error("footer.txt"))?;
        let mut context = Self::context(notification);
        context = minijinja::context! {
            subject => subject.as_str(),
            content => Value::from_safe_string(content),
            ..context
        };
        let html = self
            .env
            .get_template("layout.html")
            .and_then(|t| t.render(context))
            .map_err(error("layout.html"))?;
        Ok(Email {
            subject,
            text: format!("{text}\n{}", footer.trim_end()) + "\n",
            html: html.trim().to_string() + "\n",
        })
    }

    pub fn sms(&self, notification: &Notification) -> Result<Sms, RenderError> {
        let [text] = self.blocks(notification, "txt", ["sms"])?;
        // Template line breaks are layout, not content: an SMS is one paragraph, in GSM-7.
        let text = sms::to_gsm7(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let length = sms_length(&text);
        if length.segments > MAX_SMS_SEGMENTS {
            return Err(RenderError::SmsTooLong {
                kind: notification.kind.clone(),
                segments: length.segments,
                units: length.units,
                encoding: length.encoding.as_str(),
            });
        }
        Ok(Sms { text, length })
    }

    pub fn push(&self, notification: &Notification) -> Result<Push, RenderError> {
        let [title, body] = self.blocks(notification, "txt", ["push_title", "push_body"])?;
        Ok(Push { title, body })
    }
}

fn money(value: &Value, render: fn(&str) -> Option<String>) -> Result<String, minijinja::Error> {
    let text = value.to_string();
    Ok(render(&text).unwrap_or(text))
}

fn defined(value: Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "a field the message needs is missing from the event",
        ))
    } else {
        Ok(value)
    }
}

/// Cuts `text` to at most `max` characters at a word boundary, marking the cut with "..."
/// (GSM-7, unlike "…").
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let budget = max.saturating_sub(3);
    let mut out = String::new();
    for word in text.split_whitespace() {
        let next = if out.is_empty() {
            word.chars().count()
        } else {
            out.chars().count() + 1 + word.chars().count()
        };
        if next > budget {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() {
        out = text.chars().take(budget).collect();
    }
    out.trim_end_matches([' ', '-', ',']).to_string() + "..."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_at_a_word() {
        let name = "Aditya Birla Sun Life Banking & PSU Debt Fund - Direct Plan - Growth";
        let cut = shorten(name, SMS_SCHEME_CHARS);
        assert!(cut.chars().count() <= SMS_SCHEME_CHARS, "{cut}");
        assert_eq!(cut, "Aditya Birla Sun Life Banking & PSU Debt Fund...");
        assert_eq!(shorten("HDFC Flexi Cap Fund", 48), "HDFC Flexi Cap Fund");
        assert_eq!(shorten(&"x".repeat(60), 10), "xxxxxxx...");
    }
}
