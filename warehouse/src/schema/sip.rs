//! `users`, `sips` and what the execution batch writes: `investments`, `sip_state`,
//! `sip_events`, `holdings`, `debit_failures`.

use super::*;

/// `users`, one file per bucket.
pub fn users_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("auth_subject", DataType::Utf8, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// `sips` as stored in each `as_of=`/`bucket=` partition.
pub fn sips_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sip_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("amount", money_type(), false),
        Field::new("sip_day", DataType::Int32, false),
        date("start_date", false),
        date("end_date", true),
        Field::new(
            "step_up_pct",
            DataType::Decimal128(STEP_UP_PCT_PRECISION, STEP_UP_PCT_SCALE),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        date("paused_until", true),
    ]))
}

/// `investments` as stored in each `exec_date=`/`bucket=` partition.
pub fn investments_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sip_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        date("due_date", false),
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", money_type(), false),
        Field::new("stamp_duty", money_type(), false),
        date("nav_date", true),
        Field::new("nav", nav_type(), true),
        Field::new("units", units_type(), true),
    ]))
}

/// `sip_state` as stored in each `exec_date=`/`bucket=` partition.
pub fn sip_state_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sip_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("failure_streak", DataType::Int32, false),
        date("cancelled_on", true),
    ]))
}

/// `sip_events` as stored in each `exec_date=`/`bucket=` partition.
pub fn sip_events_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("sip_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        date("due_date", false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("amount", money_type(), false),
        date("nav_date", true),
        Field::new("nav", nav_type(), true),
        Field::new("units", units_type(), true),
    ]))
}

/// `holdings` as stored in each `as_of=`/`bucket=` checkpoint.
pub fn holdings_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("units", units_type(), false),
        Field::new("invested", money_type(), false),
    ]))
}

/// `debit_failures`: the bank's report of failed SIP debits, per `exec_date=`.
pub fn debit_failures_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("sip_id", DataType::Int64, false),
        date("due_date", false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}
pub fn users_to_batch(rows: &[UserRow]) -> Result<RecordBatch, ArrowError> {
    let created = rows
        .iter()
        .map(|r| Some(r.created_at_micros))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    RecordBatch::try_new(
        users_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            texts(rows.iter().map(|r| r.auth_subject.as_str())),
            Arc::new(created),
        ],
    )
}

pub fn sips_to_batch(rows: &[Mandate]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        sips_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.sip_id)),
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            money(rows.iter().map(|r| r.amount))?,
            Arc::new(
                rows.iter()
                    .map(|r| r.sip_day as i32)
                    .collect::<Int32Array>(),
            ),
            dates(rows.iter().map(|r| Some(r.start_date))),
            dates(rows.iter().map(|r| r.end_date)),
            decimals(
                rows.iter().map(|r| Some(r.step_up_bps)),
                STEP_UP_PCT_PRECISION,
                STEP_UP_PCT_SCALE,
            )?,
            texts(rows.iter().map(|r| r.status.as_str())),
            dates(rows.iter().map(|r| r.paused_until)),
        ],
    )
}

pub fn sips_from_batch(batch: &RecordBatch) -> Result<Vec<Mandate>, SchemaError> {
    let c = Columns(batch);
    let (sip_id, user_id, scheme_code) =
        (c.i64("sip_id")?, c.i64("user_id")?, c.i64("scheme_code")?);
    let amount = c.decimal("amount", MONEY_SCALE)?;
    let sip_day = c.i32("sip_day")?;
    let (start, end, paused) = (
        c.date("start_date")?,
        c.date("end_date")?,
        c.date("paused_until")?,
    );
    let step_up = c.decimal("step_up_pct", STEP_UP_PCT_SCALE)?;
    let status = c.text("status")?;
    (0..batch.num_rows())
        .map(|i| {
            Ok(Mandate {
                sip_id: sip_id.value(i),
                user_id: user_id.value(i),
                scheme_code: scheme_code.value(i),
                amount: Paise(scaled(amount, i, "amount")?),
                sip_day: u32::try_from(sip_day.value(i)).map_err(|_| SchemaError::Value {
                    column: "sip_day",
                    value: sip_day.value(i).to_string(),
                })?,
                start_date: days_to_date(start.value(i)),
                end_date: opt_date(end, i),
                step_up_bps: scaled(step_up, i, "step_up_pct")?,
                status: parsed(status, i, "status", SipStatus::parse)?,
                paused_until: opt_date(paused, i),
            })
        })
        .collect()
}

pub fn investments_to_batch(rows: &[Investment]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        investments_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.sip_id)),
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            dates(rows.iter().map(|r| Some(r.due_date))),
            texts(rows.iter().map(|r| r.status.as_str())),
            money(rows.iter().map(|r| r.amount))?,
            money(rows.iter().map(|r| r.stamp_duty))?,
            dates(rows.iter().map(|r| r.nav_date)),
            navs(rows.iter().map(|r| r.nav))?,
            units(rows.iter().map(|r| r.units))?,
        ],
    )
}

pub fn investments_from_batch(batch: &RecordBatch) -> Result<Vec<Investment>, SchemaError> {
    let c = Columns(batch);
    let (sip_id, user_id, scheme_code) =
        (c.i64("sip_id")?, c.i64("user_id")?, c.i64("scheme_code")?);
    let (due, nav_date) = (c.date("due_date")?, c.date("nav_date")?);
    let status = c.text("status")?;
    let (amount, duty) = (
        c.decimal("amount", MONEY_SCALE)?,
        c.decimal("stamp_duty", MONEY_SCALE)?,
    );
    let (nav, units) = (
        c.decimal("nav", NAV_SCALE)?,
        c.decimal("units", UNITS_SCALE)?,
    );
    (0..batch.num_rows())
        .map(|i| {
            Ok(Investment {
                sip_id: sip_id.value(i),
                user_id: user_id.value(i),
                scheme_code: scheme_code.value(i),
                due_date: days_to_date(due.value(i)),
                status: parsed(status, i, "status", InstalmentStatus::parse)?,
                amount: Paise(scaled(amount, i, "amount")?),
                stamp_duty: Paise(scaled(duty, i, "stamp_duty")?),
                nav_date: opt_date(nav_date, i),
                nav: opt_scaled(nav, i, "nav")?.map(Nav::from_scaled),
                units: opt_scaled(units, i, "units")?.map(Units),
            })
        })
        .collect()
}

pub fn sip_state_to_batch(rows: &[SipState]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        sip_state_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.sip_id)),
            int64s(rows.iter().map(|r| r.user_id)),
            Arc::new(
                rows.iter()
                    .map(|r| r.failure_streak)
                    .collect::<Int32Array>(),
            ),
            dates(rows.iter().map(|r| r.cancelled_on)),
        ],
    )
}

pub fn sip_state_from_batch(batch: &RecordBatch) -> Result<Vec<SipState>, SchemaError> {
    let c = Columns(batch);
    let (sip_id, user_id) = (c.i64("sip_id")?, c.i64("user_id")?);
    let streak = c.i32("failure_streak")?;
    let cancelled = c.date("cancelled_on")?;
    Ok((0..batch.num_rows())
        .map(|i| SipState {
            sip_id: sip_id.value(i),
            user_id: user_id.value(i),
            failure_streak: streak.value(i),
            cancelled_on: opt_date(cancelled, i),
        })
        .collect())
}

pub fn sip_events_to_batch(rows: &[SipEvent]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        sip_events_file_schema(),
        vec![
            texts(rows.iter().map(|r| r.event_id.as_str())),
            int64s(rows.iter().map(|r| r.sip_id)),
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            dates(rows.iter().map(|r| Some(r.due_date))),
            texts(rows.iter().map(|r| r.kind.as_str())),
            money(rows.iter().map(|r| r.amount))?,
            dates(rows.iter().map(|r| r.nav_date)),
            navs(rows.iter().map(|r| r.nav))?,
            units(rows.iter().map(|r| r.units))?,
        ],
    )
}

pub fn holdings_to_batch(rows: &[Holding]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        holdings_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            units(rows.iter().map(|r| r.units))?,
            money(rows.iter().map(|r| r.invested))?,
        ],
    )
}

pub fn holdings_from_batch(batch: &RecordBatch) -> Result<Vec<Holding>, SchemaError> {
    let c = Columns(batch);
    let (user_id, scheme_code) = (c.i64("user_id")?, c.i64("scheme_code")?);
    let (units, invested) = (
        c.decimal("units", UNITS_SCALE)?,
        c.decimal("invested", MONEY_SCALE)?,
    );
    (0..batch.num_rows())
        .map(|i| {
            Ok(Holding {
                user_id: user_id.value(i),
                scheme_code: scheme_code.value(i),
                units: Units(scaled(units, i, "units")?),
                invested: Paise(scaled(invested, i, "invested")?),
            })
        })
        .collect()
}

pub fn debit_failures_to_batch(rows: &[DebitFailure]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        debit_failures_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.sip_id)),
            dates(rows.iter().map(|r| Some(r.due_date))),
            texts(rows.iter().map(|r| r.reason.as_str())),
        ],
    )
}

pub fn debit_failures_from_batch(batch: &RecordBatch) -> Result<Vec<DebitFailure>, SchemaError> {
    let c = Columns(batch);
    let (sip_id, due, reason) = (c.i64("sip_id")?, c.date("due_date")?, c.text("reason")?);
    Ok((0..batch.num_rows())
        .map(|i| DebitFailure {
            sip_id: sip_id.value(i),
            due_date: days_to_date(due.value(i)),
            reason: reason.value(i).to_string(),
        })
        .collect())
}
