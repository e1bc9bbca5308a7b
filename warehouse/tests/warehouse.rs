//! The warehouse on a real local folder and on an object-store URL (`memory://`, the same code
//! path as `s3://`): atomic partition writes, reading back, and DataFusion registration.

use chrono::NaiveDate;
use datafusion::arrow::util::pretty::pretty_format_batches;
use pipeline::money::Nav;
use pipeline::nav::NavRow;
use pipeline::nav::NavSource;
use warehouse::schema::{navs_from_batch, navs_to_batch};
use warehouse::{Part, PartitionStatus, Table, Warehouse};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 12, d).unwrap()
}

/// NAVs given in 1/10,000 rupee.
fn rows(navs: &[(i64, i64)]) -> Vec<NavRow> {
    navs.iter()
        .map(|&(scheme_code, nav)| NavRow {
            scheme_code,
            nav: Nav::from_scaled(nav * 10_000),
            source: NavSource::Amfi,
        })
        .collect()
}

async fn query(warehouse: &Warehouse, sql: &str) -> String {
    let ctx = warehouse.session_context().await.unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

async fn round_trip(warehouse: Warehouse) {
    assert_eq!(
        warehouse
            .read(Table::Navs, Part::date(day(27)))
            .await
            .unwrap(),
        None
    );
    warehouse
        .write(
            Table::Navs,
            Part::date(day(26)),
            &[navs_to_batch(&rows(&[(1, 10_0000)])).unwrap()],
        )
        .await
        .unwrap();
    warehouse
        .write(
            Table::Navs,
            Part::date(day(27)),
            &[navs_to_batch(&rows(&[(1, 10_5000), (2, 20_0000)])).unwrap()],
        )
        .await
        .unwrap();
    // A rewrite replaces the partition's rows.
    warehouse
        .write(
            Table::Navs,
            Part::date(day(27)),
            &[navs_to_batch(&rows(&[(1, 11_0000), (2, 20_0000)])).unwrap()],
        )
        .await
        .unwrap();

    let back = warehouse
        .read(Table::Navs, Part::date(day(27)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        navs_from_batch(&back[0]).unwrap(),
        rows(&[(1, 11_0000), (2, 20_0000)])
    );
    assert_eq!(
        warehouse.partitions(Table::Navs).await.unwrap(),
        vec![
            PartitionStatus {
                part: Part::date(day(26)),
                published: true
            },
            PartitionStatus {
                part: Part::date(day(27)),
                published: true
            }
        ]
    );
    let table = query(
        &warehouse,
        "SELECT nav_date, sum(nav) AS total FROM navs GROUP BY nav_date ORDER BY nav_date",
    )
    .await;
    assert_eq!(
        table,
        "+------------+-------------+\n\
         | nav_date   | total       |\n\
         +------------+-------------+\n\
         | 2024-12-26 | 10.00000000 |\n\
         | 2024-12-27 | 31.00000000 |\n\
         +------------+-------------+"
    );
}

#[tokio::test]
async fn local_folder_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(dir.path().join("wh").to_str().unwrap()).unwrap();
    assert_eq!(warehouse.url().scheme(), "file");
    round_trip(warehouse).await;
    assert!(dir
        .path()
        .join("wh/navs/nav_date=2024-12-27/part-00000.parquet")
        .is_file());
    assert!(dir
        .path()
        .join("wh/navs/nav_date=2024-12-27/_SUCCESS")
        .is_file());
}

#[tokio::test]
async fn object_store_url_round_trip() {
    let warehouse = Warehouse::open("memory://bucket/warehouse").unwrap();
    round_trip(warehouse).await;
}

#[tokio::test]
async fn nothing_published_means_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(dir.path().to_str().unwrap()).unwrap();
    let ctx = warehouse.session_context().await.unwrap();
    let err = ctx.sql("SELECT * FROM navs").await.unwrap_err().to_string();
    assert!(err.contains("navs") && err.contains("not found"), "{err}");
}

#[test]
fn unsupported_locations_are_refused() {
    let err = Warehouse::open("ftp://example/warehouse")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
}

/// A warehouse written before NAVs had eight decimals holds `nav` as `Decimal128(18,4)`. Its
/// files are read as they are, widened exactly, by the typed reader and by SQL, beside files
/// written now; a rewrite on upgrade is not needed.
#[tokio::test]
async fn navs_written_at_four_decimals_still_read() {
    use std::sync::Arc;

    use datafusion::arrow::array::{Decimal128Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;

    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(dir.path().to_str().unwrap()).unwrap();
    let old_schema = Arc::new(Schema::new(vec![
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("nav", DataType::Decimal128(18, 4), false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let old = RecordBatch::try_new(
        Arc::clone(&old_schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(
                Decimal128Array::from(vec![1_050_576, 200_000])
                    .with_precision_and_scale(18, 4)
                    .unwrap(),
            ),
            Arc::new(StringArray::from(vec!["amfi", "amfi"])),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), old_schema, None).unwrap();
    writer.write(&old).unwrap();
    let bytes = writer.into_inner().unwrap();
    let partition = dir.path().join("navs/nav_date=2024-12-26");
    std::fs::create_dir_all(&partition).unwrap();
    std::fs::write(partition.join("part-00000.parquet"), bytes).unwrap();
    std::fs::write(
        partition.join("_SUCCESS"),
        r#"{"files":["part-00000.parquet"],"rows":2}"#,
    )
    .unwrap();
    warehouse
        .write(
            Table::Navs,
            Part::date(day(27)),
            &[navs_to_batch(&[NavRow {
                scheme_code: 1,
                nav: "14.25207048".parse().unwrap(),
                source: NavSource::Amfi,
            }])
            .unwrap()],
        )
        .await
        .unwrap();

    let back = warehouse
        .read(Table::Navs, Part::date(day(26)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        navs_from_batch(&back[0]).unwrap(),
        rows(&[(1, 1_050_576), (2, 200_000)])
    );
    let table = query(
        &warehouse,
        "SELECT nav_date, scheme_code, nav FROM navs ORDER BY nav_date, scheme_code",
    )
    .await;
    assert_eq!(
        table,
        "+------------+-------------+--------------+\n\
         | nav_date   | scheme_code | nav          |\n\
         +------------+-------------+--------------+\n\
         | 2024-12-26 | 1           | 105.05760000 |\n\
         | 2024-12-26 | 2           | 20.00000000  |\n\
         | 2024-12-27 | 1           | 14.25207048  |\n\
         +------------+-------------+--------------+"
    );
}

/// The codec of a partition's file: Snappy below 8,192 rows, zstd from there.
#[tokio::test]
async fn small_files_are_snappy_and_large_ones_zstd() {
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(dir.path().to_str().unwrap()).unwrap();
    for (d, schemes) in [(26, 8_191), (27, 8_192)] {
        let navs: Vec<(i64, i64)> = (1..=schemes).map(|code| (code, 10)).collect();
        warehouse
            .write(
                Table::Navs,
                Part::date(day(d)),
                &[navs_to_batch(&rows(&navs)).unwrap()],
            )
            .await
            .unwrap();
    }
    let codec = |d: u32| {
        let file = std::fs::File::open(
            dir.path()
                .join(format!("navs/nav_date=2024-12-{d}/part-00000.parquet")),
        )
        .unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let metadata = reader.metadata();
        (0..metadata.row_group(0).num_columns())
            .map(|c| metadata.row_group(0).column(c).compression())
            .collect::<Vec<_>>()
    };
    assert!(codec(26).iter().all(|c| *c == Compression::SNAPPY));
    assert!(codec(27).iter().all(|c| matches!(c, Compression::ZSTD(_))));
}

/// A commit's data files stay invisible until published; then every partition is there.
/// (The local case; an object store puts each data file in place, unmarked.)
#[tokio::test]
async fn unpublished_partitions_are_not_read_until_published() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = Warehouse::open(dir.path().to_str().unwrap()).unwrap();
    let mut commit = warehouse::Commit::default();
    commit
        .stage(
            Table::Navs,
            Part::date(day(26)),
            &[navs_to_batch(&rows(&[(1, 10)])).unwrap()],
        )
        .stage(
            Table::Navs,
            Part::date(day(27)),
            &[navs_to_batch(&rows(&[(1, 11), (2, 20)])).unwrap()],
        );
    let unpublished = warehouse.write_unpublished(commit).await.unwrap();
    assert_eq!(unpublished.rows(), [1, 2]);
    for d in [26, 27] {
        // Written under a temporary name: nothing is in place before the commit is published.
        assert!(!dir
            .path()
            .join(format!("navs/nav_date=2024-12-{d}/part-00000.parquet"))
            .exists());
        assert_eq!(
            warehouse
                .read(Table::Navs, Part::date(day(d)))
                .await
                .unwrap(),
            None
        );
    }
    warehouse.publish(vec![unpublished]).await.unwrap();
    assert_eq!(
        warehouse
            .published_rows(Table::Navs, Part::date(day(27)))
            .await
            .unwrap(),
        Some(2)
    );
    let read = warehouse
        .read(Table::Navs, Part::date(day(26)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(navs_from_batch(&read[0]).unwrap(), rows(&[(1, 10)]));
    // Nothing but the data file and its marker is left in a partition's folder.
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("navs/nav_date=2024-12-27"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["_SUCCESS", "part-00000.parquet"]);
}
