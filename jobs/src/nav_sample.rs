//! Synthetic NAV files in the published formats: a full-size `NAVAll.txt`, a history report
//! or a BSE export, deterministic for a seed. For benchmarks, demos and operators' dry runs;
//! the rows are random walks, the formats are the real ones.

use std::io::Write;

use anyhow::Context;
use chrono::{Datelike, NaiveDate, Weekday};
use pipeline::money::Nav;
use pipeline::nav::format::{write_bse_row, AmfiHeaderForm, AmfiWriter};
use pipeline::nav::Scheme;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FUND_HOUSES: [&str; 12] = [
    "Aditya Birla Sun Life Mutual Fund",
    "Axis Mutual Fund",
    "Bank of India Mutual Fund (formerly BOI AXA Mutual Fund)",
    "DSP Mutual Fund",
    "HDFC Mutual Fund",
    "ICICI Prudential Mutual Fund",
    "Kotak Mahindra Mutual Fund",
    "Mirae Asset Mutual Fund",
    "Nippon India Mutual Fund",
    "Parag Parikh Mutual Fund",
    "SBI Mutual Fund",
    "UTI Mutual Fund",
];

const CATEGORIES: [(&str, &str); 10] = [
    ("Open Ended", "Equity Scheme - Large Cap Fund"),
    ("Open Ended", "Equity Scheme - Mid Cap Fund"),
    ("Open Ended", "Equity Scheme - Small Cap Fund"),
    ("Open Ended", "Equity Scheme - Flexi Cap Fund"),
    ("Open Ended", "Equity Scheme - ELSS"),
    ("Open Ended", "Debt Scheme - Liquid Fund"),
    ("Open Ended", "Debt Scheme - Banking and PSU Fund"),
    ("Open Ended", "Hybrid Scheme - Aggressive Hybrid Fund"),
    ("Close Ended", "Income"),
    ("Interval Fund", "Income"),
];

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SampleFormat {
    /// `NAVAll.txt`: the last business day, a few stale and `N.A.` rows.
    Amfi,
    /// The NAV history report over every business day.
    AmfiHistory,
    /// A BSE StAR MF export for the last business day.
    Bse,
}

/// The business days (weekdays) in the `days` calendar days ending at `last`.
fn business_days(last: NaiveDate, days: u32) -> Vec<NaiveDate> {
    (0..days)
        .rev()
        .filter_map(|back| last.checked_sub_days(chrono::Days::new(u64::from(back))))
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect()
}

fn schemes(count: usize, rng: &mut StdRng) -> Vec<Scheme> {
    let mut schemes: Vec<Scheme> = (0..count)
        .map(|i| {
            let (scheme_type, category) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
            let house = FUND_HOUSES[rng.random_range(0..FUND_HOUSES.len())];
            let plan = if i % 2 == 0 { "Direct" } else { "Regular" };
            let option = if i % 3 == 2 { "IDCW" } else { "Growth" };
            let short = house.split(" Mutual Fund").next().unwrap_or(house);
            let kind = category.rsplit(" - ").next().unwrap_or(category);
            let has_isin = rng.random_bool(0.97);
            Scheme {
                scheme_code: 100_000 + i as i64,
                isin_growth: has_isin.then(|| format!("INF{:09}", 100_000 + i)),
                isin_reinvestment: (option == "IDCW").then(|| format!("INF{:09}", 900_000 + i)),
                scheme_name: format!("{short} {kind} {} - {plan} Plan - {option}", i / 6 + 1),
                fund_house: Some(house.to_string()),
                category: Some(category.to_string()),
                scheme_type: Some(scheme_type.to_string()),
                plan: Some(plan.to_string()),
                option: Some(option.to_string()),
            }
        })
        .collect();
    // AMFI groups rows by category, then fund house.
    schemes.sort_by(|a, b| {
        (&a.scheme_type, &a.category, &a.fund_house, a.scheme_code).cmp(&(
            &b.scheme_type,
            &b.category,
            &b.fund_house,
            b.scheme_code,
        ))
    });
    schemes
}

/// A random walk of NAVs per scheme over `days`, in 1/10,000 rupee.
fn walk(rng: &mut StdRng, days: usize) -> Vec<i64> {
    let mut nav: i64 = rng.random_range(10_0000..500_0000);
    (0..days)
        .map(|_| {
            let step_bp: i64 = rng.random_range(-150..=160);
            nav = (nav + nav * step_bp / 10_000).max(1_0000);
            nav
        })
        .collect()
}

/// The NAV a scheme publishes for a walk value (1/10,000 rupee): four decimals, or eight for
/// one scheme in 32, as AMFI publishes fixed-maturity and interval plans. The extra digits come
/// from the value itself, not the random generator, so the other rows stay as they were.
fn published(scheme: &Scheme, ten_thousandths: i64) -> Nav {
    let extra = if pipeline::generate::publishes_eight_decimals(scheme.scheme_code.unsigned_abs()) {
        ten_thousandths * 7_919 % 10_000
    } else {
        0
    };
    Nav::from_scaled(ten_thousandths * 10_000 + extra)
}

pub fn write_sample(
    out: impl Write,
    format: SampleFormat,
    scheme_count: usize,
    last: NaiveDate,
    days: u32,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let schemes = schemes(scheme_count, &mut rng);
    let dates = business_days(last, days.max(1));
    let last = *dates
        .last()
        .context("no business day in the requested range")?;
    let mut rows = 0_u64;
    let mut out = std::io::BufWriter::new(out);
    match format {
        SampleFormat::Amfi => {
            let mut writer = AmfiWriter::new(&mut out, AmfiHeaderForm::Daily, true)?;
            for scheme in &schemes {
                let nav = published(scheme, *walk(&mut rng, 1).last().unwrap_or(&10_0000));
                let roll: f64 = rng.random();
                // Real files carry a few schemes without a NAV and a few not priced today.
                let (text, date) = if roll < 0.004 {
                    ("N.A.".to_string(), last)
                } else if roll < 0.02 {
                    (nav.to_string(), dates.first().copied().unwrap_or(last))
                } else {
                    (nav.to_string(), last)
                };
                writer.write_row(scheme, &text, date)?;
                rows += 1;
            }
            writer.finish()?;
        }
        SampleFormat::AmfiHistory => {
            let mut writer = AmfiWriter::new(&mut out, AmfiHeaderForm::History, true)?;
            for scheme in &schemes {
                for (date, nav) in dates.iter().zip(walk(&mut rng, dates.len())) {
                    writer.write_row(scheme, &published(scheme, nav).to_string(), *date)?;
                    rows += 1;
                }
            }
            writer.finish()?;
        }
        SampleFormat::Bse => {
            for scheme in schemes.iter().filter(|s| s.isin_growth.is_some()) {
                let nav = published(scheme, *walk(&mut rng, 1).last().unwrap_or(&10_0000));
                let code = format!("B{}-GR", scheme.scheme_code);
                let name = &scheme.scheme_name;
                write_bse_row(
                    &mut out,
                    last,
                    &code,
                    name,
                    "RTA1",
                    "Z",
                    scheme.isin_growth.as_deref(),
                    &nav.to_string(),
                    "CAMS",
                )?;
                rows += 1;
            }
        }
    }
    out.flush()?;
    Ok(rows)
}
