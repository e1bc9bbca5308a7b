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

use pipeline::holdings::Holding;
use pipeline::money::{Nav, Paise, Units};
use pipeline::nav::{NavRow, NavSource, Scheme, SchemeRow};
use pipeline::sip::{
    DebitFailure, InstalmentStatus, Investment, Mandate, SipEvent, SipState, SipStatus,
};
use pipeline::user::UserRow;
use pipeline::valuation::{ChartPoint, PortfolioLine, PortfolioSnapshot, Purchase};

mod nav;
mod orders;
mod sip;
mod valuation;

pub use nav::*;
pub use orders::*;
pub use sip::*;
pub use valuation::*;

/// Precision and scale of NAV columns: `Decimal128(18,8)`, the most decimals AMFI publishes.
/// Files written before NAVs had eight decimals hold `Decimal128(18,4)`; the warehouse widens
/// them on read (see `warehouse::conform`), so a warehouse needs no rewrite.
pub const NAV_PRECISION: u8 = 18;
pub const NAV_SCALE: i8 = Nav::SCALE as i8;
/// Precision and scale of unit columns: `Decimal128(18,4)`.
pub const UNITS_PRECISION: u8 = 18;
pub const UNITS_SCALE: i8 = Units::SCALE as i8;

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

// ---- Users, SIPs and what the execution batch writes -------------------------------------

/// Money columns: rupees as `Decimal128(18,2)`.
pub const MONEY_PRECISION: u8 = 18;
pub const MONEY_SCALE: i8 = 2;
/// `sips.step_up_pct`: a percentage with two decimals.
pub const STEP_UP_PCT_PRECISION: u8 = 5;
pub const STEP_UP_PCT_SCALE: i8 = pipeline::money::STEP_UP_PCT_SCALE as i8;

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

/// A money column (`Decimal128(18,2)`) from rupee amounts, each required (`Paise`) or not
/// (`Option<Paise>`).
fn money<V: Into<Option<Paise>>>(values: impl Iterator<Item = V>) -> Result<ArrayRef, ArrowError> {
    decimals(
        values.map(|v| v.into().map(|p| p.0)),
        MONEY_PRECISION,
        MONEY_SCALE,
    )
}

/// A units column (`Decimal128(18,4)`).
fn units<V: Into<Option<Units>>>(values: impl Iterator<Item = V>) -> Result<ArrayRef, ArrowError> {
    decimals(
        values.map(|v| v.into().map(|u| u.0)),
        UNITS_PRECISION,
        UNITS_SCALE,
    )
}

/// A NAV column (`Decimal128(18,8)`).
fn navs<V: Into<Option<Nav>>>(values: impl Iterator<Item = V>) -> Result<ArrayRef, ArrowError> {
    decimals(
        values.map(|v| v.into().map(Nav::scaled)),
        NAV_PRECISION,
        NAV_SCALE,
    )
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

    #[test]
    fn compacted_purchases_survive_a_batch_round_trip() {
        let date = NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        let purchases = vec![
            pipeline::valuation::Purchase {
                user_id: 1,
                nav_date: date,
                scheme_code: 119551,
                amount: Paise(100_000),
                units: Units(12_345),
            },
            // A reversal is stored negated.
            pipeline::valuation::Purchase {
                user_id: 1,
                nav_date: date,
                scheme_code: 119551,
                amount: Paise(-100_000),
                units: Units(-12_345),
            },
        ];
        let batch = purchases_to_batch(&purchases).unwrap();
        assert_eq!(batch.schema(), purchases_file_schema());
        assert_eq!(purchases_from_batch(&batch).unwrap(), purchases);
    }
}
