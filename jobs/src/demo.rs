//! `sipline demo`, the quick start: generate a universe, execute its SIP history, value it, and
//! show what the data team would query.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use warehouse::Warehouse;

use crate::cli::ParallelArgs;
use crate::{generate, portfolio_value, shard, sip_execute, sql};

pub async fn demo(location: &str, users: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let warehouse = Warehouse::open(location)?;
    let calendar = pipeline::calendar::BusinessCalendar::nse();
    let parallelism = ParallelArgs { parallelism: None }.get();
    let spec = pipeline::generate::UniverseSpec {
        seed: 42,
        users,
        months: 12,
        end_date: NaiveDate::from_ymd_opt(2025, 6, 30).context("demo end date")?,
    };
    let mut out = std::io::stdout().lock();
    let generated =
        generate::generate(spec, shard::Shard::ALL, &calendar, &warehouse, parallelism).await?;
    writeln!(out, "{generated}")?;
    let options = sip_execute::ExecuteOptions {
        shard: shard::Shard::ALL,
        simulate_failures: 0.02,
        seed: 42,
        parallelism,
        no_nav_after: pipeline::sip::NO_NAV_AFTER_BUSINESS_DAYS,
        // The universe was just generated again: a previous demo's runs are retired.
        rewind: true,
    };
    let (days, total) = sip_execute::backfill(
        &warehouse,
        &calendar,
        spec.start_date(),
        spec.end_date,
        options,
    )
    .await?;
    writeln!(
        out,
        "sip backfill ok: days={days} executed={} failed={} cancelled={} amount={}",
        total.executed,
        total.failed,
        total.cancelled,
        pipeline::money::Paise(total.executed_amount)
    )?;
    let valued = portfolio_value::value(
        &warehouse,
        &calendar,
        spec.end_date,
        portfolio_value::ValueOptions {
            shard: shard::Shard::ALL,
            mode: pipeline::valuation::ValuationMode::Daily,
            hour: 0,
            parallelism,
        },
    )
    .await?;
    writeln!(out, "{valued}")?;
    writeln!(
        out,
        "\nPortfolios as of {}: {} users, {} holding funds; invested {}, AUM {}, gain {}, median XIRR {}",
        spec.end_date,
        valued.users,
        valued.holders,
        pipeline::money::Paise(valued.invested),
        pipeline::money::Paise(valued.current_value),
        pipeline::money::Paise(valued.current_value - valued.invested),
        valued
            .median_xirr()
            .map_or_else(|| "none".to_string(), |r| format!("{:.2}%", r * 100.0)),
    )?;
    let queries = [
        (
            "XIRR distribution of investors (daily snapshot)",
            "SELECT CASE WHEN xirr < 0 THEN 'a. below 0%' WHEN xirr < 0.1 THEN 'b. 0-10%' \
             WHEN xirr < 0.2 THEN 'c. 10-20%' ELSE 'd. 20% and more' END AS xirr_band, \
             count(*) AS investors, sum(current_value) AS aum \
             FROM portfolio_snapshots WHERE as_of = (SELECT max(as_of) FROM portfolio_snapshots) \
             AND schemes > 0 AND NOT isnan(xirr) GROUP BY 1 ORDER BY 1",
        ),
        (
            "AUM by category",
            "SELECT s.category, count(DISTINCT l.user_id) AS investors, sum(l.current_value) AS aum \
             FROM portfolio_lines l JOIN schemes s USING (scheme_code) \
             WHERE l.as_of = (SELECT max(as_of) FROM portfolio_lines) \
             GROUP BY s.category ORDER BY aum DESC LIMIT 5",
        ),
        (
            "One user's line chart, as the API serves it",
            "SELECT period, invested, value FROM portfolio_charts \
             WHERE as_of = (SELECT max(as_of) FROM portfolio_charts) AND user_id = \
             (SELECT min(user_id) FROM portfolio_snapshots WHERE schemes > 1) AND chart = 'line' ORDER BY seq",
        ),
        (
            "Instalments by month and outcome",
            "SELECT date_trunc('month', exec_date) AS month, status, count(*) AS instalments, sum(amount) AS amount \
             FROM investments WHERE status <> 'pending' GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 8",
        ),
        (
            "Largest holdings by fund house at the last month end",
            "SELECT s.fund_house, count(DISTINCT h.user_id) AS investors, sum(h.invested) AS invested \
             FROM holdings h JOIN schemes s USING (scheme_code) \
             WHERE h.as_of = (SELECT max(as_of) FROM holdings) \
             GROUP BY s.fund_house ORDER BY invested DESC LIMIT 5",
        ),
        (
            "SIP events for notifications, by kind",
            "SELECT kind, count(*) AS events FROM sip_events GROUP BY kind ORDER BY kind",
        ),
    ];
    for (title, query) in queries {
        writeln!(
            out,
            "\n{title}\n$ sipline sql --warehouse {location} \"{query}\""
        )?;
        sql::run(&warehouse, query, sql::OutputFormat::Table, &mut out).await?;
    }
    writeln!(
        out,
        "\ndemo ok: elapsed_ms={}",
        started.elapsed().as_millis()
    )?;
    Ok(())
}
