//! Access decisions against a loaded configuration: secrets and their
//! expiry, disabled credentials, networks of a login, lockout, a login
//! revoked by a new configuration generation, and per-credential limits.

use super::*;
use crate::access::abuse::Settings as AbuseSettings;
use crate::smtp::session::Policy;
use std::sync::OnceLock;

mod patterns;

/// Two argon2id hashes, computed once: of "old-pw" and "new-pw".
fn hashes() -> &'static (String, String) {
    static H: OnceLock<(String, String)> = OnceLock::new();
    H.get_or_init(|| {
        (
            hash_secret("old-pw").unwrap(),
            hash_secret("new-pw").unwrap(),
        )
    })
}

fn config(app: &str) -> Config {
    let text = format!(
        r#"
[server]
state_dir = "state"
[[listeners]]
address = "127.0.0.1:2525"
tls = "none"
[routes.default]
upstreams = ["out"]
[upstreams.out]
kind = "directory"
path = "outbox"
[credentials.app]
username = "app"
allowed_senders = ["*@example.com"]
{app}
[credentials.lan]
networks = ["192.0.2.0/24"]
allowed_senders = ["*"]
"#
    );
    crate::config::load_str(std::path::Path::new("/etc/p/t.toml"), &text).unwrap()
}

fn both_secrets() -> String {
    let (old, new) = hashes();
    format!("secret_hashes = [\"{old}\", \"{new}\"]")
}

const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

fn no_delay() -> AbuseSettings {
    AbuseSettings {
        auth_failure_delay: std::time::Duration::ZERO,
        ..AbuseSettings::default()
    }
}

fn access(app: &str) -> Arc<Access> {
    Arc::new(Access::new(&config(app)).with_lockout(Arc::new(Lockout::new(&no_delay()))))
}

fn code(r: &Result<Grant, Denied>) -> String {
    match r {
        Ok(g) => format!("ok {}", g.credential),
        Err(denied) => String::from_utf8(denied.reply().to_bytes()).unwrap(),
    }
}

#[tokio::test]
async fn every_listed_secret_works_and_the_grant_names_it() {
    let a = access(&both_secrets());
    let old = a.authenticate("app", "old-pw", PEER).await.unwrap();
    let new = a.authenticate("app", "new-pw", PEER).await.unwrap();
    assert_eq!(&*old.credential, "app");
    assert_ne!(old.secret, new.secret);
    assert!(a.check_login(&old, PEER).is_ok());
    let bad = a.authenticate("app", "nope", PEER).await;
    assert_eq!(
        code(&bad),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    let unknown = a.authenticate("ghost", "old-pw", PEER).await;
    assert_eq!(code(&unknown), code(&bad));
}

#[tokio::test]
async fn expired_or_disabled_reads_like_a_wrong_password() {
    let (old, new) = hashes();
    let wrong = "535 5.7.8 Authentication credentials invalid\r\n";
    let a = access(&format!(
        "secret_hashes = [{{ hash = \"{old}\", expires = 2001-01-01 }}, \"{new}\"]"
    ));
    assert_eq!(code(&a.authenticate("app", "old-pw", PEER).await), wrong);
    assert_eq!(code(&a.authenticate("app", "new-pw", PEER).await), "ok app");
    let a = access(&format!("{}\ndisabled = true", both_secrets()));
    assert_eq!(code(&a.authenticate("app", "new-pw", PEER).await), wrong);
    let a = access(&format!("{}\nexpires = 2001-01-01", both_secrets()));
    assert_eq!(code(&a.authenticate("app", "new-pw", PEER).await), wrong);
}

#[tokio::test]
async fn login_networks_restrict_where_it_is_used() {
    let a = access(&format!("{}\nnetworks = [\"10.0.0.0/8\"]", both_secrets()));
    assert_eq!(
        code(&a.authenticate("app", "new-pw", PEER).await),
        "535 5.7.8 Credential \"app\" may not be used from this address (networks)\r\n"
    );
    let inside: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(
        code(&a.authenticate("app", "new-pw", inside).await),
        "ok app"
    );
    // A login credential's networks never grant network trust.
    assert_eq!(a.network_credential("10.1.2.3".parse().unwrap()), None);
    assert_eq!(
        a.network_credential("192.0.2.9".parse().unwrap())
            .as_deref(),
        Some("lan")
    );
}

#[tokio::test]
async fn lockout_refuses_even_the_right_password() {
    let a = access(&both_secrets());
    for _ in 0..5 {
        assert!(a.authenticate("app", "guess", PEER).await.is_err());
    }
    let locked = code(&a.authenticate("app", "new-pw", PEER).await);
    assert!(
        locked.starts_with("454 4.7.0 Too many failed AUTH attempts from "),
        "{locked}"
    );
    // The username is locked for other addresses too.
    let other: IpAddr = "127.0.0.9".parse().unwrap();
    let locked = code(&a.authenticate("app", "new-pw", other).await);
    assert!(locked.contains("user \"app\""), "{locked}");
}

#[tokio::test]
async fn a_new_generation_revokes_removed_secrets_and_credentials() {
    let (_, new) = hashes();
    let before = access(&both_secrets());
    let old_grant = before.authenticate("app", "old-pw", PEER).await.unwrap();
    let new_grant = before.authenticate("app", "new-pw", PEER).await.unwrap();
    let after = access(&format!("secret_hash = \"{new}\""));
    let revoked = after.check_login(&old_grant, PEER).unwrap_err();
    assert_eq!(
        String::from_utf8(revoked.reply().to_bytes()).unwrap(),
        "535 5.7.8 Authentication credentials no longer valid; authenticate again\r\n"
    );
    assert!(after.check_login(&new_grant, PEER).is_ok());
    let disabled = access(&format!("secret_hash = \"{new}\"\ndisabled = true"));
    assert!(disabled.check_login(&new_grant, PEER).is_err());
    let moved = access(&format!(
        "secret_hash = \"{new}\"\nnetworks = [\"10.0.0.0/8\"]"
    ));
    assert!(moved.check_login(&new_grant, PEER).is_err());
}

#[test]
fn limits_take_the_smaller_of_credential_and_route() {
    let (_, new) = hashes();
    let cfg = config(&format!(
        "secret_hash = \"{new}\"\nmax_recipients = 3\nmax_message_size = 100000"
    ));
    let a = Access::new(&cfg);
    let l = a.limits("app");
    assert_eq!(l.max_recipients, Some(3));
    let size = l.max_message_size.unwrap();
    assert_eq!(
        (size.bytes, size.by.as_str()),
        (100_000, "credential \"app\"")
    );
    let routed = Access::new(&cfg).with_route_limits([("default".to_string(), 50_000)].into());
    let size = routed.limits("app").max_message_size.unwrap();
    assert_eq!(
        (size.bytes, size.by.as_str()),
        (50_000 - ROUTE_HEADROOM as usize, "route \"default\"")
    );
    assert_eq!(
        routed.limits("lan").max_message_size.unwrap().bytes,
        50_000 - ROUTE_HEADROOM as usize
    );
    assert_eq!(a.limits("lan"), CredentialLimits::default());
}

#[test]
fn recipient_domain_scope_denied_wins() {
    let (_, new) = hashes();
    let a = Access::new(&config(&format!(
        "secret_hash = \"{new}\"\nallowed_recipient_domains = [\"example.net\", \"*.example.org\"]\ndenied_recipient_domains = [\"x.example.org\"]"
    )));
    let rcpt = |s: &str| match crate::validate::parse_path(format!("<{s}>").as_bytes()) {
        Ok(crate::validate::Path::Mailbox(a)) => a,
        other => panic!("{other:?}"),
    };
    let check = |s: &str| {
        Policy::check_recipient(&a, "app", &rcpt(s))
            .map_err(|r| String::from_utf8(r.to_bytes()).unwrap())
    };
    assert!(check("u@example.net").is_ok());
    assert!(check("u@a.example.org").is_ok());
    assert_eq!(
        check("u@x.example.org").unwrap_err(),
        "550 5.7.1 Recipient <u@x.example.org> not allowed for credential \"app\" (denied_recipient_domains)\r\n"
    );
    assert!(
        check("u@example.com")
            .unwrap_err()
            .contains("(allowed_recipient_domains)")
    );
    assert!(check("u@[192.0.2.1]").is_err());
    assert!(Policy::check_recipient(&a, "lan", &rcpt("u@example.com")).is_ok());
}

/// A third hash, of "third-pw", for a credential with three secrets.
fn third_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_secret("third-pw").unwrap())
}

#[tokio::test]
async fn every_failure_costs_as_many_verifications_as_the_most_secrets() {
    let (old, new) = hashes();
    let third = third_hash();
    // "app" rotates through three secrets; "one" has a single secret.
    let a = access(&format!(
        "secret_hashes = [\"{old}\", \"{new}\", \"{third}\"]\n[credentials.one]\nusername = \"one\"\nsecret_hash = \"{new}\"\nallowed_senders = [\"*\"]"
    ));
    let cost = |before: u64| a.verifications() - before;
    let mut counts = Vec::new();
    for (user, pw) in [
        ("ghost", "guess"),
        ("app", "guess"),
        ("one", "guess"),
        ("ghost2", "new-pw"),
    ] {
        let before = a.verifications();
        let peer: IpAddr = "192.0.2.50".parse().unwrap();
        assert!(a.authenticate(user, pw, peer).await.is_err(), "{user}");
        counts.push((user, cost(before)));
    }
    assert_eq!(
        counts,
        [("ghost", 3), ("app", 3), ("one", 3), ("ghost2", 3)],
        "an unknown username must cost what the credential with the most secrets costs"
    );
    // A disabled credential reads the same.
    let d = access(&format!(
        "secret_hashes = [\"{old}\", \"{new}\", \"{third}\"]\ndisabled = true"
    ));
    assert!(d.authenticate("app", "new-pw", PEER).await.is_err());
    assert_eq!(d.verifications(), 3);
    // A success stops at the secret that matched (the client knows it).
    let before = a.verifications();
    a.authenticate("app", "old-pw", PEER).await.unwrap();
    assert_eq!(cost(before), 1);
}

#[tokio::test]
async fn a_username_lockout_spares_the_network_that_logged_in_before() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = no_delay();
    let known = Arc::new(KnownClients::new(&cfg, dir.path().join(known::FILE_NAME)));
    let a = Arc::new(
        Access::new(&config(&both_secrets()))
            .with_lockout(Arc::new(Lockout::new(&cfg)))
            .with_known_clients(Arc::clone(&known)),
    );
    a.authenticate("app", "new-pw", PEER).await.unwrap();
    assert!(a.trusted_or_known(PEER));
    for i in 2..=6 {
        let bot: IpAddr = format!("203.0.113.{i}").parse().unwrap();
        assert!(!a.trusted_or_known(bot));
        assert!(a.authenticate("app", "guess", bot).await.is_err());
    }
    let stranger: IpAddr = "198.51.100.1".parse().unwrap();
    let locked = code(&a.authenticate("app", "new-pw", stranger).await);
    assert!(locked.starts_with("454 4.7.0"), "{locked}");
    assert_eq!(code(&a.authenticate("app", "new-pw", PEER).await), "ok app");
    // A refused login (networks) does not make a network known.
    let fenced = Access::new(&config(&format!(
        "{}\nnetworks = [\"10.0.0.0/8\"]",
        both_secrets()
    )))
    .with_known_clients(Arc::clone(&known));
    let fenced = Arc::new(fenced);
    let outside: IpAddr = "198.51.100.77".parse().unwrap();
    assert!(fenced.authenticate("app", "new-pw", outside).await.is_err());
    assert!(!fenced.trusted_or_known(outside));
    // A networks credential's clients are trusted without logging in.
    assert!(a.trusted_or_known("192.0.2.9".parse().unwrap()));
}

/// A suspension shared by two generations: AUTH with the right password
/// is refused with the reason (a wrong one gets the usual answer), MAIL of
/// a networks credential is refused, and resuming lifts both.
#[tokio::test]
async fn suspended_credential_is_refused_at_auth_and_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let suspensions = Arc::new(Suspensions::load(tmp.path().join(suspend::FILE_NAME)).unwrap());
    let generation = || {
        Arc::new(
            Access::new(&config(&both_secrets()))
                .with_lockout(Arc::new(Lockout::new(&no_delay())))
                .with_suspensions(Arc::clone(&suspensions)),
        )
    };
    let (a, b) = (generation(), generation());
    suspensions.suspend("app", None, None, "operator");
    suspensions.suspend("lan", None, None, "operator");
    let auth = a.authenticate("app", "new-pw", PEER).await;
    assert!(matches!(auth, Err(Denied::Suspended { .. })));
    let reply = String::from_utf8(auth.unwrap_err().auth_reply().to_bytes()).unwrap();
    assert_eq!(reply, "535 5.7.8 Credential \"app\" is suspended\r\n");
    // Without the secret nothing is revealed.
    assert!(matches!(
        b.authenticate("app", "wrong", PEER).await,
        Err(Denied::InvalidCredentials)
    ));
    let mail = Policy::check_suspended(&*b, "lan").unwrap_err();
    assert_eq!(
        String::from_utf8(mail.to_bytes()).unwrap(),
        "550 5.7.1 Credential \"lan\" is suspended\r\n"
    );
    suspensions.resume("app");
    suspensions.resume("lan");
    assert!(b.authenticate("app", "new-pw", PEER).await.is_ok());
    assert!(Policy::check_suspended(&*a, "lan").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_presenting_the_same_password_at_once_share_one_check() {
    let (old, new) = hashes();
    let a = access(&format!("secret_hashes = [\"{old}\", \"{new}\"]"));
    let burst = |pw: &'static str| {
        let a = Arc::clone(&a);
        async move {
            let logins: Vec<_> = (0..8)
                .map(|_| {
                    let a = Arc::clone(&a);
                    tokio::spawn(async move { a.authenticate("app", pw, PEER).await.is_ok() })
                })
                .collect();
            let mut ok = Vec::new();
            for l in logins {
                ok.push(l.await.unwrap());
            }
            ok
        }
    };
    // Eight sessions with the right password: one argon2 check (it stops
    // at the first secret that matches), all eight logged in.
    let before = a.verifications();
    assert_eq!(burst("old-pw").await, [true; 8]);
    assert_eq!(a.verifications() - before, 1);
    // Eight sessions repeating one wrong guess: one padded failure (two
    // checks), all eight refused.
    let before = a.verifications();
    assert_eq!(burst("guess").await, [false; 8]);
    assert_eq!(a.verifications() - before, 2);
    assert!(a.in_flight.lock().unwrap().is_empty());
    // A session that gives up mid-check leaves nothing behind (a fresh
    // table: "app" is locked out by now, refused before any check).
    let a = access(&format!("secret_hashes = [\"{old}\", \"{new}\"]"));
    let gone = {
        let a = Arc::clone(&a);
        tokio::spawn(async move { a.authenticate("app", "other", PEER).await })
    };
    // Abort only once its check is in the map, so the removal is tested.
    for _ in 0..200 {
        if !a.in_flight.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        !a.in_flight.lock().unwrap().is_empty(),
        "the check never started"
    );
    gone.abort();
    let _ = gone.await;
    assert!(a.in_flight.lock().unwrap().is_empty());
}
