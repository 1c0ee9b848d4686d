//! `sink`: a fast local HTTPS endpoint playing the email API during the
//! benchmark. It answers 200 to every POST, counts distinct queue IDs (so a
//! duplicate delivery shows up) and, when `--expect` distinct messages have
//! arrived, writes `--done-file` with the count and the arrival time of the
//! last one, from which run.sh computes end-to-end throughput.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use postern_loadgen::{Error, arg, args};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

struct Stats {
    ids: HashSet<String>,
    requests: u64,
    first_ns: u128,
    last_ns: u128,
    done: bool,
}

struct State {
    stats: Mutex<Stats>,
    expect: usize,
    done_file: PathBuf,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = req
        .headers()
        .get("x-postern-queue-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let len = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    let t = now_ns();
    let write = {
        let mut s = state.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.requests += 1;
        if s.first_ns == 0 {
            s.first_ns = t;
        }
        s.last_ns = t;
        s.ids.insert(id.clone());
        if !s.done && s.ids.len() >= state.expect {
            s.done = true;
            Some(format!(
                "{{\"distinct\":{},\"requests\":{},\"first_unix_ns\":{},\"last_unix_ns\":{}}}\n",
                s.ids.len(),
                s.requests,
                s.first_ns,
                s.last_ns
            ))
        } else {
            None
        }
    };
    if let Some(text) = write {
        write_done(&state.done_file, &text);
    }
    let body = format!("{{\"id\":\"{id}\",\"bytes\":{len}}}");
    Ok(Response::new(Full::new(Bytes::from(body))))
}

fn write_done(path: &Path, text: &str) {
    // Write then rename so run.sh never reads a half-written file.
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let a = args()?;
    let certs: String = arg(&a, "certs")?;
    let port: u16 = arg(&a, "port")?;
    let expect: usize = arg(&a, "expect")?;
    let done_file: String = arg(&a, "done-file")?;
    let acceptor = TlsAcceptor::from(postern_loadgen::server_config(
        Path::new(&certs),
        &[b"h2", b"http/1.1"],
    )?);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let state = Arc::new(State {
        stats: Mutex::new(Stats {
            ids: HashSet::new(),
            requests: 0,
            first_ns: 0,
            last_ns: 0,
            done: false,
        }),
        expect,
        done_file: PathBuf::from(done_file),
    });
    eprintln!("sink listening on 127.0.0.1:{port}, expecting {expect} messages");
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
