//! The warehouse tables' columns, as Arrow schemas and as conversions between rows and record
//! batches. This is the contract with the data team (README "Tables"): standard Parquet types
//! only — `DATE`, `DECIMAL(18,2)` money, `DECIMAL(18,8)` NAVs, `DECIMAL(18,4)` units, `INT64`,
//! UTF-8 strings.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Decimal128Builder, Float64Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use datafusion::arrow::error::ArrowError;

use crate::money::Nav;
use crate::nav::{NavSource, Scheme};
use crate::sip::{
    Holding, InstalmentStatus, Investment, Mandate, Paise, SipEvent, SipState, SipStatus, Units,
};
use crate::valuation::{ChartPoint, PortfolioLine, PortfolioSnapshot, Purchase};

/// Precision and scale of NAV columns: `Decimal128(18,8)`, the most decimals AMFI publishes.
/// Files written before NAVs had eight decimals hold `Decimal128(18,4)`; the warehouse widens
/// them on read (see `warehouse::conform`), so a warehouse needs no rewrite.
pub const NAV_PRECISION: u8 = 18;
pub const NAV_SCALE: i8 = Nav::SCALE as i8;
/// Precision and scale of unit columns: `Decimal128(18,4)`.
pub const UNITS_PRECISION: u8 = 18;
pub const UNITS_SCALE: i8 = Units::SCALE as i8;

/// Units are allotted to 3 decimals unless a scheme says otherwise.
pub const DEFAULT_UNIT_DECIMALS: i32 = 3;

/// Why a batch read back from the warehouse does not fit the contract.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("column `{0}` is missing or has the wrong type")]
    Column(&'static str),
    #[error("column `{column}` has an unexpected value: {value}")]
    Value { column: &'static str, value: String },
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

/// `schemes`: one row per AMFI scheme code.
pub fn schemes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("isin_growth", DataType::Utf8, true),
        Field::new("isin_reinvestment", DataType::Utf8, true),
        Field::new("scheme_name", DataType::Utf8, false),
        Field::new("fund_house", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("scheme_type", DataType::Utf8, true),
        Field::new("plan", DataType::Utf8, true),
        Field::new("option", DataType::Utf8, true),
        Field::new("unit_decimals", DataType::Int32, false),
    ]))
}

/// `navs` as stored in each `nav_date=` partition's file; `nav_date` is the partition column.
pub fn navs_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("nav", DataType::Decimal128(NAV_PRECISION, NAV_SCALE), false),
        Field::new("source", DataType::Utf8, false),
    ]))
}

/// A `schemes` row: the scheme as published plus the allotment rule sipline keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeRow {
    pub scheme: Scheme,
    pub unit_decimals: i32,
}

/// A `navs` row within one `nav_date` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavRow {
    pub scheme_code: i64,
    pub nav: Nav,
    pub source: NavSource,
}

fn strings<'a>(rows: &'a [SchemeRow], get: impl Fn(&'a Scheme) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(|r| get(&r.scheme)).collect::<StringArray>())
}

pub fn schemes_to_batch(rows: &[SchemeRow]) -> Result<RecordBatch, ArrowError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rows.iter()
                .map(|r| r.scheme.scheme_code)
                .collect::<Int64Array>(),
        ),
        strings(rows, |s| s.isin_growth.as_deref()),
        strings(rows, |s| s.isin_reinvestment.as_deref()),
        strings(rows, |s| Some(s.scheme_name.as_str())),
        strings(rows, |s| s.fund_house.as_deref()),
        strings(rows, |s| s.category.as_deref()),
        strings(rows, |s| s.scheme_type.as_deref()),
        strings(rows, |s| s.plan.as_deref()),
        strings(rows, |s| s.option.as_deref()),
        Arc::new(rows.iter().map(|r| r.unit_decimals).collect::<Int32Array>()),
    ];
    RecordBatch::try_new(schemes_schema(), columns)
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a ArrayRef, SchemaError> {
    batch.column_by_name(name).ok_or(SchemaError::Column(name))
}

fn utf8<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray, SchemaError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or(SchemaError::Column(name))
}

fn text_at(array: &StringArray, i: usize) -> Option<String> {
    array.is_valid(i).then(|| array.value(i).to_string())
}

pub fn schemes_from_batch(batch: &RecordBatch) -> Result<Vec<SchemeRow>, SchemaError> {
    let codes = column(batch, "scheme_code")?
        .as_primitive_opt::<Int64Type>()
        .ok_or(SchemaError::Column("scheme_code"))?;
    let decimals = column(batch, "unit_decimals")?
        .as_primitive_opt::<Int32Type>()
        .ok_or(SchemaError::Column("unit_decimals"))?;
    let (growth, reinvest, name) = (
        utf8(batch, "isin_growth")?,
        utf8(batch, "isin_reinvestment")?,
        utf8(batch, "scheme_name")?,
    );
    let (house, category, scheme_type) = (
        utf8(batch, "fund_house")?,
        utf8(batch, "category")?,
        utf8(batch, "scheme_type")?,
    );
    let (plan, option) = (utf8(batch, "plan")?, utf8(batch, "option")?);
    Ok((0..batch.num_rows())
        .map(|i| SchemeRow {
            scheme: Scheme {
                scheme_code: codes.value(i),
                isin_growth: text_at(growth, i),
                isin_reinvestment: text_at(reinvest, i),
                scheme_name: name.value(i).to_string(),
                fund_house: text_at(house, i),
                category: text_at(category, i),
                scheme_type: text_at(scheme_type, i),
                plan: text_at(plan, i),
                option: text_at(option, i),
            },
            unit_decimals: decimals.value(i),
        })
        .collect())
}

pub fn navs_to_batch(rows: &[NavRow]) -> Result<RecordBatch, ArrowError> {
    let mut navs = Decimal128Builder::with_capacity(rows.len())
        .with_precision_and_scale(NAV_PRECISION, NAV_SCALE)?;
    for row in rows {
        navs.append_value(i128::from(row.nav.scaled()));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.scheme_code).collect::<Int64Array>()),
        Arc::new(navs.finish()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.source.as_str()))
                .collect::<StringArray>(),
        ),
    ];
    RecordBatch::try_new(navs_file_schema(), columns)
}

pub fn navs_from_batch(batch: &RecordBatch) -> Result<Vec<NavRow>, SchemaError> {
    let codes = column(batch, "scheme_code")?
        .as_primitive_opt::<Int64Type>()
        .ok_or(SchemaError::Column("scheme_code"))?;
    let navs = column(batch, "nav")?
        .as_primitive_opt::<Decimal128Type>()
        .ok_or(SchemaError::Column("nav"))?;
    if navs.scale() != NAV_SCALE {
        return Err(SchemaError::Column("nav"));
    }
    let sources = utf8(batch, "source")?;
    (0..batch.num_rows())
        .map(|i| {
            let scaled = i64::try_from(navs.value(i)).map_err(|_| SchemaError::Value {
                column: "nav",
                value: navs.value(i).to_string(),
            })?;
            let source = NavSource::parse(sources.value(i)).ok_or_else(|| SchemaError::Value {
                column: "source",
                value: sources.value(i).to_string(),
            })?;
            Ok(NavRow {
                scheme_code: codes.value(i),
                nav: Nav::from_scaled(scaled),
                source,
            })
        })
        .collect()
}

// ---- Users, SIPs and what the execution batch writes -------------------------------------

/// Money columns: rupees as `Decimal128(18,2)`.
pub const MONEY_PRECISION: u8 = 18;
pub const MONEY_SCALE: i8 = 2;
/// `sips.step_up_pct`: a percentage with two decimals.
pub const PCT_PRECISION: u8 = 5;
pub const PCT_SCALE: i8 = 2;

fn money_type() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
}

fn nav_type() -> DataType {
    DataType::Decimal128(NAV_PRECISION, NAV_SCALE)
}

fn units_type() -> DataType {
    DataType::Decimal128(UNITS_PRECISION, UNITS_SCALE)
}

fn date(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Date32, nullable)
}

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
            DataType::Decimal128(PCT_PRECISION, PCT_SCALE),
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

/// Days since 1970-01-01, the `Date32` encoding.
pub fn date_to_days(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

pub fn days_to_date(days: i32) -> NaiveDate {
    NaiveDate::default() + chrono::TimeDelta::days(i64::from(days))
}

fn decimals(
    values: impl Iterator<Item = Option<i64>>,
    precision: u8,
    scale: i8,
) -> Result<ArrayRef, ArrowError> {
    let array = values
        .map(|v| v.map(i128::from))
        .collect::<Decimal128Array>()
        .with_precision_and_scale(precision, scale)?;
    Ok(Arc::new(array))
}

fn dates(values: impl Iterator<Item = Option<NaiveDate>>) -> ArrayRef {
    Arc::new(values.map(|v| v.map(date_to_days)).collect::<Date32Array>())
}

fn int64s(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(values.collect::<Int64Array>())
}

fn texts<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

/// Typed access to one column of a batch read back from the warehouse, checked once.
struct Columns<'a>(&'a RecordBatch);

impl<'a> Columns<'a> {
    fn i64(&self, name: &'static str) -> Result<&'a Int64Array, SchemaError> {
        column(self.0, name)?
            .as_primitive_opt::<Int64Type>()
            .ok_or(SchemaError::Column(name))
    }
    fn i32(&self, name: &'static str) -> Result<&'a Int32Array, SchemaError> {
        column(self.0, name)?
            .as_primitive_opt::<Int32Type>()
            .ok_or(SchemaError::Column(name))
    }
    fn date(&self, name: &'static str) -> Result<&'a Date32Array, SchemaError> {
        column(self.0, name)?
            .as_primitive_opt::<Date32Type>()
            .ok_or(SchemaError::Column(name))
    }
    fn decimal(&self, name: &'static str, scale: i8) -> Result<&'a Decimal128Array, SchemaError> {
        column(self.0, name)?
            .as_primitive_opt::<Decimal128Type>()
            .filter(|a| a.scale() == scale)
            .ok_or(SchemaError::Column(name))
    }
    fn text(&self, name: &'static str) -> Result<&'a StringArray, SchemaError> {
        utf8(self.0, name)
    }
}

fn opt_date(array: &Date32Array, i: usize) -> Option<NaiveDate> {
    array.is_valid(i).then(|| days_to_date(array.value(i)))
}

fn scaled(array: &Decimal128Array, i: usize, name: &'static str) -> Result<i64, SchemaError> {
    i64::try_from(array.value(i)).map_err(|_| SchemaError::Value {
        column: name,
        value: array.value(i).to_string(),
    })
}

fn opt_scaled(
    array: &Decimal128Array,
    i: usize,
    name: &'static str,
) -> Result<Option<i64>, SchemaError> {
    if array.is_valid(i) {
        scaled(array, i, name).map(Some)
    } else {
        Ok(None)
    }
}

fn parsed<T>(
    array: &StringArray,
    i: usize,
    name: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, SchemaError> {
    parse(array.value(i)).ok_or_else(|| SchemaError::Value {
        column: name,
        value: array.value(i).to_string(),
    })
}

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: i64,
    pub auth_subject: String,
    /// Microseconds since the epoch, UTC.
    pub created_at_micros: i64,
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
            decimals(
                rows.iter().map(|r| Some(r.amount.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            Arc::new(
                rows.iter()
                    .map(|r| r.sip_day as i32)
                    .collect::<Int32Array>(),
            ),
            dates(rows.iter().map(|r| Some(r.start_date))),
            dates(rows.iter().map(|r| r.end_date)),
            decimals(
                rows.iter().map(|r| Some(r.step_up_bps)),
                PCT_PRECISION,
                PCT_SCALE,
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
    let step_up = c.decimal("step_up_pct", PCT_SCALE)?;
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
            decimals(
                rows.iter().map(|r| Some(r.amount.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.stamp_duty.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            dates(rows.iter().map(|r| r.nav_date)),
            decimals(
                rows.iter().map(|r| r.nav.map(Nav::scaled)),
                NAV_PRECISION,
                NAV_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| r.units.map(|u| u.0)),
                UNITS_PRECISION,
                UNITS_SCALE,
            )?,
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
            decimals(
                rows.iter().map(|r| Some(r.amount.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            dates(rows.iter().map(|r| r.nav_date)),
            decimals(
                rows.iter().map(|r| r.nav.map(Nav::scaled)),
                NAV_PRECISION,
                NAV_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| r.units.map(|u| u.0)),
                UNITS_PRECISION,
                UNITS_SCALE,
            )?,
        ],
    )
}

pub fn holdings_to_batch(rows: &[Holding]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        holdings_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            decimals(
                rows.iter().map(|r| Some(r.units.0)),
                UNITS_PRECISION,
                UNITS_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.invested.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
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

/// A `debit_failures` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebitFailure {
    pub sip_id: i64,
    pub due_date: NaiveDate,
    pub reason: String,
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

// ---- What the valuation batch writes ------------------------------------------------------

/// `return_pct` and `weight_pct`: percent with four decimals.
pub const RATIO_SCALE: i8 = crate::valuation::PCT_SCALE as i8;
const RETURN_PRECISION: u8 = 18;
const WEIGHT_PRECISION: u8 = 7;

fn snapshot_fields() -> Vec<Field> {
    vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("invested", money_type(), false),
        Field::new("current_value", money_type(), false),
        Field::new("gain", money_type(), false),
        Field::new(
            "abs_return_pct",
            DataType::Decimal128(RETURN_PRECISION, RATIO_SCALE),
            true,
        ),
        Field::new("xirr", DataType::Float64, true),
        Field::new("schemes", DataType::Int32, false),
        date("nav_date", true),
    ]
}

/// `portfolio_snapshots` as stored in each `as_of=`/`bucket=` partition.
pub fn portfolio_snapshots_file_schema() -> SchemaRef {
    Arc::new(Schema::new(snapshot_fields()))
}

/// `portfolio_hourly`: the snapshot columns without a meaningful `xirr`, plus the hour.
pub fn portfolio_hourly_file_schema() -> SchemaRef {
    let mut fields = vec![Field::new("hour", DataType::Int32, false)];
    fields.extend(snapshot_fields());
    Arc::new(Schema::new(fields))
}

/// `portfolio_lines` as stored in each `as_of=`/`bucket=` partition.
pub fn portfolio_lines_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("units", units_type(), false),
        Field::new("invested", money_type(), false),
        date("nav_date", false),
        Field::new("nav", nav_type(), false),
        Field::new("current_value", money_type(), false),
        Field::new(
            "weight_pct",
            DataType::Decimal128(WEIGHT_PRECISION, RATIO_SCALE),
            false,
        ),
    ]))
}

/// `portfolio_charts` as stored in each `as_of=`/`bucket=` partition.
pub fn portfolio_charts_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("chart", DataType::Utf8, false),
        Field::new("seq", DataType::Int32, false),
        Field::new("label", DataType::Utf8, true),
        date("period", true),
        Field::new("invested", money_type(), false),
        Field::new("value", money_type(), false),
    ]))
}

fn snapshot_columns(rows: &[PortfolioSnapshot]) -> Result<Vec<ArrayRef>, ArrowError> {
    Ok(vec![
        int64s(rows.iter().map(|r| r.user_id)),
        decimals(
            rows.iter().map(|r| Some(r.invested.0)),
            MONEY_PRECISION,
            MONEY_SCALE,
        )?,
        decimals(
            rows.iter().map(|r| Some(r.current_value.0)),
            MONEY_PRECISION,
            MONEY_SCALE,
        )?,
        decimals(
            rows.iter().map(|r| Some(r.gain.0)),
            MONEY_PRECISION,
            MONEY_SCALE,
        )?,
        decimals(
            rows.iter().map(|r| r.return_pct),
            RETURN_PRECISION,
            RATIO_SCALE,
        )?,
        Arc::new(rows.iter().map(|r| r.xirr).collect::<Float64Array>()),
        Arc::new(rows.iter().map(|r| r.schemes).collect::<Int32Array>()),
        dates(rows.iter().map(|r| r.nav_date)),
    ])
}

pub fn portfolio_snapshots_to_batch(rows: &[PortfolioSnapshot]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(portfolio_snapshots_file_schema(), snapshot_columns(rows)?)
}

pub fn portfolio_hourly_to_batch(
    hour: u32,
    rows: &[PortfolioSnapshot],
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(Int32Array::from(vec![hour as i32; rows.len()]))];
    columns.extend(snapshot_columns(rows)?);
    RecordBatch::try_new(portfolio_hourly_file_schema(), columns)
}

pub fn portfolio_lines_to_batch(rows: &[PortfolioLine]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        portfolio_lines_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            decimals(
                rows.iter().map(|r| Some(r.units.0)),
                UNITS_PRECISION,
                UNITS_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.invested.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            dates(rows.iter().map(|r| Some(r.nav_date))),
            decimals(
                rows.iter().map(|r| Some(r.nav.scaled())),
                NAV_PRECISION,
                NAV_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.value.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.weight_pct)),
                WEIGHT_PRECISION,
                RATIO_SCALE,
            )?,
        ],
    )
}

pub fn portfolio_charts_to_batch(rows: &[ChartPoint]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        portfolio_charts_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            texts(rows.iter().map(|r| r.chart.as_str())),
            Arc::new(rows.iter().map(|r| r.seq).collect::<Int32Array>()),
            Arc::new(
                rows.iter()
                    .map(|r| r.label.as_deref())
                    .collect::<StringArray>(),
            ),
            dates(rows.iter().map(|r| r.period)),
            decimals(
                rows.iter().map(|r| Some(r.invested.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
            decimals(
                rows.iter().map(|r| Some(r.value.0)),
                MONEY_PRECISION,
                MONEY_SCALE,
            )?,
        ],
    )
}

/// The executed rows of an `investments` batch, as valuation needs them: decoded straight
/// from the columns, without building an `Investment` per row.
pub fn purchases_from_investments_batch(batch: &RecordBatch) -> Result<Vec<Purchase>, SchemaError> {
    let c = Columns(batch);
    let (user_id, scheme_code, status) =
        (c.i64("user_id")?, c.i64("scheme_code")?, c.text("status")?);
    let (nav_date, amount, units) = (
        c.date("nav_date")?,
        c.decimal("amount", MONEY_SCALE)?,
        c.decimal("units", UNITS_SCALE)?,
    );
    let executed = InstalmentStatus::Executed.as_str();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        if status.value(i) != executed {
            continue;
        }
        let missing = |column: &'static str| SchemaError::Value {
            column,
            value: "null in an executed instalment".into(),
        };
        out.push(Purchase {
            user_id: user_id.value(i),
            nav_date: opt_date(nav_date, i).ok_or_else(|| missing("nav_date"))?,
            scheme_code: scheme_code.value(i),
            amount: Paise(scaled(amount, i, "amount")?),
            units: Units(opt_scaled(units, i, "units")?.ok_or_else(|| missing("units"))?),
        });
    }
    Ok(out)
}

/// The `user_id` column of a `users` batch.
pub fn user_ids_from_batch(batch: &RecordBatch) -> Result<Vec<i64>, SchemaError> {
    Ok(Columns(batch).i64("user_id")?.values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_batch_round_trip() {
        let scheme = Scheme {
            scheme_code: 119551,
            isin_growth: Some("INF209KA12Z1".into()),
            isin_reinvestment: None,
            scheme_name: "A Fund - Direct - IDCW".into(),
            fund_house: Some("A Mutual Fund".into()),
            category: Some("Debt Scheme - Banking and PSU Fund".into()),
            scheme_type: Some("Open Ended".into()),
            plan: Some("Direct".into()),
            option: None,
        };
        let rows = vec![SchemeRow {
            scheme,
            unit_decimals: 3,
        }];
        assert_eq!(
            schemes_from_batch(&schemes_to_batch(&rows).unwrap()).unwrap(),
            rows
        );
        let navs = vec![
            NavRow {
                scheme_code: 1,
                nav: Nav::from_scaled(1_050_576),
                source: NavSource::Amfi,
            },
            NavRow {
                scheme_code: 2,
                nav: Nav::from_scaled(1),
                source: NavSource::Bse,
            },
        ];
        let batch = navs_to_batch(&navs).unwrap();
        assert_eq!(
            batch.schema().field(1).data_type(),
            &DataType::Decimal128(18, 8)
        );
        assert_eq!(navs_from_batch(&batch).unwrap(), navs);
    }
}
