//! The binary COPY encoder (`BinaryCopy`, the jobs' one bulk path) against a real PostgreSQL:
//! random rows of every type the jobs load (nulls, NaN, dates before 2000, text with quotes and
//! commas, decimals of every scale and sign, timestamps) copied in binary and, as the
//! reference, as CSV written by Arrow's own writer and parsed by the server, into two tables of
//! the same columns read back the same: the server's text of each row.

use std::sync::Arc;

use datafusion::arrow::array::{
    Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use jobs::plumbing::postgres::BinaryCopy;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::Postgres;

const COLUMNS: &str = "id bigint, n integer, x double precision, d date, t text, \
     money numeric(18,2), units numeric(18,4), nav numeric(18,8), pct numeric(7,4), \
     at timestamptz";

type Row = (
    i64,
    Option<i32>,
    Option<f64>,
    Option<i32>,
    Option<String>,
    Option<i128>,
    i128,
    Option<i128>,
    i128,
    Option<i64>,
);

fn batch(rows: &[Row]) -> RecordBatch {
    let decimal = |p, s| DataType::Decimal128(p, s);
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int32, true),
        Field::new("x", DataType::Float64, true),
        Field::new("d", DataType::Date32, true),
        Field::new("t", DataType::Utf8, true),
        Field::new("money", decimal(18, 2), true),
        Field::new("units", decimal(18, 4), false),
        Field::new("nav", decimal(18, 8), true),
        Field::new("pct", decimal(7, 4), false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    let dec = |values: Vec<Option<i128>>, p, s| {
        Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(p, s)
                .unwrap(),
        )
    };
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.3))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4.clone()))),
            dec(rows.iter().map(|r| r.5).collect(), 18, 2),
            dec(rows.iter().map(|r| Some(r.6)).collect(), 18, 4),
            dec(rows.iter().map(|r| r.7).collect(), 18, 8),
            dec(rows.iter().map(|r| Some(r.8)).collect(), 7, 4),
            Arc::new(
                TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.9)).with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

fn row() -> impl Strategy<Value = Row> {
    let decimal18 = prop_oneof![
        -999_999_999_999_999_999_i128..=999_999_999_999_999_999,
        -20_000_i128..20_000,
        Just(0_i128),
        (0_u32..18).prop_map(|p| 10_i128.pow(p)),
    ];
    (
        any::<i64>(),
        proptest::option::of(any::<i32>()),
        proptest::option::of(prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            Just(f64::NAN)
        ]),
        // 0001-01-01 .. 9999-12-31
        proptest::option::of(-719_162_i32..2_932_896),
        // Not empty: Arrow's CSV writer leaves an empty string unquoted, which PostgreSQL
        // reads as NULL (the binary format keeps it an empty string).
        proptest::option::of("[a-zA-Z0-9 ,\"'\\\\\n€₹-]{1,12}"),
        proptest::option::of(decimal18.clone()),
        decimal18.clone(),
        proptest::option::of(decimal18),
        -999_999_i128..=999_999,
        // 0001-01-01 .. 9999-12-31, in microseconds from 1970.
        proptest::option::of(-62_135_596_800_000_000_i64..253_402_300_799_999_999),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_loads_what_the_csv_copy_loads() {
    let pg = Postgres::start().await;
    let pool = pg.pool().await;
    for table in ["via_binary", "via_csv"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} ({COLUMNS})"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&proptest::collection::vec(row(), 1..40), |rows| {
            let batch = batch(&rows);
            let pool = pool.clone();
            let (binary, csv) = tokio::task::block_in_place(|| {
                handle.block_on(async move {
                    let mut conn = pool.acquire().await.unwrap();
                    sqlx::query("TRUNCATE via_binary, via_csv")
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    let mut copy =
                        BinaryCopy::start(&mut conn, "COPY via_binary FROM STDIN (FORMAT binary)")
                            .await
                            .unwrap();
                    let sent = copy.send(std::slice::from_ref(&batch)).await.unwrap();
                    assert_eq!(sent, rows.len() as u64);
                    copy.finish(Ok(())).await.unwrap();
                    // The reference: Arrow's CSV writer prints decimals at their scale, dates
                    // as ISO dates, timestamps as RFC 3339, NaN as `NaN` and nulls as empty
                    // unquoted fields, which PostgreSQL's CSV input parses.
                    let mut csv = Vec::new();
                    WriterBuilder::new()
                        .with_header(false)
                        .build(&mut csv)
                        .write(&batch)
                        .unwrap();
                    let mut copy = conn
                        .copy_in_raw("COPY via_csv FROM STDIN (FORMAT csv)")
                        .await
                        .unwrap();
                    copy.send(csv).await.unwrap();
                    copy.finish().await.unwrap();
                    let read = |table: &str| {
                        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                            "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY ordinality), '') \
                             FROM (SELECT r, row_number() OVER () AS ordinality FROM {table} r) s"
                        )))
                    };
                    (
                        read("via_binary").fetch_one(&mut *conn).await.unwrap(),
                        read("via_csv").fetch_one(&mut *conn).await.unwrap(),
                    )
                })
            });
            prop_assert_eq!(binary, csv);
            Ok(())
        })
        .unwrap();
}
