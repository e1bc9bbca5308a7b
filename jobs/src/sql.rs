//! `sipline sql`: the data team's SQL over every published warehouse table, printed as an
//! aligned table, CSV or JSON lines. CSV and JSON stream batch by batch, so a large result
//! never has to fit in memory; the aligned table needs every row to size its columns.

use std::io::Write;

use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::util::pretty::pretty_format_batches;
use futures::TryStreamExt;
use warehouse::Warehouse;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub async fn run(
    warehouse: &Warehouse,
    query: &str,
    format: OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let ctx = warehouse.session_context_for(query).await?;
    let frame = ctx.sql(query).await?;
    let mut rows = 0_u64;
    match format {
        OutputFormat::Table => {
            let batches = frame.collect().await?;
            rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            writeln!(out, "{}", pretty_format_batches(&batches)?)?;
        }
        OutputFormat::Csv => {
            let mut stream = frame.execute_stream().await?;
            let mut writer = WriterBuilder::new().with_header(true).build(&mut *out);
            while let Some(batch) = stream.try_next().await? {
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
        }
        OutputFormat::Json => {
            let mut stream = frame.execute_stream().await?;
            let mut writer = LineDelimitedWriter::new(&mut *out);
            while let Some(batch) = stream.try_next().await? {
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.finish()?;
        }
    }
    out.flush()?;
    Ok(rows)
}
