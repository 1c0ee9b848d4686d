use super::*;
use crate::config::test_util::{BASE, load_text};

fn load(extra: &str) -> Result<Settings, Vec<String>> {
    load_text(&format!("{BASE}{extra}")).map(|c| c.inspect)
}

#[test]
fn defaults_without_table() {
    let c = load("").unwrap();
    assert_eq!(c, Settings::default());
    assert!(c.add_date && c.add_message_id && c.remove_bcc && c.add_received);
    assert!(!c.received_privacy);
    assert_eq!(c.blocked_extensions.len(), 21);
    assert!(c.blocked_extensions.iter().any(|e| e == "exe"));
    assert_eq!(c.max_header_count, 500);
    assert_eq!(c.max_header_size, 262_144);
    assert_eq!(c.max_attachment_size, None);
    assert_eq!(c.header_8bit, Header8bit::Encode);
    assert_eq!(c.legacy_charset.name(), "windows-1252");
    assert_eq!(c.missing_from, MissingFrom::Reject);
}

#[test]
fn bad_8bit_settings_are_located() {
    let e = load("[inspect]\nlegacy_charset = \"klingon\"\n").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/p/main.toml:20:18: error: key `inspect.legacy_charset`")
            && e[0].contains("not a known charset label"),
        "{e:?}"
    );
    let e = load("[inspect]\nlegacy_charset = \"utf-16le\"\n").unwrap_err();
    assert!(e[0].contains("not ASCII-compatible"), "{e:?}");
    let e = load("[inspect]\nheader_8bit = \"fix\"\n").unwrap_err();
    assert!(
        e.len() == 1 && e[0].contains(":20:") && e[0].contains("header_8bit"),
        "{e:?}"
    );
    let e = load("[inspect]\nmissing_from = \"add\"\n").unwrap_err();
    assert!(
        e[0].contains("missing_from") && e[0].contains("envelope"),
        "{e:?}"
    );
}

#[test]
fn every_key_is_read() {
    let c = load(
        r#"
[inspect]
add_date = false
add_message_id = false
remove_bcc = false
strip_headers = ["X-Originating-IP", " X-Mailer "]
add_received = false
received_privacy = true
blocked_extensions = [".EXE", "tar.gz"]
max_attachment_size = "10MiB"
max_header_count = 50
max_header_size = "64KiB"
header_8bit = "pass"
legacy_charset = "Latin1"
missing_from = "envelope"
"#,
    )
    .unwrap();
    assert_eq!(
        c,
        Settings {
            add_date: false,
            add_message_id: false,
            remove_bcc: false,
            strip_headers: vec!["x-originating-ip".into(), "x-mailer".into()],
            add_received: false,
            received_privacy: true,
            blocked_extensions: vec!["exe".into(), "tar.gz".into()],
            max_attachment_size: Some(10 << 20),
            max_header_count: 50,
            max_header_size: 64 << 10,
            header_8bit: Header8bit::Pass,
            legacy_charset: encoding_rs::WINDOWS_1252,
            missing_from: MissingFrom::Envelope,
        }
    );
    let c = load("[inspect]\nheader_8bit = \"reject\"\nlegacy_charset = \"iso-8859-2\"\n").unwrap();
    assert_eq!(c.header_8bit, Header8bit::Reject);
    assert_eq!(c.legacy_charset, encoding_rs::ISO_8859_2);
    let none = load("[inspect]\nblocked_extensions = []\n").unwrap();
    assert!(none.blocked_extensions.is_empty());
}

#[test]
fn bad_values_are_located() {
    let e = load(
            "[inspect]\nstrip_headers = [\"X Bad\", \"from\"]\nblocked_extensions = [\"*.exe\", \"\"]\nmax_header_count = 0\nmax_attachment_size = 0\nmax_header_size = \"100B\"\n",
        )
        .unwrap_err();
    assert_eq!(e.len(), 7, "{e:?}");
    assert!(
        e[0].starts_with("/etc/p/main.toml:20:18: error: key `inspect.strip_headers`"),
        "{e:?}"
    );
    assert!(e[1].contains("From cannot be stripped"), "{e:?}");
    assert!(
        e[2].contains(":21:23:") && e[2].contains("inspect.blocked_extensions"),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.contains(":22:") && l.contains("max_header_count"))
    );
    assert!(
        e.iter()
            .any(|l| l.contains(":23:") && l.contains("max_attachment_size"))
    );
    assert!(
        e.iter()
            .any(|l| l.contains(":24:") && l.contains("max_header_size"))
    );
}

#[test]
fn unknown_key_is_an_error() {
    let e = load("[inspect]\nblock_extensions = [\"exe\"]\n").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("inspect.block_extensions") && e[0].contains("unknown field"),
        "{e:?}"
    );
}

#[test]
fn names_and_extensions() {
    assert_eq!(
        header_name("X-Originating-IP"),
        Ok("x-originating-ip".into())
    );
    assert!(header_name("X:Y").is_err());
    assert!(header_name("FROM").is_err());
    assert_eq!(extension(".Js"), Ok("js".into()));
    assert!(extension("..exe").is_err());
    assert!(extension("e x e").is_err());
}
