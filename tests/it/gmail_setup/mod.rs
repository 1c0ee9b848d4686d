//! Shared setup of the gmail tests (upstream_gmail.rs, header_security.rs):
//! a service account key made in the test and the config pointing at the
//! provider mock.

use crate::common::*;
use crate::common_oauth::*;
use serde_json::json;

pub const USER: &str = "sender@example.com";
pub const KEY_ENV: &str = "POSTERN_TEST_GMAIL_KEY";

/// The service account JSON key as Google issues it (trimmed to what
/// matters). `token_uri` is Google's; `token_url` in the config redirects.
pub fn key_json() -> String {
    json!({
        "type": "service_account",
        "project_id": "postern-test",
        "private_key_id": "kid-123",
        "private_key": rsa_key().0,
        "client_email": "relay@postern-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

pub fn config(ca: &TestCa, mock: &ProviderMock) -> Config {
    let mut cfg = Config::new(&format!("{}/unused", mock.base_url()));
    cfg.credentials = vec![format!(
        "{}route = \"mail\"\n",
        Config::password_credential("app", "app", &["*@example.com"])
    )];
    cfg.extra = format!(
        "[routes.mail]\nupstreams = [\"gmail\"]\n\n[upstreams.gmail]\nkind = \"gmail\"\nservice_account_key = \"env:{KEY_ENV}\"\nuser = \"{USER}\"\nbase_url = \"{base}\"\ntoken_url = \"{base}/oauth2/token\"\nca_file = \"{ca}\"\ntimeout = \"10s\"\n\
         # six faults in a row are scripted: keep the breaker out of it\nbreaker_failures = 10\n",
        base = mock.base_url(),
        ca = ca.ca_pem.display(),
    );
    cfg
}

pub fn start(ca: &TestCa, mock: &ProviderMock) -> Postern {
    Postern::start_with_env(ca, &config(ca, mock), &[(KEY_ENV, &key_json())])
}
