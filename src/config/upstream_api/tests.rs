use super::*;
use crate::config::Config;
use crate::config::test_util::load_text;
use crate::config::upstream_ctx::DEFAULT_TIMEOUT;

const BASE: &str = r#"
[server]
state_dir = "state"

[[listeners]]
address = "127.0.0.1:2525"
tls = "none"

[credentials.lan]
networks = ["127.0.0.0/8"]
allowed_senders = ["*@example.com"]

[routes.default]
upstreams = ["p"]
"#;

/// Loads BASE + `upstream` with every `SECRET` replaced by a file secret.
fn load(upstream: &str) -> Result<Config, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("key");
    std::fs::write(&secret, "s3cr3t-value\n").unwrap();
    let text = format!(
        "{BASE}\n[upstreams.p]\n{}",
        upstream.replace("SECRET", &format!("file:{}", secret.display()))
    );
    load_text(&text)
}

#[test]
fn provider_kinds_load_with_defaults() {
    let c = load(
        "kind = \"ses\"\nregion = \"eu-west-1\"\naccess_key_id = \"SECRET\"\n\
             secret_access_key = \"SECRET\"\n",
    )
    .unwrap();
    let u = &c.upstreams["p"];
    assert!(u.dkim, "ses keeps postern's DKIM signature by default");
    let Settings::Ses(s) = &u.settings else {
        panic!("{u:?}")
    };
    assert_eq!(s.endpoint.base_url, "https://email.eu-west-1.amazonaws.com");
    assert_eq!(s.secret_access_key.expose(), "s3cr3t-value");
    assert_eq!(s.endpoint.timeout, DEFAULT_TIMEOUT);
    assert!(!format!("{u:?}").contains("s3cr3t"));

    for kind in ["sendgrid", "resend"] {
        let c = load(&format!("kind = \"{kind}\"\napi_key = \"SECRET\"\n")).unwrap();
        assert!(
            !c.upstreams["p"].dkim,
            "{kind} rebuilds the message: dkim off"
        );
    }
    let c = load("kind = \"postmark\"\nserver_token = \"SECRET\"\ndkim = true\n").unwrap();
    assert!(c.upstreams["p"].dkim, "explicit dkim wins");

    let c = load(
        "kind = \"mailgun\"\napi_key = \"SECRET\"\ndomain = \"mg.example.com\"\n\
             region = \"eu\"\n",
    )
    .unwrap();
    let Settings::Mailgun(m) = &c.upstreams["p"].settings else {
        panic!()
    };
    assert_eq!(m.endpoint.base_url, "https://api.eu.mailgun.net");
    assert!(c.upstreams["p"].dkim);
}

#[test]
fn provider_errors_name_line_key_and_fix() {
    let e = load("kind = \"ses\"\n").unwrap_err();
    let all = e.join("\n");
    for k in ["region", "access_key_id", "secret_access_key"] {
        assert!(
            all.contains(&format!(
                "key `upstreams.p.{k}`: kind = \"ses\" needs `{k}`"
            )),
            "{all}"
        );
    }
    let e = load("kind = \"sendgrid\"\napi_key = \"SG.literal\"\n").unwrap_err();
    assert!(e[0].starts_with("/etc/p/main.toml:18:11: "), "{e:?}");
    assert!(e[0].contains("literal secrets are not allowed"), "{e:?}");
    let e =
        load("kind = \"resend\"\napi_key = \"SECRET\"\nbase_url = \"http://api.resend.example\"\n")
            .unwrap_err();
    assert!(e[0].contains("upstreams.p.base_url"), "{e:?}");
    assert!(e[0].contains("loopback"), "{e:?}");
    let e =
        load("kind = \"postmark\"\nserver_token = \"SECRET\"\napi_key = \"SECRET\"\n").unwrap_err();
    assert!(
        e[0].contains("`api_key` is not an option of kind = \"postmark\""),
        "{e:?}"
    );
    let e = load("kind = \"mailgun\"\napi_key = \"SECRET\"\ndomain = \"mg.example.com\"\nregion = \"asia\"\n")
            .unwrap_err();
    assert!(e[0].contains("use \"us\" or \"eu\""), "{e:?}");
}

#[test]
fn base_url_https_or_loopback_http_only() {
    assert_eq!(
        check_base_url("https://email.eu-west-1.amazonaws.com/").unwrap(),
        "https://email.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        check_base_url("https://proxy.example/ses/").unwrap(),
        "https://proxy.example/ses"
    );
    assert_eq!(
        check_base_url("http://127.0.0.1:4566").unwrap(),
        "http://127.0.0.1:4566"
    );
    assert!(check_base_url("http://[::1]:4566").is_ok());
    assert!(check_base_url("http://localhost:4566").is_ok());
    let e = check_base_url("http://10.0.0.5:4566").unwrap_err();
    assert!(e.contains("https://"), "{e}");
    assert!(check_base_url("http://127.0.0.1.example.com").is_err());
    assert!(check_base_url("https://u:p@api.example").is_err());
    assert!(check_base_url("https://api.example/?key=1").is_err());
    assert!(check_base_url("ftp://api.example").is_err());
    assert!(check_base_url("not a url").is_err());
}

#[test]
fn value_checks() {
    assert!(check_aws_region("eu-west-1").is_ok());
    assert!(check_aws_region("EU-West-1").is_err());
    assert!(check_aws_region("eu-west-1.evil.example/").is_err());
    assert!(check_domain("mg.example.com").is_ok());
    assert!(check_domain("example.com/../x").is_err());
    assert!(check_domain("").is_err());
    assert!(check_categories(&std::array::from_fn::<String, 10, _>(|_| "a".into())).is_ok());
    assert!(check_categories(&std::array::from_fn::<String, 11, _>(|_| "a".into())).is_err());
    assert!(check_categories(&["".into()]).is_err());
    assert!(check_categories(&["x".repeat(256)]).is_err());
}
