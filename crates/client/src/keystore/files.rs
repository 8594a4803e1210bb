//! Private files: directories 0700, files 0600, every write atomic (temporary file in the same
//! directory, fsync, rename, fsync of the directory).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::ClientError;

pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, ClientError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ClientError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ClientError::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && !name.ends_with(".tmp")
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

pub(super) fn read_optional(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(Zeroizing::new(b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::io(path, e)),
    }
}

/// The file at `path`, refused if it is longer than `limit` bytes (read no further).
pub(super) fn read_limited(path: &Path, limit: usize) -> Result<Vec<u8>, ClientError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| ClientError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ClientError::io(path, e))?;
    if bytes.len() > limit {
        return Err(ClientError::corrupt(
            path,
            format!("more than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Creates `dir` with mode 0700 (parents as needed) and tightens an existing one to 0700.
pub(super) fn make_dir(dir: &Path) -> Result<(), ClientError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ClientError::io(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| ClientError::io(dir, e))
}

/// Writes `bytes` to `path` atomically with mode 0600: temporary file, fsync, rename, fsync of
/// the directory.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| ClientError::io(&tmp, e))?;
    // An older temporary file may have had other permissions.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| ClientError::io(&tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| ClientError::io(&tmp, e))?;
    file.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
