use super::*;

const LIMITS: ScanLimits = ScanLimits {
    max_count: 10,
    max_size: 4096,
    smtputf8: false,
    eight_bit: Header8bit::Reject,
};

fn names(data: &[u8], s: &Section) -> Vec<String> {
    s.fields
        .iter()
        .map(|f| String::from_utf8_lossy(s.name(data, f)).into_owned())
        .collect()
}

#[test]
fn splits_fields_with_continuations() {
    let m = b"From : a@x\r\nSubject: one\r\n two\r\n\tthree\r\nTo: b@y\r\n\r\nbody\r\n";
    let s = scan(m, LIMITS).unwrap();
    assert_eq!(names(m, &s), ["From", "Subject", "To"]);
    assert_eq!(
        &m[s.fields[1].range.clone()],
        b"Subject: one\r\n two\r\n\tthree\r\n"
    );
    assert_eq!(&m[s.end..], b"\r\nbody\r\n");
    assert_eq!(s.count(m, "from"), 1);
    assert_eq!(s.count(m, "SUBJECT"), 1);
    assert_eq!(s.count(m, "date"), 0);
}

#[test]
fn message_without_body_or_headers() {
    let m = b"From: a@x\r\n";
    assert_eq!(scan(m, LIMITS).unwrap().end, m.len());
    let m = b"\r\nbody only\r\n";
    let s = scan(m, LIMITS).unwrap();
    assert!(s.fields.is_empty());
    assert_eq!(s.end, 0);
}

#[test]
fn whitespace_only_line_continues_a_field() {
    let m = b"Subject: x\r\n \r\nFrom: a@x\r\n\r\n";
    let s = scan(m, LIMITS).unwrap();
    assert_eq!(names(m, &s), ["Subject", "From"]);
}

#[test]
fn refusals() {
    let long = format!("Subject: {}\r\n\r\n", "a".repeat(MAX_LINE - 9));
    assert!(scan(long.as_bytes(), LIMITS).is_ok());
    let long = format!("Subject: {}\r\n\r\n", "a".repeat(MAX_LINE - 8));
    assert_eq!(
        scan(long.as_bytes(), LIMITS),
        Err(HeaderError::LineTooLong { line: 1, len: 999 })
    );
    let cases: &[(&[u8], HeaderError)] = &[
        (
            b"From: a@x\r\nX: a\0b\r\n\r\n",
            HeaderError::Nul { line: 2 },
        ),
        (
            b"From: a@x\r\nSubject: caf\xc3\xa9\r\n\r\n",
            HeaderError::EightBit { line: 2 },
        ),
        (
            b"From: a@x\nX: y\r\n\r\n",
            HeaderError::BareNewline { line: 1 },
        ),
        (
            b"From: a@x\r\nX: y\rz\r\n\r\n",
            HeaderError::BareNewline { line: 2 },
        ),
        (
            b"From: a@x\r\njunk line\r\n\r\n",
            HeaderError::NotAField { line: 2 },
        ),
        (b" From: a@x\r\n\r\n", HeaderError::NotAField { line: 1 }),
        (
            b"From: a@x\r\nFr om: b@y\r\n\r\n",
            HeaderError::BadName { line: 2 },
        ),
        (b": b@y\r\n\r\n", HeaderError::BadName { line: 1 }),
    ];
    for (m, want) in cases {
        assert_eq!(
            scan(m, LIMITS).as_ref(),
            Err(want),
            "{}",
            String::from_utf8_lossy(m)
        );
    }
    // The body is not the header section: none of this applies there.
    assert!(scan(b"From: a@x\r\n\r\n\0\xff junk\r\n", LIMITS).is_ok());
}

#[test]
fn utf8_headers_need_smtputf8() {
    let m = b"From: a@x\r\nSubject: caf\xc3\xa9\r\n\r\n";
    let utf8 = ScanLimits {
        smtputf8: true,
        ..LIMITS
    };
    assert!(scan(m, utf8).is_ok());
    let latin1 = b"From: a@x\r\nSubject: caf\xe9\r\n\r\n";
    assert_eq!(scan(latin1, utf8), Err(HeaderError::NotUtf8 { line: 2 }));
}

#[test]
fn eight_bit_fields_are_marked_for_repair_or_vetting() {
    let m = b"From: a@x\r\nSubject: x\r\n caf\xc3\xa9\r\nX-L: caf\xe9\r\n\r\n";
    let marks = |l: ScanLimits| {
        scan(m, l).map(|s| s.fields.iter().map(|f| f.eight_bit).collect::<Vec<_>>())
    };
    let encode = ScanLimits {
        eight_bit: Header8bit::Encode,
        ..LIMITS
    };
    assert_eq!(marks(encode), Ok(vec![false, true, true]));
    // SMTPUTF8 allows the UTF-8 line; the Latin-1 one is still repaired.
    let utf8 = ScanLimits {
        smtputf8: true,
        ..encode
    };
    assert_eq!(marks(utf8), Ok(vec![false, false, true]));
    let pass = ScanLimits {
        eight_bit: Header8bit::Pass,
        ..LIMITS
    };
    assert_eq!(marks(pass), Err(HeaderError::NotUtf8 { line: 4 }));
    let utf8_only = b"From: a@x\r\nSubject: caf\xc3\xa9\r\n\r\n";
    assert_eq!(
        scan(utf8_only, pass).map(|s| s.fields[1].eight_bit),
        Ok(true)
    );
    assert_eq!(
        scan(
            utf8_only,
            ScanLimits {
                smtputf8: true,
                ..pass
            }
        )
        .map(|s| s.fields[1].eight_bit),
        Ok(false)
    );
    assert_eq!(marks(LIMITS), Err(HeaderError::EightBit { line: 3 }));
}

#[test]
fn count_and_size_limits() {
    let mut m = Vec::new();
    for i in 0..10 {
        m.extend_from_slice(format!("X-N: {i}\r\n").as_bytes());
    }
    m.extend_from_slice(b"\r\n");
    assert!(scan(&m, LIMITS).is_ok());
    let mut more = b"X-N: 10\r\n".to_vec();
    more.extend_from_slice(&m);
    assert_eq!(scan(&more, LIMITS), Err(HeaderError::TooMany { max: 10 }));
    let small = ScanLimits {
        max_size: 40,
        ..LIMITS
    };
    assert_eq!(scan(&m, small), Err(HeaderError::TooLarge { max: 40 }));
}
