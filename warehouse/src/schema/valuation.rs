//! What the valuation batch writes: snapshots, hourly snapshots, lines and chart points.

use super::*;

/// `return_pct` and `weight_pct`: percent with four decimals.
pub const RETURN_PCT_SCALE: i8 = pipeline::money::RETURN_PCT_SCALE as i8;
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
            DataType::Decimal128(RETURN_PRECISION, RETURN_PCT_SCALE),
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
            DataType::Decimal128(WEIGHT_PRECISION, RETURN_PCT_SCALE),
            false,
        ),
        // The scheme's own XIRR (null hourly or without a solution) and one-day change.
        Field::new("xirr", DataType::Float64, true),
        Field::new("day_change", money_type(), false),
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
        money(rows.iter().map(|r| r.invested))?,
        money(rows.iter().map(|r| r.current_value))?,
        money(rows.iter().map(|r| r.gain))?,
        decimals(
            rows.iter().map(|r| r.return_pct),
            RETURN_PRECISION,
            RETURN_PCT_SCALE,
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
            units(rows.iter().map(|r| r.units))?,
            money(rows.iter().map(|r| r.invested))?,
            dates(rows.iter().map(|r| Some(r.nav_date))),
            navs(rows.iter().map(|r| r.nav))?,
            money(rows.iter().map(|r| r.value))?,
            decimals(
                rows.iter().map(|r| Some(r.weight_pct)),
                WEIGHT_PRECISION,
                RETURN_PCT_SCALE,
            )?,
            Arc::new(rows.iter().map(|r| r.xirr).collect::<Float64Array>()),
            money(rows.iter().map(|r| r.day_change))?,
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
            money(rows.iter().map(|r| r.invested))?,
            money(rows.iter().map(|r| r.value))?,
        ],
    )
}

/// `purchases` as stored in each `as_of=`/`bucket=` partition: a month's executed and
/// reversed instalments (reversals negated), compacted from the month's daily `investments`
/// at its month-end checkpoint and sorted as valuation reads them.
pub fn purchases_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        date("nav_date", false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("amount", money_type(), false),
        Field::new("units", units_type(), false),
    ]))
}

pub fn purchases_to_batch(rows: &[Purchase]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        purchases_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.user_id)),
            dates(rows.iter().map(|r| Some(r.nav_date))),
            int64s(rows.iter().map(|r| r.scheme_code)),
            money(rows.iter().map(|r| r.amount))?,
            units(rows.iter().map(|r| r.units))?,
        ],
    )
}

pub fn purchases_from_batch(batch: &RecordBatch) -> Result<Vec<Purchase>, SchemaError> {
    let c = Columns(batch);
    let (user_id, nav_date, scheme_code) = (
        c.i64("user_id")?,
        c.date("nav_date")?,
        c.i64("scheme_code")?,
    );
    let (amount, units) = (
        c.decimal("amount", MONEY_SCALE)?,
        c.decimal("units", UNITS_SCALE)?,
    );
    (0..batch.num_rows())
        .map(|i| {
            Ok(Purchase {
                user_id: user_id.value(i),
                nav_date: opt_date(nav_date, i).ok_or(SchemaError::Value {
                    column: "nav_date",
                    value: "null".into(),
                })?,
                scheme_code: scheme_code.value(i),
                amount: Paise(scaled(amount, i, "amount")?),
                units: Units(scaled(units, i, "units")?),
            })
        })
        .collect()
}

/// The executed rows of an `investments` batch, as valuation needs them: decoded straight
/// from the columns, without building an `Investment` per row. A reversed row is its
/// allotment negated (same NAV date), so the pair nets to nothing in holdings, invested, the
/// charts and XIRR: the money went back to the investor.
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
    let reversed = InstalmentStatus::Reversed.as_str();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let sign = match status.value(i) {
            s if s == executed => 1,
            s if s == reversed => -1,
            _ => continue,
        };
        let missing = |column: &'static str| SchemaError::Value {
            column,
            value: "null in an executed or reversed instalment".into(),
        };
        out.push(Purchase {
            user_id: user_id.value(i),
            nav_date: opt_date(nav_date, i).ok_or_else(|| missing("nav_date"))?,
            scheme_code: scheme_code.value(i),
            amount: Paise(sign * scaled(amount, i, "amount")?),
            units: Units(sign * opt_scaled(units, i, "units")?.ok_or_else(|| missing("units"))?),
        });
    }
    Ok(out)
}

/// The `user_id` column of a `users` batch.
pub fn user_ids_from_batch(batch: &RecordBatch) -> Result<Vec<i64>, SchemaError> {
    Ok(Columns(batch).i64("user_id")?.values().to_vec())
}
