//! The synthetic universe: users, SIP mandates, a scheme master and NAV history, generated
//! deterministically from a seed so any bucket of users can be generated on its own (bounded
//! memory, parallel, shardable) and a re-run writes the same bytes.
//!
//! Randomness is SplitMix64 keyed by (seed, what, id) rather than one sequential generator:
//! user 7,000,001's SIPs do not depend on how many users came before it.

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::bucket::BUCKETS;
use crate::calendar::BusinessCalendar;
use crate::money::Nav;
use crate::money::{Paise, DEFAULT_UNIT_DECIMALS};
use crate::nav::{NavRow, SchemeRow};
use crate::nav::{NavSource, Scheme};
use crate::sip::{DebitFailure, Mandate, SipStatus};
use crate::user::UserRow;

/// About 14,000 scheme codes exist; about 8,500 publish a NAV every business day.
pub const SCHEME_COUNT: usize = 14_000;
pub const PUBLISHING_SCHEMES: usize = 8_500;
const FIRST_SCHEME_CODE: i64 = 100_001;
/// A publishing scheme misses a day's NAV this often (per mille), which leaves instalments
/// pending until its next NAV.
const MISSED_NAV_PER_MILLE: u64 = 2;

/// A small, fast, well-mixed generator (Steele, Lea & Flood's SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream for one purpose (`what`) and one id, independent of every other stream.
    pub fn keyed(seed: u64, what: u64, id: u64) -> Self {
        let mut mixer = SplitMix64(seed ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let base = mixer.next_u64();
        SplitMix64(base ^ id.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// Stream names, so no two purposes share random numbers.
const USER: u64 = 1;
const SCHEME: u64 = 2;
const NAV_STEP: u64 = 3;
const FAILURE: u64 = 4;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniverseSpec {
    pub seed: u64,
    pub users: u64,
    /// History length: SIPs start and NAVs run over the `months` before `end_date`.
    pub months: u32,
    pub end_date: NaiveDate,
}

impl UniverseSpec {
    /// The first day of the history.
    pub fn start_date(&self) -> NaiveDate {
        self.end_date
            .checked_sub_months(Months::new(self.months))
            .unwrap_or(self.end_date)
    }

    /// The user ids of a bucket, ascending.
    pub fn users_in_bucket(&self, bucket: u32) -> impl Iterator<Item = i64> {
        let first = if bucket == 0 { BUCKETS } else { bucket };
        (u64::from(first)..=self.users)
            .step_by(BUCKETS as usize)
            .map(|id| id as i64)
    }
}

const FUND_HOUSES: &[&str] = &[
    "Aditya Birla Sun Life Mutual Fund",
    "Axis Mutual Fund",
    "Bandhan Mutual Fund",
    "Bank of India Mutual Fund",
    "Baroda BNP Paribas Mutual Fund",
    "Canara Robeco Mutual Fund",
    "DSP Mutual Fund",
    "Edelweiss Mutual Fund",
    "Franklin Templeton Mutual Fund",
    "HDFC Mutual Fund",
    "HSBC Mutual Fund",
    "ICICI Prudential Mutual Fund",
    "Invesco Mutual Fund",
    "ITI Mutual Fund",
    "JM Financial Mutual Fund",
    "Kotak Mahindra Mutual Fund",
    "LIC Mutual Fund",
    "Mahindra Manulife Mutual Fund",
    "Mirae Asset Mutual Fund",
    "Motilal Oswal Mutual Fund",
    "Navi Mutual Fund",
    "Nippon India Mutual Fund",
    "PGIM India Mutual Fund",
    "PPFAS Mutual Fund",
    "Quant Mutual Fund",
    "SBI Mutual Fund",
    "Sundaram Mutual Fund",
    "Tata Mutual Fund",
    "Union Mutual Fund",
    "UTI Mutual Fund",
    "WhiteOak Capital Mutual Fund",
    "360 ONE Mutual Fund (Formerly Known as IIFL Mutual Fund)",
];

/// (category, daily volatility in basis points, yearly drift in basis points)
const CATEGORIES: &[(&str, u32, i32)] = &[
    ("Equity Scheme - Large Cap Fund", 95, 1200),
    ("Equity Scheme - Mid Cap Fund", 120, 1500),
    ("Equity Scheme - Small Cap Fund", 140, 1600),
    ("Equity Scheme - Flexi Cap Fund", 105, 1300),
    ("Equity Scheme - ELSS", 105, 1300),
    ("Equity Scheme - Sectoral/ Thematic", 130, 1300),
    ("Hybrid Scheme - Aggressive Hybrid Fund", 75, 1100),
    ("Hybrid Scheme - Balanced Advantage", 55, 900),
    ("Other Scheme - Index Funds", 95, 1200),
    ("Debt Scheme - Corporate Bond Fund", 8, 750),
    ("Debt Scheme - Liquid Fund", 1, 680),
    ("Debt Scheme - Gilt Fund", 20, 700),
];

struct SchemeShape {
    volatility_bps: u32,
    drift_bps: i32,
    /// In 1/10,000 rupee.
    start_nav: i64,
    /// Decimals the scheme's NAVs are published with: 4 as most are, 8 for about one scheme
    /// in 32, as AMFI publishes fixed-maturity and interval plans (448 of 14,025 rows on
    /// 16 May 2025).
    nav_decimals: u32,
}

/// Whether the scheme numbered `n` publishes its NAVs with eight decimals: one in 32, as AMFI
/// publishes fixed-maturity and interval plans. Decided by number, not by a random draw, so
/// adding it moved no other value; `nav sample` uses the same rule.
pub fn publishes_eight_decimals(n: u64) -> bool {
    n % 32 == 7
}

fn scheme_shape(seed: u64, index: usize) -> (Scheme, SchemeShape) {
    let mut rng = SplitMix64::keyed(seed, SCHEME, index as u64);
    let house = FUND_HOUSES[rng.below(FUND_HOUSES.len() as u64) as usize];
    let (category, volatility_bps, drift_bps) =
        CATEGORIES[rng.below(CATEGORIES.len() as u64) as usize];
    let plan = if index % 2 == 0 { "Direct" } else { "Regular" };
    let option = if rng.chance(800) { "Growth" } else { "IDCW" };
    let short_house = house.trim_end_matches(" Mutual Fund");
    let short_category = category.rsplit(" - ").next().unwrap_or(category);
    let scheme_code = FIRST_SCHEME_CODE + index as i64;
    let publishing = index < PUBLISHING_SCHEMES;
    let isin = |rng: &mut SplitMix64| {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let tail: String = (0..9)
            .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]))
            .collect();
        format!("INF{tail}")
    };
    let isin_growth = Some(isin(&mut rng));
    let isin_reinvestment = (option == "IDCW").then(|| isin(&mut rng));
    // NAVs from ₹10 (new fund offers) to a few thousand (old schemes), log-uniform.
    let start_nav = (10.0_f64 * 300.0_f64.powf(rng.unit()) * 10_000.0).round() as i64;
    let scheme = Scheme {
        scheme_code,
        isin_growth,
        isin_reinvestment,
        scheme_name: format!("{short_house} {short_category} - {plan} Plan - {option}"),
        fund_house: Some(house.to_string()),
        category: Some(category.to_string()),
        scheme_type: Some(
            if publishing {
                "Open Ended"
            } else {
                "Close Ended"
            }
            .to_string(),
        ),
        plan: Some(plan.to_string()),
        option: Some(option.to_string()),
    };
    (
        scheme,
        SchemeShape {
            volatility_bps,
            drift_bps,
            start_nav,
            // From the index, not the generator: adding it draws no random number, so every
            // other column of the universe is what it was.
            nav_decimals: if publishes_eight_decimals(index as u64) {
                8
            } else {
                4
            },
        },
    )
}

/// The scheme master: `SCHEME_COUNT` schemes, the first `PUBLISHING_SCHEMES` of them open
/// ended and publishing daily, the rest close ended (matured or in their lock-in).
pub fn scheme_master(seed: u64) -> Vec<SchemeRow> {
    (0..SCHEME_COUNT)
        .map(|i| SchemeRow {
            scheme: scheme_shape(seed, i).0,
            unit_decimals: DEFAULT_UNIT_DECIMALS,
        })
        .collect()
}

/// NAV history as a random walk per publishing scheme over the business days of
/// `[spec.start_date(), spec.end_date]`: one call per day, in order, from [`NavWalk::next_day`].
pub struct NavWalk<'a> {
    seed: u64,
    calendar: &'a BusinessCalendar,
    shapes: Vec<SchemeShape>,
    navs: Vec<f64>,
    day: NaiveDate,
    end: NaiveDate,
    day_index: u64,
}

impl<'a> NavWalk<'a> {
    pub fn new(spec: &UniverseSpec, calendar: &'a BusinessCalendar) -> Self {
        let shapes: Vec<SchemeShape> = (0..PUBLISHING_SCHEMES)
            .map(|i| scheme_shape(spec.seed, i).1)
            .collect();
        let navs = shapes.iter().map(|s| s.start_nav as f64).collect();
        Self {
            seed: spec.seed,
            calendar,
            shapes,
            navs,
            day: spec.start_date(),
            end: spec.end_date,
            day_index: 0,
        }
    }
}

impl Iterator for NavWalk<'_> {
    type Item = (NaiveDate, Vec<NavRow>);

    /// The next business day's published NAVs, sorted by scheme code.
    fn next(&mut self) -> Option<Self::Item> {
        while self.day <= self.end && !self.calendar.is_business_day(self.day) {
            self.day = self.day + Days::new(1);
        }
        if self.day > self.end {
            return None;
        }
        let date = self.day;
        let mut rows = Vec::with_capacity(self.navs.len());
        for (i, (nav, shape)) in self.navs.iter_mut().zip(&self.shapes).enumerate() {
            let mut rng = SplitMix64::keyed(self.seed, NAV_STEP, (self.day_index << 20) | i as u64);
            let drift = f64::from(shape.drift_bps) / 10_000.0 / 250.0;
            let step = drift + f64::from(shape.volatility_bps) / 10_000.0 * rng.normal();
            // The walk is in f64 (in 1/10,000 rupee); each published NAV is rounded to the
            // scheme's decimals, 4 or 8, as AMFI's are.
            *nav = (*nav * step.exp()).max(1.0);
            if !rng.chance(MISSED_NAV_PER_MILLE) {
                let scaled = if shape.nav_decimals == 8 {
                    (*nav * 10_000.0).round() as i64
                } else {
                    nav.round() as i64 * 10_000
                };
                rows.push(NavRow {
                    scheme_code: FIRST_SCHEME_CODE + i as i64,
                    nav: Nav::from_scaled(scaled),
                    source: NavSource::Amfi,
                });
            }
        }
        self.day = self.day + Days::new(1);
        self.day_index += 1;
        Some((date, rows))
    }
}

/// A user and their 1–3 SIPs.
pub fn generate_user(spec: &UniverseSpec, user_id: i64) -> (UserRow, Vec<Mandate>) {
    let mut rng = SplitMix64::keyed(spec.seed, USER, user_id as u64);
    let start = spec.start_date();
    let span_days = (spec.end_date - start).num_days().max(1) as u64;
    let sip_count = match rng.below(100) {
        0..=59 => 1,
        60..=89 => 2,
        _ => 3,
    };
    let mut sips = Vec::with_capacity(sip_count);
    for k in 0..sip_count {
        let start_date = start + Days::new(rng.below(span_days + 1));
        // Log-normal around a median of ₹1,500, mean about ₹3,000, in ₹100 steps.
        let rupees = (1_500.0 * (1.2 * rng.normal()).exp()).clamp(100.0, 100_000.0);
        let amount = Paise(((rupees / 100.0).round().max(1.0) as i64) * 100 * 100);
        let sip_day = 1 + rng.below(28) as u32;
        let end_date = rng
            .chance(150)
            .then(|| start_date.checked_add_months(Months::new(6 + rng.below(55) as u32)))
            .flatten();
        let step_up_bps = match rng.below(100) {
            0..=9 => 500,
            10..=19 => 1000,
            _ => 0,
        };
        let (status, paused_until) = match rng.below(1000) {
            0..=49 => (SipStatus::Cancelled, None),
            50..=79 => (
                SipStatus::Paused,
                start_date.checked_add_months(Months::new(1 + rng.below(6) as u32)),
            ),
            _ => (SipStatus::Active, None),
        };
        // Popular schemes get most SIPs: a cubic skew towards the low indexes.
        let u = rng.unit();
        let scheme_index = ((u * u * u) * PUBLISHING_SCHEMES as f64) as i64;
        sips.push(Mandate {
            sip_id: user_id * 4 + k as i64,
            user_id,
            scheme_code: FIRST_SCHEME_CODE + scheme_index.min(PUBLISHING_SCHEMES as i64 - 1),
            amount,
            sip_day,
            start_date,
            end_date,
            step_up_bps,
            status,
            paused_until,
        });
    }
    let first_start = sips.iter().map(|s| s.start_date).min().unwrap_or(start);
    let created = first_start - Days::new(rng.below(30));
    let seconds =
        i64::from(created.num_days_from_ce() - 719_163) * 86_400 + rng.below(86_400) as i64;
    let (hi, lo) = (rng.next_u64(), rng.next_u64());
    let auth_subject = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    );
    (
        UserRow {
            user_id,
            auth_subject,
            created_at_micros: seconds * 1_000_000,
        },
        sips,
    )
}

/// A bucket's users and SIPs, sorted by id.
pub fn generate_bucket(spec: &UniverseSpec, bucket: u32) -> (Vec<UserRow>, Vec<Mandate>) {
    let mut users = Vec::new();
    let mut sips = Vec::new();
    for user_id in spec.users_in_bucket(bucket) {
        let (user, mut mandates) = generate_user(spec, user_id);
        users.push(user);
        sips.append(&mut mandates);
    }
    (users, sips)
}

/// A stand-in for the bank's report of failed debits: each due instalment fails with
/// probability `rate`, decided by a hash of (seed, SIP, due date) so re-runs agree.
pub fn simulated_failures(
    seed: u64,
    rate: f64,
    due: impl IntoIterator<Item = (i64, NaiveDate)>,
) -> Vec<DebitFailure> {
    due.into_iter()
        .filter(|(sip_id, due_date)| {
            let id =
                (*sip_id as u64) << 20 | u64::from(due_date.num_days_from_ce() as u32 & 0xf_ffff);
            SplitMix64::keyed(seed, FAILURE, id).unit() < rate
        })
        .map(|(sip_id, due_date)| DebitFailure {
            sip_id,
            due_date,
            reason: "insufficient funds".to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::bucket_of;

    fn spec(users: u64) -> UniverseSpec {
        UniverseSpec {
            seed: 42,
            users,
            months: 12,
            end_date: NaiveDate::from_ymd_opt(2025, 6, 30).unwrap(),
        }
    }

    #[test]
    fn buckets_partition_the_users() {
        let spec = spec(1000);
        let mut all: Vec<i64> = (0..BUCKETS).flat_map(|b| spec.users_in_bucket(b)).collect();
        all.sort();
        assert_eq!(all, (1..=1000).collect::<Vec<_>>());
        assert!(spec.users_in_bucket(5).all(|u| bucket_of(u) == 5));
    }

    #[test]
    fn users_are_deterministic_and_independent_of_each_other() {
        let spec = spec(100);
        assert_eq!(generate_user(&spec, 77), generate_user(&spec, 77));
        let bigger = UniverseSpec {
            users: 10_000_000,
            ..spec
        };
        assert_eq!(generate_user(&spec, 77), generate_user(&bigger, 77));
    }

    #[test]
    fn sips_follow_the_documented_shape() {
        let spec = spec(20_000);
        let sips: Vec<Mandate> = (0..BUCKETS)
            .flat_map(|b| generate_bucket(&spec, b).1)
            .collect();
        let per_user = sips.len() as f64 / 20_000.0;
        assert!((1.4..1.6).contains(&per_user), "{per_user} SIPs per user");
        let mean = sips.iter().map(|s| s.amount.0 as f64 / 100.0).sum::<f64>() / sips.len() as f64;
        assert!((2_500.0..3_500.0).contains(&mean), "mean amount {mean}");
        assert!(sips
            .iter()
            .all(|s| (10_000..=10_000_000).contains(&s.amount.0)));
        assert!(sips.iter().all(|s| (1..=28).contains(&s.sip_day)));
        assert!(sips
            .iter()
            .all(|s| s.start_date >= spec.start_date() && s.start_date <= spec.end_date));
        for status in [SipStatus::Active, SipStatus::Paused, SipStatus::Cancelled] {
            assert!(sips.iter().any(|s| s.status == status));
        }
        assert!(sips.iter().any(|s| s.end_date.is_some()));
        assert!(sips.iter().any(|s| s.step_up_bps > 0));
    }

    #[test]
    fn nav_history_has_gaps_on_weekends_and_holidays() {
        let calendar = BusinessCalendar::nse();
        let spec = spec(1);
        let days: Vec<(NaiveDate, Vec<NavRow>)> = NavWalk::new(&spec, &calendar).collect();
        assert!(days.iter().all(|(d, _)| calendar.is_business_day(*d)));
        assert!(
            (240..=255).contains(&days.len()),
            "{} business days",
            days.len()
        );
        let published = days.iter().map(|(_, rows)| rows.len()).sum::<usize>() / days.len();
        assert!((8_400..=8_500).contains(&published));
        assert!(days
            .iter()
            .all(|(_, rows)| rows.iter().all(|r| r.nav.is_positive())));
        let again: Vec<_> = NavWalk::new(&spec, &calendar).take(3).collect();
        assert_eq!(again[..], days[..3]);
        assert_eq!(scheme_master(42).len(), SCHEME_COUNT);
    }

    #[test]
    fn failures_follow_the_rate() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 10).unwrap();
        let failures = simulated_failures(1, 0.02, (0..100_000).map(|s| (s, day)));
        assert!(
            (1_700..2_300).contains(&failures.len()),
            "{}",
            failures.len()
        );
        assert_eq!(
            failures,
            simulated_failures(1, 0.02, (0..100_000).map(|s| (s, day)))
        );
    }
}
