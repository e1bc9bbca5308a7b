//! What a user holds of a scheme, and the one roll-up that sums it. Execution rolls month-end
//! checkpoints forward with each day's instalments; valuation sums purchases, or a checkpoint
//! plus the purchases since. All three are the same sum by (user, scheme), so it is written
//! once here.

use crate::money::{Paise, Units};
use crate::sip::{InstalmentStatus, Investment};

/// A `holdings` row: units and cost (stamp duty included) per user and scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holding {
    pub user_id: i64,
    pub scheme_code: i64,
    pub units: Units,
    pub invested: Paise,
}

/// Sums rows of the same (user, scheme), sorted by (user, scheme). Input grouped by user (the
/// order every warehouse file is written in) is summed in one pass with a short linear search
/// per user, since one user holds a handful of schemes; any other order falls back to a sort.
pub fn sum_holdings(rows: impl IntoIterator<Item = Holding>) -> Vec<Holding> {
    let mut out: Vec<Holding> = Vec::new();
    let mut user_start = 0;
    for row in rows {
        if out
            .get(user_start)
            .is_some_and(|h| h.user_id != row.user_id)
        {
            out[user_start..].sort_unstable_by_key(|h| h.scheme_code);
            user_start = out.len();
        }
        match out[user_start..]
            .iter_mut()
            .find(|h| h.scheme_code == row.scheme_code)
        {
            Some(h) => {
                h.units.0 += row.units.0;
                h.invested.0 += row.invested.0;
            }
            None => out.push(row),
        }
    }
    out[user_start..].sort_unstable_by_key(|h| h.scheme_code);
    if out.is_sorted_by(|a, b| (a.user_id, a.scheme_code) < (b.user_id, b.scheme_code)) {
        return out;
    }
    // A user's rows came in more than one run: sort and sum neighbours.
    out.sort_unstable_by_key(|h| (h.user_id, h.scheme_code));
    let mut merged: Vec<Holding> = Vec::with_capacity(out.len());
    for row in out {
        match merged.last_mut() {
            Some(last) if (last.user_id, last.scheme_code) == (row.user_id, row.scheme_code) => {
                last.units.0 += row.units.0;
                last.invested.0 += row.invested.0;
            }
            _ => merged.push(row),
        }
    }
    merged
}

/// Holdings after `investments`: `base` plus every executed instalment. Sorted by
/// (user, scheme). Rolling forward twice equals rolling forward once over both sets, which is
/// what lets holdings live as month-end checkpoints plus the investments since.
pub fn roll_forward<'a>(
    base: &[Holding],
    investments: impl IntoIterator<Item = &'a Investment>,
) -> Vec<Holding> {
    let executed: Vec<Holding> = investments
        .into_iter()
        .filter_map(|inv| {
            // A reversal takes back exactly what its allotment added.
            let sign = match inv.status {
                InstalmentStatus::Executed => 1,
                InstalmentStatus::Reversed => -1,
                InstalmentStatus::Pending | InstalmentStatus::Failed => return None,
            };
            Some(Holding {
                user_id: inv.user_id,
                scheme_code: inv.scheme_code,
                units: Units(sign * inv.units.unwrap_or_default().0),
                invested: Paise(sign * inv.amount.0),
            })
        })
        .collect();
    add_holdings(base, executed)
}

/// `base` (a checkpoint, sorted by (user, scheme)) plus `more` in any order. Only `more` is
/// sorted, then the two are merged, so a month-end roll-forward costs a pass over the
/// checkpoint rather than a sort of it.
pub fn add_holdings(base: &[Holding], mut more: Vec<Holding>) -> Vec<Holding> {
    more.sort_unstable_by_key(key);
    let mut base = base.iter().copied().peekable();
    let mut more = more.into_iter().peekable();
    let merged = std::iter::from_fn(move || match (base.peek(), more.peek()) {
        (Some(a), Some(b)) if key(a) <= key(b) => base.next(),
        (Some(_), Some(_)) | (None, _) => more.next(),
        (Some(_), None) => base.next(),
    });
    sum_holdings(merged)
}

fn key(h: &Holding) -> (i64, i64) {
    (h.user_id, h.scheme_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn holding(user_id: i64, scheme_code: i64, units: i64, invested: i64) -> Holding {
        Holding {
            user_id,
            scheme_code,
            units: Units(units),
            invested: Paise(invested),
        }
    }

    #[test]
    fn sums_a_user_whose_rows_are_not_adjacent() {
        let rows = vec![
            holding(2, 7, 10, 100),
            holding(1, 7, 1, 1),
            holding(2, 7, 5, 50),
            holding(2, 3, 1, 2),
        ];
        assert_eq!(
            sum_holdings(rows),
            vec![
                holding(1, 7, 1, 1),
                holding(2, 3, 1, 2),
                holding(2, 7, 15, 150)
            ]
        );
    }

    #[test]
    fn a_checkpoint_plus_unordered_additions() {
        let base = vec![holding(1, 7, 10, 100), holding(3, 2, 1, 1)];
        let more = vec![
            holding(3, 2, 1, 1),
            holding(2, 9, 5, 5),
            holding(1, 7, 1, 0),
        ];
        assert_eq!(
            add_holdings(&base, more),
            vec![
                holding(1, 7, 11, 100),
                holding(2, 9, 5, 5),
                holding(3, 2, 2, 2)
            ]
        );
    }

    proptest! {
        /// Against a map: any order of rows sums to the same sorted totals.
        #[test]
        fn equals_a_map_sum(rows in proptest::collection::vec((0i64..5, 0i64..4, 0i64..1000, 0i64..1000), 0..40)) {
            let mut expected = std::collections::BTreeMap::<(i64, i64), (i64, i64)>::new();
            for (u, s, units, paise) in &rows {
                let e = expected.entry((*u, *s)).or_default();
                e.0 += units;
                e.1 += paise;
            }
            let expected: Vec<Holding> = expected
                .into_iter()
                .map(|((u, s), (units, paise))| holding(u, s, units, paise))
                .collect();
            let got = sum_holdings(rows.iter().map(|(u, s, units, paise)| holding(*u, *s, *units, *paise)));
            prop_assert_eq!(got, expected);
        }
    }
}
