//! Shared setup of the msgraph tests (upstream_msgraph.rs and
//! upstream_msgraph_faults.rs): the config, the credentials, submitting.

use crate::common::*;
use crate::common_oauth::*;

/// Needs form escaping on purpose.
pub const SECRET: &str = "s3cr+t&=/x~ y";
pub const SECRET_ENV: &str = "POSTERN_TEST_GRAPH_SECRET";

pub fn config(ca: &TestCa, mock: &ProviderMock, auth: &str, extra: &str) -> Config {
    let mut cfg = Config::new(&format!("{}/unused", mock.base_url()));
    cfg.credentials = vec![format!(
        "{}route = \"mail\"\n",
        Config::password_credential("app", "app", &["*@example.com"])
    )];
    cfg.extra = format!(
        "[routes.mail]\nupstreams = [\"graph\"]\n\n[upstreams.graph]\nkind = \"msgraph\"\ntenant_id = \"tenant-1\"\nclient_id = \"client-1\"\n{auth}\nbase_url = \"{base}\"\ntoken_url = \"{base}/tenant-1/oauth2/v2.0/token\"\nca_file = \"{ca}\"\ntimeout = \"10s\"\n{extra}\n",
        base = mock.base_url(),
        ca = ca.ca_pem.display(),
    );
    cfg
}

pub fn secret_auth() -> String {
    format!("client_secret = \"env:{SECRET_ENV}\"")
}

pub fn start(ca: &TestCa, cfg: &Config) -> Postern {
    Postern::start_with_env(ca, cfg, &[(SECRET_ENV, SECRET)])
}

/// Submits one message over STARTTLS + AUTH; returns the queue id.
pub fn submit(p: &Postern, ca: &TestCa, rcpts: &[&str], msg: &[u8]) -> String {
    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(ca);
    c.auth_plain("app", PASSWORD).expect(235, "2.7.0", "AUTH");
    let r = c.send_message("app@example.com", rcpts, msg);
    r.expect_code(250, "end of DATA");
    c.quit();
    r.queue_id().expect("queue id")
}

pub fn api_requests(mock: &ProviderMock, part: &str) -> Vec<Recorded> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path.contains(part))
        .collect()
}

pub fn mime_of(s: &Sent) -> (&str, &[u8]) {
    match s {
        Sent::Mime { mailbox, mime } => (mailbox, mime),
        other => panic!("expected a MIME sendMail, got {other:?}"),
    }
}
