//! The state file on disk: written through a unique temporary file created exclusively
//! (`O_CREAT|O_EXCL`, so a planted file or symlink is never opened, let alone followed) in
//! the same folder, synced and renamed over the file; and an advisory lock (`flock` on
//! `<file>.lock`) held for the life of the process, so a second exporter on the same file
//! is refused instead of racing the first.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of one process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The folder `path` is in (`.` for a bare file name).
fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `body` to `path` atomically: a new temporary file of a name nobody can predict
/// (process id, a sequence number and 64 random bits), created exclusively with mode 0600,
/// synced, then renamed over `path`. A failed write leaves no temporary file behind.
pub(super) fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = folder(path).join(format!(
        ".{name}.{}.{}.{:016x}.tmp",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        rand::random::<u64>()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(&tmp)?;
    let written = f
        .write_all(body)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The lock file of the state file `path`: `<path>.lock`.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the advisory lock of the state file `path` without waiting: `Ok(file)` holds it
/// until dropped; `Err(None)` when another process holds it; `Err(Some(e))` when the lock
/// file cannot be opened (a symlink or other non-regular file there is refused).
pub(super) fn lock(path: &Path) -> Result<std::fs::File, Option<std::io::Error>> {
    let lock = lock_path(path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(
            (rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::CLOEXEC)
                .bits() as i32,
        )
        .open(&lock)
        .map_err(Some)?;
    if !f.metadata().map_err(Some)?.is_file() {
        return Err(Some(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(None),
        Err(e) => Err(Some(e.into())),
    }
}

/// Writes `body` to a new file at `path`, created exclusively with mode 0600 (an existing
/// file or symlink there is an error, never overwritten nor followed).
pub(super) fn write_new(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)?;
    f.write_all(body).and_then(|()| f.sync_all())
}
