//! What the benchmark sink checks and answers when it plays a provider API
//! (`sink --api ses|sendgrid`) instead of the generic `http` endpoint.
//!
//! The point of the benchmark is postern's cost per kind, so the mock stays
//! cheap and equal for all kinds: it does not parse JSON, it checks the
//! request line, the authentication header and that the fields carrying the
//! message are there (substring scans), and takes one message key out of the
//! body so that duplicate and missing deliveries still show up. A request
//! that fails a check is answered 400, which postern dead-letters, so the
//! run never completes and the mistake cannot go unnoticed.

use base64::Engine;
use hyper::HeaderMap;

/// Which API the sink plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// postern's `kind = "http"` (raw format): 200, key in `X-Postern-Queue-Id`.
    Http,
    /// SES v2 `SendEmail`: 200 with `{"MessageId": ...}`.
    Ses,
    /// SendGrid v3 mail/send: 202, empty body, `X-Message-Id` header.
    Sendgrid,
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Api, String> {
        match s {
            "http" => Ok(Api::Http),
            "ses" => Ok(Api::Ses),
            "sendgrid" => Ok(Api::Sendgrid),
            o => Err(format!("unknown api {o:?}: use http, ses or sendgrid")),
        }
    }
}

/// The request parts the checks look at.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// An accepted request: the key that identifies the message.
pub type Accepted = Result<String, String>;

pub const SES_PATH: &str = "/v2/email/outbound-emails";
pub const SENDGRID_PATH: &str = "/v3/mail/send";

/// Checks `req` as `api` would and returns the message key, or why the
/// request would have been refused.
pub fn accept(api: Api, req: &Request<'_>) -> Accepted {
    if req.method != "POST" {
        return Err(format!("method {} (want POST)", req.method));
    }
    match api {
        Api::Http => header(req, "x-postern-queue-id")
            .map(str::to_string)
            .ok_or_else(|| "no X-Postern-Queue-Id".into()),
        Api::Ses => {
            want_path(req, SES_PATH)?;
            want_prefix(req, "authorization", "AWS4-HMAC-SHA256 Credential=")?;
            want_prefix(req, "content-type", "application/json")?;
            header(req, "x-amz-date").ok_or("no X-Amz-Date")?;
            let body = std::str::from_utf8(req.body).map_err(|_| "body is not UTF-8")?;
            if !body.contains(r#""Destination":{"ToAddresses":["#) {
                return Err("no Destination.ToAddresses".into());
            }
            let data =
                json_string_after(body, r#""Raw":{"Data":""#).ok_or("no Content.Raw.Data")?;
            // The header section is at the start: decoding 3 KiB of it
            // usually finds the key without decoding the whole message.
            let decode = |text: &str| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("Content.Raw.Data is not base64: {e}"))
            };
            let head = decode(data.get(..4096).unwrap_or(data))?;
            if head.windows(4).any(|w| w == b"\r\n\r\n")
                && let Some(id) = header_value(&head, "message-id")
            {
                return Ok(id);
            }
            header_value(&decode(data)?, "message-id")
                .ok_or_else(|| "raw message has no Message-ID".into())
        }
        Api::Sendgrid => {
            want_path(req, SENDGRID_PATH)?;
            want_prefix(req, "authorization", "Bearer ")?;
            want_prefix(req, "content-type", "application/json")?;
            let body = std::str::from_utf8(req.body).map_err(|_| "body is not UTF-8")?;
            for field in [
                r#""personalizations":[{"to":["#,
                r#""from":{"#,
                r#""content":["#,
            ] {
                if !body.contains(field) {
                    return Err(format!("no {field}"));
                }
            }
            // The load generator's subjects are unique ("bench SESSION-N").
            json_string_after(body, r#""subject":""#)
                .map(str::to_string)
                .ok_or_else(|| "no subject".into())
        }
    }
}

fn header<'a>(req: &Request<'a>, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn want_path(req: &Request<'_>, path: &str) -> Result<(), String> {
    if req.path == path {
        Ok(())
    } else {
        Err(format!("path {} (want {path})", req.path))
    }
}

fn want_prefix(req: &Request<'_>, name: &str, prefix: &str) -> Result<(), String> {
    match header(req, name) {
        Some(v) if v.starts_with(prefix) => Ok(()),
        Some(v) => Err(format!("{name}: {v:?} does not start with {prefix:?}")),
        None => Err(format!("no {name} header")),
    }
}

/// The JSON string value that starts right after `marker` (which ends with
/// the opening quote), up to the next unescaped quote. Quotes are found
/// with `find` (memchr speed): the body is a whole message, and a slow mock
/// would tax the kinds that send JSON for the sink's own work.
fn json_string_after<'a>(body: &'a str, marker: &str) -> Option<&'a str> {
    let start = body.find(marker)? + marker.len();
    let rest = &body[start..];
    let mut from = 0;
    loop {
        let q = from + rest[from..].find('"')?;
        let backslashes = rest.as_bytes()[..q]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(&rest[..q]);
        }
        from = q + 1;
    }
}

/// The (unfolded, trimmed) value of the first header `name` in a raw message.
fn header_value(raw: &[u8], name: &str) -> Option<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if !n.eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = v.trim().to_string();
        while let Some(cont) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(cont.trim());
        }
        return Some(value.trim().to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(path: &'a str, body: &'a [u8], headers: &'a HeaderMap) -> Request<'a> {
        Request {
            method: "POST",
            path,
            headers,
            body,
        }
    }

    fn map(h: &[(&'static str, &str)]) -> HeaderMap {
        h.iter()
            .map(|(k, v)| {
                (
                    hyper::header::HeaderName::from_static(k),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn ses_request_yields_the_message_id() {
        let raw = "Received: from x\r\n  by y\r\nMessage-ID:\r\n <0-7@bench.example.com>\r\nSubject: s\r\n\r\nMessage-ID: body\r\n";
        let data = base64::engine::general_purpose::STANDARD.encode(raw);
        let body = format!(
            r#"{{"FromEmailAddress":"a@example.com","Destination":{{"ToAddresses":["b@x.test"]}},"Content":{{"Raw":{{"Data":"{data}"}}}}}}"#
        );
        let h = [
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/..."),
            ("content-type", "application/json"),
            ("x-amz-date", "20261127T000000Z"),
        ];
        let f = map(&h);
        let r = req(SES_PATH, body.as_bytes(), &f);
        assert_eq!(accept(Api::Ses, &r).unwrap(), "<0-7@bench.example.com>");
        // A header section longer than the decoded prefix is read whole.
        let long = format!("X-Pad: {}\r\n{raw}", "p".repeat(5000));
        let body2 = body.replace(
            &data,
            &base64::engine::general_purpose::STANDARD.encode(long),
        );
        let r2 = req(SES_PATH, body2.as_bytes(), &f);
        assert_eq!(accept(Api::Ses, &r2).unwrap(), "<0-7@bench.example.com>");
        let r = req("/v2/other", body.as_bytes(), &f);
        assert!(accept(Api::Ses, &r).unwrap_err().contains("path"));
        let unsigned = [h[1], h[2]];
        let f2 = map(&unsigned);
        let r = req(SES_PATH, body.as_bytes(), &f2);
        assert!(accept(Api::Ses, &r).unwrap_err().contains("authorization"));
    }

    #[test]
    fn sendgrid_request_yields_the_subject() {
        let body = br#"{"personalizations":[{"to":[{"email":"b@x.test"}]}],"from":{"email":"a@example.com"},"subject":"bench \"3\"-45 \\","content":[{"type":"text/plain","value":"x"}]}"#;
        let h = [
            ("authorization", "Bearer SG.key"),
            ("content-type", "application/json"),
        ];
        let f = map(&h);
        let r = req(SENDGRID_PATH, body, &f);
        assert_eq!(accept(Api::Sendgrid, &r).unwrap(), r#"bench \"3\"-45 \\"#);
        let r = req(SENDGRID_PATH, br#"{"subject":"x"}"#, &f);
        assert!(accept(Api::Sendgrid, &r).is_err());
    }

    #[test]
    fn http_request_needs_the_queue_id() {
        let h = [("x-postern-queue-id", "Q1")];
        let f = map(&h);
        assert_eq!(accept(Api::Http, &req("/send", b"", &f)).unwrap(), "Q1");
        let f = map(&[]);
        assert!(accept(Api::Http, &req("/send", b"", &f)).is_err());
    }
}
