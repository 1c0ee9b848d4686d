use super::*;
use crate::config::test_util::{BASE, load_text};
use crate::validate::DEFAULT_DNS_TIMEOUT;
use std::time::Duration;

fn load(extra: &str) -> Result<Settings, Vec<String>> {
    load_text(&format!("{BASE}{extra}")).map(|c| c.validation)
}

#[test]
fn absent_section_means_no_checks() {
    let v = load("").unwrap();
    assert!(v.allowed_recipient_domains.is_empty() && !v.check_recipient_domain);
    assert!(v.hook.is_none() && v.resolver.is_none());
    assert_eq!(v.dns_timeout, DEFAULT_DNS_TIMEOUT);
}

#[test]
fn full_section_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var("POSTERN_TEST_HOOK_TOKEN", "t0ken") };
    let v = load(&format!(
        r#"
[validation]
allowed_recipient_domains = ["example.com", "*.Bücher.example"]
denied_recipient_domains = ["bad.example.com"]
check_recipient_domain = true
dns_timeout = "2s"
resolver = "127.0.0.1:5353"

[validation.hook]
url = "https://127.0.0.1:8443/verify"
timeout = "1s"
on_error = "tempfail"
bearer_token = "env:POSTERN_TEST_HOOK_TOKEN"
ca_file = "{}"
"#,
        ca.display()
    ))
    .unwrap();
    let shown: Vec<String> = v
        .allowed_recipient_domains
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(shown, ["example.com", "*.xn--bcher-kva.example"]);
    assert_eq!(v.denied_recipient_domains.len(), 1);
    assert!(v.check_recipient_domain);
    assert_eq!(v.dns_timeout, Duration::from_secs(2));
    assert_eq!(v.resolver, Some("127.0.0.1:5353".parse().unwrap()));
    let h = v.hook.unwrap();
    assert_eq!(h.on_error, OnError::Tempfail);
    assert_eq!(h.timeout, Duration::from_secs(1));
    assert_eq!(h.bearer_token.unwrap().expose(), "t0ken");
    assert_eq!(h.ca_file.as_deref(), Some(ca.as_path()));
}

#[test]
fn errors_name_line_and_key() {
    let e = load(
            "\n[validation]\nallowed_recipient_domains = [\"ex*ample.com\"]\nresolver = \"dns.example\"\nchek = true\n",
        )
        .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("validation.chek"), "{e:?}");
    let e = load(
            "\n[validation]\nallowed_recipient_domains = [\"ex*ample.com\"]\nresolver = \"dns.example\"\n\n[validation.hook]\nurl = \"http://x.example/\"\nbearer_token = \"literal\"\nca_file = \"/nonexistent/ca.pem\"\n",
        )
        .unwrap_err();
    let line = BASE.lines().count();
    let want = [
        (
            line + 3,
            "validation.allowed_recipient_domains",
            "invalid domain pattern",
        ),
        (line + 4, "validation.resolver", "not a DNS server address"),
        (line + 7, "validation.hook.url", "https://"),
        (line + 8, "validation.hook.bearer_token", "literal secrets"),
        (line + 9, "validation.hook.ca_file", "/nonexistent/ca.pem"),
    ];
    assert_eq!(e.len(), want.len(), "{e:?}");
    for (got, (l, key, text)) in e.iter().zip(want) {
        assert!(
            got.starts_with(&format!("/etc/p/main.toml:{l}:")),
            "{got} (want line {l})"
        );
        assert!(
            got.contains(&format!("`{key}`")) && got.contains(text),
            "{got}"
        );
    }
}

#[test]
fn resolver_addresses() {
    assert_eq!(
        parse_resolver("127.0.0.1:5353"),
        Ok("127.0.0.1:5353".parse().unwrap())
    );
    assert_eq!(parse_resolver("::1"), Ok("[::1]:53".parse().unwrap()));
    assert!(
        parse_resolver("dns.example:53")
            .unwrap_err()
            .contains("127.0.0.1:53")
    );
}
