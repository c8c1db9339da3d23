//! Files only their owner may read: the admin token's hash, the development secrets key.

use std::io::Write as _;
use std::path::Path;

/// Write `contents` to `path` with mode 0600, replacing any old file atomically (a crash
/// leaves the old file or the new one, never half of either).
pub fn write(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
