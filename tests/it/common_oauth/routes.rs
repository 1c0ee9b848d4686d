//! The provider endpoints the mock plays: token issue, Graph sendMail,
//! drafts, attachments and upload sessions, and the Gmail upload. Each
//! checks the request the way the real API would and records a violation
//! (answered 400) when postern gets it wrong.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Attachment, CHUNK_UNIT, Draft, Inner, MAX_CHUNK, Sent, Upload};
use crate::common::Recorded;

pub(super) type Answer = (u16, Vec<(String, String)>, Vec<u8>);

pub(super) fn json_answer(status: u16, v: Value) -> Answer {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        v.to_string().into_bytes(),
    )
}

fn bad(i: &mut Inner, what: String) -> Answer {
    i.violations.push(what.clone());
    json_answer(
        400,
        json!({"error": {"code": "MockViolation", "message": what}}),
    )
}

pub(super) fn route(i: &mut Inner, r: &Recorded, port: u16) -> Answer {
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
            (
                202,
                vec![("request-id".into(), format!("req-{}", i.next))],
                Vec::new(),
            )
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
        (
            "POST",
            [
                "v1.0",
                "users",
                _,
                "messages",
                id,
                "attachments",
                "createUploadSession",
            ],
        ) => {
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
    if r.method != "POST" || r.header("content-type") != Some("application/x-www-form-urlencoded") {
        return bad(
            i,
            format!("token request {} {:?}", r.method, r.header("content-type")),
        );
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
        return bad(
            i,
            format!("upload content-type {:?}", r.header("content-type")),
        );
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
            Some((
                a.parse::<usize>().ok()?,
                b.parse::<usize>().ok()?,
                total.parse::<usize>().ok()?,
            ))
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
    } else if !last && !len.is_multiple_of(CHUNK_UNIT) {
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
        vec![(
            "Location".into(),
            format!("https://127.0.0.1/attachments/{session}"),
        )],
        Vec::new(),
    )
}

fn b64(data: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(data)
}
