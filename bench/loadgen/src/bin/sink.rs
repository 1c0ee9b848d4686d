//! `sink`: a fast local HTTPS endpoint playing the email API during the
//! benchmark. `--api http` (default) answers postern's generic `http` kind;
//! `--api ses` and `--api sendgrid` answer like SES v2 SendEmail (200, JSON
//! `MessageId`) and SendGrid v3 mail/send (202, `X-Message-Id`), after the
//! cheap checks in `postern_loadgen::mock`. It speaks HTTP/2 (ALPN h2) and
//! HTTP/1.1 with keep-alive, counts distinct messages (so a duplicate
//! delivery shows up), the HTTP version of every request and the ALPN
//! protocol of every connection (so a client that silently falls back to
//! HTTP/1.1 or reconnects per request shows up), and, when `--expect`
//! distinct messages have arrived, writes `--done-file` with those counts
//! and the arrival time of the last message, from which the scripts compute
//! end-to-end throughput.

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use postern_loadgen::mock::{self, Api};
use postern_loadgen::{Error, arg, arg_or, args};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
struct Stats {
    ids: HashSet<String>,
    requests: u64,
    rejected: u64,
    h2_requests: u64,
    h1_requests: u64,
    h2_connections: u64,
    h1_connections: u64,
    first_ns: u128,
    last_ns: u128,
    done: bool,
}

impl Stats {
    fn json(&self) -> String {
        format!(
            "{{\"distinct\":{},\"requests\":{},\"rejected\":{},\"h2_requests\":{},\
             \"h1_requests\":{},\"h2_connections\":{},\"h1_connections\":{},\
             \"first_unix_ns\":{},\"last_unix_ns\":{}}}\n",
            self.ids.len(),
            self.requests,
            self.rejected,
            self.h2_requests,
            self.h1_requests,
            self.h2_connections,
            self.h1_connections,
            self.first_ns,
            self.last_ns
        )
    }
}

struct State {
    api: Api,
    stats: Mutex<Stats>,
    expect: usize,
    done_file: PathBuf,
}

impl State {
    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let verdict = mock::accept(
        state.api,
        &mock::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            headers: &parts.headers,
            body: &body,
        },
    );
    let t = now_ns();
    let (n, write) = {
        let mut s = state.stats();
        s.requests += 1;
        if parts.version == Version::HTTP_2 {
            s.h2_requests += 1;
        } else {
            s.h1_requests += 1;
        }
        match &verdict {
            Ok(id) => {
                if s.first_ns == 0 {
                    s.first_ns = t;
                }
                s.last_ns = t;
                s.ids.insert(id.clone());
            }
            Err(e) => {
                s.rejected += 1;
                if s.rejected <= 5 {
                    eprintln!("rejected request: {e}");
                }
            }
        }
        let write = (!s.done && s.ids.len() >= state.expect).then(|| {
            s.done = true;
            s.json()
        });
        (s.requests, write)
    };
    if let Some(text) = write {
        write_done(&state.done_file, &text);
    }
    let response = match (verdict, state.api) {
        (Err(e), _) => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!("{{\"message\":{e:?}}}")))),
        (Ok(id), Api::Http) => Response::builder().body(Full::new(Bytes::from(format!(
            "{{\"id\":\"{id}\",\"bytes\":{}}}",
            body.len()
        )))),
        (Ok(_), Api::Ses) => Response::builder()
            .header("content-type", "application/json")
            .header("x-amzn-requestid", format!("req-{n}"))
            .body(Full::new(Bytes::from(format!(
                "{{\"MessageId\":\"0100019bench-{n:012}-000000\"}}"
            )))),
        (Ok(_), Api::Sendgrid) => Response::builder()
            .status(StatusCode::ACCEPTED)
            .header("x-message-id", format!("bench{n:016}"))
            .body(Full::new(Bytes::new())),
    };
    Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

fn write_done(path: &Path, text: &str) {
    // Write then rename so the scripts never read a half-written file.
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
    let api: Api = arg_or(&a, "api", Api::Http)?;
    let acceptor = TlsAcceptor::from(postern_loadgen::server_config(
        Path::new(&certs),
        &[b"h2", b"http/1.1"],
    )?);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let state = Arc::new(State {
        api,
        stats: Mutex::new(Stats::default()),
        expect,
        done_file: PathBuf::from(done_file),
    });
    eprintln!("sink ({api:?}) listening on 127.0.0.1:{port}, expecting {expect} messages");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (tcp, _) = tokio::select! {
            c = listener.accept() => match c {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = term.recv() => {
                eprint!("sink summary: {}", state.stats().json());
                return Ok(());
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            {
                let mut s = state.stats();
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    s.h2_connections += 1;
                } else {
                    s.h1_connections += 1;
                }
            }
            let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
