//! The charts the API composes from the served lines, month ends and snapshot are the
//! documents the publish used to write for every user and day (issue 19): the reference below
//! is that builder, kept as it was, reading the same `portfolio_charts` the valuation writes.
//! Checked for every user of a generated universe on the first publish of a store (the whole
//! history loaded at once) and on the first publish of the next month (one month end added).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{Date32Type, Int64Type};
use pipeline::valuation::ChartKind;
use serving::GraphType;
use sqlx::PgPool;
use warehouse::{Part, Table, Warehouse, BUCKETS};

use crate::debits::{ingest, rows, write};
use crate::publish::{publish, universe, FIRST};
use crate::support::{sipline, Postgres};

/// One chart's series, column-oriented: the keys (labels or dates, already JSON) and money.
#[derive(Default)]
struct Series {
    keys: String,
    invested: String,
    value: String,
}

impl Series {
    fn push(&mut self, key: &str, invested: &str, value: &str) {
        let separator = if self.keys.is_empty() { "" } else { "," };
        let _ = write!(self.keys, "{separator}{key}");
        let _ = write!(self.invested, "{separator}\"{invested}\"");
        let _ = write!(self.value, "{separator}\"{value}\"");
    }

    fn json(&self, key: &str, value: bool) -> String {
        let mut out = format!(r#""{key}":[{}],"invested":[{}]"#, self.keys, self.invested);
        if value {
            let _ = write!(out, r#","value":[{}]"#, self.value);
        }
        out
    }
}

#[derive(Default)]
struct UserGraphs {
    pie_scheme: Series,
    pie_category: Series,
    pie_fund_house: Series,
    line: Series,
    bar: Series,
}

impl UserGraphs {
    fn documents(&self, date: NaiveDate) -> [(GraphType, serde_json::Value); 3] {
        let parse = |text: String| serde_json::from_str(&text).unwrap();
        [
            (
                GraphType::Pie,
                parse(format!(
                    r#"{{"as_of":"{date}","by_scheme":{{{}}},"by_category":{{{}}},"by_fund_house":{{{}}}}}"#,
                    self.pie_scheme.json("label", true),
                    self.pie_category.json("label", true),
                    self.pie_fund_house.json("label", true)
                )),
            ),
            (
                GraphType::Line,
                parse(format!(
                    r#"{{"as_of":"{date}",{}}}"#,
                    self.line.json("period", true)
                )),
            ),
            (
                GraphType::Bar,
                parse(format!(
                    r#"{{"as_of":"{date}",{}}}"#,
                    self.bar.json("period", false)
                )),
            ),
        ]
    }
}

type Documents = BTreeMap<(i64, GraphType), serde_json::Value>;

/// The documents the publish wrote before issue 19, from the date's `portfolio_charts`.
fn old_documents(batches: &[RecordBatch], date: NaiveDate, out: &mut Documents) {
    let mut users: BTreeMap<i64, UserGraphs> = BTreeMap::new();
    for batch in batches {
        let user_ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
        let charts: &StringArray = batch.column(1).as_string::<i32>();
        let labels: &StringArray = batch.column(3).as_string::<i32>();
        let periods: &Date32Array = batch.column(4).as_primitive::<Date32Type>();
        let invested: &Decimal128Array = batch.column(5).as_primitive();
        let values: &Decimal128Array = batch.column(6).as_primitive();
        for i in 0..batch.num_rows() {
            let graphs = users.entry(user_ids.value(i)).or_default();
            let label = if labels.is_null(i) {
                String::from("null")
            } else {
                serde_json::to_string(labels.value(i)).unwrap()
            };
            let period = match periods.is_null(i) {
                true => None,
                false => periods.value_as_date(i),
            }
            .map_or_else(|| String::from("null"), |d| format!("\"{d}\""));
            let invested = invested.value_as_string(i);
            let value = values.value_as_string(i);
            match ChartKind::parse(charts.value(i)).unwrap() {
                ChartKind::PieScheme => graphs.pie_scheme.push(&label, &invested, &value),
                ChartKind::PieCategory => graphs.pie_category.push(&label, &invested, &value),
                ChartKind::PieFundHouse => graphs.pie_fund_house.push(&label, &invested, &value),
                ChartKind::Line => graphs.line.push(&period, &invested, &value),
                ChartKind::Bar => graphs.bar.push(&period, &value, ""),
            }
        }
    }
    for (user_id, graphs) in users {
        for (graph_type, document) in graphs.documents(date) {
            out.insert((user_id, graph_type), document);
        }
    }
}

async fn warehouse_documents(warehouse: &Path, date: NaiveDate) -> Documents {
    let warehouse = Warehouse::open(warehouse.to_str().unwrap()).unwrap();
    let mut documents = Documents::new();
    for bucket in 0..BUCKETS {
        let batches = warehouse
            .read(Table::PortfolioCharts, Part::dated_bucket(date, bucket))
            .await
            .unwrap()
            .unwrap_or_default();
        old_documents(&batches, date, &mut documents);
    }
    documents
}

/// Every user's three charts as the API composes them (absent: the API's 404).
async fn served_documents(pool: &PgPool) -> Documents {
    let users: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM portfolio_latest ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(!users.is_empty());
    let mut documents = Documents::new();
    for user_id in users {
        for graph_type in GraphType::ALL {
            let text: Option<String> = sqlx::query_scalar(graph_type.statement())
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .unwrap();
            if let Some(text) = text {
                documents.insert((user_id, graph_type), serde_json::from_str(&text).unwrap());
            }
        }
    }
    documents
}

fn assert_same(old: &Documents, new: &Documents, date: NaiveDate) {
    let missing: Vec<_> = old.keys().filter(|k| !new.contains_key(k)).collect();
    let extra: Vec<_> = new.keys().filter(|k| !old.contains_key(k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{date}: charts only before {missing:?}, only now {extra:?}"
    );
    for (key, document) in old {
        assert_eq!(&new[key], document, "{date}: user {} {:?}", key.0, key.1);
    }
    // The comparison covers real history: line charts with month ends, several bars.
    let longest = |graph_type| {
        old.iter()
            .filter(|((_, g), _)| *g == graph_type)
            .map(|(_, d)| d["period"].as_array().unwrap().len())
            .max()
            .unwrap()
    };
    assert!(longest(GraphType::Line) >= 2, "{date}");
    assert!(longest(GraphType::Bar) >= 2, "{date}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_charts_are_the_documents_the_publish_used_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let february = "2025-02-27";
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || {
            universe(&warehouse);
            let w = warehouse.to_str().unwrap();
            sipline(&["portfolio", "value", "--date", february, "--warehouse", w]).assert_ok();
        })
        .await
        .unwrap();
    }
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    let partitions = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'portfolio_month_ends'::regclass ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };

    // A store's first publish loads the history (here: January's end).
    let run = publish(&pg.url, &warehouse, february, &["--mandates"]).await;
    run.assert_ok();
    let date = NaiveDate::parse_from_str(february, "%Y-%m-%d").unwrap();
    let old = warehouse_documents(&warehouse, date).await;
    assert_same(&old, &served_documents(&pool).await, date);
    assert_eq!(partitions().await, ["portfolio_month_ends_m20250131"]);

    // The first publish of March adds February's end, once: a re-run writes none.
    let run = publish(&pg.url, &warehouse, FIRST, &[]).await;
    run.assert_ok();
    assert!(!run.stdout.contains("month_ends=0 "), "{}", run.stdout);
    let again = publish(&pg.url, &warehouse, FIRST, &[]).await;
    again.assert_ok();
    assert!(again.stdout.contains("month_ends=0 "), "{}", again.stdout);
    let date = NaiveDate::parse_from_str(FIRST, "%Y-%m-%d").unwrap();
    let old = warehouse_documents(&warehouse, date).await;
    assert_same(&old, &served_documents(&pool).await, date);
    assert_eq!(
        partitions().await,
        [
            "portfolio_month_ends_m20250131",
            "portfolio_month_ends_m20250228"
        ]
    );
}

/// A reversal lowers every month end since the allotment it takes back: the publish that
/// carries it rewrites that user's history, and the charts stay the valuation's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_rewrites_the_history_of_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let run_date = "2025-03-05";
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    {
        let warehouse = warehouse.clone();
        tokio::task::spawn_blocking(move || universe(&warehouse))
            .await
            .unwrap();
    }
    publish(&pg.url, &warehouse, FIRST, &["--mandates"])
        .await
        .assert_ok();
    // An instalment allotted in February comes back from the bank in March.
    let back = {
        let (warehouse, dir) = (warehouse.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let allotted = rows(
                &warehouse,
                "SELECT sip_id, due_date, amount, user_id FROM investments \
                 WHERE status = 'executed' AND nav_date BETWEEN DATE '2025-02-01' AND DATE '2025-02-28' \
                 ORDER BY exec_date DESC, sip_id LIMIT 1",
            );
            let back = allotted[0].clone();
            let report = write(
                &dir,
                "debits.csv",
                &[format!("{},{},{},returned,04", back[0], back[1], back[2])],
            );
            ingest(&warehouse, &report, run_date).assert_ok();
            let w = warehouse.to_str().unwrap();
            let executed = sipline(&["sip", "execute", "--date", run_date, "--warehouse", w]);
            assert!(
                executed.assert_ok().stdout.contains("reversed=1"),
                "{}",
                executed.stdout
            );
            sipline(&["portfolio", "value", "--date", run_date, "--warehouse", w]).assert_ok();
            back
        })
        .await
        .unwrap()
    };
    let user_id: i64 = back[3].parse().unwrap();
    let february_end = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT invested::text FROM portfolio_month_ends \
             WHERE user_id = $1 AND month_end = DATE '2025-02-28'",
        )
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = february_end(pool.clone()).await;

    let run = publish(&pg.url, &warehouse, run_date, &[]).await;
    run.assert_ok();
    assert!(!run.stdout.contains("month_ends=0 "), "{}", run.stdout);
    let after = february_end(pool.clone()).await;
    let amount = |text: &str| text.replace('.', "").parse::<i64>().unwrap();
    assert_eq!(
        amount(&before) - amount(&after),
        amount(&back[2]),
        "February's end no longer counts the returned {}",
        back[2]
    );
    let date = NaiveDate::parse_from_str(run_date, "%Y-%m-%d").unwrap();
    let old = warehouse_documents(&warehouse, date).await;
    assert_same(&old, &served_documents(&pool).await, date);
}
