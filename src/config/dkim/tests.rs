use super::*;
use std::path::Path;
use std::time::Duration;

const BASE: &str = "[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n\
        [credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*\"]\n\
        [routes.default]\nupstreams = [\"out\"]\n\
        [upstreams.out]\nkind = \"directory\"\npath = \"outbox\"\n";

fn load(extra: &str) -> Result<Settings, Vec<String>> {
    crate::config::load_str(Path::new("/etc/p/main.toml"), &format!("{BASE}{extra}"))
        .map(|c| c.dkim)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

fn key_file(dir: &Path, alg: Algorithm) -> String {
    let p = dir.join(format!("{alg}.pem"));
    std::fs::write(&p, crate::dkim::generate_pem(alg, None).unwrap()).unwrap();
    format!("file:{}", p.display())
}

#[test]
fn keys_load_with_windows_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let ed = key_file(dir.path(), Algorithm::Ed25519);
    let c = load(&format!(
        "[dkim_policy]\nunsigned = \"reject\"\n\
             [[dkim]]\ndomain = \"Example.COM\"\nselector = \"e1\"\nalgorithm = \"ed25519\"\n\
             private_key = \"{ed}\"\nnot_before = 2026-01-01T00:00:00Z\nnot_after = 2027-01-01\n"
    ))
    .unwrap();
    assert_eq!(c.unsigned, UnsignedPolicy::Reject);
    assert_eq!(c.keys.len(), 1);
    let k = &c.keys[0];
    assert_eq!(
        (k.domain.as_str(), k.selector.as_str()),
        ("example.com", "e1")
    );
    assert_eq!(k.algorithm, Algorithm::Ed25519);
    assert_eq!(
        k.not_before,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
    );
    assert_eq!(
        k.not_after,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600))
    );
    assert_eq!(load("").unwrap().unsigned, UnsignedPolicy::Allow);
}

#[test]
fn errors_point_at_the_offending_line() {
    let dir = tempfile::tempdir().unwrap();
    let ed = key_file(dir.path(), Algorithm::Ed25519);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    // BASE has 11 lines; the first [[dkim]] starts on line 12.
    let e = load(&format!(
            "[[dkim]]\ndomain = \"example.com\"\nselector = \"a\"\nalgorithm = \"rsa\"\nprivate_key = \"{ed}\"\n\
             [[dkim]]\ndomain = \"example.com\"\nselector = \"b\"\nalgorithm = \"ed25519\"\nprivate_key = \"file:{}\"\n\
             [[dkim]]\ndomain = \"bad domain\"\nselector = \"c\"\nalgorithm = \"dsa\"\nprivate_key = \"literal\"\n\
             not_after = 2026-01-01T00:00:00\n\
             [[dkim]]\ndomain = \"example.com\"\nselector = \"d\"\nalgorithm = \"ed25519\"\nprivate_key = \"{ed}\"\n\
             [[dkim]]\ndomain = \"example.com\"\nselector = \"d\"\nalgorithm = \"ed25519\"\nprivate_key = \"{ed}\"\n\
             not_before = 2027-01-01\nnot_after = 2026-01-01\n",
            garbage.display()
        ))
        .unwrap_err();
    let want = [
        (
            "main.toml:16:15: error: key `dkim.private_key`",
            "is an ed25519 key but algorithm = \"rsa\"",
        ),
        (
            "main.toml:21:15: error: key `dkim.private_key`",
            "no private key found",
        ),
        (
            "main.toml:23:10: error: key `dkim.domain`",
            "not a valid domain",
        ),
        (
            "main.toml:25:13: error: key `dkim.algorithm`",
            "unknown algorithm \"dsa\"",
        ),
        (
            "main.toml:26:15: error: key `dkim.private_key`",
            "literal secrets are not allowed",
        ),
        (
            "main.toml:27:13: error: key `dkim.not_after`",
            "add a UTC offset",
        ),
        (
            "main.toml:39:13: error: key `dkim.not_after`",
            "later than not_before",
        ),
        (
            "main.toml:35:12: error: key `dkim.selector`",
            "already configured at /etc/p/main.toml:28:1",
        ),
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for ((at, what), got) in want.iter().zip(&e) {
        assert!(
            got.contains(at) && got.contains(what),
            "want {at} .. {what}, got {got}"
        );
    }
}

#[test]
fn reject_without_any_key_is_an_error() {
    let e = load("[dkim_policy]\nunsigned = \"reject\"\n").unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("main.toml:12:1: error: key `dkim_policy.unsigned`"),
        "{e:?}"
    );
    let e = load("[dkim_policy]\nunsigned = \"maybe\"\n").unwrap_err();
    assert!(e[0].contains("main.toml:13:"), "{e:?}");
}

fn at(s: &str) -> Result<u64, String> {
    let dt: Datetime = s.parse().unwrap();
    to_system_time(&dt).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
}

#[test]
fn datetimes_become_instants() {
    assert_eq!(at("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(at("2000-03-01T00:00:00Z"), Ok(951_868_800));
    assert_eq!(at("2026-07-01"), Ok(1_782_864_000));
    assert_eq!(at("2026-07-01T02:00:00+02:00"), Ok(1_782_864_000));
    assert_eq!(at("2024-02-29T12:30:15-01:30"), Ok(1_709_215_215));
    assert!(
        at("2026-07-01T00:00:00")
            .unwrap_err()
            .contains("UTC offset")
    );
    assert!(at("12:00:00").is_err());
    assert!(at("1969-12-31T23:59:59Z").is_err());
}
