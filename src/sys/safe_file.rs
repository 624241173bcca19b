//! Reading a file the operator names (state file, web config, config file, secret files, CA
//! and TLS files) without trusting what is at that path: it is opened non-blocking, so a
//! FIFO, socket or device swapped in cannot hang start-up, a request or shutdown; anything
//! but a regular file is refused; and at most [`MAX_FILE_BYTES`] are read.
//!
//! Symbolic links are followed on purpose (Kubernetes mounts Secrets and ConfigMaps through
//! them); what they point at must still be a regular file.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The most bytes read from any one file (16 MiB): far above any real config, secret, CA
/// bundle or state file (the state file is itself capped when loaded).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the regular file at `path` (see the module documentation). A FIFO, socket, device
/// or directory is refused at once with [`io::ErrorKind::InvalidInput`]; a file over
/// [`MAX_FILE_BYTES`] with [`io::ErrorKind::FileTooLarge`].
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket, device or directory is refused)",
        ));
    }
    let mut out = Vec::with_capacity(meta.len().min(MAX_FILE_BYTES) as usize);
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(out)
}

/// [`read`], as UTF-8 text ([`io::ErrorKind::InvalidData`] otherwise, as
/// `std::fs::read_to_string`).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let start = std::time::Instant::now();
        let e = read(&fifo).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            read(dir.path()).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(read_to_string(&f).unwrap(), "x");
    }
}
