//! Exact decimal amounts as scaled integers. Money and NAVs never pass through `f64`: a NAV is
//! an `i64` count of 10^-8 rupee, the scale of `Decimal128(18,8)` in the warehouse, because
//! AMFI publishes most NAVs with 4 decimals but some (fixed-maturity and interval plans among
//! them) with up to 8, and a published NAV is kept exactly as published. Paise, units, NAVs,
//! percentages and their one rounding rule live here so every rule that moves money uses the
//! same arithmetic.

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

/// Net asset value per unit, in 10^-8 rupee (`Decimal128(18,8)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nav(i64);

impl Nav {
    /// Decimal places a NAV is stored with: the most AMFI publishes (`14.25207048`).
    pub const SCALE: u32 = 8;
    /// Decimal places a NAV is shown with at least: the usual published form (`105.0576`).
    pub const SHOWN_SCALE: u32 = 4;

    /// A NAV from its value in 10^-8 rupee.
    pub const fn from_scaled(scaled: i64) -> Self {
        Self(scaled)
    }

    /// The value in 10^-8 rupee: the unscaled integer of `Decimal128(18,8)`.
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

/// Four decimals, or as many more (up to eight) as the value has: `105.0576`, `10.19117240`
/// shows as `10.1911724`. What AMFI published reads back the same, less trailing zeros past
/// the fourth place.
impl fmt::Display for Nav {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut scale = Self::SCALE;
        let mut value = self.0;
        while scale > Self::SHOWN_SCALE && value % 10 == 0 {
            value /= 10;
            scale -= 1;
        }
        format_scaled(value, scale, f)
    }
}

/// Rupees in paise (`Decimal128(18,2)` unscaled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Paise(pub i64);

impl fmt::Display for Paise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(self.0, 2, f)
    }
}

/// Units in 1/10,000 (`Decimal128(18,4)` unscaled); allotted to fewer decimals by scheme rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Units(pub i64);

impl Units {
    pub const SCALE: u32 = 4;
}

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_scaled(self.0, Self::SCALE, f)
    }
}

/// A paisa in NAV steps: 10^-2 / 10^-8.
pub const NAV_PER_PAISA: i128 = 10_i128.pow(Nav::SCALE - 2);

/// What the purchase of `units` at `nav` costs, in 10^-12 rupees (units scale 4 × NAV scale 8).
pub fn cost_e12(units: Units, nav: Nav) -> i128 {
    i128::from(units.0) * i128::from(nav.scaled())
}

/// `a / b` rounded half away from zero, for positive `b`: every
/// rounding of money to the paisa and of percentages goes through here.
pub fn div_round_half_up(a: i128, b: i128) -> i128 {
    let (q, r) = (a / b, a % b);
    if 2 * r.abs() >= b {
        q + a.signum()
    } else {
        q
    }
}

/// Percentages are integers with a named scale, one per kind of percentage.
/// `step_up_pct` of a SIP: two decimals (`1_000` is 10.00%), `Decimal128(5,2)`.
pub const STEP_UP_PCT_SCALE: u32 = 2;
/// Returns and portfolio weights: four decimals (`1_000_000` is 100%).
pub const RETURN_PCT_SCALE: u32 = 4;

/// Decimal places of units when a scheme's master does not say: AMFI's common practice.
pub const DEFAULT_UNIT_DECIMALS: i32 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A NAV from its value in 1/10,000 rupee, the scale most published NAVs have.
    fn four(ten_thousandths: i64) -> Nav {
        Nav::from_scaled(ten_thousandths * 10_000)
    }

    #[test]
    fn parses_published_navs_exactly() {
        assert_eq!("105.0576".parse::<Nav>(), Ok(four(1_050_576)));
        assert_eq!("10".parse::<Nav>(), Ok(four(100_000)));
        assert_eq!("0.5".parse::<Nav>(), Ok(four(5_000)));
        assert_eq!(".5".parse::<Nav>(), Ok(four(5_000)));
        assert_eq!("12.34560000".parse::<Nav>(), Ok(four(123_456)));
        assert_eq!("-1.25".parse::<Nav>(), Ok(four(-12_500)));
        assert_eq!("+1.25".parse::<Nav>(), Ok(four(12_500)));
        // Eight decimals, as AMFI publishes some plans (both from NAVAll.txt of 16 May 2025).
        assert_eq!(
            "14.25207048".parse::<Nav>(),
            Ok(Nav::from_scaled(1_425_207_048))
        );
        assert_eq!(
            "10.19117240".parse::<Nav>(),
            Ok(Nav::from_scaled(1_019_117_240))
        );
    }

    #[test]
    fn refuses_what_would_need_rounding_or_is_not_a_number() {
        assert!(matches!(
            "1.234567891".parse::<Nav>(),
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
        // 10^11 rupees at 10^-8 overflows an i64: refused, not wrapped.
        assert!(matches!(
            "100000000000".parse::<Nav>(),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_with_four_decimals_or_as_many_as_published() {
        assert_eq!(four(1_050_576).to_string(), "105.0576");
        assert_eq!(four(5).to_string(), "0.0005");
        assert_eq!(four(-12_500).to_string(), "-1.2500");
        assert_eq!(four(100_000).to_string(), "10.0000");
        assert_eq!(Nav::from_scaled(1_425_207_048).to_string(), "14.25207048");
        assert_eq!(Nav::from_scaled(1_019_117_240).to_string(), "10.1911724");
        assert_eq!(Nav::from_scaled(1).to_string(), "0.00000001");
        assert_eq!(Nav::from_scaled(123_450).to_string(), "0.0012345");
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(v in -9_000_000_000_000_000_i64..9_000_000_000_000_000) {
            let nav = Nav::from_scaled(v);
            prop_assert_eq!(nav.to_string().parse::<Nav>(), Ok(nav));
        }
    }
}
