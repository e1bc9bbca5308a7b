//! `portfolio value` on a small executed universe: the batch's numbers against SQL written
//! independently of it, daily against hourly (two ways of deriving holdings), shards against
//! one run, re-runs, and a missing upstream.

use std::path::Path;

use crate::sip::{backfill, csv, generate, END};
use crate::support::{sipline, snapshot};

/// Mid-month, so hourly valuation reads a month-end checkpoint plus the purchases since.
const VALUE_DATE: &str = "2025-03-20";

fn value(warehouse: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "portfolio",
        "value",
        "--date",
        VALUE_DATE,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sipline(&args).assert_ok().stdout.clone()
}

fn portfolio_files(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter(|(path, _)| {
            path.starts_with("portfolio_snapshots")
                || path.starts_with("portfolio_lines")
                || path.starts_with("portfolio_charts")
                || path.starts_with("portfolio_hourly")
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in snapshot(from) {
        let target = to.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

fn count(warehouse: &Path, query: &str) -> String {
    csv(warehouse, &format!("SELECT count(*) AS n FROM ({query})"))
}

/// Slow (about 125 s in CI): a quarter's backfill, two copies of its warehouse, and valuation
/// run whole, sharded, hourly and re-run, each checked against SQL written apart from the batch.
#[test]
fn valuation_agrees_with_sql_hourly_shards_and_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    generate(&one, "800", "0/1");
    backfill(&one, "0/1", "0.05");
    let shards = dir.path().join("shards");
    copy_dir(&one, &shards);

    let fallback = dir.path().join("fallback");
    copy_dir(&one, &fallback);

    // Each month end's execution compacted the month's allotments (reversals negated) into
    // `purchases`: the same rows as the daily `investments` files of that month.
    let compacted = "SELECT user_id, nav_date, scheme_code, amount, units FROM purchases";
    let from_investments = "SELECT user_id, nav_date, scheme_code, \
         CASE WHEN status = 'reversed' THEN -amount ELSE amount END AS amount, \
         CASE WHEN status = 'reversed' THEN -units ELSE units END AS units \
         FROM investments WHERE status IN ('executed', 'reversed') \
         AND exec_date <= DATE '2025-03-28'";
    assert_eq!(
        csv(&one, "SELECT DISTINCT as_of FROM purchases ORDER BY as_of"),
        // The last business days (31 March 2025 was a market holiday).
        "as_of\n2025-01-31\n2025-02-28\n2025-03-28\n"
    );
    assert_eq!(
        count(&one, compacted),
        count(&one, from_investments),
        "compaction dropped or added rows"
    );
    assert_eq!(
        count(&one, &format!("({compacted}) EXCEPT ({from_investments})")),
        "n\n0\n"
    );
    assert_eq!(
        count(&one, &format!("({from_investments}) EXCEPT ({compacted})")),
        "n\n0\n"
    );

    let out = value(&one, &[]);
    assert!(
        out.contains("portfolio value ok: date=2025-03-20 buckets=64 users=800"),
        "{out}"
    );
    assert!(out.contains("mode=daily"), "{out}");
    // January and February from one file per bucket each; March's runs day by day.
    assert!(out.contains("compacted_months_read=128 "), "{out}");

    // Every user has a snapshot, holders or not.
    assert_eq!(
        csv(
            &one,
            &format!(
                "SELECT count(*) AS n FROM portfolio_snapshots WHERE as_of = DATE '{VALUE_DATE}'"
            )
        ),
        "n\n800\n"
    );

    // Lines from SQL over `investments` and `navs` alone: units and cost summed, valued at the
    // latest NAV on or before the date, rounded to the paisa.
    let independent_lines = format!(
        "WITH held AS (
             SELECT user_id, scheme_code, sum(units) AS units, sum(amount) AS invested
             FROM investments WHERE status = 'executed' AND exec_date <= DATE '{VALUE_DATE}'
             GROUP BY user_id, scheme_code),
         latest AS (
             SELECT scheme_code, max(nav_date) AS nav_date FROM navs
             WHERE nav_date <= DATE '{VALUE_DATE}' GROUP BY scheme_code),
         priced AS (
             SELECT n.scheme_code, n.nav_date, n.nav FROM navs n
             JOIN latest l ON n.scheme_code = l.scheme_code AND n.nav_date = l.nav_date)
         SELECT h.user_id, h.scheme_code, h.units, h.invested, p.nav_date, p.nav,
                CAST(h.units * p.nav AS DECIMAL(18, 2)) AS value
         FROM held h JOIN priced p ON h.scheme_code = p.scheme_code"
    );
    let batch_lines = format!(
        "SELECT user_id, scheme_code, units, invested, nav_date, nav, current_value AS value
         FROM portfolio_lines WHERE as_of = DATE '{VALUE_DATE}'"
    );
    let lines = csv(&one, &format!("SELECT count(*) AS n FROM ({batch_lines})"));
    assert_ne!(lines, "n\n0\n", "no lines to compare");
    // EXCEPT compares sets; equal counts make it a comparison of rows.
    assert_eq!(
        csv(
            &one,
            &format!("SELECT count(*) AS n FROM ({independent_lines})")
        ),
        lines
    );
    // Some held schemes publish NAVs with eight decimals (one generated scheme in 32 does, as
    // AMFI's fixed-maturity plans do), so the comparison covers them too.
    let precise = csv(
        &one,
        &format!(
            "SELECT count(*) > 0 AS some FROM ({batch_lines}) WHERE nav <> CAST(CAST(nav AS DECIMAL(18, 4)) AS DECIMAL(18, 8))"
        ),
    );
    assert_eq!(precise, "some\ntrue\n");
    assert_eq!(
        count(
            &one,
            &format!("({independent_lines}) EXCEPT ({batch_lines})")
        ),
        "n\n0\n"
    );
    assert_eq!(
        count(
            &one,
            &format!("({batch_lines}) EXCEPT ({independent_lines})")
        ),
        "n\n0\n"
    );

    // Snapshots are their lines summed, to the paisa; gain is value minus cost.
    let summed = format!(
        "SELECT user_id, sum(invested) AS invested, sum(current_value) AS current_value
         FROM portfolio_lines WHERE as_of = DATE '{VALUE_DATE}' GROUP BY user_id"
    );
    let snapshots = format!(
        "SELECT user_id, invested, current_value FROM portfolio_snapshots
         WHERE as_of = DATE '{VALUE_DATE}' AND schemes > 0"
    );
    assert_eq!(
        count(&one, &format!("({summed}) EXCEPT ({snapshots})")),
        "n\n0\n"
    );
    assert_eq!(
        count(&one, &format!("({snapshots}) EXCEPT ({summed})")),
        "n\n0\n"
    );
    assert_eq!(
        count(&one, &format!("SELECT * FROM portfolio_snapshots WHERE as_of = DATE '{VALUE_DATE}' AND gain <> current_value - invested")),
        "n\n0\n"
    );
    // Holders' XIRR is a number unless every flow is on the valuation date.
    assert_eq!(
        count(&one, &format!("SELECT * FROM portfolio_snapshots WHERE as_of = DATE '{VALUE_DATE}' AND schemes > 0 AND isnan(xirr)
             AND user_id IN (SELECT user_id FROM investments WHERE status = 'executed' AND nav_date < DATE '{VALUE_DATE}')")),
        "n\n0\n"
    );
    // The bar chart is the month's purchases; the pie by scheme is the lines.
    let bar = "SELECT user_id, period, value FROM portfolio_charts WHERE chart = 'bar'";
    let purchases_by_month = format!(
        "SELECT user_id, CAST(date_trunc('month', nav_date) AS DATE) AS period, sum(amount) AS value
         FROM investments WHERE status = 'executed' AND exec_date <= DATE '{VALUE_DATE}' GROUP BY 1, 2"
    );
    assert_eq!(
        count(&one, &format!("({bar}) EXCEPT ({purchases_by_month})")),
        "n\n0\n"
    );
    assert_eq!(
        count(&one, &format!("({purchases_by_month}) EXCEPT ({bar})")),
        "n\n0\n"
    );

    // Hourly derives holdings from the February checkpoint plus March's purchases; daily from
    // every purchase. Same values, no XIRR.
    let hourly = value(&one, &["--hourly", "--hour", "14"]);
    assert!(hourly.contains("mode=hourly"), "{hourly}");
    let hourly_rows = "SELECT user_id, invested, current_value, gain, abs_return_pct, schemes, nav_date FROM portfolio_hourly";
    let daily_rows = "SELECT user_id, invested, current_value, gain, abs_return_pct, schemes, nav_date FROM portfolio_snapshots";
    assert_eq!(
        count(&one, &format!("({hourly_rows}) EXCEPT ({daily_rows})")),
        "n\n0\n"
    );
    assert_eq!(
        count(&one, &format!("({daily_rows}) EXCEPT ({hourly_rows})")),
        "n\n0\n"
    );
    assert_eq!(
        count(
            &one,
            "SELECT * FROM portfolio_hourly WHERE xirr IS NOT NULL OR hour <> 14"
        ),
        "n\n0\n"
    );

    // Re-running changes no byte.
    let before = portfolio_files(&one);
    value(&one, &[]);
    value(&one, &["--hourly", "--hour", "14"]);
    assert_eq!(before, portfolio_files(&one));

    // Without compaction (a month never compacted, or one whose file is not published: a
    // run that died writing it) the same purchases come from the daily files, and the
    // valuation is the same to the byte.
    std::fs::remove_dir_all(fallback.join("purchases/as_of=2025-01-31")).unwrap();
    for bucket in 0..64 {
        std::fs::remove_file(fallback.join(format!(
            "purchases/as_of=2025-02-28/bucket={bucket}/_SUCCESS"
        )))
        .unwrap();
    }
    let out = value(&fallback, &[]);
    assert!(out.contains("compacted_months_read=0 "), "{out}");
    value(&fallback, &["--hourly", "--hour", "14"]);
    assert_eq!(before, portfolio_files(&fallback));

    // `sip compact` compacts those months after the fact, into the very files the month-end
    // runs wrote; a second run finds nothing to do.
    let compact = |through: &str| {
        sipline(&[
            "sip",
            "compact",
            "--through",
            through,
            "--warehouse",
            fallback.to_str().unwrap(),
        ])
        .assert_ok()
        .stdout
        .clone()
    };
    let out = compact(VALUE_DATE);
    assert!(
        out.contains("sip compact ok: buckets=64 compacted_bucket_months=128 "),
        "{out}"
    );
    let purchases_files = |root: &Path| {
        snapshot(root)
            .into_iter()
            .filter(|(path, _)| {
                path.starts_with("purchases") && !path.starts_with("purchases/as_of=2025-03-28")
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(purchases_files(&one), purchases_files(&fallback));
    assert!(compact(VALUE_DATE).contains("compacted_bucket_months=0 "));
    let out = value(&fallback, &[]);
    assert!(out.contains("compacted_months_read=128 "), "{out}");
    assert_eq!(before, portfolio_files(&fallback));

    // Two shards write exactly what one run wrote.
    value(&shards, &["--shard", "0/2"]);
    value(&shards, &["--shard", "1/2", "--hourly", "--hour", "14"]);
    value(&shards, &["--shard", "1/2"]);
    value(&shards, &["--shard", "0/2", "--hourly", "--hour", "14"]);
    assert_eq!(before, portfolio_files(&shards));
}

#[test]
fn valuing_before_execution_is_a_missing_upstream() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "50", "0/1");
    let run = sipline(&[
        "portfolio",
        "value",
        "--date",
        END,
        "--warehouse",
        dir.path().to_str().unwrap(),
    ]);
    // 31 March 2025 is a market holiday (Id-ul-Fitr): the run to wait for is the 28th's.
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("sip execute --date 2025-03-28"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("portfolio_snapshots").exists());
}

/// A person sells everything they held of a scheme (issue 36): nothing of it stays invested,
/// to the paisa. Units are allotted rounded down, so each instalment paid up to a unit step's
/// worth that bought no unit; that residue leaves "invested" with the units (a sale of every
/// unit takes out all that was paid) but stays out of the capital gain. Before, the residues
/// stayed behind on a holding of no units, and daily valuation refused the bucket (its
/// invested no longer summed to the holdings' cost): one redemption of everything stopped a
/// night's valuation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holding_sold_to_the_last_unit_holds_nothing_invested() {
    use crate::publish::{published_universe, SECOND};
    use crate::support::{sipline_async, Postgres};

    let pg = Postgres::start().await;
    let warehouse = published_universe(&pg.url).await;
    let w = warehouse.to_str().unwrap();
    let pool = pg.pool().await;
    // Every user redeems everything of their first SIP's scheme, before SECOND's cut-off.
    let placed = sqlx::query(
        "INSERT INTO orders (user_id, kind, scheme_code, redeem_all, received_at, nav_date, \
           executes_on, cancel_before) \
         SELECT DISTINCT ON (user_id) user_id, 'redemption', scheme_code, true, \
           TIMESTAMPTZ '2025-03-04 04:00:00+00', DATE '2025-03-04', DATE '2025-03-04', \
           TIMESTAMPTZ '2025-03-04 09:30:00+00' \
         FROM sips ORDER BY user_id, sip_id",
    )
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert!(placed > 100, "{placed}");
    sipline_async(&[
        "--now",
        "2025-03-04T20:00:00+05:30",
        "orders",
        "execute",
        "--date",
        SECOND,
        "--warehouse",
        w,
        "--database-url",
        &pg.url,
    ])
    .await
    .assert_ok();
    sipline_async(&["portfolio", "value", "--date", SECOND, "--warehouse", w])
        .await
        .assert_ok();

    // The schemes sold out: in SQL apart from the batch, what their executed instalments
    // were debited, and what their lots' units were worth at purchase plus duty (the cost of
    // acquisition). The sales took out the first; the gains were taken against the second.
    let sold = "sold AS (SELECT user_id, scheme_code, cost, units FROM orders \
                 WHERE leg = 'redemption' AND status = 'executed')";
    let checks = csv(
        &warehouse,
        &format!(
            "WITH {sold}, \
               paid AS (SELECT i.user_id, i.scheme_code, sum(i.amount) AS debited, \
                          sum(i.units) AS units, \
                          sum(CAST(round(i.units * i.nav, 2) AS DECIMAL(20, 2)) + i.stamp_duty) AS acquired \
                        FROM investments i JOIN sold USING (user_id, scheme_code) \
                        WHERE i.status = 'executed' GROUP BY 1, 2), \
               gains AS (SELECT user_id, scheme_code, sum(cost) AS cost FROM realized_gains \
                         GROUP BY 1, 2) \
             SELECT count(*) AS sales, \
               sum(CASE WHEN s.cost = p.debited THEN 1 ELSE 0 END) AS took_all_paid, \
               sum(CASE WHEN s.units = p.units THEN 1 ELSE 0 END) AS took_all_units, \
               sum(CASE WHEN g.cost = p.acquired THEN 1 ELSE 0 END) AS gains_at_cost, \
               sum(CASE WHEN p.debited > p.acquired THEN 1 ELSE 0 END) AS with_residue \
             FROM sold s JOIN paid p USING (user_id, scheme_code) \
               JOIN gains g USING (user_id, scheme_code)"
        ),
    );
    let row: Vec<i64> = checks
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let (sales, took_all_paid, took_all_units, gains_at_cost, with_residue) =
        (row[0], row[1], row[2], row[3], row[4]);
    assert!(sales > 100, "{checks}");
    assert_eq!(
        (took_all_paid, took_all_units, gains_at_cost),
        (sales, sales, sales),
        "{checks}"
    );
    // Residues were there to leave behind: the case the old rule broke on.
    assert!(with_residue > sales / 2, "{checks}");

    // Valued: no line for a scheme sold out, and each user's invested is their lines'.
    let leftovers = csv(
        &warehouse,
        &format!(
            "WITH {sold}, \
               lines AS (SELECT user_id, sum(invested) AS invested FROM portfolio_lines \
                         WHERE as_of = DATE '{SECOND}' GROUP BY user_id) \
             SELECT (SELECT count(*) FROM portfolio_lines l JOIN sold USING (user_id, scheme_code) \
                     WHERE l.as_of = DATE '{SECOND}') AS sold_lines, \
                    (SELECT count(*) FROM portfolio_snapshots s LEFT JOIN lines l USING (user_id) \
                     WHERE s.as_of = DATE '{SECOND}' \
                       AND s.invested <> coalesce(l.invested, 0)) AS unbalanced"
        ),
    );
    assert_eq!(leftovers.lines().nth(1), Some("0,0"), "{leftovers}");
}
