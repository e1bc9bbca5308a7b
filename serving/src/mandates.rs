//! A SIP as PostgreSQL holds it (`sips`, or a `sip_changes` entry: the same columns) into the
//! batch's [`Mandate`]: one conversion, shared by `sips export` (the snapshot the execution
//! run reads) and the API (the next instalment it shows), so both read the same terms the same
//! way. Money and the step-up come out of SQL as scaled integers (`amount_paise`,
//! `step_up_bps`), the form the batch computes in; a query selects them with
//! `(amount * 100)::bigint AS amount_paise, (step_up_pct * 100)::bigint AS step_up_bps`
//! (exact: `amount` has two decimals, `step_up_pct` two).

use chrono::NaiveDate;
use pipeline::money::Paise;
use pipeline::sip::{Mandate, SipStatus};

/// A SIP's terms as selected from `sips` or `sip_changes`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MandateRow {
    pub sip_id: i64,
    pub user_id: i64,
    pub scheme_code: i64,
    pub amount_paise: i64,
    pub sip_day: i16,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub step_up_bps: i64,
    pub status: String,
    pub paused_until: Option<NaiveDate>,
}

/// A row the batch cannot take as a mandate (the table's CHECKs forbid both).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MandateError {
    #[error("sip {sip_id}: sip_day {sip_day} is not a day of the month")]
    SipDay { sip_id: i64, sip_day: i16 },
    #[error("sip {sip_id}: unknown status {status:?}")]
    Status { sip_id: i64, status: String },
}

impl TryFrom<MandateRow> for Mandate {
    type Error = MandateError;

    fn try_from(row: MandateRow) -> Result<Self, Self::Error> {
        let sip_day = u32::try_from(row.sip_day).map_err(|_| MandateError::SipDay {
            sip_id: row.sip_id,
            sip_day: row.sip_day,
        })?;
        let status = SipStatus::parse(&row.status).ok_or_else(|| MandateError::Status {
            sip_id: row.sip_id,
            status: row.status.clone(),
        })?;
        Ok(Mandate {
            sip_id: row.sip_id,
            user_id: row.user_id,
            scheme_code: row.scheme_code,
            amount: Paise(row.amount_paise),
            sip_day,
            start_date: row.start_date,
            end_date: row.end_date,
            step_up_bps: row.step_up_bps,
            status,
            paused_until: row.paused_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> MandateRow {
        MandateRow {
            sip_id: 7,
            user_id: 3,
            scheme_code: 119552,
            amount_paise: 150_050,
            sip_day: 10,
            start_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            end_date: None,
            step_up_bps: 1_000,
            status: "paused".into(),
            paused_until: NaiveDate::from_ymd_opt(2027, 1, 31),
        }
    }

    #[test]
    fn a_row_becomes_the_mandate_the_batch_reads() {
        let mandate = Mandate::try_from(row()).unwrap();
        assert_eq!(mandate.amount, Paise(150_050));
        assert_eq!(mandate.sip_day, 10);
        assert_eq!(mandate.step_up_bps, 1_000);
        assert_eq!(mandate.status, SipStatus::Paused);
        assert_eq!(mandate.paused_until, NaiveDate::from_ymd_opt(2027, 1, 31));
    }

    #[test]
    fn a_row_the_table_would_refuse_is_an_error_naming_the_sip() {
        let mut bad = row();
        bad.status = "stopped".into();
        assert_eq!(
            Mandate::try_from(bad).unwrap_err().to_string(),
            "sip 7: unknown status \"stopped\""
        );
        let mut bad = row();
        bad.sip_day = -1;
        assert!(matches!(
            Mandate::try_from(bad),
            Err(MandateError::SipDay { sip_id: 7, .. })
        ));
    }
}
