use super::*;
use crate::config::load_str;
use crate::config::upstream_ctx::DEFAULT_TIMEOUT;
use std::path::Path;

fn load(upstream: &str) -> Result<crate::config::Config, String> {
    let text = format!(
        "[server]\nstate_dir = \"state\"\n[[listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"none\"\n\
             [credentials.lan]\nnetworks = [\"127.0.0.0/8\"]\nallowed_senders = [\"*@example.com\"]\n\
             [routes.default]\nupstreams = [\"p\"]\n[upstreams.p]\n{upstream}"
    );
    load_str(Path::new("/etc/p/main.toml"), &text).map_err(|e| e.to_string())
}

#[test]
fn defaults_and_dkim_off() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "top-secret\n").unwrap();
    let c = load(&format!(
        "kind = \"msgraph\"\ntenant_id = \"t1\"\nclient_id = \"c1\"\nclient_secret = \"file:{}\"\n",
        secret.display()
    ))
    .unwrap();
    let u = &c.upstreams["p"];
    assert!(!u.dkim);
    let Settings::Msgraph(g) = &u.settings else {
        panic!("{u:?}")
    };
    assert_eq!(g.endpoint.base_url, "https://graph.microsoft.com");
    assert_eq!(g.endpoint.timeout, DEFAULT_TIMEOUT);
    assert!(g.save_to_sent_items && g.mailbox.is_none() && g.token_url.is_none());
    assert!(
        matches!(&g.credential, msgraph::AppCredential::ClientSecret(s) if s.expose() == "top-secret")
    );
    assert!(!format!("{u:?}").contains("top-secret"));

    let c = load("kind = \"msgraph\"\ntenant_id = \"t1\"\nclient_id = \"c1\"\n").unwrap_err();
    assert!(c.contains("upstreams.p.client_secret"), "{c}");
    let e = load("kind = \"gmail\"\nuser = \"u@example.com\"\nservice_account_key = \"file:/nonexistent\"\ndkim = true\ntenant_id = \"x\"\n").unwrap_err();
    assert!(e.contains("upstreams.p.service_account_key"), "{e}");
    assert!(
        e.contains("`tenant_id` is not an option of kind = \"gmail\""),
        "{e}"
    );
}

#[test]
fn url_checks() {
    assert_eq!(
        check_https_url("https://graph.microsoft.com/").unwrap(),
        "https://graph.microsoft.com"
    );
    assert!(check_https_url("http://127.0.0.1:1/").is_err());
    assert!(check_https_url("https://u:p@h/").is_err());
    assert!(check_https_url("https://h/?x=1").is_err());
    assert!(check_tenant("contoso.onmicrosoft.com").is_ok());
    assert!(check_tenant("a/b").is_err());
    assert!(check_address("me@example.com").is_ok());
    assert!(check_address("me").is_err());
    assert!(check_address("me @x.y").is_err());
}
