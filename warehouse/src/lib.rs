//! The Parquet warehouse: tables on an `object_store` (a local folder by default, `s3://…` in
//! production), written one atomic file per partition and read through DataFusion.
//!
//! Why one file per partition: an object store has no atomic directory rename, but a single
//! put is atomic on every store (a local put is a temp file plus rename). So a rewrite of a
//! partition replaces its one file, and a reader sees the old data or the new, never a mix.
//! The `_SUCCESS` marker follows the data file; readers skip partitions that lack it.

mod inputs;
pub mod layout;
mod local;
mod local_reads;
mod rows;
pub mod schema;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowWriter, ProjectionMask};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::statistics::Statistics;
use datafusion::parquet::schema::types::ColumnPath;
use datafusion::prelude::{col, lit, Expr, SessionContext};
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

pub use inputs::{CheckpointSpan, OrderFlows, PurchaseRead};
pub use layout::{bucket_of, notifications_archive_file_schema, Layout, Part, Table, BUCKETS};
pub use rows::{decode_all, ReadRow, TableRow};

/// Partitions encoded and waiting to be published together by [`Warehouse::commit`], in the
/// order their markers go out: a job stages the partition whose marker says "this run is
/// done" last.
#[derive(Debug, Default)]
pub struct Commit {
    staged: Vec<Staged>,
}

#[derive(Debug)]
struct Staged {
    table: Table,
    partition: Part,
    batches: Vec<RecordBatch>,
}

impl Commit {
    /// Stages `batches` as the new contents of `partition` of `table`.
    pub fn stage(&mut self, table: Table, partition: Part, batches: &[RecordBatch]) -> &mut Self {
        self.staged.push(Staged {
            table,
            partition,
            batches: batches.to_vec(),
        });
        self
    }
}

/// A commit's data files, written but not yet visible: [`Warehouse::publish`] puts them in
/// place and puts their markers. A job whose buckets each write a commit publishes them
/// together, so a local warehouse is flushed four times per run rather than per bucket.
#[derive(Debug)]
#[must_use = "partitions stay invisible until published"]
pub struct Unpublished {
    /// Table, data file and rows of each partition, in the order their markers go out.
    partitions: Vec<(Table, Part, Path, u64)>,
    /// On a local warehouse, the data files under their temporary names.
    temporaries: Vec<local::Temporary>,
}

impl Drop for Unpublished {
    /// A commit never published (a bucket of its run failed) leaves no temporaries behind.
    fn drop(&mut self) {
        local::discard(&self.temporaries);
    }
}

impl Unpublished {
    /// The rows of each partition, in the order staged.
    pub fn rows(&self) -> Vec<u64> {
        self.partitions.iter().map(|p| p.3).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("warehouse location '{location}': {reason}")]
    Location { location: String, reason: String },
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A put that failed (a full disk, a store refusing it): which object, and why.
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: object_store::Error,
    },
    /// A local write that failed (a full disk): which file, and why.
    #[error("writing {path}: {source}")]
    WriteFile {
        path: String,
        source: std::io::Error,
    },
    /// A local folder that could not be listed: which, and why.
    #[error("listing {path}: {source}")]
    ListFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("parquet file {path}: {source}")]
    Parquet { path: String, source: ParquetError },
    #[error("{path}: schema is not the {table} contract: {reason}")]
    Schema {
        path: String,
        table: &'static str,
        reason: String,
    },
    #[error("datafusion: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("{table} {part:?}: rows do not fit the table: {reason}")]
    Rows {
        table: &'static str,
        part: Part,
        reason: String,
    },
}

impl WarehouseError {
    /// Rows of `table`'s partition `part` that do not convert to or from its record batches.
    pub fn rows(table: Table, part: Part, reason: impl std::fmt::Display) -> Self {
        WarehouseError::Rows {
            table: table.name(),
            part,
            reason: reason.to_string(),
        }
    }
}

/// A partition of a table as found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    pub part: Part,
    /// Whether its `_SUCCESS` marker exists (only published partitions are read).
    pub published: bool,
}

/// A warehouse: an object store, the prefix the tables live under, and the URL DataFusion
/// knows it by.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    url: Url,
}

impl Warehouse {
    /// Opens a warehouse from a folder path (created if missing) or an object-store URL
    /// (`file:///…`, `s3://bucket/prefix` with the usual `AWS_*` environment, `memory://`).
    pub fn open(location: &str) -> Result<Self, WarehouseError> {
        let err = |reason: String| WarehouseError::Location {
            location: location.to_string(),
            reason,
        };
        let url = match Url::parse(location) {
            Ok(url) if url.scheme().len() > 1 => url,
            // Not a URL (or a Windows drive letter): a local folder.
            _ => {
                std::fs::create_dir_all(location).map_err(|e| err(e.to_string()))?;
                let absolute = std::fs::canonicalize(location).map_err(|e| err(e.to_string()))?;
                Url::from_directory_path(&absolute)
                    .map_err(|()| err("not an absolute path".into()))?
            }
        };
        let (store, prefix): (Arc<dyn ObjectStore>, Path) = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| err("not a local path".into()))?;
                std::fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
                let prefix = Path::from_filesystem_path(&path).map_err(|e| err(e.to_string()))?;
                (Arc::new(local_reads::LocalStore::new()), prefix)
            }
            "s3" | "s3a" => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| err(e.to_string()))?;
                (Arc::new(store), Path::from(url.path()))
            }
            "memory" => (Arc::new(InMemory::new()), Path::from(url.path())),
            other => {
                return Err(err(format!(
                    "unsupported scheme '{other}' (use a folder, file://, s3:// or memory://)"
                )))
            }
        };
        // DataFusion resolves table URLs by scheme and host; keep the path with a trailing slash.
        let mut url = url;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        Ok(Self {
            store,
            layout: Layout::new(prefix),
            url,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Replaces a partition (or an unpartitioned table) with `batches`, atomically: one put of
    /// the data file, then the `_SUCCESS` marker. The bytes depend only on the rows, so writing
    /// the same rows twice leaves the same files.
    pub async fn write(
        &self,
        table: Table,
        partition: Part,
        batches: &[RecordBatch],
    ) -> Result<u64, WarehouseError> {
        let mut commit = Commit::default();
        commit.stage(table, partition, batches);
        let rows = self.commit(commit).await?;
        Ok(rows.first().copied().unwrap_or_default())
    }

    /// Publishes a [`Commit`]'s partitions ([`Warehouse::write_unpublished`], then
    /// [`Warehouse::publish`]). Returns the rows of each.
    pub async fn commit(&self, commit: Commit) -> Result<Vec<u64>, WarehouseError> {
        let unpublished = self.write_unpublished(commit).await?;
        let rows = unpublished.rows();
        self.publish(vec![unpublished]).await?;
        Ok(rows)
    }

    /// Encodes and writes a commit's data files. On an object store each is put in place (a
    /// put is atomic and durable when it returns); on a local disk each is written under a
    /// temporary name, unflushed, so the partitions' previous files stay until
    /// [`Warehouse::publish`].
    pub async fn write_unpublished(&self, commit: Commit) -> Result<Unpublished, WarehouseError> {
        let mut partitions = Vec::with_capacity(commit.staged.len());
        let mut files = Vec::with_capacity(commit.staged.len());
        for staged in &commit.staged {
            let path = self.layout.data_file(staged.table, staged.partition);
            let (bytes, rows) = encode_parquet(staged.table, &path, &staged.batches)?;
            if self.is_local() {
                files.push(local::LocalFile {
                    object: path.to_string(),
                    path: local_path(&path),
                    bytes,
                });
            } else {
                self.put(&path, bytes).await?;
            }
            partitions.push((staged.table, staged.partition, path, rows));
        }
        let first = partitions
            .first()
            .map(|p| p.2.to_string())
            .unwrap_or_default();
        let temporaries = if files.is_empty() {
            Vec::new()
        } else {
            tokio::task::spawn_blocking(move || local::write_all(&files))
                .await
                .map_err(|e| WarehouseError::WriteFile {
                    path: first,
                    source: std::io::Error::other(e.to_string()),
                })?
                .map_err(written)?
        };
        Ok(Unpublished {
            partitions,
            temporaries,
        })
    }

    /// Publishes commits whose data files are written. On a local disk: the data files are
    /// flushed under their temporary names, renamed into place and flushed (after a power
    /// cut, a marker over an empty file would be read as an empty partition), then every
    /// commit's markers but its last go out, a flush, each commit's last marker (the one a
    /// job's next run looks for), and a flush; so a power cut never leaves a commit's last
    /// marker without the others. Then leftovers of killed writers are removed from the
    /// folders written. On an object store the markers are put in the same order.
    pub async fn publish(&self, commits: Vec<Unpublished>) -> Result<(), WarehouseError> {
        let marker = |table: Table, partition: Part, rows: u64| {
            let path = self.layout.success_marker(table, partition);
            let body =
                serde_json::json!({ "files": [layout::DATA_FILE], "rows": rows }).to_string();
            (path, Bytes::from(body.into_bytes()))
        };
        if !self.is_local() {
            for commit in &commits {
                for (table, partition, path, rows) in &commit.partitions {
                    let (marker_path, body) = marker(*table, *partition, *rows);
                    self.put(&marker_path, body).await?;
                    tracing::debug!(table = table.name(), path = %path, rows, "partition written");
                }
            }
            return Ok(());
        }
        let mut first = Vec::new();
        let mut last = Vec::new();
        let mut data = Vec::new();
        for mut commit in commits {
            let count = commit.partitions.len();
            for (i, (table, partition, _, rows)) in commit.partitions.iter().enumerate() {
                let (path, bytes) = marker(*table, *partition, *rows);
                let file = local::LocalFile {
                    object: path.to_string(),
                    path: local_path(&path),
                    bytes,
                };
                if i + 1 == count {
                    last.push(file);
                } else {
                    first.push(file);
                }
            }
            data.append(&mut commit.temporaries);
        }
        let object = last.first().map(|f| f.object.clone()).unwrap_or_default();
        tokio::task::spawn_blocking(move || publish_local(&data, &first, &last))
            .await
            .map_err(|e| WarehouseError::WriteFile {
                path: object,
                source: std::io::Error::other(e.to_string()),
            })??;
        tracing::debug!("partitions published");
        Ok(())
    }

    fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }

    /// One object written whole, or an error naming it.
    async fn put(&self, path: &Path, bytes: Bytes) -> Result<(), WarehouseError> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| WarehouseError::Write {
                path: path.to_string(),
                source,
            })
    }

    /// Unpublishes a partition: its `_SUCCESS` marker goes first, so readers stop seeing it
    /// before its data file is removed. Retiring a partition that is not there is a no-op.
    pub async fn retire(&self, table: Table, partition: Part) -> Result<bool, WarehouseError> {
        let was_published = self.is_published(table, partition).await?;
        for path in [
            self.layout.success_marker(table, partition),
            self.layout.data_file(table, partition),
        ] {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(was_published)
    }

    /// Writes a small document (a run manifest) in one put: whole or not at all.
    pub async fn put_document(&self, path: &Path, bytes: Vec<u8>) -> Result<(), WarehouseError> {
        self.put(path, bytes.into()).await
    }

    /// A published partition's data file and its bytes, or `None` without a `_SUCCESS`.
    async fn published_file(
        &self,
        table: Table,
        partition: Part,
    ) -> Result<Option<(Path, Bytes)>, WarehouseError> {
        if !self
            .exists(&self.layout.success_marker(table, partition))
            .await?
        {
            return Ok(None);
        }
        let path = self.layout.data_file(table, partition);
        let bytes = self.store.get(&path).await?.bytes().await?;
        Ok(Some((path, bytes)))
    }

    /// Reads a published partition back, or `None` if it has never been published.
    pub async fn read(
        &self,
        table: Table,
        partition: Part,
    ) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
        let Some((path, bytes)) = self.published_file(table, partition).await? else {
            return Ok(None);
        };
        decode_parquet(table, &path, bytes).map(Some)
    }

    /// Like [`Warehouse::read`], but decodes only `columns` (returned in the file's column
    /// order): a job that needs five of ten columns of every partition for a year skips the
    /// other half of the decoding.
    pub async fn read_columns(
        &self,
        table: Table,
        partition: Part,
        columns: &[&str],
    ) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
        let Some((path, bytes)) = self.published_file(table, partition).await? else {
            return Ok(None);
        };
        let parquet = |source| WarehouseError::Parquet {
            path: path.to_string(),
            source,
        };
        let file_schema = table.file_schema();
        let wanted: Vec<usize> = file_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        if wanted.len() != columns.len() {
            return Err(WarehouseError::Schema {
                path: path.to_string(),
                table: table.name(),
                reason: format!("asked for columns {columns:?}, not all of which it has"),
            });
        }
        let expected: SchemaRef =
            Arc::new(
                file_schema
                    .project(&wanted)
                    .map_err(|e| WarehouseError::Schema {
                        path: path.to_string(),
                        table: table.name(),
                        reason: e.to_string(),
                    })?,
            );
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?;
        let leaves: Vec<usize> = builder
            .parquet_schema()
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| columns.contains(&c.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
        let reader = builder.with_projection(mask).build().map_err(parquet)?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet(e.into()))?;
        conform_all(table, &path, &expected, batches).map(Some)
    }

    /// Like [`Warehouse::read`], but decodes only the row groups whose statistics for the
    /// `Int32` column `column` say they may hold a value in `[min, max]` that `keep` accepts.
    /// Tables are written sorted by such a column where a job reads a slice of them (`sips`
    /// by `sip_day`), so a day's run decodes a few row groups, not the whole bucket.
    pub async fn read_pruned(
        &self,
        table: Table,
        partition: Part,
        column: &str,
        keep: impl Fn(i32, i32) -> bool,
    ) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
        let Some((path, bytes)) = self.published_file(table, partition).await? else {
            return Ok(None);
        };
        let parquet = |source| WarehouseError::Parquet {
            path: path.to_string(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?;
        let metadata = Arc::clone(builder.metadata());
        let index = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == column);
        let row_groups: Vec<usize> = (0..metadata.num_row_groups())
            .filter(|&i| {
                let stats = index.and_then(|c| metadata.row_group(i).column(c).statistics());
                match stats {
                    Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
                        (Some(min), Some(max)) => keep(*min, *max),
                        _ => true,
                    },
                    // No usable statistics: read it rather than guess.
                    _ => true,
                }
            })
            .collect();
        let reader = builder
            .with_row_groups(row_groups)
            .build()
            .map_err(parquet)?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| parquet(e.into()))?;
        conform_all(table, &path, &table.file_schema(), batches).map(Some)
    }

    /// The partitions of a table, in (date, bucket) order, with whether each is published.
    pub async fn partitions(&self, table: Table) -> Result<Vec<PartitionStatus>, WarehouseError> {
        let mut found: BTreeMap<Part, bool> = BTreeMap::new();
        let mut listing = self.store.list(Some(&self.layout.table_dir(table)));
        while let Some(meta) = listing.try_next().await? {
            if let Some(part) = self.layout.part_of(table, &meta.location) {
                let is_marker = meta.location.filename() == Some(layout::SUCCESS_MARKER);
                *found.entry(part).or_default() |= is_marker;
            }
        }
        Ok(found
            .into_iter()
            .map(|(part, published)| PartitionStatus { part, published })
            .collect())
    }

    /// The dates a date-partitioned table has directories for, ascending, from one listing
    /// of the table's top level (cheap however many files each date holds). A date listed
    /// here may still lack some buckets' `_SUCCESS`: check with [`Warehouse::is_published`].
    pub async fn dates(&self, table: Table) -> Result<Vec<NaiveDate>, WarehouseError> {
        let Some(column) = table.partition_column() else {
            return Ok(Vec::new());
        };
        let table_dir = self.layout.table_dir(table);
        let folders: Vec<String> = if self.is_local() {
            // The local store lists with a directory walk that opens every folder it yields:
            // a call cost one `open` per date, and a backfill asks once or twice a day, so its
            // days cost the square of their number (245,000 opens for `demo`'s 247 days).
            let dir = local_path(&table_dir);
            let listed = |source| WarehouseError::ListFolder {
                path: table_dir.to_string(),
                source,
            };
            tokio::task::spawn_blocking(move || local::folder_names(&dir))
                .await
                .map_err(|e| listed(std::io::Error::other(e.to_string())))?
                .map_err(listed)?
        } else {
            self.store
                .list_with_delimiter(Some(&table_dir))
                .await?
                .common_prefixes
                .iter()
                .filter_map(|dir| dir.filename().map(str::to_string))
                .collect()
        };
        let mut dates: Vec<NaiveDate> = folders
            .iter()
            .filter_map(|name| {
                let value = name.strip_prefix(column)?.strip_prefix('=')?;
                layout::parse_partition_value(value)
            })
            .collect();
        dates.sort_unstable();
        Ok(dates)
    }

    /// Whether a partition's `_SUCCESS` marker exists.
    pub async fn is_published(&self, table: Table, part: Part) -> Result<bool, WarehouseError> {
        self.exists(&self.layout.success_marker(table, part)).await
    }

    /// The published partitions of a table.
    pub async fn published(&self, table: Table) -> Result<Vec<Part>, WarehouseError> {
        Ok(self
            .partitions(table)
            .await?
            .into_iter()
            .filter(|p| p.published)
            .map(|p| p.part)
            .collect())
    }

    /// The rows a published partition holds, from its `_SUCCESS` marker (no data file read);
    /// `None` when it is not published.
    pub async fn published_rows(
        &self,
        table: Table,
        partition: Part,
    ) -> Result<Option<u64>, WarehouseError> {
        let marker = self.layout.success_marker(table, partition);
        let bytes = match self.store.get(&marker).await {
            Ok(found) => found.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let rows = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|m| m.get("rows").and_then(serde_json::Value::as_u64));
        Ok(Some(rows.unwrap_or(0)))
    }

    async fn exists(&self, path: &Path) -> Result<bool, WarehouseError> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A DataFusion table over a warehouse table's published files, or `None` when nothing
    /// is published yet. Partitioned tables get their partition column (`nav_date` …) from
    /// the Hive-style paths.
    pub async fn table_provider(
        &self,
        ctx: &SessionContext,
        table: Table,
    ) -> Result<Option<Arc<dyn TableProvider>>, WarehouseError> {
        let partitions = if table.partition_column().is_none() && !table.is_bucketed() {
            if !self
                .exists(&self.layout.success_marker(table, Part::WHOLE))
                .await?
            {
                return Ok(None);
            }
            Vec::new()
        } else {
            let partitions = self.partitions(table).await?;
            if !partitions.iter().any(|p| p.published) {
                return Ok(None);
            }
            partitions
        };
        let dir_url =
            self.url
                .join(&format!("{}/", table.name()))
                .map_err(|e| WarehouseError::Location {
                    location: self.url.to_string(),
                    reason: e.to_string(),
                })?;
        let mut partition_cols = Vec::new();
        if let Some(column) = table.partition_column() {
            partition_cols.push((column.to_string(), table.partition_type()));
        }
        if table.is_bucketed() {
            partition_cols.push((layout::BUCKET_COLUMN.to_string(), DataType::Int32));
        }
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(layout::PARQUET_EXTENSION)
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new(ListingTableUrl::parse(dir_url.as_str())?)
            .with_listing_options(options)
            .with_schema(table.file_schema());
        let listing: Arc<dyn TableProvider> = Arc::new(ListingTable::try_new(config)?);
        match published_filter(table, &partitions) {
            None => Ok(Some(listing)),
            // A partition a job is still writing (or died writing) is not part of the table.
            Some(filter) => Ok(Some(ctx.read_table(listing)?.filter(filter)?.into_view())),
        }
    }

    /// A session with every published table registered under its name, and this
    /// warehouse's object store available to DataFusion.
    pub async fn session_context(&self) -> Result<SessionContext, WarehouseError> {
        let ctx = SessionContext::new();
        self.register_tables(&ctx).await?;
        Ok(ctx)
    }

    /// A session for one SQL statement, with only the tables it names registered: listing a
    /// table walks every partition folder, and a warehouse of daily bucketed partitions has
    /// hundreds of thousands. A statement that does not parse gets every table, so that
    /// running it reports the parser's error.
    pub async fn session_context_for(&self, sql: &str) -> Result<SessionContext, WarehouseError> {
        let ctx = SessionContext::new();
        let state = ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let named = state
            .sql_to_statement(sql, &dialect)
            .and_then(|statement| state.resolve_table_references(&statement));
        let tables: Vec<Table> = match named {
            Ok(references) => Table::ALL
                .into_iter()
                .filter(|t| references.iter().any(|r| r.table() == t.name()))
                .collect(),
            Err(_) => Table::ALL.to_vec(),
        };
        self.register(&ctx, &tables).await?;
        Ok(ctx)
    }

    pub async fn register_tables(&self, ctx: &SessionContext) -> Result<(), WarehouseError> {
        self.register(ctx, &Table::ALL).await
    }

    async fn register(&self, ctx: &SessionContext, tables: &[Table]) -> Result<(), WarehouseError> {
        // Local folders too: DataFusion's own `file://` store is `LocalFileSystem`, whose reads
        // each cost two thread hand-offs (see `local_reads`).
        let base = Url::parse(&format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default()
        ))
        .map_err(|e| WarehouseError::Location {
            location: self.url.to_string(),
            reason: e.to_string(),
        })?;
        ctx.register_object_store(&base, Arc::clone(&self.store));
        for &table in tables {
            if let Some(provider) = self.table_provider(ctx, table).await? {
                ctx.register_table(table.name(), provider)?;
            }
        }
        Ok(())
    }
}

/// A predicate on the partition columns that keeps exactly the published partitions, or
/// `None` when every partition is published (the common case, and free to plan).
fn published_filter(table: Table, partitions: &[PartitionStatus]) -> Option<Expr> {
    if partitions.iter().all(|p| p.published) {
        return None;
    }
    let date_lit = |d: NaiveDate| lit(ScalarValue::Date32(Some(days_since_epoch(d))));
    let bucket_lit = |b: u32| lit(ScalarValue::Int32(Some(b as i32)));
    let published = partitions.iter().filter(|p| p.published).map(|p| p.part);
    let (Some(column), true) = (table.partition_column(), table.is_bucketed()) else {
        // One level: a list of dates, or of buckets.
        let values: Vec<Expr> = published
            .filter_map(|p| match table.partition_column() {
                Some(_) => p.date.map(date_lit),
                None => p.bucket.map(bucket_lit),
            })
            .collect();
        let column = table.partition_column().unwrap_or(layout::BUCKET_COLUMN);
        return Some(col(column).in_list(values, false));
    };
    // Two levels: dates whose every bucket is published go in one list; a date that is
    // still being written contributes its published buckets only.
    let mut by_date: BTreeMap<NaiveDate, (Vec<u32>, bool)> = BTreeMap::new();
    for p in partitions {
        if let (Some(date), Some(bucket)) = (p.part.date, p.part.bucket) {
            let entry = by_date.entry(date).or_default();
            if p.published {
                entry.0.push(bucket);
            } else {
                entry.1 = true;
            }
        }
    }
    let mut whole_dates = Vec::new();
    let mut terms = Vec::new();
    for (date, (buckets, incomplete)) in by_date {
        if !incomplete {
            whole_dates.push(date_lit(date));
        } else if !buckets.is_empty() {
            terms.push(
                col(column).eq(date_lit(date)).and(
                    col(layout::BUCKET_COLUMN)
                        .in_list(buckets.into_iter().map(bucket_lit).collect(), false),
                ),
            );
        }
    }
    let mut filter = col(column).in_list(whole_dates, false);
    for term in terms {
        filter = filter.or(term);
    }
    Some(filter)
}

/// Where an object of the local store (rooted at `/`) is on disk.
fn local_path(object: &Path) -> PathBuf {
    PathBuf::from("/").join(object.as_ref())
}

/// A local write that failed, as the warehouse's error naming the file.
fn written(e: local::LocalError) -> WarehouseError {
    WarehouseError::WriteFile {
        path: e.object,
        source: e.source,
    }
}

/// [`Warehouse::publish`] on a local disk, in one blocking task.
fn publish_local(
    data: &[local::Temporary],
    first: &[local::LocalFile],
    last: &[local::LocalFile],
) -> Result<(), WarehouseError> {
    let publish = || -> Result<(), local::LocalError> {
        let temporaries: Vec<&std::path::Path> =
            data.iter().map(|t| t.temporary.as_path()).collect();
        local::flush(&temporaries)?;
        local::rename_all(data)?;
        let placed: Vec<&std::path::Path> = data.iter().map(|t| t.path.as_path()).collect();
        local::flush(&placed)?;
        if !first.is_empty() {
            local::put_all(first)?;
            let markers: Vec<&std::path::Path> = first.iter().map(|f| f.path.as_path()).collect();
            local::flush(&markers)?;
        }
        local::put_all(last)?;
        let markers: Vec<&std::path::Path> = last.iter().map(|f| f.path.as_path()).collect();
        local::flush(&markers)?;
        let mut folders: Vec<&std::path::Path> = placed.iter().filter_map(|p| p.parent()).collect();
        folders.sort_unstable();
        folders.dedup();
        local::remove_leftovers(&folders)
    };
    publish().map_err(|e| {
        // Whatever was not renamed into place is not left lying around.
        local::discard(data);
        written(e)
    })
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    // Date32 counts days from 1970-01-01; every date sipline handles fits in i32.
    (date - NaiveDate::default()).num_days() as i32
}

/// Files of fewer rows than this are Snappy-compressed rather than zstd: such a file is mostly
/// its footer, and zstd sets up a compression and a decompression context for every column
/// of every file written or read, each asking the CPU for its features with `cpuid` — an
/// instruction a virtual machine traps, ~10 µs a time here. A day's execution writes and
/// reads hundreds of such files (64 buckets × 5 tables); `demo` (20,000 users) spent 84 s of
/// user CPU with zstd everywhere and 47 s with Snappy. Large files (a day's NAVs, a
/// 10M-user bucket) stay zstd, which stores a day's NAVs in 62% of Snappy's bytes. Every
/// Parquet reader reads both.
pub const ZSTD_FROM_ROWS: u64 = 8_192;

/// The codec of a file of `rows` rows (see [`ZSTD_FROM_ROWS`]).
pub fn compression_for(rows: u64) -> Compression {
    if rows < ZSTD_FROM_ROWS {
        Compression::SNAPPY
    } else {
        Compression::ZSTD(ZstdLevel::default())
    }
}

fn writer_properties(table: Table, rows: u64) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_max_row_group_row_count(Some(table.row_group_rows()))
        .set_compression(compression_for(rows))
        // A fixed writer name keeps files byte-identical across sipline builds of one format.
        .set_created_by(concat!("sipline ", env!("CARGO_PKG_VERSION")).to_string())
        // Dictionaries pay for text and dates, which repeat; for ids and amounts, which
        // mostly do not, building one costs more time than zstd needs to do as well.
        .set_dictionary_enabled(false);
    if rows < ZSTD_FROM_ROWS {
        builder = builder
            .set_statistics_enabled(datafusion::parquet::file::properties::EnabledStatistics::Chunk)
            .set_offset_index_disabled(true);
    }
    for field in table.file_schema().fields() {
        if matches!(field.data_type(), DataType::Utf8 | DataType::Date32) {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), true);
        }
    }
    builder.build()
}

fn encode_parquet(
    table: Table,
    path: &Path,
    batches: &[RecordBatch],
) -> Result<(Bytes, u64), WarehouseError> {
    let schema = table.file_schema();
    let parquet = |source| WarehouseError::Parquet {
        path: path.to_string(),
        source,
    };
    let total: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut writer = ArrowWriter::try_new(
        Vec::new(),
        Arc::clone(&schema),
        Some(writer_properties(table, total)),
    )
    .map_err(parquet)?;
    let mut rows = 0;
    for batch in batches {
        check_schema(table, path, &schema, &batch.schema())?;
        writer.write(batch).map_err(parquet)?;
        rows += batch.num_rows() as u64;
    }
    Ok((Bytes::from(writer.into_inner().map_err(parquet)?), rows))
}

fn decode_parquet(
    table: Table,
    path: &Path,
    bytes: Bytes,
) -> Result<Vec<RecordBatch>, WarehouseError> {
    let parquet = |source| WarehouseError::Parquet {
        path: path.to_string(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(parquet)?
        .build()
        .map_err(parquet)?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet(e.into()))?;
    conform_all(table, path, &table.file_schema(), batches)
}

fn conform_all(
    table: Table,
    path: &Path,
    expected: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, WarehouseError> {
    batches
        .into_iter()
        .map(|batch| conform(table, path, expected, batch))
        .collect()
}

/// A batch read from a file in the shape the table has now. Files written by an earlier
/// version may hold a decimal column at a smaller scale (NAVs were `Decimal128(18,4)` before
/// they became `Decimal128(18,8)`); such a column is widened exactly, so an existing warehouse
/// keeps working without a rewrite. Any other difference is a schema error.
fn conform(
    table: Table,
    path: &Path,
    expected: &SchemaRef,
    batch: RecordBatch,
) -> Result<RecordBatch, WarehouseError> {
    if check_schema(table, path, expected, &batch.schema()).is_ok() {
        return Ok(batch);
    }
    let widenable = expected.fields().len() == batch.num_columns()
        && expected
            .fields()
            .iter()
            .zip(batch.schema().fields())
            .all(|(want, found)| {
                want.name() == found.name()
                    && match (want.data_type(), found.data_type()) {
                        // A value too large for the new precision fails the cast below
                        // (it is never turned into a null).
                        (DataType::Decimal128(_, s), DataType::Decimal128(_, fs)) => fs <= s,
                        (want, found) => want == found,
                    }
            });
    if !widenable {
        check_schema(table, path, expected, &batch.schema())?;
    }
    let schema_error = |e: datafusion::arrow::error::ArrowError| WarehouseError::Schema {
        path: path.to_string(),
        table: table.name(),
        reason: e.to_string(),
    };
    let columns = batch
        .columns()
        .iter()
        .zip(expected.fields())
        .map(|(column, field)| {
            let options = datafusion::arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            datafusion::arrow::compute::cast_with_options(column, field.data_type(), &options)
                .map_err(schema_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(expected), columns).map_err(schema_error)
}

fn check_schema(
    table: Table,
    path: &Path,
    expected: &SchemaRef,
    found: &SchemaRef,
) -> Result<(), WarehouseError> {
    let same = expected.fields().len() == found.fields().len()
        && expected
            .fields()
            .iter()
            .zip(found.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        Ok(())
    } else {
        Err(WarehouseError::Schema {
            path: path.to_string(),
            table: table.name(),
            reason: format!("expected {expected:?}, found {found:?}"),
        })
    }
}
