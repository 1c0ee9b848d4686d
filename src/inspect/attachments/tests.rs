use super::*;
use mail_parser::MessageParser;

fn exts() -> Vec<String> {
    crate::inspect::DEFAULT_BLOCKED_EXTENSIONS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn run(raw: &[u8], max_size: Option<u64>) -> Result<(), AttachmentError> {
    let blocked = exts();
    let msg = MessageParser::new().parse(raw).expect("parses");
    check(
        &flatten(msg),
        AttachmentRules {
            blocked_extensions: &blocked,
            max_size,
        },
    )
}

fn blocked(name: &str, ext: &str) -> Result<(), AttachmentError> {
    Err(AttachmentError::Blocked {
        name: name.into(),
        ext: ext.into(),
    })
}

#[test]
fn extension_matching() {
    let b = exts();
    assert_eq!(blocked_extension("Invoice.EXE", &b), Some("exe"));
    assert_eq!(blocked_extension("invoice.exe. ", &b), Some("exe"));
    assert_eq!(blocked_extension("invoic e.e xe", &b), Some("exe"));
    assert_eq!(blocked_extension("invoice.ex\u{200b}e", &b), Some("exe"));
    assert_eq!(blocked_extension("invoice.exe\0.pdf", &b), Some("exe"));
    assert_eq!(blocked_extension("report\u{202e}fdp.js", &b), Some("js"));
    assert_eq!(blocked_extension("invoice.exe.pdf", &b), None);
    assert_eq!(blocked_extension("exe", &b), None);
    assert_eq!(blocked_extension("notes.json", &b), None);
    assert_eq!(blocked_extension("a.exe", &[]), None);
    assert_eq!(
        blocked_extension("x.tar.gz", &["tar.gz".to_string()]),
        Some("tar.gz")
    );
}

const NESTED: &[u8] = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b1\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n\
--b2\r\nContent-Type: application/pdf; name=ok.pdf\r\n\r\npdf\r\n\
--b2\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; NAMEPARAM\r\n\r\nMZ\r\n\
--b2--\r\n--b1--\r\n";

fn nested_with(param: &str) -> Vec<u8> {
    String::from_utf8_lossy(NESTED)
        .replace("NAMEPARAM", param)
        .into_bytes()
}

#[test]
fn names_in_nested_multiparts_and_encodings() {
    assert_eq!(run(&nested_with("filename=report.pdf"), None), Ok(()));
    assert_eq!(
        run(&nested_with("filename=\"Invoice.EXE\""), None),
        blocked("Invoice.EXE", "exe")
    );
    assert_eq!(
        run(&nested_with("filename*=UTF-8''invoice.%65xe"), None),
        blocked("invoice.exe", "exe")
    );
    assert_eq!(
        run(
            &nested_with("filename=\"=?UTF-8?B?aW52b2ljZS5leGU=?=\""),
            None
        ),
        blocked("invoice.exe", "exe")
    );
    assert_eq!(
        run(
            &nested_with("filename*0*=UTF-8''inv; filename*1=oice.s; filename*2=cr"),
            None
        ),
        blocked("invoice.scr", "scr")
    );
    // An innocent first name does not hide a second one.
    assert_eq!(
        run(&nested_with("filename=x.pdf; filename*=UTF-8''y.vbs"), None),
        blocked("y.vbs", "vbs")
    );
    // Split encoded words decode with a space; the extension is still seen.
    assert!(matches!(
        run(&nested_with("filename=\"=?UTF-8?B?aW52b2ljZS5l?= =?UTF-8?B?eGU=?=\""), None),
        Err(AttachmentError::Blocked { ext, .. }) if ext == "exe"
    ));
}

#[test]
fn names_inside_attached_messages() {
    let raw = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\n\
From: inner@x\r\nContent-Type: multipart/mixed; boundary=b3\r\n\r\n\
--b3\r\nContent-Type: text/plain; name=inner.js\r\n\r\nalert(1)\r\n--b3--\r\n\
--b1--\r\n";
    assert_eq!(run(raw, None), blocked("inner.js", "js"));
}

#[test]
fn base64_wrapped_messages_beyond_parser_depth_are_refused() {
    use base64::Engine;
    let mut inner = b"From: a@x\r\nContent-Type: text/plain; name=x.txt\r\n\r\nhi\r\n".to_vec();
    for _ in 0..5 {
        let mut w = b"From: a@x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
        w.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&inner)
                .as_bytes(),
        );
        w.extend_from_slice(b"\r\n");
        inner = w;
    }
    assert!(matches!(
        run(&inner, None),
        Err(AttachmentError::Uninspectable { .. })
    ));
}

#[test]
fn deep_nesting_neither_overflows_nor_passes() {
    let mut raw = b"From: a@x\r\n".to_vec();
    for _ in 0..100_000 {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: end\r\n\r\nhi\r\n");
    // A small stack, as on the blocking pool: a recursive drop would abort.
    let result = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || run(&raw, None))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, Err(AttachmentError::TooDeep));
}

#[test]
fn decoded_size_limit() {
    let raw = b"From: a@x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nbody text that is not an attachment at all\r\n\
--b\r\nContent-Type: application/octet-stream; name=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAAAAAAAAAAAAAA\r\n\
--b--\r\n";
    // 16 base64 characters decode to 12 bytes.
    assert_eq!(run(raw, Some(12)), Ok(()));
    assert_eq!(
        run(raw, Some(11)),
        Err(AttachmentError::TooLarge {
            shown: "\"data.bin\"".into(),
            size: 12,
            max: 11
        })
    );
}
