//! The 8-bit repair over whole header sections: which fields change, how
//! they decode, and that nothing else moves.

use super::*;
use crate::inspect::Header8bit;
use crate::inspect::headers::{ScanLimits, scan};
use mail_parser::{HeaderName, MessageParser, MimeHeaders};

fn limits(eight_bit: Header8bit) -> ScanLimits {
    ScanLimits {
        max_count: 100,
        max_size: 1 << 20,
        smtputf8: false,
        eight_bit,
    }
}

fn opts() -> Options<'static> {
    Options {
        charset: encoding_rs::WINDOWS_1252,
        removed: &[],
    }
}

fn repaired_with(data: &[u8], opts: Options<'_>) -> Result<Vec<u8>, HeaderError> {
    let section = scan(data, limits(Header8bit::Encode)).unwrap();
    repair(data, &section, opts)
}

fn repaired(data: &[u8]) -> Result<Vec<u8>, HeaderError> {
    repaired_with(data, opts())
}

fn header_block(m: &[u8]) -> &[u8] {
    let end = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &m[..end + 2]
}

#[test]
fn legacy_headers_become_ascii_and_decode_to_the_same_text() {
    let sent = b"Received: from x by y; Mon, 2 Mar 2026 10:00:00 +0100\r\n\
From: \"M\xc3\xbcller, Hans\" <app@example.com>\r\n\
To: J\xc3\xb6rg Gro\xc3\x9f <bob@dest.test>, carol@dest.test\r\n\
Subject: Rechnung f\xc3\xbcr M\xc3\xa4rz\r\n\
X-Note: caf\xe9 \x80 5\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n\
Gr\xc3\xbc\xc3\x9fe\r\n";
    let out = repaired(sent).unwrap();
    assert!(
        header_block(&out).is_ascii(),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Untouched fields and the 8-bit body keep their bytes.
    assert!(out.starts_with(b"Received: from x by y; Mon, 2 Mar 2026 10:00:00 +0100\r\nFrom: "));
    assert!(out.ends_with(
        b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    ));
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.subject(), Some("Rechnung für März"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Müller, Hans"));
    assert_eq!(from.address(), Some("app@example.com"));
    let to: Vec<_> = msg
        .to()
        .unwrap()
        .iter()
        .map(|a| (a.name(), a.address()))
        .collect();
    assert_eq!(
        to,
        [
            (Some("Jörg Groß"), Some("bob@dest.test")),
            (None, Some("carol@dest.test"))
        ]
    );
    // windows-1252, not ISO-8859-1: 0x80 is the euro sign.
    let note = msg.header_raw("X-Note").unwrap();
    let raw = format!("Subject:{note}\r\n\r\n");
    let decoded = MessageParser::new().parse(raw.as_bytes()).unwrap();
    assert_eq!(decoded.subject(), Some("café € 5"));
    // Repairing twice changes nothing more.
    let section = scan(&out, limits(Header8bit::Encode)).unwrap();
    assert!(section.fields.iter().all(|f| !f.eight_bit));
}

#[test]
fn latin1_subject_and_another_legacy_charset() {
    let out = repaired(b"Subject: Rechnung f\xfcr M\xe4rz\r\n\r\n").unwrap();
    assert_eq!(
        MessageParser::new().parse(&out).unwrap().subject(),
        Some("Rechnung für März")
    );
    let latin2 = Options {
        charset: encoding_rs::ISO_8859_2,
        ..opts()
    };
    let out = repaired_with(b"Subject: \xb3\xf3d\xbc\r\n\r\n", latin2).unwrap();
    assert_eq!(
        MessageParser::new().parse(&out).unwrap().subject(),
        Some("łódź")
    );
    // Valid UTF-8 is read as UTF-8 whatever the legacy charset.
    let out = repaired_with(b"Subject: \xc5\x82\r\n\r\n", latin2).unwrap();
    assert_eq!(
        MessageParser::new().parse(&out).unwrap().subject(),
        Some("ł")
    );
}

#[test]
fn undecodable_text_is_refused_naming_the_header() {
    let strict = Options {
        charset: encoding_rs::UTF_8,
        ..opts()
    };
    assert_eq!(
        repaired_with(b"From: a@b.test\r\nSubject: f\xfcr\r\n\r\n", strict),
        Err(HeaderError::Undecodable {
            name: "Subject".into(),
            line: 2,
            charset: "UTF-8".into()
        })
    );
    let e = repaired_with(
        b"Subject: \x82\r\n\r\n",
        Options {
            charset: encoding_rs::SHIFT_JIS,
            ..opts()
        },
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "Header Subject (line 1) is neither UTF-8 nor valid Shift_JIS"
    );
}

#[test]
fn what_cannot_be_encoded_is_refused_naming_the_header() {
    let e = repaired(b"From: a@b.test\r\nTo: <j\xc3\xb6rg@dest.test>\r\n\r\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Header To (line 2) contains an 8-bit address; use SMTPUTF8 or an ASCII address"
    );
    let e =
        repaired(b"From: a@b.test\r\nSubject: ok\r\nMessage-ID: <\xc3\xa4@x>\r\n\r\n").unwrap_err();
    assert_eq!(
        e,
        HeaderError::EightBitStructured {
            name: "Message-ID".into(),
            line: 3
        }
    );
    assert!(e.to_string().contains("cannot carry"), "{e}");
    for fixed in [
        "Date",
        "Received",
        "References",
        "Content-Transfer-Encoding",
    ] {
        let m = format!("{fixed}: \u{e4}\r\n\r\n");
        assert!(
            matches!(
                repaired(m.as_bytes()),
                Err(HeaderError::EightBitStructured { .. })
            ),
            "{fixed}"
        );
    }
    assert!(matches!(
        repaired(b"Content-Type: text/pl\xc3\xa4in\r\n\r\n"),
        Err(HeaderError::EightBitStructured { .. })
    ));
}

#[test]
fn fields_about_to_be_removed_are_left_alone() {
    let m = b"From: a@b.test\r\nBcc: <j\xc3\xb6rg@dest.test>\r\nSubject: \xfc\r\n\r\n";
    assert!(repaired(m).is_err());
    let removed = ["bcc".to_string()];
    let out = repaired_with(
        m,
        Options {
            removed: &removed,
            ..opts()
        },
    )
    .unwrap();
    assert!(contains(
        &out,
        b"Bcc: <j\xc3\xb6rg@dest.test>\r\nSubject: =?UTF-8?B?w7w=?=\r\n"
    ));
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keywords_unknown_fields_and_mime_parameters() {
    let m = b"Keywords: Rechnung, M\xc3\xa4rz\r\nX-Mailer: Gro\xc3\x9fbuch 3.1\r\nContent-Type: application/pdf; name=\"M\xc3\xa4rz.pdf\"\r\n\r\n%PDF\r\n";
    let out = repaired(m).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(
        text.starts_with("Keywords: Rechnung, =?UTF-8?B?TcOkcno=?=\r\n"),
        "{text}"
    );
    assert!(
        text.contains("X-Mailer: =?UTF-8?B?R3Jvw59idWNo?= 3.1\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Type: application/pdf; name*=UTF-8''M%C3%A4rz.pdf\r\n"),
        "{text}"
    );
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.parts[0].attachment_name(), Some("März.pdf"));
    let keywords = msg.parts[0]
        .headers
        .iter()
        .find(|h| h.name == HeaderName::Keywords)
        .unwrap();
    assert_eq!(
        format!("{:?}", keywords.value),
        format!(
            "{:?}",
            mail_parser::HeaderValue::TextList(vec!["Rechnung".into(), "März".into()])
        )
    );
}

#[test]
fn continuation_lines_and_a_last_line_without_crlf() {
    let out = repaired(b"Subject: eins\r\n zw\xc3\xb6lf\r\n\tdrei").unwrap();
    assert_eq!(out, b"Subject: eins\r\n =?UTF-8?B?enfDtmxm?=\r\n\tdrei\r\n");
}

#[test]
fn pass_keeps_the_bytes_but_not_8bit_addresses() {
    let ok = b"From: \"M\xc3\xbcller, Hans\" <app@example.com> (B\xc3\xbcro)\r\nSubject: f\xc3\xbcr\r\nX-Id: <\xc3\xa4@x>\r\n\r\n";
    let section = scan(ok, limits(Header8bit::Pass)).unwrap();
    assert_eq!(vet(ok, &section, &[]), Ok(()));
    let bad = b"From: a@b.test\r\nCc: M\xc3\xbcller <m\xc3\xbcller@example.com>\r\n\r\n";
    let section = scan(bad, limits(Header8bit::Pass)).unwrap();
    assert_eq!(
        vet(bad, &section, &[]),
        Err(HeaderError::EightBitAddress {
            name: "Cc".into(),
            line: 2
        })
    );
    assert_eq!(vet(bad, &section, &["cc".to_string()]), Ok(()));
}

/// Arbitrary mixtures of the bytes that matter to the tokenizers: the
/// repair never panics, and what it returns is pure ASCII that scans
/// cleanly and parses.
#[test]
fn random_headers_never_panic_and_repair_to_clean_ascii() {
    const PIECES: &[&[u8]] = &[
        b"\"",
        b"(",
        b")",
        b"<",
        b">",
        b"\\",
        b"@",
        b":",
        b";",
        b",",
        b" ",
        b"\t",
        b"\r\n ",
        b"\xc3\xbc",
        b"\xfc",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"a",
        b"x.y",
        b"=",
        b"?",
        b"=?UTF-8?Q?a?=",
        b"[",
        b"]",
        b"*",
        b"'",
        b"%",
        b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "üüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüüü".as_bytes(),
    ];
    const NAMES: &[&str] = &[
        "Subject",
        "From",
        "To",
        "Content-Type",
        "Keywords",
        "X-A",
        "Date",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut repaired_ok, mut refused) = (0, 0);
    for _ in 0..3000 {
        let name = NAMES[next(NAMES.len())];
        let mut m = format!("{name}: ").into_bytes();
        for _ in 0..next(60) {
            m.extend_from_slice(PIECES[next(PIECES.len())]);
        }
        m.extend_from_slice(b"\xc3\xa4\r\nX-B: y\r\n\r\nbody\r\n");
        let Ok(section) = scan(&m, limits(Header8bit::Encode)) else {
            continue;
        };
        match repair(&m, &section, opts()) {
            Ok(out) => {
                repaired_ok += 1;
                assert!(
                    header_block(&out).is_ascii(),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
                let again = scan(&out, limits(Header8bit::Reject))
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(again.fields.len(), 2, "{}", String::from_utf8_lossy(&out));
                assert!(out.ends_with(b"\r\nX-B: y\r\n\r\nbody\r\n"));
                assert!(MessageParser::new().parse(&out).is_some());
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        repaired_ok > 1000 && refused > 100,
        "{repaired_ok} repaired, {refused} refused"
    );
}
