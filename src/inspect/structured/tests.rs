//! Tokens, roles and the items made from them, checked against
//! mail-parser's reading of the result.

use super::super::encode::write_field;
use super::*;
use mail_parser::{Addr, Address, HeaderValue, MessageParser, MimeHeaders};

fn kinds(v: &str) -> Vec<(TokenKind, &str)> {
    tokens(v).iter().map(|t| (t.kind, t.text)).collect()
}

fn repair(name: &str, value: &str) -> Result<String, Unrepairable> {
    let toks = tokens(value);
    let items = items(&toks, &address_roles(&toks))?;
    let mut out = Vec::new();
    write_field(format!("{name}:").as_bytes(), &items, &mut out);
    Ok(String::from_utf8(out).unwrap())
}

/// (display name, address) pairs as mail-parser decodes them.
fn mailboxes(field: &str) -> Vec<(Option<String>, Option<String>)> {
    let msg = format!("{field}Subject: x\r\n\r\nbody\r\n");
    let parsed = MessageParser::new().parse(msg.as_bytes()).unwrap();
    let value = parsed.parts[0].headers[0].value.clone();
    let pair = |a: &Addr<'_>| {
        (
            a.name.as_ref().map(|n| n.to_string()),
            a.address.as_ref().map(|n| n.to_string()),
        )
    };
    match value {
        HeaderValue::Address(Address::List(l)) => l.iter().map(pair).collect(),
        HeaderValue::Address(Address::Group(g)) => g
            .iter()
            .flat_map(|g| {
                let name = (g.name.as_ref().map(|n| n.to_string()), None);
                std::iter::once(name).chain(g.addresses.iter().map(pair))
            })
            .collect(),
        other => panic!("not an address: {other:?}"),
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn tokenizer() {
    assert_eq!(
        kinds(r#" "Mü\"ller, H" (a (b\)) c) <x.y@z>,"#),
        [
            (TokenKind::Ws, " "),
            (TokenKind::Quoted, r#""Mü\"ller, H""#),
            (TokenKind::Ws, " "),
            (TokenKind::Comment, r"(a (b\)) c)"),
            (TokenKind::Ws, " "),
            (TokenKind::Special, "<"),
            (TokenKind::Atom, "x.y"),
            (TokenKind::Special, "@"),
            (TokenKind::Atom, "z"),
            (TokenKind::Special, ">"),
            (TokenKind::Special, ","),
        ]
    );
    assert_eq!(
        kinds("[1.2.3.4] \"open"),
        [
            (TokenKind::Literal, "[1.2.3.4]"),
            (TokenKind::Ws, " "),
            (TokenKind::Quoted, "\"open")
        ]
    );
}

#[test]
fn roles_of_an_address_list() {
    use Role::*;
    let v = r#"Jörg <j@x>, a@b, g: "c" <c@d>, e@f;, bare"#;
    let toks = tokens(v);
    let roles = address_roles(&toks);
    let phrase: Vec<&str> = toks
        .iter()
        .zip(&roles)
        .filter(|(t, r)| **r == Phrase && t.kind != TokenKind::Ws)
        .map(|(t, _)| t.text)
        .collect();
    assert_eq!(phrase, ["Jörg", "g", "\"c\"", "bare"]);
    // An obs-route's comma and colon inside <> do not split mailboxes.
    let toks = tokens("N <@r1,@r2:a@b>");
    assert_eq!(address_roles(&toks)[0], Phrase);
    assert!(address_roles(&toks)[2..].iter().all(|r| *r == Addr));
}

#[test]
fn quoted_display_name_keeps_its_comma() {
    let raw = repair("From", " \"Müller, Hans\" <app@example.com>").unwrap();
    assert_eq!(
        raw,
        "From: =?UTF-8?B?TcO8bGxlciwgSGFucw==?= <app@example.com>\r\n"
    );
    assert_eq!(
        mailboxes(&raw),
        [(some("Müller, Hans"), some("app@example.com"))]
    );
}

#[test]
fn display_names_in_lists_and_groups() {
    let raw = repair(
        "To",
        " Jörg Groß <j@x.test>, plain@x.test,\r\n \"Ärger \\\"AG\\\"\"<a@x.test>",
    )
    .unwrap();
    assert!(raw.is_ascii(), "{raw}");
    assert_eq!(
        mailboxes(&raw),
        [
            (some("Jörg Groß"), some("j@x.test")),
            (None, some("plain@x.test")),
            (some("Ärger \"AG\""), some("a@x.test")),
        ]
    );
    // The addresses are byte-identical.
    assert!(raw.contains(" <j@x.test>, plain@x.test,\r\n"), "{raw}");
    assert!(raw.ends_with(" <a@x.test>\r\n"), "{raw}");
    let raw = repair("To", " Empfänger: a@x.test, Bö <b@x.test>;").unwrap();
    assert_eq!(
        mailboxes(&raw),
        [
            (some("Empfänger"), None),
            (None, some("a@x.test")),
            (some("Bö"), some("b@x.test")),
        ]
    );
    let raw = repair("To", " Nicht offengelegte Empfänger:;").unwrap();
    assert!(raw.ends_with(":;\r\n") && raw.is_ascii(), "{raw}");
    // Mixed ASCII and 8-bit words; a dotted initial is one word.
    let raw = repair("From", " Hans M. Müller <h@x.test>").unwrap();
    assert_eq!(
        mailboxes(&raw),
        [(some("Hans M. Müller"), some("h@x.test"))]
    );
    assert!(raw.starts_with("From: Hans M. =?UTF-8?B?"), "{raw}");
}

#[test]
fn comments_are_encoded_inside_their_parentheses() {
    let raw = repair("From", " app@example.com (Büro München)").unwrap();
    assert_eq!(
        raw,
        "From: app@example.com (=?UTF-8?B?QsO8cm8gTcO8bmNoZW4=?=)\r\n"
    );
    assert_eq!(mailboxes(&raw)[0].1, some("app@example.com"));
    let raw = repair("From", " Ä (x) <a@b.test>").unwrap();
    assert_eq!(raw, "From: =?UTF-8?B?w4Q=?= (x) <a@b.test>\r\n");
}

#[test]
fn eight_bit_addresses_are_refused() {
    for v in [
        " <müller@example.com>",
        " müller@example.com",
        " Hans <hans@bücher.example>",
        " \"Müller\"@example.com",
        " a@b.test, Jörg <jörg@x.test>",
        " G: jörg@x.test;",
        " N <a@[1.2.3.ä]>",
    ] {
        assert_eq!(repair("To", v), Err(Unrepairable::Address), "{v}");
    }
}

#[test]
fn mime_parameters_get_rfc2231() {
    let items = mime_param_items(" application/pdf; name=\"Rechnung März.pdf\"").unwrap();
    let mut out = Vec::new();
    write_field(b"Content-Type:", &items, &mut out);
    let raw = String::from_utf8(out).unwrap();
    assert_eq!(
        raw,
        "Content-Type: application/pdf; name*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\n"
    );
    let long = "Ä".repeat(40) + ".exe";
    let value = format!(" attachment; filename={long}; size=3");
    let items = mime_param_items(&value).unwrap();
    let mut out = b"From: a@b.test\r\nContent-Disposition:".to_vec();
    let head = out.len();
    write_field(b"", &items, &mut out);
    let text = String::from_utf8(out[head..].to_vec()).unwrap();
    assert!(text.contains("filename*0*=UTF-8''%C3%84") && text.contains("filename*2*="));
    assert!(text.ends_with("; size=3\r\n"), "{text}");
    for line in text.split("\r\n") {
        assert!(line.len() <= 78, "{line}");
    }
    out.extend_from_slice(b"\r\nMZ\r\n");
    let msg = MessageParser::new().parse(&out).unwrap();
    assert_eq!(msg.parts[0].attachment_name(), Some(long.as_str()));
    for bad in [
        " text/plän",
        " a/b; nä=x",
        " a/b; n*=ä",
        " a/b; (Kommentär) n=x",
    ] {
        assert_eq!(mime_param_items(bad), Err(Unrepairable::Structure), "{bad}");
    }
}
