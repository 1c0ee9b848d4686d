//! The CLI's side of the control socket: one request, one answer,
//! blocking (the one-shot commands have no runtime).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};
use super::{MAX_RESPONSE, socket_path};

/// How long the CLI waits for the daemon (a `retry --all-dead` over a
/// large dead-letter directory does real file work).
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No socket, or nothing listening on it: the daemon is not running
    /// (for this state_dir).
    #[error("no postern daemon answers on {}: {source}", path.display())]
    NotRunning { path: PathBuf, source: io::Error },
    #[error(
        "permission denied on {}: run this as the user postern runs as, or as root",
        path.display()
    )]
    Permission { path: PathBuf },
    #[error("control socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("control socket {}: unexpected answer: {reason}", path.display())]
    Protocol { path: PathBuf, reason: String },
    /// The daemon answered with an error.
    #[error("{0}")]
    Refused(String),
}

impl ClientError {
    /// Whether the daemon is simply not running, so reading the spool
    /// directly is the right fallback.
    pub fn is_not_running(&self) -> bool {
        matches!(self, ClientError::NotRunning { .. })
    }
}

/// Sends `request` to the daemon of `state_dir` and returns its result.
pub fn request(state_dir: &Path, request: &Request) -> Result<serde_json::Value, ClientError> {
    let path = socket_path(state_dir);
    let io_err = |source: io::Error| ClientError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            path: path.clone(),
            source,
        },
        io::ErrorKind::PermissionDenied => ClientError::Permission { path: path.clone() },
        _ => ClientError::Io {
            path: path.clone(),
            source,
        },
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;
    let mut reader = BufReader::new(stream).take(MAX_RESPONSE as u64);
    let mut answer = Vec::new();
    reader.read_until(b'\n', &mut answer).map_err(io_err)?;
    if answer.last() != Some(&b'\n') {
        return Err(ClientError::Protocol {
            path,
            reason: if answer.is_empty() {
                "the daemon closed the connection without answering".to_string()
            } else {
                "answer too long or cut off".to_string()
            },
        });
    }
    let response: Response =
        serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if response.ok {
        Ok(response.result.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ClientError::Refused(response.error.unwrap_or_else(|| {
            "the daemon refused without saying why".to_string()
        })))
    }
}
