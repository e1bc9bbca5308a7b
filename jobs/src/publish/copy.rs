//! Reading a date's warehouse partitions and loading them with a binary `COPY`: encoded on
//! blocking threads a few partitions ahead of the copy, optionally sorted into the load order.

use super::*;

/// The published partitions among `parts`, decoded (a missing one reads as no rows).
pub(super) async fn read_all(
    warehouse: &Warehouse,
    table: Table,
    parts: &[Part],
) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for part in parts {
        if let Some(read) = warehouse.read(table, *part).await? {
            batches.extend(read);
        }
    }
    Ok(batches)
}

pub(super) fn date_buckets(date: NaiveDate) -> impl Iterator<Item = Part> {
    (0..BUCKETS).map(move |b| Part::dated_bucket(date, b))
}

/// `batch` with a constant date column appended (the Hive partition value, which the files
/// do not hold).
pub(super) fn with_date(
    batch: &RecordBatch,
    name: &str,
    date: NaiveDate,
) -> anyhow::Result<RecordBatch> {
    let days = Date32Type::from_naive_date(date);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, DataType::Date32, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Date32Array::from(vec![days; batch.num_rows()])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A load's batches in COPY's binary format, each with its row count, in order.
type EncodedBatches = tokio::sync::mpsc::Receiver<anyhow::Result<(Vec<u8>, u64)>>;

/// Encoded batches a load keeps ready ahead of its connection: enough that the server never
/// waits for the next one, few enough that memory holds a handful of batches per stream.
pub(super) const ENCODED_AHEAD: usize = 4;

/// The rows of `parts` of `table` (with `date_column` appended, the Hive partition value the
/// files do not hold), decoded and encoded for a binary COPY on a blocking thread, one batch at
/// a time. So the server parses one batch while the next is encoded, and loads running side by
/// side encode on every core instead of taking turns on the task that drives them all.
pub(super) fn encode_parts(
    warehouse: &Warehouse,
    table: Table,
    parts: Vec<Part>,
    load: LoadOrder,
    progress: &Arc<Progress>,
) -> (EncodedBatches, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(ENCODED_AHEAD);
    let warehouse = warehouse.clone();
    let progress = Arc::clone(progress);
    let runtime = tokio::runtime::Handle::current();
    let producer = tokio::task::spawn_blocking(move || {
        let encode = |batch: &RecordBatch| -> anyhow::Result<(Vec<u8>, u64)> {
            let batch = match load.date_column {
                Some((name, date)) => with_date(batch, name, date)?,
                None => batch.clone(),
            };
            // `encode_batch` reserves the batch's bound itself.
            let mut buffer = Vec::new();
            copy_binary::encode_batch(&batch, &mut buffer)?;
            Ok((buffer, batch.num_rows() as u64))
        };
        // Sends one batch; false once the load is over (an error sent, or the COPY gone).
        let send = |batch: anyhow::Result<&RecordBatch>| -> bool {
            let encoded = batch.and_then(encode);
            let failed = encoded.is_err();
            // The receiver is gone when its COPY failed: nothing left to do.
            sender.blocking_send(encoded).is_ok() && !failed
        };
        let read = |part: Part| -> anyhow::Result<Vec<RecordBatch>> {
            let batches = runtime
                .block_on(warehouse.read(table, part))?
                .unwrap_or_default();
            progress.add(1);
            Ok(batches)
        };
        if load.sorted_by.is_empty() {
            for part in parts {
                match read(part) {
                    Ok(batches) => {
                        if !batches.iter().all(|batch| send(Ok(batch))) {
                            return;
                        }
                    }
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                }
            }
            return;
        }
        let sorted = parts
            .into_iter()
            .map(read)
            .collect::<anyhow::Result<Vec<_>>>()
            .and_then(|parts| sorted_rows(&parts.concat(), load.sorted_by));
        match sorted {
            Ok(Some(rows)) => {
                for offset in (0..rows.num_rows()).step_by(SORTED_BATCH_ROWS) {
                    let length = SORTED_BATCH_ROWS.min(rows.num_rows() - offset);
                    if !send(Ok(&rows.slice(offset, length))) {
                        return;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                send(Err(e));
            }
        }
    });
    (receiver, producer)
}

/// How a load's rows reach the COPY.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LoadOrder {
    /// The Hive partition value the files do not hold, appended as this column.
    pub(super) date_column: Option<(&'static str, NaiveDate)>,
    /// Columns to sort all the load's rows by first (empty: file order, a batch at a time).
    /// Rows inserted into a large indexed table in its indexes' order touch each leaf page
    /// once, in sequence, rather than at random.
    pub(super) sorted_by: &'static [&'static str],
}

/// Rows per COPY batch of a sorted load.
pub(super) const SORTED_BATCH_ROWS: usize = 8192;

/// All `batches` as one, ordered by `columns` (ascending).
pub(super) fn sorted_rows(
    batches: &[RecordBatch],
    columns: &[&str],
) -> anyhow::Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    let keys = columns
        .iter()
        .map(|name| {
            let values = all
                .column_by_name(name)
                .with_context(|| format!("sorting a load by `{name}`, which it lacks"))?;
            anyhow::Ok(SortColumn {
                values: values.clone(),
                options: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&keys, None)?;
    Ok(Some(take_record_batch(&all, &order)?))
}

/// Copies `parts` of `table` in the binary COPY format (`statement` says `FORMAT binary`),
/// a batch at a time, so memory holds a few batches whatever the universe size (a sorted
/// load, `load.sorted_by`, holds all its rows once to sort them).
pub(super) async fn copy_table(
    conn: &mut PgConnection,
    statement: &str,
    warehouse: &Warehouse,
    table: Table,
    parts: Vec<Part>,
    load: LoadOrder,
    progress: &Arc<Progress>,
) -> anyhow::Result<u64> {
    let (mut encoded, producer) = encode_parts(warehouse, table, parts, load, progress);
    let mut copy = BinaryCopy::start(conn, statement).await?;
    let sent = async {
        let mut rows = 0;
        while let Some(next) = encoded.recv().await {
            let (buffer, count) = next?;
            copy.send_encoded(buffer, count).await?;
            rows += count;
        }
        // The channel also closes when the encoder panicked: only a finished one means all.
        producer
            .await
            .with_context(|| format!("encoding `{}` for the COPY", table.name()))?;
        anyhow::Ok(rows)
    }
    .await;
    copy.finish(sent).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn investments(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "sip_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
            ),
            (
                "user_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as _,
            ),
        ])
        .expect("a batch")
    }

    #[test]
    fn a_sorted_load_orders_every_part_together_by_its_columns() {
        // Two buckets' files, each in its own order.
        let parts = [
            investments(&[(64, 9), (2, 7), (64, 3)]),
            investments(&[(3, 1), (2, 5)]),
        ];
        let sorted = sorted_rows(&parts, &["user_id", "sip_id"])
            .expect("sorted")
            .expect("rows");
        let column = |name: &str| -> Vec<i64> {
            sorted
                .column_by_name(name)
                .expect("column")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        assert_eq!(column("user_id"), [2, 2, 3, 64, 64]);
        assert_eq!(column("sip_id"), [5, 7, 1, 3, 9]);
        assert!(sorted_rows(&[], &["user_id"]).expect("nothing").is_none());
        let missing = sorted_rows(&parts, &["due_date"]).expect_err("no such column");
        assert!(missing.to_string().contains("`due_date`"), "{missing}");
    }
}
