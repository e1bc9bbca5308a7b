//! A local warehouse's writes: a commit's files put and flushed in one blocking task.
//!
//! A day's execution writes hundreds of small partitions (five tables, 64 buckets). Through
//! `object_store`'s local store every put, every check and every fsync is a trip to tokio's
//! blocking pool, and two fsyncs per file (the file, then its folder for the rename) cost a
//! device flush each, about 0.27 ms on these virtual disks. Here a commit's data files are
//! written in one task, and one `syncfs` flushes every dirty file and folder of the
//! filesystem at once. Each file is written to `name#suffix` and renamed into place, as the
//! local store does, so a reader never sees half a file and a killed writer's leftovers are
//! recognisable (a `#` in the name) and removed by the next write to the folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// A file to put: where, what, and the object path an error names.
pub(crate) struct LocalFile {
    pub object: String,
    pub path: PathBuf,
    pub bytes: Bytes,
}

/// A local write that failed, naming the object.
#[derive(Debug)]
pub(crate) struct LocalError {
    pub object: String,
    pub source: std::io::Error,
}

/// Writes each file whole under a temporary name and renames it into place, creating folders
/// as needed. Nothing is flushed: see [`flush`].
pub(crate) fn put_all(files: &[LocalFile]) -> Result<(), LocalError> {
    for file in files {
        put(&file.path, &file.bytes).map_err(|source| LocalError {
            object: file.object.clone(),
            source,
        })?;
    }
    Ok(())
}

fn put(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a warehouse file has a name"))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(
        "#{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = path.with_file_name(temporary);
    let mut out = match std::fs::File::create(&temporary) {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder)?;
            }
            std::fs::File::create(&temporary)?
        }
        Err(e) => return Err(e),
    };
    let written = out
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        // A full disk: leave no half-written temporary behind (best effort).
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Makes `files`, their contents and the renames that put them in their folders, durable.
pub(crate) fn flush(files: &[&Path]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        // One syncfs per filesystem: a warehouse folder may hold a mount point.
        let mut flushed = Vec::new();
        for file in files {
            let device = std::fs::metadata(file)?.dev();
            if flushed.contains(&device) {
                continue;
            }
            syncfs(&std::fs::File::open(file)?)?;
            flushed.push(device);
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for file in files {
            std::fs::File::open(file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn syncfs(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `syncfs` reads only the descriptor, which `file` keeps open for the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Removes what killed writers left in `folders`: files whose name has a `#` (see the module
/// docs). No reader lists them, but they are half-written bytes that would pile up.
pub(crate) fn remove_leftovers(folders: &[&Path]) -> std::io::Result<()> {
    for folder in folders {
        for entry in std::fs::read_dir(folder)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().contains('#') {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, folder: &str, bytes: &'static [u8]) -> LocalFile {
        let path = dir.join(folder).join("part-00000.parquet");
        LocalFile {
            object: path.display().to_string(),
            path,
            bytes: Bytes::from_static(bytes),
        }
    }

    #[test]
    fn files_are_put_whole_in_new_folders_and_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            file(dir.path(), "a=1", b"one"),
            file(dir.path(), "b=2", b"two"),
        ];
        put_all(&files).unwrap();
        put_all(&[file(dir.path(), "a=1", b"uno")]).unwrap();
        let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
        flush(&paths).unwrap();
        assert_eq!(std::fs::read(&files[0].path).unwrap(), b"uno");
        assert_eq!(std::fs::read(&files[1].path).unwrap(), b"two");
        // Nothing but the file itself is left in its folder.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a=1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-00000.parquet"]);
    }

    #[test]
    fn a_killed_writers_leftovers_are_removed_and_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        put_all(&[file(dir.path(), "a=1", b"one")]).unwrap();
        let folder = dir.path().join("a=1");
        std::fs::write(folder.join("part-00000.parquet#7-0"), b"half").unwrap();
        remove_leftovers(&[folder.as_path()]).unwrap();
        assert!(!folder.join("part-00000.parquet#7-0").exists());
        assert!(folder.join("part-00000.parquet").exists());
        let missing = flush(&[dir.path().join("absent").as_path()]).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn a_write_that_fails_names_its_object_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should go: the rename cannot replace it.
        let blocked = file(dir.path(), "a=1", b"one");
        std::fs::create_dir_all(&blocked.path).unwrap();
        std::fs::write(blocked.path.join("inside"), b"x").unwrap();
        let error = match put_all(&[blocked]) {
            Err(e) => e,
            Ok(()) => panic!("a put over a non-empty folder succeeded"),
        };
        assert!(error.object.ends_with("a=1/part-00000.parquet"));
        let names: Vec<String> = std::fs::read_dir(dir.path().join("a=1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-00000.parquet"]);
    }
}
