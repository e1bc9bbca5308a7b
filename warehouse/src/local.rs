//! A local warehouse's writes: a commit's files put and flushed in one blocking task.
//!
//! A day's execution writes hundreds of small partitions (five tables, 64 buckets). Through
//! `object_store`'s local store every put, every check and every fsync is a trip to tokio's
//! blocking pool, and two fsyncs per file (the file, then its folder for the rename) cost a
//! device flush each, about 0.27 ms on these virtual disks. Here a commit's data files are
//! written in one task, and one `syncfs` flushes every dirty file and folder of the
//! filesystem at once. Each file is written to `name#digits` and renamed into place only when
//! its commit is published, as the local store names its uploads: a reader never sees half a
//! file, a run that fails leaves the previous partition whole, and a killed writer's leftovers
//! are recognisable (a `#` in the name) and removed by the next write to the folder.

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

/// A file written under its temporary name, waiting for [`rename_all`] to put it in place.
#[derive(Debug)]
pub(crate) struct Temporary {
    pub object: String,
    pub temporary: PathBuf,
    pub path: PathBuf,
}

/// A local write that failed, naming the file or folder.
#[derive(Debug)]
pub(crate) struct LocalError {
    pub object: String,
    pub source: std::io::Error,
}

impl LocalError {
    fn at(object: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let object = object.into();
        move |source| LocalError { object, source }
    }
}

/// Writes each file whole under a temporary name next to where it goes, creating folders as
/// needed; nothing is renamed into place or flushed yet. On an error the temporaries written
/// so far are removed.
pub(crate) fn write_all(files: &[LocalFile]) -> Result<Vec<Temporary>, LocalError> {
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        match write_temporary(&file.path, &file.bytes) {
            Ok(temporary) => written.push(Temporary {
                object: file.object.clone(),
                temporary,
                path: file.path.clone(),
            }),
            Err(source) => {
                discard(&written);
                return Err(LocalError {
                    object: file.object.clone(),
                    source,
                });
            }
        }
    }
    Ok(written)
}

/// Removes temporaries that will not be put in place (best effort: what is left is removed
/// by the next write to the folder, see [`remove_leftovers`]).
pub(crate) fn discard(temporaries: &[Temporary]) {
    for t in temporaries {
        let _ = std::fs::remove_file(&t.temporary);
    }
}

/// Renames each temporary into place: readers see the old file or the new, never a mix.
pub(crate) fn rename_all(temporaries: &[Temporary]) -> Result<(), LocalError> {
    for t in temporaries {
        std::fs::rename(&t.temporary, &t.path).map_err(LocalError::at(&t.object))?;
    }
    Ok(())
}

/// Writes each file under a temporary name and renames it into place.
pub(crate) fn put_all(files: &[LocalFile]) -> Result<(), LocalError> {
    let written = write_all(files)?;
    rename_all(&written).inspect_err(|_| discard(&written))
}

fn write_temporary(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    // `object_store`'s local store names its uploads `name#N` and lists none of them; the
    // suffix here is digits only for the same reason, and unique per process and write
    // (`create_new` settles a clash with another process that has the same id).
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a warehouse file has a name"))?;
    loop {
        let mut temporary = name.to_os_string();
        temporary.push(format!(
            "#{}{:010}",
            std::process::id(),
            UPLOADS.fetch_add(1, Ordering::Relaxed)
        ));
        let temporary = path.with_file_name(temporary);
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temporary)
        };
        let mut out = match create() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(folder) = path.parent() {
                    std::fs::create_dir_all(folder)?;
                }
                create()?
            }
            Err(e) => return Err(e),
        };
        if let Err(e) = out.write_all(bytes) {
            // A full disk: leave no half-written temporary behind (best effort).
            let _ = std::fs::remove_file(&temporary);
            return Err(e);
        }
        return Ok(temporary);
    }
}

/// Makes `files`, their contents and the renames that put them in their folders, durable.
/// An error names the file whose filesystem could not be flushed.
pub(crate) fn flush(files: &[&Path]) -> Result<(), LocalError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        // One syncfs per filesystem: a warehouse folder may hold a mount point.
        let mut flushed = Vec::new();
        for file in files {
            let at = || {
                LocalError::at(format!(
                    "{} (and the files written with it)",
                    file.display()
                ))
            };
            let device = std::fs::metadata(file).map_err(at())?.dev();
            if flushed.contains(&device) {
                continue;
            }
            syncfs(&std::fs::File::open(file).map_err(at())?).map_err(at())?;
            flushed.push(device);
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for file in files {
            let at = || LocalError::at(file.display().to_string());
            std::fs::File::open(file)
                .and_then(|f| f.sync_all())
                .map_err(at())?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)
                    .and_then(|f| f.sync_all())
                    .map_err(at())?;
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

/// The names of the folders in `dir` (none if it does not exist), from one directory read:
/// a folder's type comes with its entry, so nothing inside it is opened.
pub(crate) fn folder_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        // An entry removed while listed is not there, as the store's own walk skips it.
        let Some(entry) = unless_gone(entry)? else {
            continue;
        };
        let Some(kind) = unless_gone(entry.file_type())? else {
            continue;
        };
        // A folder linked from elsewhere (old partitions moved to another disk) is a folder,
        // as the store's walk and DataFusion see it; a broken link is nothing.
        let is_dir = kind.is_dir()
            || (kind.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()));
        if is_dir {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// `result`'s value, or none if what it read was removed meanwhile.
fn unless_gone<T>(result: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes what killed writers left in `folders`: files whose name has a `#` (see the module
/// docs). No reader lists them, but they are half-written bytes that would pile up.
pub(crate) fn remove_leftovers(folders: &[&Path]) -> Result<(), LocalError> {
    for folder in folders {
        let at = || LocalError::at(folder.display().to_string());
        for entry in std::fs::read_dir(folder).map_err(at())? {
            let entry = entry.map_err(at())?;
            if entry.file_name().to_string_lossy().contains('#') {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LocalError::at(folder.display().to_string())(e)),
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
    fn folder_names_lists_folders_only_and_nothing_for_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        put_all(&[
            file(dir.path(), "d=2024-07-02", b"x"),
            file(dir.path(), "d=2024-07-01", b"y"),
        ])
        .unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("d=2024-06-28")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("d=2024-06-27"))
            .unwrap();
        let mut names = folder_names(dir.path()).unwrap();
        names.sort();
        assert_eq!(names, ["d=2024-06-28", "d=2024-07-01", "d=2024-07-02"]);
        assert!(folder_names(&dir.path().join("none")).unwrap().is_empty());
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
    fn a_written_file_replaces_nothing_until_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        put_all(&[file(dir.path(), "a=1", b"old")]).unwrap();
        let written = write_all(&[file(dir.path(), "a=1", b"new")]).unwrap();
        let path = dir.path().join("a=1/part-00000.parquet");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        rename_all(&written).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        // A commit given up leaves the old file and no temporary.
        let abandoned = write_all(&[file(dir.path(), "a=1", b"newer")]).unwrap();
        discard(&abandoned);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(dir.path().join("a=1")).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_killed_writers_leftovers_are_removed_and_a_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        put_all(&[file(dir.path(), "a=1", b"one")]).unwrap();
        let folder = dir.path().join("a=1");
        std::fs::write(folder.join("part-00000.parquet#70"), b"half").unwrap();
        remove_leftovers(&[folder.as_path()]).unwrap();
        assert!(!folder.join("part-00000.parquet#70").exists());
        assert!(folder.join("part-00000.parquet").exists());
        let missing = flush(&[dir.path().join("absent").as_path()]).unwrap_err();
        assert_eq!(missing.source.kind(), std::io::ErrorKind::NotFound);
        assert!(missing.object.contains("absent"), "{}", missing.object);
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
