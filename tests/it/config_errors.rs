//! `postern check-config` on broken configs: each must exit 1 and print an
//! error that names the file and line (`PATH:LINE:`) and the offending key,
//! because operators edit these files by hand and need to find the mistake.
//! Lines that may legitimately be blamed are marked `# <-` in the fixtures.

use std::path::Path;

use crate::common::clients::postern_bin;
use crate::common::postern::toml_str;
use crate::common::*;

const TOKEN_VAR: &str = "POSTERN_CFG_TEST_TOKEN";
const UNSET_VAR: &str = "POSTERN_CFG_TEST_SURELY_UNSET";

fn base(ca: &TestCa, state: &Path) -> String {
    format!(
        r#"[server]
hostname = "relay.test"
state_dir = {state}
max_message_size = "10MiB"
max_recipients = 50
command_timeout = "5m"

[tls]
certificate = {cert}
private_key = {key}

[[listeners]]
address = "127.0.0.1:2525"
tls = "starttls"

[credentials.erp]
username = "erp"
secret_hash = {hash}
allowed_senders = ["billing@example.com"]
route = "default"

[credentials.scanners]
networks = ["192.168.10.0/24"]
allowed_senders = ["scanner@example.com"]

[routes.default]
upstreams = ["api"]

[upstreams.api]
kind = "http"
url = "https://127.0.0.1:9/send"
bearer_token = "env:{TOKEN_VAR}"
ca_file = {ca}
"#,
        state = toml_str(&state.to_string_lossy()),
        cert = toml_str(&ca.cert_pem.to_string_lossy()),
        key = toml_str(&ca.key_pem.to_string_lossy()),
        ca = toml_str(&ca.ca_pem.to_string_lossy()),
        hash = toml_str(password_hash()),
    )
}

/// Replaces exactly one occurrence of `from` in `text`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "fixture edit target {from:?} must be unique"
    );
    text.replacen(from, to, 1)
}

/// Lines (1-based) carrying the `# <-` marker.
fn marked(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("# <-"))
        .map(|(i, _)| i + 1)
        .collect()
}

fn check_config(path: &Path) -> std::process::Output {
    std::process::Command::new(postern_bin())
        .args(["check-config", "--config"])
        .arg(path)
        .env(TOKEN_VAR, "test-token")
        .env_remove(UNSET_VAR)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .expect("run postern check-config")
}

/// Writes `main` (+ `includes` relative to its directory), runs check-config
/// and asserts exit 1 with `PATH:LINE:` + `key` on one stderr line.
fn expect_error(
    name: &str,
    edit_fn: impl Fn(String) -> String,
    includes: &[(&str, String)],
    key: &str,
) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let main_text = edit_fn(base(&ca, &dir.path().join("state")));
    let main_path = dir.path().join("postern.toml");
    std::fs::write(&main_path, &main_text).expect("write config");
    let mut blame: Vec<String> = marked(&main_text)
        .into_iter()
        .map(|l| format!("{}:{l}:", main_path.display()))
        .collect();
    for (rel, text) in includes {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write include");
        blame.extend(
            marked(text)
                .into_iter()
                .map(|l| format!("{}:{l}:", p.display())),
        );
    }
    assert!(!blame.is_empty(), "{name}: fixture has no `# <-` marker");

    let out = check_config(&main_path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: check-config must exit 1; stdout: {}\nstderr: {stderr}\nconfig:\n{main_text}",
        String::from_utf8_lossy(&out.stdout)
    );
    let hit = stderr
        .lines()
        .any(|l| blame.iter().any(|b| l.starts_with(b.as_str())) && l.contains(key));
    assert!(
        hit,
        "{name}: no stderr line starting with one of {blame:?} and naming `{key}`.\nstderr:\n{stderr}\nconfig:\n{main_text}"
    );
}

#[test]
fn valid_config_passes() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "include = [\"conf.d/*.toml\"]\n{}",
        base(&ca, &dir.path().join("state"))
    );
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, text).expect("write");
    std::fs::create_dir_all(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("conf.d/crm.toml"),
        format!(
            "[credentials.crm]\nusername = \"crm\"\nsecret_hash = {}\nallowed_senders = [\"*@crm.example.com\"]\n",
            toml_str(password_hash())
        ),
    )
    .expect("write include");
    let out = check_config(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("config OK: {}", path.display())),
        "stdout: {stdout}"
    );
}

#[test]
fn unknown_key() {
    expect_error(
        "unknown key",
        |t| {
            edit(
                &t,
                "max_recipients = 50\n",
                "max_recipients = 50\nhostnme = \"typo\"  # <-\n",
            )
        },
        &[],
        "hostnme",
    );
}

#[test]
fn wrong_type() {
    expect_error(
        "wrong type",
        |t| {
            edit(
                &t,
                "max_recipients = 50\n",
                "max_recipients = \"fifty\"  # <-\n",
            )
        },
        &[],
        "max_recipients",
    );
}

#[test]
fn missing_include_file() {
    expect_error(
        "missing include",
        |t| format!("include = [\"conf.d/missing.toml\"]  # <-\n{t}"),
        &[],
        "include",
    );
}

#[test]
fn unreadable_certificate_path() {
    expect_error(
        "unreadable certificate",
        |t| {
            let line = t
                .lines()
                .find(|l| l.starts_with("certificate = "))
                .expect("cert line")
                .to_string();
            edit(
                &t,
                &line,
                "certificate = \"/nonexistent/postern-test/fullchain.pem\"  # <-",
            )
        },
        &[],
        "certificate",
    );
}

#[test]
fn dangling_route() {
    expect_error(
        "dangling route",
        |t| edit(&t, "route = \"default\"\n", "route = \"nosuch\"  # <-\n"),
        &[],
        "route",
    );
}

#[test]
fn dangling_upstream_in_route() {
    expect_error(
        "dangling upstream",
        |t| {
            edit(
                &t,
                "upstreams = [\"api\"]\n",
                "upstreams = [\"api\", \"nosuch\"]  # <-\n",
            )
        },
        &[],
        "upstreams",
    );
}

#[test]
fn literal_secret() {
    let ca_free_check = |t: String| {
        edit(
            &t,
            &format!("bearer_token = \"env:{TOKEN_VAR}\"\n"),
            "bearer_token = \"hunter2\"  # <-\n",
        )
    };
    expect_error("literal secret", ca_free_check, &[], "bearer_token");
}

#[test]
fn env_secret_not_set() {
    expect_error(
        "unset env secret",
        |t| {
            edit(
                &t,
                &format!("bearer_token = \"env:{TOKEN_VAR}\"\n"),
                &format!("bearer_token = \"env:{UNSET_VAR}\"  # <-\n"),
            )
        },
        &[],
        "bearer_token",
    );
}

#[test]
fn bad_duration() {
    expect_error(
        "bad duration",
        |t| {
            edit(
                &t,
                "command_timeout = \"5m\"\n",
                "command_timeout = \"soonish\"  # <-\n",
            )
        },
        &[],
        "command_timeout",
    );
}

#[test]
fn zero_connection_limits() {
    for (key, value) in [
        ("write_timeout", "\"0s\""),
        ("tls_handshake_timeout", "\"0ms\""),
        ("max_session_duration", "\"0s\""),
        ("max_junk_commands", "0"),
        ("max_rcpt_commands", "0"),
    ] {
        expect_error(
            &format!("zero {key}"),
            |t| {
                edit(
                    &t,
                    "command_timeout = \"5m\"\n",
                    &format!("command_timeout = \"5m\"\n{key} = {value}  # <-\n"),
                )
            },
            &[],
            key,
        );
    }
}

#[test]
fn bad_size() {
    expect_error(
        "bad size",
        |t| {
            edit(
                &t,
                "max_message_size = \"10MiB\"\n",
                "max_message_size = \"10 parsecs\"  # <-\n",
            )
        },
        &[],
        "max_message_size",
    );
}

#[test]
fn max_recipients_beyond_what_the_spool_holds() {
    expect_error(
        "max_recipients",
        |t| {
            edit(
                &t,
                "max_recipients = 50\n",
                "max_recipients = 10001  # <-\n",
            )
        },
        &[],
        "server.max_recipients",
    );
}

#[test]
fn bad_cidr() {
    expect_error(
        "bad CIDR",
        |t| {
            edit(
                &t,
                "networks = [\"192.168.10.0/24\"]\n",
                "networks = [\"192.168.10.0/33\"]  # <-\n",
            )
        },
        &[],
        "networks",
    );
}

#[test]
fn starttls_listener_without_tls_section() {
    expect_error(
        "starttls without [tls]",
        |t| {
            let start = t.find("[tls]\n").expect("[tls]");
            let end = t[start..].find("\n\n").expect("end of [tls]") + start + 2;
            let t = format!("{}{}", &t[..start], &t[end..]);
            let t = edit(&t, "[[listeners]]\n", "[[listeners]]  # <-\n");
            edit(&t, "tls = \"starttls\"\n", "tls = \"starttls\"  # <-\n")
        },
        &[],
        "tls",
    );
}

#[test]
fn duplicate_credential_across_include() {
    let dup = format!(
        "# second definition of erp\n[credentials.erp]  # <-\nusername = \"erp2\"\nsecret_hash = {}\nallowed_senders = [\"x@example.com\"]\n",
        toml_str(password_hash())
    );
    expect_error(
        "duplicate credential",
        |t| {
            format!(
                "include = [\"conf.d/*.toml\"]\n{}",
                edit(&t, "[credentials.erp]\n", "[credentials.erp]  # <-\n")
            )
        },
        &[("conf.d/erp.toml", dup.clone())],
        "erp",
    );
}

#[test]
fn literal_secret_message_says_how_to_fix() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = edit(
        &base(&ca, &dir.path().join("state")),
        &format!("bearer_token = \"env:{TOKEN_VAR}\"\n"),
        "bearer_token = \"hunter2\"\n",
    );
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, text).expect("write");
    let out = check_config(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("literal secret"), "{stderr}");
    assert!(stderr.contains("env:NAME"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the secret itself must not be echoed: {stderr}"
    );
}

/// IdP metadata with `key_descriptor` and an SSO service of `binding`.
fn idp_metadata(key_descriptor: &str, binding: &str) -> String {
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {key_descriptor}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:{binding}" Location="https://idp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

const SIGNING_KEY: &str = r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIBszCCAVmgAwIBAgIU</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#;

fn with_console(t: String, console: &str, saml: &str) -> String {
    format!("{t}\n[admin]\naddress = \"127.0.0.1:9587\"\n[admin.console]\n{console}\n{saml}\n")
}

const CONSOLE: &str = "public_url = \"https://relay.example:9587\"";
const SAML: &str =
    "[admin.saml]\nidp_metadata = \"idp.xml\"  # <-\nroles = { \"ops\" = \"operator\" }";

#[test]
fn saml_metadata_without_a_signing_certificate_refuses_to_start() {
    // samael would skip signature verification: postern does not start.
    expect_error(
        "no signing certificate",
        |t| with_console(t, CONSOLE, SAML),
        &[("idp.xml", idp_metadata("", "HTTP-Redirect"))],
        "admin.saml.idp_metadata",
    );
    let encryption_only = SIGNING_KEY.replace("use=\"signing\"", "use=\"encryption\"");
    expect_error(
        "encryption certificate only",
        |t| with_console(t, CONSOLE, SAML),
        &[("idp.xml", idp_metadata(&encryption_only, "HTTP-Redirect"))],
        "admin.saml.idp_metadata",
    );
}

#[test]
fn saml_metadata_without_a_redirect_sso_service() {
    expect_error(
        "no HTTP-Redirect SSO",
        |t| with_console(t, CONSOLE, SAML),
        &[("idp.xml", idp_metadata(SIGNING_KEY, "HTTP-POST"))],
        "admin.saml.idp_metadata",
    );
}

#[test]
fn saml_roles_that_map_nothing() {
    let saml = "[admin.saml]\nidp_metadata = \"idp.xml\"\nroles = {}  # <-";
    expect_error(
        "empty roles",
        |t| with_console(t, CONSOLE, saml),
        &[("idp.xml", idp_metadata(SIGNING_KEY, "HTTP-Redirect"))],
        "admin.saml.roles",
    );
}

#[test]
fn console_without_a_way_to_sign_in_or_with_a_bad_url() {
    expect_error(
        "no sign-in",
        |t| with_console(t, "public_url = \"https://relay.example:9587\"  # <-", ""),
        &[],
        "admin.saml",
    );
    expect_error(
        "http off loopback",
        |t| {
            format!(
                "{t}\n[admin]\naddress = \"0.0.0.0:9587\"\nbearer_token = \"env:HOME\"\n[admin.console]\npublic_url = \"http://relay.example:9587\"  # <-\n{SAML}\n"
            )
        },
        &[("idp.xml", idp_metadata(SIGNING_KEY, "HTTP-Redirect"))],
        "admin.console.public_url",
    );
    expect_error(
        "not https",
        |t| with_console(t, "public_url = \"ftp://relay.example\"  # <-", SAML),
        &[("idp.xml", idp_metadata(SIGNING_KEY, "HTTP-Redirect"))],
        "admin.console.public_url",
    );
}
