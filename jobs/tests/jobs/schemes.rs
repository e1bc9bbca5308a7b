//! Finding a fund through the real API over AMFI's real scheme master (NAVAll.txt of
//! 16 May 2025, about 14,000 schemes, ingested with `nav ingest --database-url`).

use reqwest::StatusCode;
use serde_json::Value;

use crate::api::{claims, hs256, Api};
use crate::support::{ingest_fixture_into_postgres, Postgres};

fn codes(page: &Value) -> Vec<i64> {
    page["schemes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scheme_code"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_funds_by_misspelt_name_isin_and_code_with_filters_and_pages() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "NAVAll_real_2025-05-16.txt").await;
    let api = Api::start(&pg.url).await;
    let token = hs256(&claims("auth0|fund-finder"));
    let search = |query: &str| {
        let path = format!("/v1/schemes?{query}");
        let api = &api;
        let token = token.clone();
        async move { api.get(&path, Some(&token)).await }
    };

    // Typo-tolerant: the words as a person types them.
    let (status, found) = search("q=axis%20blue%20chip").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let first = &found["schemes"][0];
    assert!(
        first["scheme_name"]
            .as_str()
            .unwrap()
            .starts_with("Axis Bluechip Fund"),
        "{found}"
    );
    assert!(first["score"].as_f64().unwrap() > 0.6);
    assert_eq!(first["fund_house"], "Axis Mutual Fund");
    // By ISIN (either one) and by code, exactly.
    for q in ["INF846K01DP8", "inf846k01dp8", "120465"] {
        let (_, found) = search(&format!("q={q}")).await;
        assert_eq!(codes(&found)[0], 120465, "{q}: {found}");
    }
    // A fund house by its name or its leading words: its schemes only, all of them, by code.
    let house_pages = |q: &'static str| {
        let search = &search;
        async move {
            let (mut listed, mut after) = (Vec::new(), None::<String>);
            loop {
                let query = match &after {
                    Some(a) => format!("q={q}&limit=50&after={a}"),
                    None => format!("q={q}&limit=50"),
                };
                let (status, page) = search(&query).await;
                assert_eq!(status, StatusCode::OK, "{page}");
                for scheme in page["schemes"].as_array().unwrap() {
                    assert_eq!(
                        scheme["fund_house"], "Nippon India Mutual Fund",
                        "{q}: {scheme}"
                    );
                    listed.push(scheme["scheme_code"].as_i64().unwrap());
                }
                match page["next_after"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => return listed,
                }
            }
        }
    };
    let nippon = house_pages("nippon%20india%20mutual%20fund").await;
    assert!(nippon.len() > 1000, "{}", nippon.len());
    assert!(
        nippon.windows(2).all(|w| w[0] < w[1]),
        "by code, no repeats"
    );
    assert_eq!(house_pages("Nippon%20India").await, nippon);
    // The text's own `%` and `_` are not wildcards: "%" is no house's leading word, and
    // "_ippon india" is matched by similarity (score below 1), not listed as a house.
    let (status, found) = search("q=%25").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(codes(&found).is_empty(), "{found}");
    let (_, found) = search("q=_ippon%20india").await;
    let similar = found["schemes"].as_array().unwrap();
    assert!(!similar.is_empty(), "{found}");
    assert!(
        similar.iter().all(|s| s["score"].as_f64().unwrap() < 1.0),
        "a similarity match, not the house listing: {found}"
    );
    // Every word typed is a whole word of the name or house: ranked full-text matches, each
    // holding all the words, below an exact match's score.
    let (status, words) = search("q=nippon%20india%20growth&limit=50").await;
    assert_eq!(status, StatusCode::OK, "{words}");
    let matched = words["schemes"].as_array().unwrap();
    assert_eq!(matched.len(), 50, "{words}");
    for scheme in matched {
        let name = scheme["scheme_name"].as_str().unwrap().to_lowercase();
        assert_eq!(scheme["fund_house"], "Nippon India Mutual Fund", "{scheme}");
        assert!(name.contains("growth"), "{scheme}");
        let score = scheme["score"].as_f64().unwrap();
        assert!(score > 0.0 && score < 1.0, "{scheme}");
    }
    // Filters narrow it down.
    let (_, direct_growth) = search("q=axis%20bluechip&plan=direct&option=growth").await;
    let schemes = direct_growth["schemes"].as_array().unwrap();
    assert!(!schemes.is_empty());
    assert!(
        schemes
            .iter()
            .all(|s| s["plan"] == "Direct" && s["option"] == "Growth"),
        "{direct_growth}"
    );
    assert_eq!(codes(&direct_growth)[0], 120465);
    let (_, house) = search("fund_house=Axis%20Mutual%20Fund&open_for_sip=true&limit=50").await;
    assert_eq!(codes(&house).len(), 50);
    assert!(house["schemes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["fund_house"] == "Axis Mutual Fund" && s["open_for_sip"] == true));

    // Pages: bounded, disjoint, in order, ending with a null cursor.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..20 {
        let query = match &after {
            Some(a) => format!("q=bluechip&limit=7&after={a}"),
            None => "q=bluechip&limit=7".to_string(),
        };
        let (status, page) = search(&query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(codes(&page));
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let (_, all) = search("q=bluechip&limit=50").await;
    assert!(seen.len() > 7, "{seen:?}");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a scheme on two pages");
    assert_eq!(
        seen[..seen.len().min(50)],
        codes(&all)[..seen.len().min(50)]
    );

    // Bounds and bad input are 400s, never a slow or failing query.
    for query in [
        "limit=51",
        "limit=0",
        &format!("q={}", "a".repeat(101)),
        "q=axis&after=garbage",
        "after=x",
    ] {
        assert_eq!(search(query).await.0, StatusCode::BAD_REQUEST, "{query}");
    }
    assert_eq!(
        api.get("/v1/schemes?q=axis", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // One scheme: its latest NAV and date, and its SIP rules.
    let (status, scheme) = api.get("/v1/schemes/120465", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{scheme}");
    assert_eq!(scheme["nav"], "69.1500");
    assert_eq!(scheme["nav_date"], "2025-05-16");
    assert_eq!(scheme["isin_growth"], "INF846K01DP8");
    assert_eq!(scheme["open_for_sip"], true);
    assert_eq!(scheme["sip_min_amount"], "100.00");
    assert_eq!(scheme["unit_decimals"], 3);
    assert_eq!(
        api.get("/v1/schemes/1", Some(&token)).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Real queries as people type them (a word cut short, a short form AMFI's names lack) and the
/// scheme each must bring to the top of the first page, over AMFI's real master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_find_a_fund_as_they_type() {
    let pg = Postgres::start().await;
    let _warehouse = ingest_fixture_into_postgres(&pg.url, "NAVAll_real_2025-05-16.txt").await;
    let api = Api::start(&pg.url).await;
    let token = hs256(&claims("auth0|typist"));
    // (typed, where the wanted scheme must be: within the first `top`, and a test on its name,
    // lower-cased)
    type NameTest = fn(&str) -> bool;
    let queries: &[(&str, usize, NameTest)] = &[
        ("franklin pri", 1, |n| n.starts_with("franklin india prima")),
        ("franklin prima", 1, |n| {
            n.starts_with("franklin india prima")
        }),
        ("motilal mid", 1, |n| {
            n.starts_with("motilal oswal")
                && n.split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.starts_with("mid"))
        }),
        ("motilal midcap fund", 1, |n| {
            n.starts_with("motilal oswal midcap fund")
        }),
        ("parag", 1, |n| n.starts_with("parag parikh")),
        ("ppfas", 1, |n| n.starts_with("parag parikh")),
        ("icici pru blue", 1, |n| {
            n.starts_with("icici prudential bluechip")
        }),
        ("icici pru", 1, |n| n.starts_with("icici prudential")),
        ("hdfc mid", 1, |n| {
            n.starts_with("hdfc mid-cap opportunities")
        }),
        ("sbi sma", 1, |n| n.starts_with("sbi small cap")),
        ("kotak tax", 1, |n| n.starts_with("kotak elss tax saver")),
        ("kotak elss", 1, |n| n.starts_with("kotak elss tax saver")),
        ("absl elss", 1, |n| {
            n.starts_with("aditya birla sun life elss tax saver")
        }),
        ("hdfc long term adv", 1, |n| {
            n.starts_with("hdfc long term advantage")
        }),
        ("axis blue chip", 1, |n| n.starts_with("axis bluechip")),
        ("nippon india small", 3, |n| {
            n.starts_with("nippon india small cap")
        }),
    ];
    let mut failures = Vec::new();
    let mut latencies = Vec::new();
    for (typed, top, wanted) in queries {
        let path = format!("/v1/schemes?q={}&limit=10", typed.replace(' ', "%20"));
        let started = std::time::Instant::now();
        let (status, page) = api.get(&path, Some(&token)).await;
        latencies.push(started.elapsed());
        assert_eq!(status, StatusCode::OK, "{typed}: {page}");
        let names: Vec<String> = page["schemes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["scheme_name"].as_str().unwrap().to_lowercase())
            .collect();
        if !names.iter().take(*top).any(|n| wanted(n)) {
            failures.push(format!("{typed:?} (top {top}): {names:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // An ELSS scheme answers to "elss" whatever its name: every scheme "hdfc elss" finds on
    // its first page is HDFC's and in the ELSS category.
    let (_, page) = api
        .get("/v1/schemes?q=hdfc%20elss&limit=20", Some(&token))
        .await;
    let found = page["schemes"].as_array().unwrap();
    assert!(found.len() >= 4, "{page}");
    for scheme in found {
        assert!(
            scheme["category"].as_str().unwrap().contains("ELSS")
                && scheme["fund_house"] == "HDFC Mutual Fund",
            "{scheme}"
        );
    }
    latencies.sort();
    eprintln!(
        "as-you-type search over HTTP: median {:?}, max {:?} ({} queries, debug build)",
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        latencies.len()
    );
}
