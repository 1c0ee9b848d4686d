//! The http upstream against a real local server (hyper, loopback only):
//! what arrives on the wire, and how responses are classified.

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::UNIX_EPOCH;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use std::sync::Arc;

/// What the test server saw.
struct Seen {
    version: hyper::Version,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

/// Expected outcome: Ok, or Err((permanent, reason)).
type Expect = Result<(), (bool, &'static str)>;

/// Canned answer: status, headers, body.
type Reply = (u16, Vec<(&'static str, &'static str)>, &'static [u8]);

/// A loopback HTTP(S) server answering every request with `reply`; stopped
/// when dropped.
struct Server {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(reply: Reply, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let tls = tls.clone();
            let reply = reply.clone();
            conns.spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    let (status, headers, body) = reply.clone();
                    async move {
                        let version = req.version();
                        let req_headers = req.headers().clone();
                        let got = req.into_body().collect().await?.to_bytes().to_vec();
                        let _ = tx.send(Seen {
                            version,
                            headers: req_headers,
                            body: got,
                        });
                        let mut resp = hyper::Response::builder().status(status);
                        for (k, v) in headers {
                            resp = resp.header(k, v);
                        }
                        Ok::<_, hyper::Error>(resp.body(Full::new(Cursor::new(body))).unwrap())
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(cfg) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
    Server { addr, seen, task }
}

fn config(url: String, format: Format) -> Settings {
    Settings {
        url,
        format,
        auth: None,
        timeout: Duration::from_secs(30),
        ca_file: None,
    }
}

fn rcpts() -> Vec<String> {
    vec!["one@example.net".to_string(), "two@example.org".to_string()]
}

const MESSAGE: &[u8] = b"From: app@example.com\r\nSubject: t\r\n\r\nbody \xc3\xa9\r\n.\r\n";

fn message<'a>(rcpt: &'a [String]) -> OutboundMessage<'a> {
    OutboundMessage {
        id: "0006123456789ABCDEF0",
        mail_from: "app@example.com",
        rcpt_to: rcpt,
        data: MESSAGE,
    }
}

#[tokio::test]
async fn raw_format_sends_bytes_and_envelope_headers() {
    let mut srv = server((202, vec![("X-Message-Id", "up-42")], b"queued"), None).await;
    let mut cfg = config(format!("http://{}/mail", srv.addr), Format::Raw);
    cfg.auth = Some(HttpAuth::Bearer(Secret::for_test("s3cret-token")));
    let up = HttpUpstream::new("api", &cfg).unwrap();
    let rcpt = rcpts();
    let got = up.send(&message(&rcpt)).await.unwrap();
    assert_eq!(got.upstream_id.as_deref(), Some("up-42"));

    let seen = srv.seen.recv().await.unwrap();
    assert_eq!(seen.body, MESSAGE);
    let h = |k: &str| seen.headers.get(k).unwrap().to_str().unwrap().to_string();
    assert_eq!(h("content-type"), "message/rfc822");
    assert_eq!(h("x-postern-mail-from"), "app@example.com");
    let rcpt_headers: Vec<&str> = seen
        .headers
        .get_all("x-postern-rcpt-to")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(rcpt_headers, ["one@example.net", "two@example.org"]);
    assert_eq!(h("x-postern-queue-id"), "0006123456789ABCDEF0");
    assert_eq!(h("authorization"), "Bearer s3cret-token");
}

#[tokio::test]
async fn json_format_sends_base64_document_with_basic_auth() {
    let mut srv = server(
        (
            200,
            vec![("Content-Type", "application/json")],
            br#"{"id":"msg-7"}"#,
        ),
        None,
    )
    .await;
    let mut cfg = config(format!("http://{}/", srv.addr), Format::Json);
    cfg.auth = Some(HttpAuth::Basic {
        username: "user".to_string(),
        password: Secret::for_test("pa:ss"),
    });
    let up = HttpUpstream::new("api", &cfg).unwrap();
    let rcpt = rcpts();
    let got = up.send(&message(&rcpt)).await.unwrap();
    assert_eq!(got.upstream_id.as_deref(), Some("msg-7"));

    let seen = srv.seen.recv().await.unwrap();
    assert_eq!(seen.headers["content-type"], "application/json");
    // base64("user:pa:ss")
    assert_eq!(seen.headers["authorization"], "Basic dXNlcjpwYTpzcw==");
    let doc: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(doc["queue_id"], "0006123456789ABCDEF0");
    assert_eq!(doc["mail_from"], "app@example.com");
    assert_eq!(
        doc["rcpt_to"],
        serde_json::json!(["one@example.net", "two@example.org"])
    );
    let raw = base64::engine::general_purpose::STANDARD
        .decode(doc["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, MESSAGE);
}

#[tokio::test]
async fn status_codes_map_to_outcomes_over_the_wire() {
    let rcpt = rcpts();
    let cases: [(Reply, Expect); 5] = [
        ((204, vec![], b""), Ok(())),
        (
            (503, vec![("Retry-After", "120")], b"maintenance"),
            Err((false, "HTTP 503: maintenance")),
        ),
        (
            (429, vec![], b"slow down"),
            Err((false, "HTTP 429: slow down")),
        ),
        (
            (400, vec![], b"{\"error\":\"bad rcpt\"}"),
            Err((true, "HTTP 400: {\"error\":\"bad rcpt\"}")),
        ),
        (
            (401, vec![], b"bad token"),
            Err((true, "HTTP 401: bad token")),
        ),
    ];
    for (reply, expect) in cases {
        let status = reply.0;
        let srv = server(reply, None).await;
        let up = HttpUpstream::new("api", &config(format!("http://{}/", srv.addr), Format::Raw))
            .unwrap();
        let got = up.send(&message(&rcpt)).await;
        match (got, expect) {
            (Ok(d), Ok(())) => assert_eq!(d.upstream_id, None),
            (Err(e), Err((permanent, reason))) => {
                assert_eq!(e.is_permanent(), permanent, "{status}: {e}");
                assert_eq!(e.reason(), reason);
                if status == 503 {
                    assert!(
                        matches!(e, DeliveryError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(120))
                    );
                }
            }
            (got, expect) => panic!("{status}: got {got:?}, expected {expect:?}"),
        }
    }
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let up = HttpUpstream::new("api", &config(format!("http://{addr}/"), Format::Raw)).unwrap();
    let rcpt = rcpts();
    let err = up.send(&message(&rcpt)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(
        !err.is_ambiguous(),
        "nothing was sent, so nothing can be duplicated: {err}"
    );
    assert!(err.reason().starts_with("cannot connect"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_as_ambiguous() {
    // Accepts connections but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let mut cfg = config(format!("http://{addr}/"), Format::Raw);
    cfg.timeout = Duration::from_millis(200);
    let up = HttpUpstream::new("api", &cfg).unwrap();
    let rcpt = rcpts();
    let err = up.send(&message(&rcpt)).await.unwrap_err();
    hold.abort();
    // The request went out; the server may have acted on it.
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(err.reason().starts_with("no response within"), "{err}");
}

#[tokio::test]
async fn https_with_private_ca_negotiates_h2() {
    let ca_params = {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p
    };
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut srv = server(
        (200, vec![], b"{\"message_id\":\"abc\"}"),
        Some(Arc::new(server_cfg)),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("https://127.0.0.1:{}/send", srv.addr.port());

    // Without the private CA the certificate is not trusted: transient.
    let untrusted = HttpUpstream::new("api", &config(url.clone(), Format::Raw));
    if let Ok(up) = untrusted {
        let rcpt = rcpts();
        let err = up.send(&message(&rcpt)).await.unwrap_err();
        assert!(!err.is_permanent(), "{err}");
    }

    let mut cfg = config(url, Format::Raw);
    cfg.ca_file = Some(ca_file);
    let up = HttpUpstream::new("api", &cfg).unwrap();
    let rcpt = rcpts();
    let got = up.send(&message(&rcpt)).await.unwrap();
    assert_eq!(got.upstream_id.as_deref(), Some("abc"));
    let seen = srv.seen.recv().await.unwrap();
    assert_eq!(seen.version, hyper::Version::HTTP_2);
    assert_eq!(seen.body, MESSAGE);
}

#[test]
fn bad_configs_fail_at_build() {
    for url in ["ftp://x/", "not a url", "https://user:pw@example.com/"] {
        let Err(err) = HttpUpstream::new("api", &config(url.to_string(), Format::Raw)) else {
            panic!("{url} accepted")
        };
        assert!(
            matches!(err, UpstreamError::InvalidUrl { .. }),
            "{url}: {err}"
        );
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let mut cfg = config("https://example.com/".to_string(), Format::Raw);
    cfg.ca_file = Some(empty);
    let Err(err) = HttpUpstream::new("api", &cfg) else {
        panic!("unreadable ca_file accepted")
    };
    assert!(
        matches!(
            err,
            UpstreamError::Https {
                source: crate::https::ClientError::CaFile { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn debug_never_shows_secrets() {
    let mut cfg = config("https://example.com/".to_string(), Format::Json);
    cfg.auth = Some(HttpAuth::Bearer(Secret::for_test("tok-123")));
    assert!(!format!("{cfg:?}").contains("tok-123"));
    let basic = HttpAuth::Basic {
        username: "u".to_string(),
        password: Secret::for_test("pw-456"),
    };
    let text = format!("{basic:?}");
    assert!(!text.contains("pw-456") && text.contains("\"u\""), "{text}");
}

#[test]
fn classify_without_network() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut headers = HeaderMap::new();
    let ok = classify(StatusCode::OK, &headers, br#"{"message_id": 12}"#, now).unwrap();
    assert_eq!(ok.upstream_id.as_deref(), Some("12"));
    assert_eq!(
        classify(StatusCode::CREATED, &headers, b"not json", now)
            .unwrap()
            .upstream_id,
        None
    );

    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Tue, 14 Nov 2023 22:30:00 GMT"),
    );
    match classify(StatusCode::SERVICE_UNAVAILABLE, &headers, b"", now) {
        Err(DeliveryError::Transient {
            reason,
            retry_after,
        }) => {
            assert_eq!(reason, "HTTP 503");
            assert_eq!(retry_after, Some(Duration::from_secs(1000)));
        }
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(2000) + "\n\rinjected";
    let err = classify(
        StatusCode::UNPROCESSABLE_ENTITY,
        &HeaderMap::new(),
        long.as_bytes(),
        now,
    )
    .unwrap_err();
    assert!(err.is_permanent());
    assert!(
        err.reason().chars().count() <= "HTTP 422: ".len() + MAX_REASON_BODY + 1,
        "{}",
        err.reason().len()
    );
    assert!(!err.reason().contains('\n'));

    let mut redirect = HeaderMap::new();
    redirect.insert(
        reqwest::header::LOCATION,
        HeaderValue::from_static("https://elsewhere/"),
    );
    let err = classify(StatusCode::MOVED_PERMANENTLY, &redirect, b"", now).unwrap_err();
    assert!(
        err.is_permanent() && err.reason().contains("https://elsewhere/"),
        "{err}"
    );
    assert!(
        !classify(StatusCode::REQUEST_TIMEOUT, &HeaderMap::new(), b"", now)
            .unwrap_err()
            .is_permanent()
    );
}

#[test]
fn retry_after_forms() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        parse_retry_after(" 30 ", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 22:13:21 GMT", now),
        Some(Duration::from_secs(1))
    );
    // A date in the past means "now".
    assert_eq!(
        parse_retry_after("Tue, 14 Nov 2023 00:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
}
