//! `schemes` and `navs`: what NAV ingest writes.

use super::*;

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
