//! How numbers and dates read to a person in India: amounts in lakh/crore grouping
//! (₹1,23,456.78), calendar dates as "7 Dec 2026", months as "November 2026".
//!
//! Amounts arrive as the exact decimal text PostgreSQL wrote (`numeric::text`); they are
//! regrouped as text, never through a float, so the paise a person reads are the paise booked.

/// `"123456.7"` → `"1,23,456.70"`; `"-1234"` → `"-1,234.00"`. Indian grouping puts the last
/// three digits of the rupees together and every two before them. Fewer than two decimals are
/// padded to paise; more (a unit count, a NAV) are kept as written. `None` when `text` is not
/// a plain decimal number.
pub fn indian_grouping(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 2 + 4);
    let head_len = whole.len().saturating_sub(3);
    let (head, last_three) = whole.split_at(head_len);
    // The head in pairs from the right: an odd-length head starts with a single digit.
    let first = head.len() % 2;
    if first == 1 {
        grouped.push_str(&head[..1]);
    }
    for pair in head.as_bytes()[first..].chunks(2) {
        if !grouped.is_empty() {
            grouped.push(',');
        }
        grouped.push_str(std::str::from_utf8(pair).unwrap_or_default());
    }
    if !grouped.is_empty() {
        grouped.push(',');
    }
    grouped.push_str(last_three);
    grouped.push('.');
    grouped.push_str(fraction);
    for _ in fraction.len()..2 {
        grouped.push('0');
    }
    let is_zero = grouped.bytes().all(|b| matches!(b, b'0' | b',' | b'.'));
    Some(if negative && !is_zero {
        format!("-{grouped}")
    } else {
        grouped
    })
}

/// An amount with the rupee sign: `₹1,23,456.78`, a refund `-₹500.00`.
pub fn rupees(text: &str) -> Option<String> {
    let grouped = indian_grouping(text)?;
    Some(match grouped.strip_prefix('-') {
        Some(rest) => format!("-₹{rest}"),
        None => format!("₹{grouped}"),
    })
}

/// The same for an SMS: `Rs 1,23,456.78`. The rupee sign is not in the GSM-7 alphabet, and
/// one character outside it makes the whole message UCS-2 (70 characters a segment, not 160).
pub fn rupees_gsm(text: &str) -> Option<String> {
    let grouped = indian_grouping(text)?;
    Some(match grouped.strip_prefix('-') {
        Some(rest) => format!("-Rs {rest}"),
        None => format!("Rs {grouped}"),
    })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `"2026-12-07"` → `"7 Dec 2026"`: day first, as dates are written in India, and a month
/// name, so 07/12 cannot be read as July.
pub fn calendar_date(text: &str) -> Option<String> {
    let date = chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let month = MONTHS[usize::try_from(chrono::Datelike::month0(&date)).ok()?];
    Some(format!(
        "{} {} {}",
        chrono::Datelike::day(&date),
        &month[..3],
        chrono::Datelike::year(&date)
    ))
}

/// `"2026-11"` → `"November 2026"`.
pub fn calendar_month(text: &str) -> Option<String> {
    let (year, month) = text.split_once('-')?;
    let year: i32 = year.parse().ok()?;
    let month: usize = month.get(..2)?.parse().ok()?;
    Some(format!("{} {year}", MONTHS.get(month.checked_sub(1)?)?))
}

/// A unit count or NAV with the scheme's own decimals: trailing zeros beyond `decimals` go
/// (units are allotted to the scheme's decimals, so only zeros can be there), any other digit
/// stays, because the figure a person reads must be the one booked.
pub fn with_decimals(text: &str, decimals: usize) -> String {
    let Some((whole, fraction)) = text.split_once('.') else {
        return if decimals == 0 {
            text.to_string()
        } else {
            format!("{text}.{}", "0".repeat(decimals))
        };
    };
    let mut fraction = fraction.to_string();
    while fraction.len() > decimals && fraction.ends_with('0') {
        fraction.pop();
    }
    while fraction.len() < decimals {
        fraction.push('0');
    }
    if fraction.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_group_in_lakhs_and_crores() {
        for (text, grouped) in [
            ("0", "0.00"),
            ("0.5", "0.50"),
            ("7", "7.00"),
            ("999.99", "999.99"),
            ("1000", "1,000.00"),
            ("12345.6", "12,345.60"),
            ("123456.78", "1,23,456.78"),
            ("1234567.00", "12,34,567.00"),
            ("12345678.9", "1,23,45,678.90"),
            ("123456789012.34", "1,23,45,67,89,012.34"),
            ("-1234.5", "-1,234.50"),
            ("-0.00", "0.00"),
            ("00042.10", "42.10"),
            ("1234.5678", "1,234.5678"),
        ] {
            assert_eq!(indian_grouping(text).as_deref(), Some(grouped), "{text}");
        }
        for bad in ["", "abc", "1,000", "1.2.3", "1e5", "-", "."] {
            assert_eq!(indian_grouping(bad), None, "{bad:?}");
        }
        assert_eq!(rupees("123456.78").as_deref(), Some("₹1,23,456.78"));
        assert_eq!(rupees("-500").as_deref(), Some("-₹500.00"));
        assert_eq!(rupees_gsm("5000").as_deref(), Some("Rs 5,000.00"));
    }

    #[test]
    fn dates_read_day_month_year() {
        assert_eq!(calendar_date("2026-12-07").as_deref(), Some("7 Dec 2026"));
        assert_eq!(calendar_date("2028-02-29").as_deref(), Some("29 Feb 2028"));
        assert_eq!(calendar_date("2027-02-29"), None);
        assert_eq!(calendar_month("2026-11").as_deref(), Some("November 2026"));
        assert_eq!(calendar_month("2026-13"), None);
    }

    #[test]
    fn units_keep_every_booked_digit() {
        assert_eq!(with_decimals("12.3450", 3), "12.345");
        assert_eq!(with_decimals("12.3456", 3), "12.3456");
        assert_eq!(with_decimals("12", 3), "12.000");
        assert_eq!(with_decimals("12.5000", 0), "12.5");
        assert_eq!(with_decimals("12.0000", 0), "12");
    }
}
