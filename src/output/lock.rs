//! One writer at a time: an exclusive OS lock (`flock` on Unix, `LockFileEx` on Windows,
//! through the standard library's `File::try_lock`) on a lock file beside what is written.
//! The OS drops the lock when the process ends, however it ends, so a killed run never
//! blocks the next one. The file holds the holder's pid and command, to name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file of a batch output folder.
pub const FOLDER_LOCK: &str = ".rbplan.lock";

/// A held lock; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
}

impl Lock {
    /// Lock a batch output folder.
    pub fn folder(dir: &Path, command: &str) -> Result<Lock> {
        Lock::acquire(&dir.join(FOLDER_LOCK), dir, command)
    }

    /// Lock one plan file (`ask --out`, `revise`): `.NAME.rbplan-lock` beside it.
    pub fn file(path: &Path, command: &str) -> Result<Lock> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Lock::acquire(&path.with_file_name(format!(".{name}.rbplan-lock")), path, command)
    }

    /// Take the lock at `lock_path` for `what`, or fail at once naming who holds it.
    fn acquire(lock_path: &Path, what: &Path, command: &str) -> Result<Lock> {
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(lock_path)
                .map_err(|e| Error::io(format!("opening the lock {}", lock_path.display()), e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        what: what.display().to_string(),
                        holder: std::fs::read_to_string(lock_path).ok().map(|s| s.trim().to_string()),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io(format!("locking {}", lock_path.display()), e));
                }
            }
            // The holder before us may have removed the file between our open and our lock:
            // then we hold a lock on a file no one else will open. Lock the one at the path.
            if same_file(&file, lock_path) {
                let mut lock = Lock {
                    path: lock_path.to_path_buf(),
                    file,
                };
                lock.write_holder(command);
                return Ok(lock);
            }
        }
    }

    fn write_holder(&mut self, command: &str) {
        let _ = self.file.set_len(0);
        let _ = writeln!(self.file, "pid {} ({command})", std::process::id());
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, so no one can lock this file after we let it go.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let first = Lock::folder(d.path(), "rbplan batch").unwrap();
        match Lock::folder(d.path(), "rbplan batch") {
            Err(Error::Locked { what, holder }) => {
                assert_eq!(what, d.path().display().to_string());
                assert_eq!(holder.unwrap(), format!("pid {} (rbplan batch)", std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!d.path().join(FOLDER_LOCK).exists(), "removed when released");
        let again = Lock::folder(d.path(), "rbplan batch");
        assert!(again.is_ok());
        // A plan file's lock is its own: another file in the folder is not blocked.
        let a = Lock::file(&d.path().join("a.md"), "rbplan ask").unwrap();
        assert!(Lock::file(&d.path().join("b.md"), "rbplan ask").is_ok());
        assert!(Lock::file(&d.path().join("a.md"), "rbplan revise").is_err());
        drop(a);
    }
}
