//! The property behind issue 17, over random histories: sequences of in-order runs, re-runs of
//! past dates with and without `--rewind`, NAVs arriving up to two business days late, and SIP
//! changes (cancel, pause, new amount) made through the API with effective dates, each
//! day's mandate snapshot rebuilt from that history as `sips export` does. Whatever the order:
//! - a re-run of a past date without `--rewind` is refused (exit code 6) and writes nothing;
//! - once every date has run and every NAV has arrived, each instalment the history makes due
//!   is executed exactly once across the warehouse (none twice, none lost), at the NAV dated
//!   its applicable date, for the amount of the terms in force on the run that took it;
//! - every executed row reconciles: amount = duty + units × NAV + residue, 0 ≤ residue < one
//!   unit step × NAV, and so do the sums.
//!
//! The jobs run through the library on a real folder warehouse (no mock), one bucket only so a
//! case takes milliseconds.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use jobs::shard::Shard;
use jobs::sip_execute::{execute, ExecuteOptions};
use pipeline::calendar::BusinessCalendar;
use pipeline::money::{cost_e12, Nav, Paise};
use pipeline::nav::{NavRow, NavSource, Scheme, SchemeRow};
use pipeline::sip::{
    applicable_date, stamp_duty, InstalmentStatus, Investment, Mandate, SipStatus,
};
use proptest::prelude::*;
use warehouse::{bucket_of, Part, Table, Warehouse, BUCKETS};

const USER: i64 = 7;
const SCHEMES: i64 = 3;

fn d(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

#[derive(Debug, Clone)]
enum Change {
    Cancel,
    /// Paused through this many days after the change takes effect.
    Pause(u64),
    Amount(i64),
}

#[derive(Debug, Clone)]
enum Op {
    /// Run the next date in order.
    Next,
    /// Re-run the date this many business days before the last one run.
    Rerun { back: usize, rewind: bool },
}

#[derive(Debug, Clone)]
struct Case {
    sips: Vec<(i64, u32, i64)>, // (scheme, sip_day, amount in paise)
    /// (sip index, effective business-day index, change)
    changes: Vec<(usize, usize, Change)>,
    /// NAV delay in business days, per (scheme, day index).
    delays: Vec<u8>,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    let sip = (1..=SCHEMES, 2_u32..=20, 10_000_i64..=10_000_000);
    let change = prop_oneof![
        Just(Change::Cancel),
        (0_u64..10).prop_map(Change::Pause),
        (10_000_i64..=5_000_000).prop_map(Change::Amount),
    ];
    let op = prop_oneof![
        3 => Just(Op::Next),
        1 => (1_usize..5, any::<bool>()).prop_map(|(back, rewind)| Op::Rerun { back, rewind }),
    ];
    (
        prop::collection::vec(sip, 1..6),
        prop::collection::vec((0_usize..6, 0_usize..DAYS, change), 0..4),
        prop::collection::vec(0_u8..=2, (SCHEMES as usize) * (DAYS + EXTRA)),
        prop::collection::vec(op, 4..16),
    )
        .prop_map(|(sips, changes, delays, ops)| Case {
            changes: changes
                .into_iter()
                .filter(|(i, _, _)| *i < sips.len())
                .collect(),
            sips,
            delays,
            ops,
        })
}

/// Business days run in order in the scenario, and the extra ones the settling pass runs.
const DAYS: usize = 10;
const EXTRA: usize = 4;

struct World {
    calendar: BusinessCalendar,
    days: Vec<NaiveDate>,
    case: Case,
}

impl World {
    fn new(case: Case) -> Self {
        let calendar = BusinessCalendar::nse();
        let days = calendar
            .business_days(d("2025-06-02"), d("2025-07-31"))
            .take(DAYS + EXTRA)
            .collect();
        Self {
            calendar,
            days,
            case,
        }
    }

    fn nav(&self, scheme: i64, day: usize) -> Nav {
        Nav::from_scaled((10 + scheme * 7 + day as i64) * 100_000_000 + scheme * 1_234_567)
    }

    fn delay(&self, scheme: i64, day: usize) -> usize {
        self.case.delays[(scheme as usize - 1) * (DAYS + EXTRA) + day] as usize
    }

    /// The mandates as of business day `day`: the API's changes effective by then applied.
    fn mandates(&self, day: usize) -> Vec<Mandate> {
        self.mandates_with_changes(Some(day))
    }

    /// The mandates as created (`None`), or with the changes effective by `day`.
    fn mandates_with_changes(&self, day: Option<usize>) -> Vec<Mandate> {
        let mut mandates: Vec<Mandate> = self
            .case
            .sips
            .iter()
            .enumerate()
            .map(|(i, &(scheme, sip_day, amount))| Mandate {
                sip_id: i as i64 + 1,
                user_id: USER,
                scheme_code: scheme,
                amount: Paise(amount),
                sip_day,
                start_date: d("2025-06-01"),
                end_date: None,
                step_up_bps: 0,
                status: SipStatus::Active,
                paused_until: None,
            })
            .collect();
        for (i, effective, change) in &self.case.changes {
            if day.is_none_or(|day| *effective > day) {
                continue;
            }
            let m = &mut mandates[*i];
            match change {
                Change::Cancel => m.status = SipStatus::Cancelled,
                Change::Pause(days) if m.status != SipStatus::Cancelled => {
                    m.status = SipStatus::Paused;
                    m.paused_until = Some(self.days[*effective] + chrono::Days::new(*days));
                }
                Change::Amount(amount) => m.amount = Paise(*amount),
                Change::Pause(_) => {}
            }
        }
        mandates
    }
}

async fn setup(store: &Warehouse) {
    let schemes: Vec<SchemeRow> = (1..=SCHEMES)
        .map(|code| SchemeRow {
            scheme: Scheme {
                scheme_code: code,
                isin_growth: None,
                isin_reinvestment: None,
                scheme_name: format!("Scheme {code}"),
                fund_house: None,
                category: None,
                scheme_type: Some("Open Ended Schemes".into()),
                plan: None,
                option: None,
            },
            unit_decimals: 3,
        })
        .collect();
    store.write_rows(Part::WHOLE, &schemes).await.unwrap();
}

/// Publishes every NAV that has arrived by business day `clock`.
async fn arrive(store: &Warehouse, world: &World, clock: usize) {
    for day in 0..world.days.len() {
        let rows: Vec<NavRow> = (1..=SCHEMES)
            .filter(|s| day + world.delay(*s, day) <= clock)
            .map(|s| NavRow {
                scheme_code: s,
                nav: world.nav(s, day),
                source: NavSource::Amfi,
            })
            .collect();
        if !rows.is_empty() {
            store
                .write_rows(Part::date(world.days[day]), &rows)
                .await
                .unwrap();
        }
    }
}

async fn run(
    store: &Warehouse,
    world: &World,
    day: usize,
    rewind: bool,
) -> Result<(), anyhow::Error> {
    let bucket = bucket_of(USER);
    store
        .write_rows(
            Part::dated_bucket(world.days[day], bucket),
            &world.mandates(day),
        )
        .await
        .unwrap();
    let options = ExecuteOptions {
        shard: Shard {
            index: bucket,
            count: BUCKETS,
        },
        simulate_failures: 0.0,
        seed: 1,
        parallelism: 1,
        no_nav_after: pipeline::sip::NO_NAV_AFTER_BUSINESS_DAYS,
        rewind,
    };
    execute(store, &world.calendar, world.days[day], options)
        .await
        .map(|_| ())
}

fn files(root: &std::path::Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    crate::support::snapshot(root)
}

async fn settled(store: &Warehouse) -> Vec<(NaiveDate, Investment)> {
    let bucket = bucket_of(USER);
    let mut rows = Vec::new();
    for date in store.dates(Table::Investments).await.unwrap() {
        let part = Part::dated_bucket(date, bucket);
        if let Some(found) = store.read_rows::<Investment>(part).await.unwrap() {
            rows.extend(
                found
                    .into_iter()
                    .filter(|i| i.status != InstalmentStatus::Pending)
                    .map(|i| (date, i)),
            );
        }
    }
    rows
}

async fn check(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let store = Warehouse::open(dir.path().to_str().unwrap()).unwrap();
    let world = World::new(case.clone());
    setup(&store).await;
    let mut head: Option<usize> = None;
    let mut clock = 0;
    for op in &case.ops {
        match op {
            Op::Next => {
                let day = head.map_or(0, |h| h + 1);
                if day >= DAYS {
                    continue;
                }
                clock = clock.max(day);
                arrive(&store, &world, clock).await;
                run(&store, &world, day, false).await.unwrap();
                head = Some(day);
            }
            Op::Rerun { back, rewind } => {
                let Some(h) = head else { continue };
                let day = h.saturating_sub(*back);
                let before = files(dir.path());
                let outcome = run(&store, &world, day, *rewind).await;
                if day < h && !rewind {
                    let err =
                        outcome.expect_err("a past date re-run without --rewind must be refused");
                    prop_assert_eq!(
                        jobs::plumbing::exit::classify(&err),
                        jobs::plumbing::exit::LATER_DATES_RAN
                    );
                    // Only the (unchanged) snapshot was rewritten.
                    prop_assert!(before == files(dir.path()), "a refused run wrote");
                } else {
                    outcome.unwrap();
                    head = Some(day);
                }
            }
        }
    }
    // Settle: every remaining date in order, then a few more with every NAV arrived.
    clock = world.days.len() + 2;
    arrive(&store, &world, clock).await;
    let from = head.map_or(0, |h| h + 1);
    for day in from..world.days.len() {
        run(&store, &world, day, false).await.unwrap();
    }

    let rows = settled(&store).await;
    let mut seen = HashSet::new();
    for (_, row) in &rows {
        prop_assert!(
            seen.insert((row.sip_id, row.due_date)),
            "settled twice: {:?}",
            row
        );
    }
    // What the history makes due: instalment X of a SIP is taken by the run of its applicable
    // date, with the terms in force that day.
    let index: HashMap<NaiveDate, usize> = world
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, i))
        .collect();
    let last = *world.days.last().unwrap();
    let mut expected = BTreeMap::new();
    for sip in 0..case.sips.len() {
        let created = &world.mandates_with_changes(None)[sip];
        for due in created.due_dates(d("2025-06-01"), last) {
            let run_on = applicable_date(&world.calendar, due);
            let Some(&day) = index.get(&run_on) else {
                continue;
            };
            let terms = &world.mandates(day)[sip];
            if terms.due_dates(due, due).is_empty() {
                continue;
            }
            expected.insert((sip as i64 + 1, due), (terms.instalment_amount(due), day));
        }
    }
    let got: BTreeMap<(i64, NaiveDate), &Investment> = rows
        .iter()
        .map(|(_, r)| ((r.sip_id, r.due_date), r))
        .collect();
    prop_assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "instalments lost or made up"
    );
    let (mut amount, mut duty, mut cost, mut residue) = (0_i128, 0_i128, 0_i128, 0_i128);
    for (key, row) in &got {
        let (want_amount, day) = expected[key];
        prop_assert_eq!(row.status, InstalmentStatus::Executed);
        prop_assert_eq!(row.amount, want_amount);
        prop_assert_eq!(row.nav_date, Some(world.days[day]));
        prop_assert_eq!(row.nav, Some(world.nav(row.scheme_code, day)));
        prop_assert_eq!(row.stamp_duty, stamp_duty(row.amount));
        let (nav, units) = (row.nav.unwrap(), row.units.unwrap());
        let net_e12 = i128::from(row.amount.0 - row.stamp_duty.0) * 10_000_000_000;
        let left = net_e12 - cost_e12(units, nav);
        prop_assert!(
            left >= 0 && left < 10 * i128::from(nav.scaled()),
            "residue {}",
            left
        );
        amount += i128::from(row.amount.0) * 10_000_000_000;
        duty += i128::from(row.stamp_duty.0) * 10_000_000_000;
        cost += cost_e12(units, nav);
        residue += left;
    }
    prop_assert_eq!(amount, duty + cost + residue);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn runs_reruns_rewinds_late_navs_and_changes_settle_each_instalment_once(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(case))?;
    }
}
