//! `ProviderMock`: one local HTTPS server that plays an OAuth token endpoint,
//! Microsoft Graph (sendMail, drafts, attachments, upload sessions) and the
//! Gmail upload API. It exists because these APIs are stateful (a token must
//! be issued before it is accepted, a draft must exist before attachments
//! are added, upload ranges must be contiguous), which the plain scripted
//! `MockUpstream` cannot check. It validates what it can on the spot
//! (anything wrong is answered 400 and listed in `violations()`), records
//! every request, and can inject faults (statuses, resets) and hold token
//! requests at a gate.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

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
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
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

    /// Waits until at least `n` requests whose path contains `part` arrived.
    pub fn wait_requests(&self, part: &str, n: usize) {
        self.wait(&format!("{n} request(s) to {part}"), |i| {
            i.requests.iter().filter(|r| r.path.contains(part)).count() >= n
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

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn json_answer(status: u16, v: Value) -> Answer {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        v.to_string().into_bytes(),
    )
}

fn bad(i: &mut Inner, what: String) -> Answer {
    i.violations.push(what.clone());
    json_answer(400, json!({"error": {"code": "MockViolation", "message": what}}))
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

fn route(i: &mut Inner, r: &Recorded, port: u16) -> Answer {
    let path = r.path.split('?').next().unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if path.ends_with("/token") {
        return token(i, r);
    }
    if let Some(session) = path.strip_prefix("/upload-session/") {
        return upload_chunk(i, r, session);
    }
    // Everything else is an API call with a bearer token.
    let token = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    if !i.issued.contains(&token) || i.revoked.contains(&token) {
        return json_answer(
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}}),
        );
    }
    let ct = r.header("content-type").unwrap_or("").to_string();
    match (r.method.as_str(), segs.as_slice()) {
        ("POST", ["v1.0", "users", mb, "sendMail"]) => {
            let mailbox = mb.to_string();
            if ct == "text/plain" {
                match b64(&r.body) {
                    Ok(mime) => i.sent.push(Sent::Mime { mailbox, mime }),
                    Err(e) => return bad(i, format!("sendMail body is not base64: {e}")),
                }
            } else if ct == "application/json" {
                match serde_json::from_slice(&r.body) {
                    Ok(body) => i.sent.push(Sent::Json { mailbox, body }),
                    Err(e) => return bad(i, format!("sendMail JSON: {e}")),
                }
            } else {
                return bad(i, format!("sendMail content-type {ct:?}"));
            }
            i.next += 1;
            (202, vec![("request-id".into(), format!("req-{}", i.next))], Vec::new())
        }
        ("POST", ["v1.0", "users", mb, "messages"]) => {
            if ct != "text/plain" {
                return bad(i, format!("create draft content-type {ct:?}"));
            }
            let mime = match b64(&r.body) {
                Ok(m) => m,
                Err(e) => return bad(i, format!("draft body is not base64: {e}")),
            };
            if r.body.len() > 4 * 1024 * 1024 {
                return bad(i, format!("draft request of {} bytes", r.body.len()));
            }
            i.next += 1;
            let id = format!("draft-{}=", i.next);
            i.drafts.insert(
                id.clone(),
                Draft {
                    mailbox: mb.to_string(),
                    mime,
                    attachments: Vec::new(),
                },
            );
            json_answer(201, json!({"id": id, "isDraft": true}))
        }
        ("POST", ["v1.0", "users", _, "messages", id, "attachments", "createUploadSession"]) => {
            let id = id.to_string();
            if !i.drafts.contains_key(&id) {
                return bad(i, format!("upload session for unknown draft {id}"));
            }
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let item = v["AttachmentItem"].clone();
            let size = item["size"].as_u64().unwrap_or(0) as usize;
            if item["attachmentType"] != "file" || size == 0 || !item["name"].is_string() {
                return bad(i, format!("bad AttachmentItem {item}"));
            }
            i.next += 1;
            let session = format!("sess-{}", i.next);
            i.uploads.insert(
                session.clone(),
                Upload {
                    draft: id,
                    meta: item,
                    size,
                    data: Vec::new(),
                },
            );
            json_answer(
                201,
                json!({
                    "uploadUrl": format!("https://127.0.0.1:{port}/upload-session/{session}?authtoken=pre-auth-secret"),
                    "expirationDateTime": "2099-01-01T00:00:00Z",
                    "nextExpectedRanges": ["0-"],
                }),
            )
        }
        ("POST", ["v1.0", "users", _, "messages", id, "attachments"]) => {
            let id = id.to_string();
            let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if v["@odata.type"] != "#microsoft.graph.fileAttachment" {
                return bad(i, format!("attachment without fileAttachment type: {v}"));
            }
            let bytes = match v["contentBytes"].as_str().map(|s| b64(s.as_bytes())) {
                Some(Ok(b)) => b,
                _ => return bad(i, "attachment contentBytes".into()),
            };
            v.as_object_mut().map(|o| o.remove("contentBytes"));
            match i.drafts.get_mut(&id) {
                Some(d) => d.attachments.push(Attachment {
                    meta: v,
                    bytes,
                    via: "post",
                }),
                None => return bad(i, format!("attachment for unknown draft {id}")),
            }
            json_answer(201, json!({"id": "att"}))
        }
        ("POST", ["v1.0", "users", _, "messages", id, "send"]) => {
            let id = id.to_string();
            if i.uploads.values().any(|u| u.draft == id) {
                return bad(i, format!("draft {id} sent with an unfinished upload"));
            }
            match i.drafts.remove(&id) {
                Some(d) => i.sent.push(Sent::Draft {
                    mailbox: d.mailbox,
                    mime: d.mime,
                    attachments: d.attachments,
                }),
                None => return bad(i, format!("send of unknown draft {id}")),
            }
            (202, Vec::new(), Vec::new())
        }
        ("DELETE", ["v1.0", "users", _, "messages", id]) => {
            i.drafts.remove(*id);
            (204, Vec::new(), Vec::new())
        }
        ("POST", ["upload", "gmail", "v1", "users", user, "messages", "send"]) => {
            if r.path.split('?').nth(1) != Some("uploadType=media") {
                return bad(i, format!("gmail query in {}", r.path));
            }
            if ct != "message/rfc822" {
                return bad(i, format!("gmail content-type {ct:?}"));
            }
            i.sent.push(Sent::Gmail {
                user: user.to_string(),
                mime: r.body.clone(),
            });
            i.next += 1;
            json_answer(
                200,
                json!({"id": format!("gm-{}", i.next), "threadId": "t1", "labelIds": ["SENT"]}),
            )
        }
        _ => bad(i, format!("unexpected {} {}", r.method, r.path)),
    }
}

fn token(i: &mut Inner, r: &Recorded) -> Answer {
    if r.method != "POST"
        || r.header("content-type") != Some("application/x-www-form-urlencoded")
    {
        return bad(i, format!("token request {} {:?}", r.method, r.header("content-type")));
    }
    i.next += 1;
    let t = format!("tok-{}", i.next);
    i.issued.push(t.clone());
    json_answer(
        200,
        json!({"token_type": "Bearer", "expires_in": i.expires_in, "access_token": t}),
    )
}

fn upload_chunk(i: &mut Inner, r: &Recorded, session: &str) -> Answer {
    if r.method != "PUT" {
        return bad(i, format!("{} on upload url", r.method));
    }
    if r.header("authorization").is_some() {
        return bad(i, "Authorization header sent to the upload url".into());
    }
    if !r.path.contains("authtoken=pre-auth-secret") {
        return bad(i, format!("upload url changed: {}", r.path));
    }
    if r.header("content-type") != Some("application/octet-stream") {
        return bad(i, format!("upload content-type {:?}", r.header("content-type")));
    }
    let range = r.header("content-range").unwrap_or("").to_string();
    let Some(up) = i.uploads.get(session) else {
        return bad(i, format!("unknown upload session {session}"));
    };
    let parsed = range
        .strip_prefix("bytes ")
        .and_then(|x| x.split_once('/'))
        .and_then(|(span, total)| {
            let (a, b) = span.split_once('-')?;
            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?, total.parse::<usize>().ok()?))
        });
    let Some((a, b, total)) = parsed else {
        return bad(i, format!("bad Content-Range {range:?}"));
    };
    let len = r.body.len();
    let last = b + 1 == up.size;
    let problem = if total != up.size {
        Some("total differs from AttachmentItem.size")
    } else if a != up.data.len() {
        Some("range does not continue where the last one ended")
    } else if b < a || b - a + 1 != len {
        Some("range length differs from body length")
    } else if len > MAX_CHUNK {
        Some("chunk over 4 MiB")
    } else if !last && len % CHUNK_UNIT != 0 {
        Some("non-final chunk not a multiple of 320 KiB")
    } else {
        None
    };
    if let Some(p) = problem {
        return bad(i, format!("{p}: {range} with {len} bytes"));
    }
    let up = i.uploads.get_mut(session).expect("session");
    up.data.extend_from_slice(&r.body);
    if !last {
        let next = up.data.len();
        return json_answer(
            200,
            json!({"expirationDateTime": "2099-01-01T00:00:00Z", "nextExpectedRanges": [format!("{next}-")]}),
        );
    }
    let up = i.uploads.remove(session).expect("session");
    match i.drafts.get_mut(&up.draft) {
        Some(d) => d.attachments.push(Attachment {
            meta: up.meta,
            bytes: up.data,
            via: "session",
        }),
        None => return bad(i, format!("upload for deleted draft {}", up.draft)),
    }
    (
        201,
        vec![("Location".into(), format!("https://127.0.0.1/attachments/{session}"))],
        Vec::new(),
    )
}

fn b64(data: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(data)
}

/// Decodes an `application/x-www-form-urlencoded` body into ordered pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex digit"));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).expect("utf-8 form value")
}

/// The JWT's (header, claims) JSON and the signed input + signature.
pub fn jwt_parts(token: &str) -> (Value, Value, String, Vec<u8>) {
    let d = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap_or_else(|e| panic!("JWT part not base64url: {e}"))
    };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "JWT has three parts: {token}");
    let header = serde_json::from_slice(&d(parts[0])).expect("JWT header JSON");
    let claims = serde_json::from_slice(&d(parts[1])).expect("JWT claims JSON");
    (
        header,
        claims,
        format!("{}.{}", parts[0], parts[1]),
        d(parts[2]),
    )
}

/// An RSA key made once per test binary (slow in debug builds):
/// (PKCS#8 PEM, PKCS#1 RSAPublicKey DER for ring's verifier).
pub fn rsa_key() -> &'static (String, Vec<u8>) {
    static KEY: std::sync::OnceLock<(String, Vec<u8>)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa key");
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8 pem")
            .to_string();
        let public = key.to_public_key().to_pkcs1_der().expect("public der");
        (pem, public.as_bytes().to_vec())
    })
}
