//! `kind = "directory"`: writes each message as `<path>/<id>.eml`.
//!
//! The embedded default upstream and the simplest way to test postern end to
//! end. A file appears under its final name only once complete and fsync'd
//! (temp file + rename + directory fsync), so a program watching the
//! directory never sees half a message. Redelivery of the same id replaces
//! the file, which keeps retries idempotent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Delivered, DeliveryError, OutboundMessage, Provider, UpstreamError};

/// `[upstreams.NAME]` of `kind = "directory"`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub path: PathBuf,
}

/// Upstream that stores messages as files.
#[derive(Debug)]
pub struct DirectoryUpstream {
    path: PathBuf,
}

impl DirectoryUpstream {
    /// Creates the directory (0750) if missing so a bad path shows at startup.
    pub fn new(name: &str, settings: &Settings) -> Result<Self, UpstreamError> {
        create_dir(&settings.path).map_err(|e| UpstreamError::Other {
            name: name.to_string(),
            reason: format!("cannot create directory {}: {e}", settings.path.display()),
        })?;
        Ok(DirectoryUpstream {
            path: settings.path.clone(),
        })
    }
}

impl Provider for DirectoryUpstream {
    async fn send(&self, msg: &OutboundMessage<'_>) -> Result<Delivered, DeliveryError> {
        {
            // The id becomes a file name: refuse anything that could escape
            // the directory rather than trusting the caller.
            let safe = !msg.id.is_empty()
                && msg
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !safe {
                return Err(DeliveryError::permanent(format!(
                    "queue id {:?} is not usable as a file name",
                    super::sanitize(msg.id, 80)
                )));
            }
            let dir = self.path.clone();
            let id = msg.id.to_string();
            // The blocking task needs 'static data; a copy is cheap next to
            // the fsync that follows.
            let data = msg.data.to_vec();
            let file_name = format!("{id}.eml");
            let result = tokio::task::spawn_blocking(move || write_eml(&dir, &id, &data)).await;
            match result {
                Ok(Ok(())) => Ok(Delivered {
                    upstream_id: Some(file_name),
                }),
                Ok(Err(e)) => Err(DeliveryError::transient(format!(
                    "cannot write {}: {e}",
                    self.path.join(&file_name).display()
                ))),
                Err(join) => Err(DeliveryError::transient(format!(
                    "write task failed: {join}"
                ))),
            }
        }
    }
}

fn create_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(path)
}

fn write_eml(dir: &Path, id: &str, data: &[u8]) -> io::Result<()> {
    create_dir(dir)?;
    // Dot prefix: watchers conventionally ignore hidden files.
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    let dest = dir.join(format!("{id}.eml"));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_data()?;
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
