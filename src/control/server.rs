//! The daemon's side of the control socket: binding it safely, accepting
//! only the daemon's own user (or root), and answering requests line by
//! line (the answers themselves are in `handle`).

use std::fs;
use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{ListenerInfo, Request, Response};
use super::{MAX_REQUEST, socket_path};
use crate::access::lockout::Lockout;
use crate::access::suspend::Suspensions;
use crate::deliver::QueueControl;
use crate::quota::Quotas;
use crate::smtp::listener::Shared;
use crate::spool::Spool;

/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// Why the control socket could not be set up; the daemon does not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "another postern daemon answers on {}; refusing to start a second one on the same state_dir",
        .0.display()
    )]
    Live(PathBuf),
    #[error("{} exists and is not a socket; remove it (postern keeps its control socket there)", .0.display())]
    NotSocket(PathBuf),
    #[error("control socket {}: cannot {op}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the answers are made from: handles to the daemon's long-lived
/// parts.
pub struct Context {
    pub queue: QueueControl,
    pub spool: Arc<Spool>,
    pub shared: Arc<Shared>,
    pub suspensions: Arc<Suspensions>,
    pub lockout: Arc<Lockout>,
    pub quotas: Arc<Quotas>,
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub listeners: Vec<ListenerInfo>,
    pub state_dir: PathBuf,
    pub started: std::time::Instant,
}

/// The bound socket, not yet answering (connections wait in the backlog).
/// The socket file is removed when this (or the serve loop) ends.
pub struct Bound {
    listener: std::os::unix::net::UnixListener,
    guard: Remove,
    owner: u32,
}

/// Removes the socket file on drop.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds `state_dir/control.sock` with mode 0600. A socket nobody answers
/// on is a leftover from a crash and is replaced; one that answers belongs
/// to a live daemon, and then this one must not start. Blocking; call at
/// startup.
pub fn bind(state_dir: &Path) -> Result<Bound, BindError> {
    let path = socket_path(state_dir);
    match fs::symlink_metadata(&path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(BindError::NotSocket(path)),
        Ok(_) => match std::os::unix::net::UnixStream::connect(&path) {
            Ok(_) => return Err(BindError::Live(path)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "removing a stale control socket");
                fs::remove_file(&path).map_err(io_error("remove stale", &path))?;
            }
            Err(e) => return Err(io_error("connect to the existing", &path)(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect", &path)(e)),
    }
    // Bound in a private directory and chmod'ed there, then renamed into
    // place: at no moment can anyone else reach it with looser permissions
    // (a socket's mode comes from the umask at bind, and fchmod before bind
    // does not apply to the file).
    let private = state_dir.join(format!(".control-{}", std::process::id()));
    let _ = fs::remove_dir_all(&private);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_error("create directory", &private))?;
    let staged = private.join("control.sock");
    let bound = (|| {
        let listener =
            std::os::unix::net::UnixListener::bind(&staged).map_err(io_error("bind", &staged))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))
            .map_err(io_error("chmod", &staged))?;
        fs::rename(&staged, &path).map_err(io_error("rename into place", &path))?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&private);
    let listener = bound?;
    let guard = Remove(path.clone());
    let owner = fs::metadata(&path)
        .map_err(io_error("inspect", &path))?
        .uid();
    listener
        .set_nonblocking(true)
        .map_err(io_error("configure", &path))?;
    Ok(Bound {
        listener,
        guard,
        owner,
    })
}

impl Bound {
    pub fn path(&self) -> &Path {
        &self.guard.0
    }

    /// Answers requests until `shutdown` completes; then the socket file
    /// is removed. Must run inside the tokio runtime.
    pub async fn serve(self, ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
        let Bound {
            listener,
            guard,
            owner,
        } = self;
        let listener = match UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, socket = %guard.0.display(), "control socket unusable; spool and credential commands will not reach this daemon");
                return;
            }
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(Arc::clone(&ctx), stream, owner));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(guard);
    }
}

/// One client: its requests in turn, each answered on one line.
async fn connection(ctx: Arc<Context>, stream: UnixStream, owner: u32) {
    // The file mode already keeps others out; this also refuses a peer
    // that got hold of a descriptor some other way.
    let allowed = stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == owner || c.uid() == 0);
    let (read, mut write) = stream.into_split();
    if !allowed {
        tracing::warn!("control socket: refused a peer running as another user");
        let _ = write_response(
            &mut write,
            &Response::error("permission denied: run as the postern user or root"),
        )
        .await;
        return;
    }
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_REQUEST as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(IDLE, read).await {
            Ok(Ok(0)) | Err(_) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "control socket read failed");
                return;
            }
        }
        if line.last() != Some(&b'\n') {
            let _ = write_response(
                &mut write,
                &Response::error(format!(
                    "request longer than {MAX_REQUEST} bytes or not ended by a newline"
                )),
            )
            .await;
            return;
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(req) => super::handle::answer(&ctx, req).await,
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        if write_response(&mut write, &response).await.is_err() {
            return;
        }
    }
}

async fn write_response(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}
