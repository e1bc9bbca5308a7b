//! The local warehouse's object store: `object_store`'s `LocalFileSystem`, with reads done in
//! place instead of on tokio's blocking pool.
//!
//! `LocalFileSystem` runs every read in `spawn_blocking` (and a whole-object `get` twice: once
//! to open, once to read), so each read is two thread hand-offs. A query over a year of daily
//! bucketed partitions reads ~16,000 files of a few kilobytes, each a footer read and a
//! column read: `demo`'s "instalments by month" made 400,000 `futex` calls for 15,808 files.
//! A read of a small file from the page cache takes microseconds, less than the hand-off, so
//! reads here block the calling task for that long instead — up to [`IN_PLACE_BYTES`] a call:
//! a larger read (a 10M-user bucket, a day's NAVs) goes to the blocking pool as before, so a
//! read from a cold disk never holds one of the few worker threads for long. Writes,
//! listings, deletes and reads with conditions go to `LocalFileSystem` unchanged.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result,
};

/// See the module docs.
/// The most bytes one call reads in place; more go through `LocalFileSystem`.
pub(crate) const IN_PLACE_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub(crate) struct LocalStore {
    inner: LocalFileSystem,
}

impl LocalStore {
    pub(crate) fn new() -> Self {
        Self {
            inner: LocalFileSystem::new(),
        }
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.inner)
    }
}

const STORE: &str = "LocalStore";

fn open_error(source: std::io::Error, path: &FsPath) -> object_store::Error {
    match source.kind() {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(source),
        },
        _ => object_store::Error::Generic {
            store: STORE,
            source: Box::new(ReadError {
                path: path.to_path_buf(),
                source,
            }),
        },
    }
}

#[derive(Debug, thiserror::Error)]
#[error("reading {}: {source}", path.display())]
struct ReadError {
    path: PathBuf,
    source: std::io::Error,
}

/// The object's metadata as `LocalFileSystem` gives it (same e-tag), so caches keyed on it
/// agree whichever of the two answered.
fn object_meta(location: Path, metadata: &Metadata) -> ObjectMeta {
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let micros = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    ObjectMeta {
        location,
        last_modified: modified.into(),
        size: metadata.len(),
        e_tag: Some(format!("{inode:x}-{micros:x}-{:x}", metadata.len())),
        version: None,
    }
}

fn read_range(file: &File, path: &FsPath, range: Range<u64>) -> Result<Bytes> {
    let length = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
        object_store::Error::Generic {
            store: STORE,
            source: format!("range {range:?} of {} is too long", path.display()).into(),
        }
    })?;
    let mut buf = vec![0_u8; length];
    file.read_exact_at(&mut buf, range.start)
        .map_err(|source| open_error(source, path))?;
    Ok(Bytes::from(buf))
}

fn open(path: &FsPath) -> Result<(File, Metadata)> {
    let file = File::open(path).map_err(|e| open_error(e, path))?;
    let metadata = file.metadata().map_err(|e| open_error(e, path))?;
    if metadata.is_dir() {
        return Err(open_error(
            std::io::Error::new(ErrorKind::NotFound, "is a directory"),
            path,
        ));
    }
    Ok((file, metadata))
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let conditional = options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
            || options.head;
        if conditional {
            return self.inner.get_opts(location, options).await;
        }
        let path = self.inner.path_to_filesystem(location)?;
        let (file, metadata) = open(&path)?;
        let meta = object_meta(location.clone(), &metadata);
        let range = match &options.range {
            Some(range) => range
                .as_range(meta.size)
                .map_err(|e| object_store::Error::Generic {
                    store: STORE,
                    source: Box::new(e),
                })?,
            None => 0..meta.size,
        };
        if range.end.saturating_sub(range.start) > IN_PLACE_BYTES {
            return self.inner.get_opts(location, options).await;
        }
        let bytes = read_range(&file, &path, range.clone())?;
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            attributes: Attributes::default(),
            range,
            meta,
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let requested: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        if requested > IN_PLACE_BYTES {
            return self.inner.get_ranges(location, ranges).await;
        }
        let path = self.inner.path_to_filesystem(location)?;
        let (file, _) = open(&path)?;
        ranges
            .iter()
            .map(|range| read_range(&file, &path, range.clone()))
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::{GetRange, ObjectStoreExt};

    use super::*;

    #[tokio::test]
    async fn reads_agree_with_the_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a=1").join("part.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"0123456789").unwrap();
        let location = Path::from_filesystem_path(&file).unwrap();
        let (ours, theirs) = (LocalStore::new(), LocalFileSystem::new());

        let (a, b) = (
            ours.get(&location).await.unwrap(),
            theirs.get(&location).await.unwrap(),
        );
        assert_eq!(a.meta, b.meta);
        assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
        for range in [
            GetRange::Bounded(2..5),
            GetRange::Offset(7),
            GetRange::Suffix(3),
        ] {
            let options = || GetOptions {
                range: Some(range.clone()),
                ..GetOptions::default()
            };
            let (a, b) = (
                ours.get_opts(&location, options()).await.unwrap(),
                theirs.get_opts(&location, options()).await.unwrap(),
            );
            assert_eq!(a.range, b.range);
            assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap());
        }
        assert_eq!(
            ours.get_ranges(&location, &[0..2, 8..10]).await.unwrap(),
            vec![Bytes::from_static(b"01"), Bytes::from_static(b"89")]
        );
        // A range past the end is an error, as it is for LocalFileSystem.
        assert!(ours.get_ranges(&location, &[0..1, 8..12]).await.is_err());

        // Larger than a read in place: the same answers through `LocalFileSystem`.
        let large: Vec<u8> = (0..IN_PLACE_BYTES + 10).map(|i| (i % 251) as u8).collect();
        let large_file = dir.path().join("large");
        std::fs::write(&large_file, &large).unwrap();
        let large_location = Path::from_filesystem_path(&large_file).unwrap();
        let (a, b) = (
            ours.get(&large_location).await.unwrap(),
            theirs.get(&large_location).await.unwrap(),
        );
        assert_eq!(a.meta, b.meta);
        assert_eq!(a.bytes().await.unwrap(), Bytes::from(large.clone()));
        assert_eq!(b.bytes().await.unwrap(), Bytes::from(large));
        let halves = [0..IN_PLACE_BYTES, IN_PLACE_BYTES..IN_PLACE_BYTES + 10];
        assert_eq!(
            ours.get_ranges(&large_location, &halves).await.unwrap(),
            theirs.get_ranges(&large_location, &halves).await.unwrap()
        );

        let missing = Path::from(format!(
            "{}/none",
            Path::from_filesystem_path(dir.path()).unwrap()
        ));
        assert!(matches!(
            ours.get(&missing).await,
            Err(object_store::Error::NotFound { .. })
        ));
        let folder = Path::from_filesystem_path(dir.path().join("a=1")).unwrap();
        assert!(matches!(
            ours.get(&folder).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }
}
