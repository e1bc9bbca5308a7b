use crate::support::{fixture, sipline};

#[test]
fn sql_prints_tables_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().to_str().unwrap();
    let input = fixture("amfi_navall_8col.txt");
    sipline(&[
        "nav",
        "ingest",
        "--source",
        "amfi",
        "--input",
        input.to_str().unwrap(),
        "--warehouse",
        warehouse,
    ])
    .assert_ok();
    let query =
        "SELECT scheme_code, nav FROM navs WHERE nav_date = DATE '2024-12-27' AND scheme_code > 120000 ORDER BY scheme_code";

    let table = sipline(&["sql", "--warehouse", warehouse, query]);
    table.assert_ok();
    assert_eq!(
        table.stdout,
        "+-------------+-------------+\n\
         | scheme_code | nav         |\n\
         +-------------+-------------+\n\
         | 122639      | 89.12340000 |\n\
         | 122640      | 82.00110000 |\n\
         +-------------+-------------+\n"
    );
    let json = sipline(&["sql", "--format", "json", "--warehouse", warehouse, query]);
    json.assert_ok();
    // Decimals are written as JSON numbers with their exact digits.
    assert_eq!(
        json.stdout,
        "{\"scheme_code\":122639,\"nav\":89.12340000}\n{\"scheme_code\":122640,\"nav\":82.00110000}\n"
    );

    let bad = sipline(&["sql", "--warehouse", warehouse, "SELECT nope FROM navs"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("nope"), "{}", bad.stderr);
}
