//! `ProviderMock`: one local HTTPS server that plays an OAuth token endpoint,
//! Microsoft Graph (sendMail, drafts, attachments, upload sessions) and the
//! Gmail upload API. It exists because these APIs are stateful (a token must
//! be issued before it is accepted, a draft must exist before attachments
//! are added, upload ranges must be contiguous), which the plain scripted
//! `MockUpstream` cannot check. It validates what it can on the spot
//! (anything wrong is answered 400 and listed in `violations()`), records
//! every request, and can inject faults (statuses, resets) and hold token
//! requests at a gate.

mod helpers;
mod routes;

pub use helpers::*;
use routes::route;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::common::upstream::serve_tls;
use crate::common::{Recorded, TestCa};

/// A scripted failure for the next matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Drop the request without an answer (connection/stream reset).
    Reset,
    /// Take the request and never answer it (the client times out).
    Hang,
}

impl Fault {
    pub fn status(status: u16, body: &str) -> Fault {
        Fault::Status {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn retry_after(status: u16, secs: u32) -> Fault {
        Fault::Status {
            status,
            headers: vec![("Retry-After".into(), secs.to_string())],
            body: String::new(),
        }
    }
}

/// One message the mock accepted for sending.
#[derive(Clone, Debug)]
pub enum Sent {
    /// Graph sendMail with base64 MIME.
    Mime { mailbox: String, mime: Vec<u8> },
    /// Graph sendMail with the JSON message resource.
    Json { mailbox: String, body: Value },
    /// Graph draft sent with `/send`.
    Draft {
        mailbox: String,
        mime: Vec<u8>,
        attachments: Vec<Attachment>,
    },
    /// Gmail messages.send upload.
    Gmail { user: String, mime: Vec<u8> },
}

#[derive(Clone, Debug)]
pub struct Attachment {
    /// The AttachmentItem / fileAttachment JSON minus the content.
    pub meta: Value,
    pub bytes: Vec<u8>,
    /// "session" or "post".
    pub via: &'static str,
}

struct Upload {
    draft: String,
    meta: Value,
    size: usize,
    data: Vec<u8>,
}

struct Draft {
    mailbox: String,
    mime: Vec<u8>,
    attachments: Vec<Attachment>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    token_faults: VecDeque<Fault>,
    api_faults: VecDeque<Fault>,
    expires_in: u64,
    issued: Vec<String>,
    revoked: HashSet<String>,
    drafts: HashMap<String, Draft>,
    uploads: HashMap<String, Upload>,
    sent: Vec<Sent>,
    next: u64,
    gate_waiting: usize,
}

struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
    gate: tokio::sync::watch::Sender<bool>,
    port: u16,
}

/// The mock. Stopped when dropped.
pub struct ProviderMock {
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    pub port: u16,
}

/// Chunk rules Graph documents for upload sessions.
const MAX_CHUNK: usize = 4 * 1024 * 1024;
const CHUNK_UNIT: usize = 320 * 1024;

impl ProviderMock {
    pub fn start(ca: &TestCa) -> ProviderMock {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("mock runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind provider mock");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                expires_in: 3600,
                ..Inner::default()
            }),
            cv: Condvar::new(),
            gate: tokio::sync::watch::channel(true).0,
            port,
        });
        let acceptor = TlsAcceptor::from(ca.server_config(&[b"h2", b"http/1.1"]));
        let state = shared.clone();
        serve_tls(&rt, listener, acceptor, move |req| {
            handle(state.clone(), req)
        });
        ProviderMock {
            rt: Some(rt),
            shared,
            port,
        }
    }

    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().unwrap())
    }

    /// Lifetime (`expires_in`) of the tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.with(|i| i.expires_in = secs);
    }

    /// Every token issued so far stops working (answered 401).
    pub fn revoke_all(&self) {
        self.with(|i| {
            let all: Vec<String> = i.issued.clone();
            i.revoked.extend(all);
        });
    }

    pub fn push_token_fault(&self, f: Fault) {
        self.with(|i| i.token_faults.push_back(f));
    }

    pub fn push_api_fault(&self, f: Fault) {
        self.with(|i| i.api_faults.push_back(f));
    }

    /// Token requests wait until `open_gate`.
    pub fn close_gate(&self) {
        self.shared.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|i| i.requests.clone())
    }

    /// Requests whose path ends with `/token`.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/token"))
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.with(|i| i.violations.clone())
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.with(|i| i.sent.clone())
    }

    pub fn drafts_left(&self) -> usize {
        self.with(|i| i.drafts.len())
    }

    /// Waits up to 60 s for `pred` on the state; panics with `what` otherwise.
    fn wait(&self, what: &str, pred: impl Fn(&Inner) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut g = self.shared.inner.lock().unwrap();
        while !pred(&g) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "provider mock: timed out waiting for {what}; requests: {:#?}\nviolations: {:?}",
                g.requests
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>(),
                g.violations
            );
            g = self.shared.cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until `n` messages were accepted; returns them all.
    pub fn wait_sent(&self, n: usize) -> Vec<Sent> {
        self.wait(&format!("{n} sent message(s)"), |i| i.sent.len() >= n);
        self.sent()
    }

    /// Waits until `n` token requests are held at the closed gate.
    pub fn wait_gate_waiting(&self, n: usize) {
        self.wait(&format!("{n} token request(s) at the gate"), |i| {
            i.gate_waiting >= n
        });
    }
}

impl Drop for ProviderMock {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn handle(
    state: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = req
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
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let rec = Recorded {
        method,
        path,
        headers,
        body,
    };
    let is_token = rec.path.ends_with("/token");
    if is_token {
        let mut gate = state.gate.subscribe();
        if !*gate.borrow() {
            state.inner.lock().unwrap().gate_waiting += 1;
            state.cv.notify_all();
            let _ = gate.wait_for(|open| *open).await;
        }
    }
    let mut hang = false;
    let answer = {
        let mut i = state.inner.lock().unwrap();
        i.requests.push(rec.clone());
        let fault = if is_token {
            i.token_faults.pop_front()
        } else if !rec.path.starts_with("/upload-session/") {
            i.api_faults.pop_front()
        } else {
            None
        };
        let answer = match fault {
            Some(Fault::Reset) => None,
            Some(Fault::Hang) => {
                hang = true;
                Some((200, Vec::new(), Vec::new()))
            }
            Some(Fault::Status {
                status,
                headers,
                body,
            }) => Some((status, headers, body.into_bytes())),
            None => Some(route(&mut i, &rec, state.port)),
        };
        state.cv.notify_all();
        answer
    };
    if hang {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
    let Some((status, headers, body)) = answer else {
        return Err(std::io::Error::other("injected reset"));
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    for (n, v) in headers {
        resp.headers_mut().append(
            hyper::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            hyper::header::HeaderValue::from_str(&v).expect("value"),
        );
    }
    Ok(resp)
}
