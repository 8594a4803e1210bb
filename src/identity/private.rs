//! The data directory is the server's alone (`architecture.md` §5): umask `077` before anything
//! is created, the directory `0700`, and at every start each directory under it set to `0700`
//! and each file to `0600` where they differ (logged at `warn`), whatever made them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{IdentityError, io_err};

/// Most entries looked at under the data directory (sled keeps few files; a directory holding
/// more is not ours to walk).
const MAX_ENTRIES: usize = 100_000;

/// Sets the process's umask to `077` (for every file the server makes from now on, sled's
/// included), creates `data_dir` and makes everything under it private; returns the paths
/// whose mode it changed.
pub fn make_private(data_dir: &Path) -> Result<Vec<PathBuf>, IdentityError> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    fix_modes(data_dir)
}

/// Creates `data_dir` and sets what is under it to `0700` / `0600` where it allows more.
fn fix_modes(data_dir: &Path) -> Result<Vec<PathBuf>, IdentityError> {
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    let mut changed = Vec::new();
    let mut stack = vec![data_dir.to_owned()];
    let mut seen = 0usize;
    while let Some(path) = stack.pop() {
        seen += 1;
        if seen > MAX_ENTRIES {
            break;
        }
        // Not followed: a link's target is not the data directory's to change.
        let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let want = match meta.file_type() {
            t if t.is_dir() => 0o700,
            t if t.is_file() => 0o600,
            _ => continue,
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & !want != 0 {
            let fixed = std::fs::Permissions::from_mode(mode & want);
            std::fs::set_permissions(&path, fixed).map_err(io_err(&path))?;
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "made private");
            changed.push(path.clone());
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_err(&path))? {
                stack.push(entry.map_err(io_err(&path))?.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn everything_under_the_data_dir_becomes_private() {
        let dir = std::env::temp_dir().join(format!("rdv-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db/blobs")).unwrap();
        std::fs::write(dir.join("admin.token"), b"t").unwrap();
        std::fs::write(dir.join("db/blobs/1"), b"b").unwrap();
        let set = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        set(&dir, 0o755);
        set(&dir.join("db"), 0o775);
        set(&dir.join("admin.token"), 0o644);
        set(&dir.join("db/blobs/1"), 0o666);
        // (The umask is the process's: a unit test leaves it alone; tests/process.rs checks it.)
        let changed = super::fix_modes(&dir).unwrap();
        assert_eq!(changed.len(), 5, "{changed:?}");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db/blobs")), 0o700);
        assert_eq!(mode(&dir.join("admin.token")), 0o600);
        assert_eq!(mode(&dir.join("db/blobs/1")), 0o600);
        assert!(super::fix_modes(&dir).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
