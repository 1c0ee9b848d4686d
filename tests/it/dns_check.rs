//! `postern dns-check` against a real DNS server (dnsmasq on loopback)
//! serving one zone that passes every check and one zone per failure. The
//! DKIM keys are the configured ones (`[[dkim]]` in a real config file);
//! the records for the good zone are derived from them the way an operator
//! would publish them, RSA split into 255-byte strings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::dnsmasq::{Dnsmasq, dead_resolver, txt};
use postern::dkim::{Algorithm, PrivateKey, generate_pem};

struct Keys {
    ed_pem: PathBuf,
    rsa_pem: PathBuf,
    ed_record: String,
    rsa_record: String,
    other_record: String,
}

/// PEM text of (ed25519, rsa, other ed25519) keys, made once per test
/// binary: RSA key generation takes seconds in a debug build.
fn pems() -> &'static (String, String, String) {
    static PEMS: OnceLock<(String, String, String)> = OnceLock::new();
    PEMS.get_or_init(|| {
        let pem = |alg| generate_pem(alg, None).expect("generate key");
        (
            pem(Algorithm::Ed25519),
            pem(Algorithm::Rsa),
            pem(Algorithm::Ed25519),
        )
    })
}

fn keys(dir: &Path) -> Keys {
    let (ed, rsa, other) = pems();
    let write = |name: &str, alg, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write key");
        let record = PrivateKey::from_pem(alg, pem)
            .expect("load key")
            .dns_record();
        (path, record)
    };
    let (ed_pem, ed_record) = write("ed.pem", Algorithm::Ed25519, ed);
    let (rsa_pem, rsa_record) = write("rsa.pem", Algorithm::Rsa, rsa);
    let (_, other_record) = write("other.pem", Algorithm::Ed25519, other);
    Keys {
        ed_pem,
        rsa_pem,
        ed_record,
        rsa_record,
        other_record,
    }
}

const GOOD_SPF: &str = "v=spf1 ip4:192.0.2.0/24 include:_spf.good.test include:sendgrid.net -all";
const GOOD_DMARC: &str = "v=DMARC1; p=reject; rua=mailto:dmarc@good.test; adkim=s";

/// Every zone: (domain, SPF records, DKIM s1 record, DMARC record).
fn zones(k: &Keys) -> Vec<String> {
    let mut r = vec![
        txt("good.test", GOOD_SPF),
        txt("_spf.good.test", "v=spf1 ip4:198.51.100.0/24 ~all"),
        txt("sendgrid.net", "v=spf1 ip4:203.0.113.0/24 -all"),
        txt("s1._domainkey.good.test", &k.ed_record),
        txt("s2._domainkey.good.test", &k.rsa_record),
        txt("_dmarc.good.test", GOOD_DMARC),
    ];
    let fine_spf = "v=spf1 ip4:192.0.2.0/24 include:sendgrid.net -all";
    let fine_dmarc = "v=DMARC1; p=quarantine; rua=mailto:d@x.test";
    let mut zone = |d: &str, spf: &[&str], dkim: Option<&str>, dmarc: Option<&str>| {
        for s in spf {
            r.push(txt(d, s));
        }
        if let Some(v) = dkim {
            r.push(txt(&format!("s1._domainkey.{d}"), v));
        }
        if let Some(v) = dmarc {
            r.push(txt(&format!("_dmarc.{d}"), v));
        }
    };
    let ed = Some(k.ed_record.as_str());
    zone("nospf.test", &[], ed, Some(fine_dmarc));
    zone(
        "twospf.test",
        &[fine_spf, "v=spf1 -all"],
        ed,
        Some(fine_dmarc),
    );
    zone(
        "badspf.test",
        &["v=spf1 include:sendgrid.net bogus -all"],
        ed,
        Some(fine_dmarc),
    );
    let many = format!("v=spf1 include:sendgrid.net {}-all", "a mx ".repeat(5));
    zone("lookups.test", &[&many], ed, Some(fine_dmarc));
    zone(
        "plusall.test",
        &["v=spf1 include:sendgrid.net +all"],
        ed,
        Some(fine_dmarc),
    );
    zone(
        "noinclude.test",
        &["v=spf1 ip4:192.0.2.0/24 -all"],
        ed,
        Some(fine_dmarc),
    );
    zone("nodkim.test", &[fine_spf], None, Some(fine_dmarc));
    zone(
        "wrongdkim.test",
        &[fine_spf],
        Some(&k.other_record),
        Some(fine_dmarc),
    );
    zone("nodmarc.test", &[fine_spf], ed, None);
    zone("weakdmarc.test", &[fine_spf], ed, Some("v=DMARC1; p=none"));
    r
}

const DOMAINS: &[&str] = &[
    "nospf.test",
    "twospf.test",
    "badspf.test",
    "lookups.test",
    "plusall.test",
    "noinclude.test",
    "nodkim.test",
    "wrongdkim.test",
    "nodmarc.test",
    "weakdmarc.test",
];

fn toml(s: &str) -> String {
    format!("{s:?}")
}

/// A complete config: one directory upstream, one sendgrid upstream (its
/// SPF include is checked), `[[dkim]]` s1 for every domain, s2 (RSA) for
/// good.test.
fn write_config(dir: &Path, k: &Keys) -> PathBuf {
    let mut t = format!(
        "[server]\nstate_dir = {}\n\n[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n\n\
         [credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*\"]\n\n\
         [routes.default]\nupstreams = [\"outbox\", \"sg\"]\n\n\
         [upstreams.outbox]\nkind = \"directory\"\npath = {}\n\n\
         [upstreams.sg]\nkind = \"sendgrid\"\napi_key = \"env:POSTERN_TEST_SG_KEY\"\n",
        toml(&dir.join("state").to_string_lossy()),
        toml(&dir.join("outbox").to_string_lossy()),
    );
    let mut key = |domain: &str, selector: &str, alg: &str, pem: &Path| {
        t.push_str(&format!(
            "\n[[dkim]]\ndomain = {}\nselector = {}\nalgorithm = {}\nprivate_key = {}\n",
            toml(domain),
            toml(selector),
            toml(alg),
            toml(&format!("file:{}", pem.display()))
        ));
    };
    key("good.test", "s1", "ed25519", &k.ed_pem);
    key("good.test", "s2", "rsa", &k.rsa_pem);
    for d in DOMAINS {
        key(d, "s1", "ed25519", &k.ed_pem);
    }
    let path = dir.join("postern.toml");
    std::fs::write(&path, t).expect("write config");
    path
}

struct World {
    dns: Dnsmasq,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(dir.path());
    let config = write_config(dir.path(), &k);
    World {
        dns: Dnsmasq::start(&zones(&k)),
        config,
        _dir: dir,
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// "STATUS check" of every line.
    fn verdicts(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| l.split(':').next().unwrap_or("").to_string())
            .collect()
    }
}

/// `postern dns-check ARGS`; the sendgrid upstream's api_key (an env:
/// secret) must resolve for the config to load.
fn postern(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern"))
        .args(args)
        .env("POSTERN_TEST_SG_KEY", "sg-test-key")
        .stdin(Stdio::null())
        .output()
        .expect("run postern dns-check")
}

fn dns_check(w: &World, args: &[&str]) -> Run {
    let resolver = w.dns.addr();
    let config = w.config.to_string_lossy().into_owned();
    let mut all = vec!["dns-check", "--config", &config, "--resolver", &resolver];
    all.extend_from_slice(args);
    let out = postern(&all);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn good_zone_passes_everything() {
    let w = world();
    let r = dns_check(&w, &["good.test"]);
    assert_eq!(
        r.code,
        Some(0),
        "{}\n{}\n{}",
        r.stdout,
        r.stderr,
        w.dns.log()
    );
    assert_eq!(
        r.verdicts(),
        [
            "PASS spf",
            "PASS spf-syntax",
            "PASS spf-lookups",
            "PASS spf-all",
            "PASS spf-upstream",
            "PASS dkim",
            "PASS dkim",
            "PASS dmarc",
            "PASS dmarc-policy",
            "PASS dmarc-rua",
            "PASS dmarc-alignment",
        ],
        "{}",
        r.stdout
    );
    let lines = r.lines();
    assert_eq!(
        lines[0],
        format!("PASS spf: one SPF record: \"{GOOD_SPF}\"")
    );
    assert_eq!(
        lines[2],
        "PASS spf-lookups: 2 DNS-querying terms (2 in the record, 0 in included records; limit 10)"
    );
    assert_eq!(
        lines[4],
        "PASS spf-upstream: upstream \"sg\" (SendGrid) is authorized by include:sendgrid.net"
    );
    assert_eq!(
        lines[5],
        "PASS dkim: selector s1 (ed25519): s1._domainkey.good.test publishes the configured key"
    );
    assert_eq!(
        lines[6],
        "PASS dkim: selector s2 (rsa): s2._domainkey.good.test publishes the configured key"
    );
    assert!(lines[9].ends_with("aggregate reports go to mailto:dmarc@good.test"));
    assert!(lines[10].contains("adkim=s (strict)"), "{}", lines[10]);
    assert!(!r.stdout.contains("[fix:"));
}

#[test]
fn each_broken_zone_fails_its_check() {
    let w = world();
    for (domain, verdict, exit, detail) in [
        ("nospf.test", "FAIL spf", 1, "no SPF record at nospf.test"),
        ("twospf.test", "FAIL spf", 1, "2 SPF records"),
        (
            "badspf.test",
            "FAIL spf-syntax",
            1,
            "unknown mechanism \"bogus\"",
        ),
        (
            "lookups.test",
            "FAIL spf-lookups",
            1,
            "11 DNS-querying terms",
        ),
        ("plusall.test", "WARN spf-all", 0, "ends in +all"),
        (
            "noinclude.test",
            "FAIL spf-upstream",
            1,
            "include:sendgrid.net",
        ),
        (
            "nodkim.test",
            "FAIL dkim",
            1,
            "no DKIM record at s1._domainkey.nodkim.test",
        ),
        (
            "wrongdkim.test",
            "FAIL dkim",
            1,
            "does not match the configured private key",
        ),
        (
            "nodmarc.test",
            "FAIL dmarc",
            1,
            "no DMARC record at _dmarc.nodmarc.test",
        ),
        ("weakdmarc.test", "WARN dmarc-policy", 0, "p=none"),
    ] {
        let r = dns_check(&w, &[domain]);
        let ctx = format!("{domain}:\n{}{}", r.stdout, r.stderr);
        assert_eq!(r.code, Some(exit), "{ctx}");
        let line = r
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&format!("{verdict}:")))
            .unwrap_or_else(|| panic!("no `{verdict}` line; {ctx}"));
        assert!(line.contains(detail), "{line}");
        if verdict.starts_with("FAIL") {
            assert!(
                line.contains(" [fix: "),
                "a FAIL says how to fix it: {line}"
            );
        }
        // Everything else about the zone is fine.
        let others: Vec<String> = r
            .verdicts()
            .into_iter()
            .filter(|v| !v.starts_with("PASS") && v != verdict)
            .collect();
        let expected_extra: &[&str] = match domain {
            "weakdmarc.test" => &["WARN dmarc-rua"],
            _ => &[],
        };
        assert_eq!(others, expected_extra, "{ctx}");
    }
}

#[test]
fn json_output_and_exit_codes() {
    let w = world();
    let r = dns_check(&w, &["--json", "nodmarc.test"]);
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("--json prints JSON");
    let items = v.as_array().expect("an array");
    assert!(items.iter().all(|i| {
        let o = i.as_object().expect("objects");
        o.len() == 4
            && o["check"].is_string()
            && o["detail"].is_string()
            && ["PASS", "WARN", "FAIL"].contains(&o["status"].as_str().unwrap_or(""))
            && (o["fix"].is_null() || o["fix"].is_string())
    }));
    let dmarc = items
        .iter()
        .find(|i| i["check"] == "dmarc")
        .expect("a dmarc finding");
    assert_eq!(dmarc["status"], "FAIL");
    assert!(
        dmarc["fix"]
            .as_str()
            .unwrap()
            .contains("_dmarc.nodmarc.test. IN TXT \"v=DMARC1; p=quarantine;")
    );
    let ok = dns_check(&w, &["good.test", "--json"]);
    assert_eq!(ok.code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "PASS" && i["fix"].is_null())
    );
}

#[test]
fn unreachable_resolver_and_bad_arguments_fail() {
    let w = world();
    let config = w.config.to_string_lossy().into_owned();
    let dead = dead_resolver();
    let out = postern(&[
        "dns-check",
        "good.test",
        "--config",
        &config,
        "--resolver",
        &dead,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("FAIL spf: cannot look up TXT records of good.test")),
        "{stdout}"
    );
    let out = postern(&[
        "dns-check",
        "good.test",
        "--config",
        &config,
        "--resolver",
        "nonsense",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resolver"));
    let missing = postern(&[
        "dns-check",
        "good.test",
        "--config",
        "/nonexistent/postern.toml",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/postern.toml"));
}
