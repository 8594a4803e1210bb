//! Temporary directories.

use std::path::{Path, PathBuf};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test.
    pub fn new(name: &str) -> TempDir {
        let suffix: [u8; 8] = rendezvous_protocol::crypto::random_array();
        let dir = std::env::temp_dir().join(format!("rdv-test-{name}-{}", hex::encode(suffix)));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
