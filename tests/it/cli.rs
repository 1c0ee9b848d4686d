//! Operator CLI: `hash-secret` prints an argon2id PHC string, and the TOML
//! block printed by `token new NAME` works when pasted into a config (the
//! printed token then authenticates and sends mail end to end).

use crate::common::clients::{hash_secret, postern_cmd};
use crate::common::*;

#[test]
fn hash_secret_prints_argon2id_phc() {
    let out = postern_cmd(&["hash-secret"], b"s3cret\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.trim_end_matches('\n');
    assert!(line.starts_with("$argon2id$"), "{stdout:?}");
    assert!(!line.contains('\n'), "one line expected: {stdout:?}");
    // Fresh salt every time.
    let again = hash_secret("s3cret");
    assert!(again.starts_with("$argon2id$"));
    assert_ne!(
        again, line,
        "two hashes of the same password must differ (salt)"
    );
}

/// Extracts (token, TOML block) from `token new` output.
fn parse_token_output(stdout: &str) -> (String, String) {
    let token = stdout
        .split_whitespace()
        .find(|w| w.starts_with("pst_"))
        .unwrap_or_else(|| panic!("no pst_ token in output:\n{stdout}"))
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    let start = stdout
        .find("[credentials.")
        .unwrap_or_else(|| panic!("no [credentials.] block in output:\n{stdout}"));
    let block: Vec<&str> = stdout[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect();
    (token, block.join("\n") + "\n")
}

/// A concrete sender permitted by the block's `allowed_senders` (first entry).
fn first_allowed_sender(block: &str) -> String {
    let line = block
        .lines()
        .find(|l| l.trim_start().starts_with("allowed_senders"))
        .expect("allowed_senders line");
    let first = line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted sender in {line:?}"));
    first.replacen('*', "app", 1)
}

#[test]
fn token_new_block_authenticates_end_to_end() {
    let out = postern_cmd(&["token", "new", "crm"], b"");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (token, block) = parse_token_output(&stdout);
    // 256 bits of base64url without padding = 43 characters.
    let body = token.strip_prefix("pst_").expect("pst_ prefix");
    assert_eq!(body.len(), 43, "token {token:?}");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{token:?}"
    );
    assert!(block.starts_with("[credentials.crm]"), "block:\n{block}");
    assert!(block.contains("$argon2id$"), "block:\n{block}");
    assert!(
        !block.contains(&token),
        "the block must hold the hash, not the token:\n{block}"
    );
    let username = block
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("username").map(|r| {
                r.trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| panic!("no username in block:\n{block}"));

    // Paste it into a config (as the last table, so extra keys land in it).
    let mut pasted = block.clone();
    if !block.contains("allowed_senders") {
        pasted.push_str("allowed_senders = [\"*@crm.example.com\"]\n");
    }
    let ca = TestCa::new();
    let up = MockUpstream::start(&ca);
    let mut cfg = Config::new(&up.url());
    cfg.credentials.clear();
    cfg.extra = pasted;
    let p = Postern::start(&ca, &cfg);

    let mut c = SmtpClient::connect(p.port(0));
    c.greet_starttls(&ca);
    c.auth_plain(&username, "pst_wrong")
        .expect(535, "5.7.8", "wrong token");
    c.auth_plain(&username, &token)
        .expect(235, "2.7.0", "AUTH with the printed token");
    let from = if block.contains("allowed_senders") {
        first_allowed_sender(&block)
    } else {
        "app@crm.example.com".to_string()
    };
    let msg = simple_message(&from, "bob@dest.test", "token");
    c.send_message(&from, &["bob@dest.test"], &msg)
        .expect(250, "2.0.0", "send with token");
    let reqs = p.delivered(&up, 1);
    assert_eq!(reqs[0].one_header("x-postern-mail-from"), from.as_str());
    assert_forwarded(&reqs[0].body, &msg);
    c.quit();
}

/// The shipped unit describes the reload it has: SIGHUP re-reads the
/// configuration (tests/reload.rs), so the unit must not call it a future
/// feature.
#[test]
fn systemd_unit_describes_live_reload() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/postern.service"),
    )
    .expect("read systemd/postern.service");
    assert!(
        unit.lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "{unit}"
    );
    assert!(
        !unit.contains("later release") && unit.contains("SIGHUP re-reads the whole configuration"),
        "{unit}"
    );
}
