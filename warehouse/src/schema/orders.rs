//! The order tables (issue 36): `orders`, one row per executed leg or failed order, and
//! `realized_gains`, one row per piece of a lot a redemption consumed; both per `exec_date=`
//! and `bucket=`.

use pipeline::orders::lots::{RealizedLot, Term};
use pipeline::orders::{OrderLeg, OrderOutcome, RealizedGain, TaxClass};

use super::*;

/// `orders` as stored in each `exec_date=`/`bucket=` partition.
pub fn orders_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("leg", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        date("nav_date", false),
        Field::new("nav", nav_type(), true),
        Field::new("units", units_type(), false),
        Field::new("amount", money_type(), false),
        Field::new("stamp_duty", money_type(), false),
        Field::new("exit_load", money_type(), false),
        Field::new("stt", money_type(), false),
        Field::new("net_amount", money_type(), false),
        Field::new("cost", money_type(), false),
        Field::new("gain", money_type(), false),
        date("payout_date", true),
        Field::new("failure", DataType::Utf8, true),
    ]))
}

/// `realized_gains` as stored in each `exec_date=`/`bucket=` partition.
pub fn realized_gains_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("seq", DataType::Int32, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("scheme_code", DataType::Int64, false),
        Field::new("isin", DataType::Utf8, true),
        Field::new("tax_class", DataType::Utf8, false),
        Field::new("term", DataType::Utf8, false),
        Field::new("fy", DataType::Utf8, false),
        date("purchase_date", false),
        Field::new("purchase_nav", nav_type(), false),
        Field::new("units", units_type(), false),
        Field::new("purchase_value", money_type(), false),
        Field::new("stamp_duty", money_type(), false),
        date("sale_date", false),
        Field::new("sale_nav", nav_type(), false),
        Field::new("gross_sale_value", money_type(), false),
        Field::new("exit_load", money_type(), false),
        Field::new("stt", money_type(), false),
        Field::new("cost", money_type(), false),
        Field::new("gain", money_type(), false),
    ]))
}

pub fn orders_to_batch(rows: &[OrderOutcome]) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        orders_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.order_id)),
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            texts(rows.iter().map(|r| r.leg.as_str())),
            texts(
                rows.iter()
                    .map(|r| if r.executed { "executed" } else { "failed" }),
            ),
            dates(rows.iter().map(|r| Some(r.nav_date))),
            navs(rows.iter().map(|r| r.nav))?,
            units(rows.iter().map(|r| r.units))?,
            money(rows.iter().map(|r| r.amount))?,
            money(rows.iter().map(|r| r.stamp_duty))?,
            money(rows.iter().map(|r| r.exit_load))?,
            money(rows.iter().map(|r| r.stt))?,
            money(rows.iter().map(|r| r.net_amount))?,
            money(rows.iter().map(|r| r.cost))?,
            money(rows.iter().map(|r| r.gain))?,
            dates(rows.iter().map(|r| r.payout_date)),
            Arc::new(
                rows.iter()
                    .map(|r| r.failure.as_deref())
                    .collect::<StringArray>(),
            ),
        ],
    )
}

pub fn orders_from_batch(batch: &RecordBatch) -> Result<Vec<OrderOutcome>, SchemaError> {
    let c = Columns(batch);
    let (order_id, user_id, scheme_code) =
        (c.i64("order_id")?, c.i64("user_id")?, c.i64("scheme_code")?);
    let (leg, status, failure) = (c.text("leg")?, c.text("status")?, c.text("failure")?);
    let (nav_date, payout_date) = (c.date("nav_date")?, c.date("payout_date")?);
    let nav = c.decimal("nav", NAV_SCALE)?;
    let units = c.decimal("units", UNITS_SCALE)?;
    let money = |name| c.decimal(name, MONEY_SCALE);
    let (amount, stamp_duty, exit_load, stt) = (
        money("amount")?,
        money("stamp_duty")?,
        money("exit_load")?,
        money("stt")?,
    );
    let (net_amount, cost, gain) = (money("net_amount")?, money("cost")?, money("gain")?);
    (0..batch.num_rows())
        .map(|i| {
            Ok(OrderOutcome {
                order_id: order_id.value(i),
                user_id: user_id.value(i),
                scheme_code: scheme_code.value(i),
                leg: parsed(leg, i, "leg", OrderLeg::parse)?,
                executed: parsed(status, i, "status", |s| match s {
                    "executed" => Some(true),
                    "failed" => Some(false),
                    _ => None,
                })?,
                nav_date: days_to_date(nav_date.value(i)),
                nav: opt_scaled(nav, i, "nav")?.map(Nav::from_scaled),
                units: Units(scaled(units, i, "units")?),
                amount: Paise(scaled(amount, i, "amount")?),
                stamp_duty: Paise(scaled(stamp_duty, i, "stamp_duty")?),
                exit_load: Paise(scaled(exit_load, i, "exit_load")?),
                stt: Paise(scaled(stt, i, "stt")?),
                net_amount: Paise(scaled(net_amount, i, "net_amount")?),
                cost: Paise(scaled(cost, i, "cost")?),
                gain: Paise(scaled(gain, i, "gain")?),
                payout_date: opt_date(payout_date, i),
                failure: text_at(failure, i),
            })
        })
        .collect()
}

pub fn realized_gains_to_batch(rows: &[RealizedGain]) -> Result<RecordBatch, ArrowError> {
    let lots: Vec<&RealizedLot> = rows.iter().map(|r| &r.lot).collect();
    RecordBatch::try_new(
        realized_gains_file_schema(),
        vec![
            int64s(rows.iter().map(|r| r.order_id)),
            Arc::new(rows.iter().map(|r| r.seq).collect::<Int32Array>()),
            int64s(rows.iter().map(|r| r.user_id)),
            int64s(rows.iter().map(|r| r.scheme_code)),
            Arc::new(
                rows.iter()
                    .map(|r| r.isin.as_deref())
                    .collect::<StringArray>(),
            ),
            texts(rows.iter().map(|r| r.tax_class.as_str())),
            texts(lots.iter().map(|l| l.term.as_str())),
            texts(lots.iter().map(|l| l.fy.as_str())),
            dates(lots.iter().map(|l| Some(l.purchase_date))),
            navs(lots.iter().map(|l| l.purchase_nav))?,
            units(lots.iter().map(|l| l.units))?,
            money(lots.iter().map(|l| l.purchase_value))?,
            money(lots.iter().map(|l| l.stamp_duty))?,
            dates(lots.iter().map(|l| Some(l.sale_date))),
            navs(lots.iter().map(|l| l.sale_nav))?,
            money(lots.iter().map(|l| l.gross_sale_value))?,
            money(lots.iter().map(|l| l.exit_load))?,
            money(lots.iter().map(|l| l.stt))?,
            money(lots.iter().map(|l| l.cost))?,
            money(lots.iter().map(|l| l.gain))?,
        ],
    )
}

pub fn realized_gains_from_batch(batch: &RecordBatch) -> Result<Vec<RealizedGain>, SchemaError> {
    let c = Columns(batch);
    let (order_id, seq, user_id, scheme_code) = (
        c.i64("order_id")?,
        c.i32("seq")?,
        c.i64("user_id")?,
        c.i64("scheme_code")?,
    );
    let (isin, tax_class, term, fy) = (
        c.text("isin")?,
        c.text("tax_class")?,
        c.text("term")?,
        c.text("fy")?,
    );
    let (purchase_date, sale_date) = (c.date("purchase_date")?, c.date("sale_date")?);
    let (purchase_nav, sale_nav) = (
        c.decimal("purchase_nav", NAV_SCALE)?,
        c.decimal("sale_nav", NAV_SCALE)?,
    );
    let units = c.decimal("units", UNITS_SCALE)?;
    let money = |name| c.decimal(name, MONEY_SCALE);
    let (purchase_value, stamp_duty, gross, exit_load, stt, cost, gain) = (
        money("purchase_value")?,
        money("stamp_duty")?,
        money("gross_sale_value")?,
        money("exit_load")?,
        money("stt")?,
        money("cost")?,
        money("gain")?,
    );
    (0..batch.num_rows())
        .map(|i| {
            Ok(RealizedGain {
                order_id: order_id.value(i),
                seq: seq.value(i),
                user_id: user_id.value(i),
                scheme_code: scheme_code.value(i),
                isin: text_at(isin, i),
                tax_class: parsed(tax_class, i, "tax_class", TaxClass::parse)?,
                lot: RealizedLot {
                    purchase_date: days_to_date(purchase_date.value(i)),
                    purchase_nav: Nav::from_scaled(scaled(purchase_nav, i, "purchase_nav")?),
                    units: Units(scaled(units, i, "units")?),
                    purchase_value: Paise(scaled(purchase_value, i, "purchase_value")?),
                    stamp_duty: Paise(scaled(stamp_duty, i, "stamp_duty")?),
                    sale_date: days_to_date(sale_date.value(i)),
                    sale_nav: Nav::from_scaled(scaled(sale_nav, i, "sale_nav")?),
                    gross_sale_value: Paise(scaled(gross, i, "gross_sale_value")?),
                    exit_load: Paise(scaled(exit_load, i, "exit_load")?),
                    stt: Paise(scaled(stt, i, "stt")?),
                    cost: Paise(scaled(cost, i, "cost")?),
                    gain: Paise(scaled(gain, i, "gain")?),
                    term: parsed(term, i, "term", |t| match t {
                        "short" => Some(Term::Short),
                        "long" => Some(Term::Long),
                        _ => None,
                    })?,
                    fy: fy.value(i).to_string(),
                },
            })
        })
        .collect()
}
