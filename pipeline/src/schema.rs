//! The warehouse tables' columns, as Arrow schemas and as conversions between rows and record
//! batches. This is the contract with the data team (README "Tables"): standard Parquet types
//! only — `DATE`, `DECIMAL(18,4)`, `INT64`, UTF-8 strings.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Int32Type, Int64Type, Schema, SchemaRef,
};
use datafusion::arrow::error::ArrowError;

use crate::money::Nav;
use crate::nav::{NavSource, Scheme};

/// Precision and scale of NAV and unit columns: `Decimal128(18,4)`.
pub const NAV_PRECISION: u8 = 18;
pub const NAV_SCALE: i8 = 4;

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
            &DataType::Decimal128(18, 4)
        );
        assert_eq!(navs_from_batch(&batch).unwrap(), navs);
    }
}
