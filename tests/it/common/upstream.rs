//! `MockUpstream`: a local HTTPS server that plays the email API postern
//! delivers to. It exists so tests can see exactly what left postern (method,
//! path, headers, body bytes) and can script the API's behaviour (failures,
//! rejections, hangs) without any network beyond loopback.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::TestCa;

/// One request exactly as it reached the mock.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (case-insensitive name).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of a header that must be present exactly once.
    pub fn one_header(&self, name: &str) -> &str {
        let all = self.header_all(name);
        assert_eq!(
            all.len(),
            1,
            "header {name} must appear exactly once in {self:?}"
        );
        all[0]
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long (after recording the request) before answering.
    pub delay: Option<Duration>,
}

impl Scripted {
    /// `200 OK` with a small JSON body, like most email APIs.
    pub fn ok() -> Scripted {
        Scripted::status(200).body(br#"{"id":"mock-accepted"}"#)
    }

    pub fn status(status: u16) -> Scripted {
        Scripted {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    pub fn body(mut self, body: &[u8]) -> Scripted {
        self.body = body.to_vec();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Scripted {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Scripted {
        self.delay = Some(d);
        self
    }

    /// Never answers within the lifetime of a test.
    pub fn hang() -> Scripted {
        Scripted::status(200).delay(Duration::from_secs(3600))
    }
}

struct Inner {
    requests: Vec<Recorded>,
    queue: VecDeque<Scripted>,
    default: Scripted,
}

struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
}

/// The mock API server. Stopped (all connections dropped) when dropped.
pub struct MockUpstream {
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    pub port: u16,
}

impl MockUpstream {
    /// Starts a mock answering `200` to everything.
    pub fn start(ca: &TestCa) -> MockUpstream {
        Self::with_default(ca, Scripted::ok())
    }

    /// Starts a mock answering `default` whenever the script queue is empty.
    pub fn with_default(ca: &TestCa, default: Scripted) -> MockUpstream {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("mock runtime");
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                requests: Vec::new(),
                queue: VecDeque::new(),
                default,
            }),
            cv: Condvar::new(),
        });
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind mock upstream");
        let port = listener.local_addr().expect("mock addr").port();
        let acceptor = TlsAcceptor::from(ca.server_config(&[b"h2", b"http/1.1"]));
        let state = shared.clone();
        serve_tls(&rt, listener, acceptor, move |req| {
            handle(state.clone(), req)
        });
        MockUpstream {
            rt: Some(rt),
            shared,
            port,
        }
    }

    /// Default delivery URL (`https://127.0.0.1:PORT/send`).
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/send", self.port)
    }

    /// Queues one scripted answer (used before the default).
    pub fn push(&self, s: Scripted) {
        self.shared.inner.lock().unwrap().queue.push_back(s);
    }

    /// Replaces the answer used when the queue is empty.
    pub fn set_default(&self, s: Scripted) {
        self.shared.inner.lock().unwrap().default = s;
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.inner.lock().unwrap().requests.len()
    }

    /// Waits (up to `timeout`) until at least `n` requests arrived.
    pub fn try_wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Recorded>, String> {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.inner.lock().unwrap();
        while g.requests.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "mock upstream: waited {timeout:?} for {n} request(s), got {}: {:#?}",
                    g.requests.len(),
                    g.requests
                ));
            }
            g = self.shared.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
        Ok(g.requests.clone())
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Accepts TLS connections on `listener` for as long as `rt` lives and
/// serves each with `handle` (HTTP/1.1 or h2, as the client offers): the
/// one way every mock provider terminates TLS.
pub fn serve_tls<H, F, E>(
    rt: &tokio::runtime::Runtime,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(handle);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
}

async fn handle(
    state: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return Ok(plain(400, b"unreadable body")),
    };
    let answer = {
        let mut g = state.inner.lock().unwrap();
        g.requests.push(Recorded {
            method,
            path,
            headers,
            body,
        });
        let answer = g.queue.pop_front().unwrap_or_else(|| g.default.clone());
        state.cv.notify_all();
        answer
    };
    if let Some(d) = answer.delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = plain(answer.status, &answer.body);
    for (n, v) in &answer.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(n.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    Ok(resp)
}

fn plain(status: u16, body: &[u8]) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::copy_from_slice(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}
