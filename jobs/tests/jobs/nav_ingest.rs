use std::path::Path;

use datafusion::parquet::basic::{ConvertedType, Type as PhysicalType};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::{fixture, sipline, sipline_async, snapshot, FixtureServer, Postgres};

fn ingest(warehouse: &Path, source: &str, input: &str, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "nav",
        "ingest",
        "--source",
        source,
        "--input",
        input,
        "--warehouse",
        warehouse.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sipline(&args)
}

fn fixture_str(name: &str) -> String {
    fixture(name).to_str().unwrap().to_string()
}

fn query_csv(warehouse: &Path, query: &str) -> String {
    let run = sipline(&[
        "sql",
        "--format",
        "csv",
        "--warehouse",
        warehouse.to_str().unwrap(),
        query,
    ]);
    run.assert_ok();
    run.stdout
}

#[test]
fn amfi_daily_file_lands_as_typed_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let run = ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    );
    run.assert_ok();
    assert!(
        run.stdout
            .contains("navs=6 dates=2 (2024-12-20..2024-12-27) schemes=8 set_aside=2 duplicates=1"),
        "{}",
        run.stdout
    );
    // Every set-aside row is reported with file and line.
    assert!(
        run.stderr.contains("line=9") && run.stderr.contains("NAV 'N.A.' is not a number"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("line=15") && run.stderr.contains("zero or negative"),
        "{}",
        run.stderr
    );

    // The stale NAV of 20-Dec goes to its own date's partition.
    for date in ["2024-12-20", "2024-12-27"] {
        let partition = dir.path().join(format!("navs/nav_date={date}"));
        assert!(
            partition.join("part-00000.parquet").is_file() && partition.join("_SUCCESS").is_file(),
            "{date}"
        );
    }
    let csv = query_csv(
        dir.path(),
        "SELECT scheme_code, nav_date, nav, source FROM navs ORDER BY nav_date, scheme_code",
    );
    assert_eq!(
        csv,
        "scheme_code,nav_date,nav,source\n\
         120466,2024-12-20,18.12000000,amfi\n\
         119551,2024-12-27,105.05760000,amfi\n\
         119552,2024-12-27,359.82110000,amfi\n\
         120001,2024-12-27,27.14330000,amfi\n\
         120465,2024-12-27,62.58000000,amfi\n\
         130503,2024-12-27,11.98760000,amfi\n"
    );
    let csv = query_csv(dir.path(), "SELECT scheme_code, fund_house, category, scheme_type, plan, option, unit_decimals FROM schemes WHERE scheme_code IN (120001, 130503) ORDER BY 1");
    assert_eq!(
        csv,
        "scheme_code,fund_house,category,scheme_type,plan,option,unit_decimals\n\
         120001,Bank of India Mutual Fund (formerly BOI AXA Mutual Fund),Debt Scheme - Banking and PSU Fund,Open Ended,Direct,Growth,3\n\
         130503,HDFC Mutual Fund,Income,Close Ended,Direct,Growth,3\n"
    );
}

#[test]
fn files_use_standard_parquet_types() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    let file = std::fs::File::open(
        dir.path()
            .join("navs/nav_date=2024-12-27/part-00000.parquet"),
    )
    .unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let nav = schema.columns().iter().find(|c| c.name() == "nav").unwrap();
    assert_eq!(nav.physical_type(), PhysicalType::INT64);
    assert_eq!(
        (nav.converted_type(), nav.type_precision(), nav.type_scale()),
        (ConvertedType::DECIMAL, 18, 8)
    );
    let code = schema
        .columns()
        .iter()
        .find(|c| c.name() == "scheme_code")
        .unwrap();
    assert_eq!(
        (code.physical_type(), code.converted_type()),
        (PhysicalType::INT64, ConvertedType::NONE)
    );
    // A day's file of a handful of schemes is Snappy; zstd is for files of 8,192 rows and
    // more (a full AMFI day has ~14,000), where its per-column setup pays.
    assert_eq!(
        reader.metadata().row_group(0).column(0).compression(),
        datafusion::parquet::basic::Compression::SNAPPY
    );
    // Through DataFusion, the partition column is a DATE.
    let csv = query_csv(
        dir.path(),
        "SELECT arrow_typeof(nav_date) AS d, arrow_typeof(nav) AS n FROM navs LIMIT 1",
    );
    assert_eq!(csv, "d,n\nDate32,\"Decimal128(18, 8)\"\n");
}

#[test]
fn re_running_an_ingest_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        "amfi-history",
        &fixture_str("amfi_history.txt"),
        &[],
    )
    .assert_ok();
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    let before = snapshot(dir.path());
    let again = ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    );
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("partitions_written=0 unchanged=2 schemes_table=unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(snapshot(dir.path()), before);

    // The same rows written into a fresh warehouse in the same order give the same bytes.
    let other = tempfile::tempdir().unwrap();
    ingest(
        other.path(),
        "amfi-history",
        &fixture_str("amfi_history.txt"),
        &[],
    )
    .assert_ok();
    ingest(
        other.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    assert_eq!(snapshot(other.path()), before);
}

#[test]
fn a_daily_file_merges_into_history_without_wiping_it() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        "amfi-history",
        &fixture_str("amfi_history.txt"),
        &[],
    )
    .assert_ok();
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_8col.txt"),
        &[],
    )
    .assert_ok();
    let csv = query_csv(
        dir.path(),
        "SELECT nav_date, count(*) AS navs FROM navs GROUP BY nav_date ORDER BY nav_date",
    );
    assert_eq!(
        csv,
        "nav_date,navs\n2024-12-23,3\n2024-12-24,1\n2024-12-26,2\n2024-12-27,4\n"
    );
    let csv = query_csv(dir.path(), "SELECT count(*) AS schemes FROM schemes");
    assert_eq!(csv, "schemes\n9\n", "schemes from both files are kept");
    // The 8-column layout spells plan and option freely; they are stored normalised, the
    // full name kept, and "Dividend Yield Fund - Growth" is a growth option.
    let csv = query_csv(
        dir.path(),
        "SELECT scheme_code, plan, option, scheme_name FROM schemes WHERE scheme_code IN (122639, 122641, 100255, 100256) ORDER BY 1",
    );
    assert_eq!(
        csv,
        "scheme_code,plan,option,scheme_name\n\
         100255,Regular,Growth,Templeton India Equity Income Fund - Dividend Yield Fund - Growth\n\
         100256,Regular,IDCW,Templeton India Equity Income Fund - IDCW\n\
         122639,Direct,Growth,Parag Parikh Flexi Cap Fund - Direct Plan - Growth\n\
         122641,Regular,IDCW,Parag Parikh Flexi Cap Fund - Regular Plan - IDCW\n"
    );
}

#[test]
fn bad_input_exits_3_naming_file_and_line_and_leaves_partitions_intact() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    let before = snapshot(dir.path());
    for (source, name, expected) in [
        (
            "amfi",
            "amfi_unknown_header.txt",
            "amfi_unknown_header.txt:1: unknown header column 'ISIN'",
        ),
        (
            "amfi",
            "amfi_truncated.txt",
            "amfi_truncated.txt:8: expected 6 fields, found 4",
        ),
        (
            "amfi",
            "amfi_bad_date.txt",
            "amfi_bad_date.txt:8: field `Date`: '31-Feb-2024' is not a date",
        ),
        (
            "amfi-history",
            "amfi_history_header_only.txt",
            "holds only a header",
        ),
        ("amfi", "amfi_empty.txt", "the file is empty"),
        (
            "bse",
            "bse_bad_date.txt",
            "bse_bad_date.txt:2: field `NAV Date`: '27.12.2024' is not a date",
        ),
    ] {
        let run = ingest(dir.path(), source, &fixture_str(name), &[]);
        assert_eq!(run.code, 3, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert_eq!(snapshot(dir.path()), before, "{name} changed the warehouse");
    }
    let run = ingest(dir.path(), "amfi", "/no/such/NAVAll.txt", &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn a_file_without_the_expected_date_is_not_published_yet() {
    let dir = tempfile::tempdir().unwrap();
    let run = ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &["--date", "2024-12-30"],
    );
    // Not one NAV dated the day: exit 7 (not yet, or a market holiday), not 4 (partly out).
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds no NAV dated 2024-12-30"),
        "{}",
        run.stderr
    );
    assert!(snapshot(dir.path()).is_empty());
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &["--date", "2024-12-27"],
    )
    .assert_ok();
}

#[test]
fn bse_navs_join_by_isin_and_never_replace_amfi() {
    let dir = tempfile::tempdir().unwrap();
    let run = ingest(dir.path(), "bse", &fixture_str("bse_navs.txt"), &[]);
    assert_eq!(run.code, 4, "no scheme master yet: {}", run.stderr);

    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    let run = ingest(dir.path(), "bse", &fixture_str("bse_navs.txt"), &[]);
    run.assert_ok();
    assert!(
        run.stdout.contains("navs=3") && run.stdout.contains("set_aside=3"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("ISIN INF846K01DR4 matches no AMFI scheme"),
        "{}",
        run.stderr
    );
    let csv = query_csv(dir.path(), "SELECT scheme_code, nav, source FROM navs WHERE nav_date = DATE '2024-12-27' AND scheme_code IN (119552, 119553) ORDER BY 1");
    // 119552: AMFI published 359.8211 and BSE 359.9000; AMFI stays. 119553: AMFI had N.A., BSE fills it.
    assert_eq!(
        csv,
        "scheme_code,nav,source\n119552,359.82110000,amfi\n119553,341.10000000,bse\n"
    );
}

#[test]
fn partitions_without_success_marker_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    ingest(
        dir.path(),
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    // A job that died after writing its data file but before publishing it.
    let unpublished = dir.path().join("navs/nav_date=2024-12-30");
    std::fs::create_dir_all(&unpublished).unwrap();
    std::fs::copy(
        dir.path()
            .join("navs/nav_date=2024-12-27/part-00000.parquet"),
        unpublished.join("part-00000.parquet"),
    )
    .unwrap();
    let csv = query_csv(
        dir.path(),
        "SELECT count(*) AS navs, max(nav_date) AS last FROM navs",
    );
    assert_eq!(csv, "navs,last\n6,2024-12-27\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn ingests_by_url_retrying_a_server_that_fails_twice() {
    let server = FixtureServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let url = format!("{}/flaky/2/amfi_history.txt", server.base);
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi-history",
        "--input",
        &url,
        "--warehouse",
        warehouse,
        "--retry-backoff-ms",
        "10",
    ])
    .await;
    run.assert_ok();
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    // The URL as logs may show it: its host and the file's name, no other path segment.
    assert!(
        run.stdout
            .contains(&format!("file={}/…/amfi_history.txt navs=5", server.base)),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr.matches("download failed; retrying").count(),
        2,
        "{}",
        run.stderr
    );

    // Errors in a downloaded file name the URL and the line.
    let url = format!("{}/files/amfi_truncated.txt", server.base);
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        &url,
        "--warehouse",
        warehouse,
    ])
    .await;
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .contains(&format!("{}/…/amfi_truncated.txt:8:", server.base)),
        "{}",
        run.stderr
    );

    // Not there (404): not published yet, exit 4, not retried by the job itself.
    let before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let url = format!("{}/files/NAVAll_2099-01-01.txt", server.base);
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        &url,
        "--warehouse",
        warehouse,
    ])
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );

    // A server that keeps failing: bounded attempts, then an error.
    let url = format!("{}/flaky/100/amfi_history.txt", server.base);
    let run = sipline_async(&[
        "nav",
        "ingest",
        "--source",
        "amfi-history",
        "--input",
        &url,
        "--warehouse",
        warehouse,
        "--retries",
        "3",
        "--retry-backoff-ms",
        "10",
    ])
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("gave up after 3 attempts"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_upserts_navs_and_schemes_into_postgres() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let args = |file: &'static str, source: &'static str| {
        let path = fixture_str(file);
        let url = pg.url.clone();
        let warehouse = warehouse.to_string();
        async move {
            sipline_async(&[
                "nav",
                "ingest",
                "--source",
                source,
                "--input",
                &path,
                "--warehouse",
                &warehouse,
                "--database-url",
                &url,
            ])
            .await
        }
    };
    let run = args("amfi_navall_6col.txt", "amfi").await;
    run.assert_ok();
    assert!(
        run.stdout.contains("postgres_rows_changed=14"),
        "7 schemes + 7 NAVs: {}",
        run.stdout
    );
    args("bse_navs.txt", "bse").await.assert_ok();

    let pool = pg.pool().await;
    let rows: Vec<(i64, chrono::NaiveDate, String, String)> = sqlx::query_as(
        "SELECT scheme_code, nav_date, nav::text, source FROM navs ORDER BY nav_date, scheme_code",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let shown: Vec<String> = rows
        .iter()
        .map(|(c, d, n, s)| format!("{c} {d} {n} {s}"))
        .collect();
    assert_eq!(
        shown,
        [
            "120466 2024-12-20 18.12000000 amfi",
            "119551 2024-12-27 105.05760000 amfi",
            "119552 2024-12-27 359.82110000 amfi",
            "119553 2024-12-27 341.10000000 bse",
            "120001 2024-12-27 27.14330000 amfi",
            "120465 2024-12-27 62.58000000 amfi",
            "130503 2024-12-27 11.98760000 amfi",
        ]
    );
    let (name, house): (String, Option<String>) =
        sqlx::query_as("SELECT scheme_name, fund_house FROM schemes WHERE scheme_code = 120001")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (name.as_str(), house.as_deref()),
        (
            "Bank of India Short Term Income Fund-Direct Plan- Growth",
            Some("Bank of India Mutual Fund (formerly BOI AXA Mutual Fund)")
        )
    );
    // Plain PostgreSQL here: NAVs live in monthly range partitions.
    let partition: Option<String> = sqlx::query_scalar("SELECT to_regclass('navs_y2024m12')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(partition.as_deref(), Some("navs_y2024m12"));

    // Re-running changes no row.
    let run = args("amfi_navall_6col.txt", "amfi").await;
    run.assert_ok();
    assert!(
        run.stdout.contains("postgres_rows_changed=0"),
        "{}",
        run.stdout
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM navs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 7);

    // A history spanning two months (31-Dec-2024 to 02-Jan-2025) gets both partitions, and
    // each row lands in its own month's partition.
    args("amfi_history_two_months.txt", "amfi-history")
        .await
        .assert_ok();
    let per_partition: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM navs WHERE scheme_code = 100032 \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_partition,
        [
            ("navs_y2024m12".to_string(), 1),
            ("navs_y2025m01".to_string(), 2)
        ]
    );
    pool.close().await;
}

/// One data row of the real NAVAll.txt, read here with nothing but `split(';')`, independently
/// of sipline's reader: (line, scheme code, NAV text as published, date as published).
fn published_rows(text: &str) -> Vec<(u64, i64, String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let fields: Vec<&str> = line.trim_end_matches('\r').split(';').collect();
            let code = fields.first()?.trim().parse::<i64>().ok()?;
            (fields.len() == 6).then(|| {
                (
                    i as u64 + 1,
                    code,
                    fields[4].trim().to_string(),
                    fields[5].trim().to_string(),
                )
            })
        })
        .collect()
}

/// A positive decimal NAV as published, written with exactly eight decimals; `None` for zero,
/// `N.A.` or anything that is not a plain decimal.
fn eight_decimals(text: &str) -> Option<String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 8;
    let positive = text.bytes().any(|b| (b'1'..=b'9').contains(&b));
    (plain && positive).then(|| format!("{}.{frac:0<8}", int.parse::<u64>().unwrap()))
}

/// AMFI's own NAVAll.txt of 16 May 2025 (14,025 schemes, NAVs with up to eight decimals, stale
/// NAVs back to 2012, `0.00000` and `N.A.` values): every positive NAV is stored exactly as
/// published, every other row is set aside with its line, and a re-run changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn real_amfi_file_is_stored_as_published() {
    let name = "NAVAll_real_2025-05-16.txt";
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let rows = published_rows(&text);
    assert_eq!(rows.len(), 14_025);
    let mut expected: Vec<String> = Vec::new();
    let mut set_aside: Vec<u64> = Vec::new();
    for (line, code, nav, date) in &rows {
        match eight_decimals(nav) {
            Some(nav) => {
                let date = chrono::NaiveDate::parse_from_str(date, "%d-%b-%Y").unwrap();
                expected.push(format!("{code},{date},{nav}"));
            }
            None => set_aside.push(*line),
        }
    }
    expected.sort();
    let eight_decimal_rows = rows
        .iter()
        .filter(|(_, _, nav, _)| {
            nav.split_once('.')
                .is_some_and(|(_, f)| f.trim_end_matches('0').len() > 4)
        })
        .count();
    // What the file holds, counted by the independent reading above.
    assert_eq!((expected.len(), set_aside.len()), (13_637, 388));
    assert!(eight_decimal_rows >= 448, "{eight_decimal_rows}");

    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap().to_string();
    let path = fixture_str(name);
    let args = [
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        &path,
        "--warehouse",
        &warehouse,
        "--database-url",
        &pg.url,
    ];
    let run = sipline_async(&args).await;
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "navs=13637 dates=865 (2012-02-17..2025-05-18) schemes=14025 set_aside=388 duplicates=0 partitions_written=865"
        ),
        "{}",
        run.stdout
    );
    // Set aside: exactly the zero and `N.A.` rows, each reported with its line.
    let mut reported: Vec<u64> = run
        .stderr
        .lines()
        .filter(|l| l.contains("row set aside"))
        .filter_map(|l| {
            let plain: String = strip_ansi(l);
            let at = plain.find(" line=")? + " line=".len();
            plain[at..].split_whitespace().next()?.parse().ok()
        })
        .collect();
    reported.sort();
    assert_eq!(reported, set_aside);
    let zero = run.stderr.matches("is zero or negative").count();
    let not_a_number = run.stderr.matches("is not a number").count();
    assert_eq!(zero + not_a_number, 388);
    assert!(
        zero > 0 && not_a_number > 0,
        "{zero} zero, {not_a_number} N.A."
    );

    // The warehouse holds every positive NAV with exactly the published value.
    let stored = query_csv(
        dir.path(),
        "SELECT scheme_code, nav_date, nav FROM navs ORDER BY scheme_code, nav_date",
    );
    let mut stored: Vec<String> = stored.lines().skip(1).map(str::to_string).collect();
    stored.sort();
    assert_eq!(stored.len(), expected.len());
    assert!(stored == expected, "the warehouse differs from the file");
    let schemes = query_csv(dir.path(), "SELECT count(*) AS n FROM schemes");
    assert_eq!(schemes, "n\n14025\n");
    // The two NAVs the issue names, to the last digit.
    let named = query_csv(
        dir.path(),
        "SELECT CAST(nav AS VARCHAR) AS nav FROM navs WHERE nav IN (14.25207048, 10.19117240) ORDER BY nav",
    );
    assert!(named.starts_with("nav\n10.19117240\n"), "{named}");
    assert!(named.contains("14.25207048"), "{named}");

    // PostgreSQL holds the same rows, eight-decimal ones exact.
    let pool = pg.pool().await;
    let (count, precise): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE scale(trim_scale(nav)) > 4) FROM navs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(count, 13_637);
    assert_eq!(precise as usize, eight_decimal_rows);
    let shown: String = sqlx::query_scalar(
        "SELECT string_agg(sipline_nav_text(nav), ' ' ORDER BY nav) FROM navs \
         WHERE nav IN (14.25207048, 10.1911724, 107.0688, 118.209)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(shown.contains("10.1911724 14.25207048"), "{shown}");
    assert!(
        shown.contains("107.0688") && shown.contains("118.2090"),
        "{shown}"
    );

    // Re-ingesting the file changes nothing, in the warehouse or in PostgreSQL.
    let before = snapshot(dir.path());
    let again = sipline_async(&args).await;
    again.assert_ok();
    assert!(
        again.stdout.contains("partitions_written=0 unchanged=865"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("postgres_rows_changed=0"),
        "{}",
        again.stdout
    );
    assert!(
        before == snapshot(dir.path()),
        "a re-run changed the warehouse"
    );
    pool.close().await;
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence runs to its final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One scheme with two different NAVs for one date in one file is bad input (exit 3) naming
/// both lines, and nothing of the file is written.
#[test]
fn conflicting_navs_in_one_file_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    ingest(
        &warehouse,
        "amfi",
        &fixture_str("amfi_navall_6col.txt"),
        &[],
    )
    .assert_ok();
    let before = snapshot(&warehouse);
    let file = dir.path().join("NAVAll.txt");
    std::fs::write(
        &file,
        "Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Net Asset Value;Date\r\n\
         \r\nOpen Ended Schemes(Equity Scheme - Large Cap Fund)\r\n\r\nSome Mutual Fund\r\n\r\n\
         500001;INF000000001;-;Some Fund - Direct Growth;10.5000;03-Jan-2025\r\n\
         500002;INF000000002;-;Other Fund - Direct Growth;20.0000;03-Jan-2025\r\n\
         500001;INF000000001;-;Some Fund - Direct Growth;10.5100;03-Jan-2025\r\n",
    )
    .unwrap();
    let run = ingest(&warehouse, "amfi", file.to_str().unwrap(), &[]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "NAVAll.txt:9: scheme 500001 has NAV 10.5100 for 2025-01-03, but line 7 gave 10.5000"
        ),
        "{}",
        run.stderr
    );
    assert!(
        before == snapshot(&warehouse),
        "a rejected file changed the warehouse"
    );
}
