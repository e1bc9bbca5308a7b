//! Exact decimal amounts as scaled integers. Money and NAVs never pass through `f64`: a NAV is
//! an `i64` count of 1/10,000 rupee, the scale of `Decimal128(18,4)` in the warehouse.

use std::fmt;
use std::str::FromStr;

/// Why a decimal text could not be read as an exact amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("'{text}' has more than {scale} decimal places")]
    TooPrecise { text: String, scale: u32 },
    #[error("'{0}' is too large")]
    TooLarge(String),
}

/// Parses a plain decimal (`-12.3456`, `105`, `.5`) into an integer scaled by `10^scale`,
/// refusing anything that would need rounding: a value the source published must be kept as
/// published, not silently changed.
pub fn parse_scaled(text: &str, scale: u32) -> Result<i64, AmountError> {
    let not_a_number = || AmountError::NotANumber(text.to_string());
    let too_large = || AmountError::TooLarge(text.to_string());
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(not_a_number());
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(not_a_number());
    }
    // Trailing zeros beyond the scale carry no information ("10.50000" is 10.5).
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > scale as usize {
        return Err(AmountError::TooPrecise {
            text: text.to_string(),
            scale,
        });
    }
    let mut value: i64 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    for i in 0..scale as usize {
        let digit = frac_trimmed
            .as_bytes()
            .get(i)
            .map_or(0, |b| i64::from(b - b'0'));
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit))
            .ok_or_else(too_large)?;
    }
    Ok(if negative { -value } else { value })
}

/// Writes a scaled integer with exactly `scale` decimals.
pub fn format_scaled(value: i64, scale: u32, out: &mut impl fmt::Write) -> fmt::Result {
    let unit = 10_i64.pow(scale);
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let unit = unit as u64;
    if scale == 0 {
        write!(out, "{sign}{abs}")
    } else {
        write!(
            out,
            "{sign}{}.{:0width$}",
            abs / unit,
            abs % unit,
            width = scale as usize
        )
    }
}

/// Net asset value per unit, in 1/10,000 rupee (`Decimal128(18,4)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nav(i64);

impl Nav {
    /// Decimal places of a NAV, as AMFI requires them to be published.
    pub const SCALE: u32 = 4;

    pub const fn from_scaled(ten_thousandths: i64) -> Self {
        Self(ten_thousandths)
    }

    /// The value in 1/10,000 rupee: the unscaled integer of `Decimal128(18,4)`.
    pub const fn scaled(self) -> i64 {
        self.0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl FromStr for Nav {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_scaled(s, Self::SCALE).map(Self)
    }
}

impl fmt::Display for Nav {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(self.0, Self::SCALE, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_published_navs_exactly() {
        assert_eq!("105.0576".parse::<Nav>(), Ok(Nav::from_scaled(1_050_576)));
        assert_eq!("10".parse::<Nav>(), Ok(Nav::from_scaled(100_000)));
        assert_eq!("0.5".parse::<Nav>(), Ok(Nav::from_scaled(5_000)));
        assert_eq!(".5".parse::<Nav>(), Ok(Nav::from_scaled(5_000)));
        assert_eq!("12.34560000".parse::<Nav>(), Ok(Nav::from_scaled(123_456)));
        assert_eq!("-1.25".parse::<Nav>(), Ok(Nav::from_scaled(-12_500)));
    }

    #[test]
    fn refuses_what_would_need_rounding_or_is_not_a_number() {
        assert!(matches!(
            "1.23456".parse::<Nav>(),
            Err(AmountError::TooPrecise { .. })
        ));
        for bad in ["N.A.", "", ".", "-", "1.2.3", "1,234.5", "1e3", " 1"] {
            assert!(
                matches!(bad.parse::<Nav>(), Err(AmountError::NotANumber(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "99999999999999999999".parse::<Nav>(),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_with_fixed_scale() {
        assert_eq!(Nav::from_scaled(1_050_576).to_string(), "105.0576");
        assert_eq!(Nav::from_scaled(5).to_string(), "0.0005");
        assert_eq!(Nav::from_scaled(-12_500).to_string(), "-1.2500");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(v in -1_000_000_000_000_i64..1_000_000_000_000) {
            let nav = Nav::from_scaled(v);
            prop_assert_eq!(nav.to_string().parse::<Nav>(), Ok(nav));
        }
    }
}
