//! Loader tests: every error names file, line and key.

use super::test_util::{BASE, errors_of};
use super::*;
use std::path::Path;

#[test]
fn base_loads_and_resolves_relative_paths() {
    let c = load_str(Path::new("/etc/p/main.toml"), BASE).unwrap();
    assert_eq!(c.server.state_dir, Path::new("/etc/p/state"));
    assert!(
        matches!(&c.upstreams["out"].settings, crate::upstream::Settings::Directory(d) if d.path == Path::new("/etc/p/outbox"))
    );
    assert_eq!(c.credentials["lan"].route, "default");
    assert_eq!(c.server.max_message_size, 25 << 20);
    // One and a half of the largest message, unless set.
    assert_eq!(c.server.min_free_space, (25 << 20) * 3 / 2);
    let set = BASE.replace(
        "state_dir = \"state\"",
        "state_dir = \"state\"\nmax_message_size = \"10MiB\"\nmin_free_space = \"0\"",
    );
    let c = load_str(Path::new("/etc/p/main.toml"), &set).unwrap();
    assert_eq!(
        (c.server.max_message_size, c.server.min_free_space),
        (10 << 20, 0)
    );
    let auto = BASE.replace(
        "state_dir = \"state\"",
        "state_dir = \"state\"\nmax_message_size = \"10MiB\"",
    );
    let c = load_str(Path::new("/etc/p/main.toml"), &auto).unwrap();
    assert_eq!(c.server.min_free_space, 15 << 20);
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = errors_of(&BASE.replace(
        "state_dir = \"state\"",
        "state_dir = \"state\"\nhostnme = \"x\"",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("/etc/p/main.toml:4:1: error: key `server.hostnme`"),
        "{e:?}"
    );
    assert!(e[0].contains("unknown field"), "{e:?}");
}

#[test]
fn wrong_type_names_key() {
    let e = errors_of(&BASE.replace(
        "state_dir = \"state\"",
        "state_dir = \"state\"\nmax_recipients = \"many\"",
    ));
    assert!(e[0].starts_with("/etc/p/main.toml:4:"), "{e:?}");
    assert!(e[0].contains("`server.max_recipients`"), "{e:?}");
}

#[test]
fn dangling_references_are_located() {
    let e = errors_of(&BASE.replace("upstreams = [\"out\"]", "upstreams = [\"nope\"]"));
    assert!(
        e.iter().any(|e| e.starts_with("/etc/p/main.toml:14:")
            && e.contains("routes.default.upstreams")
            && e.contains("\"nope\"")),
        "{e:?}"
    );
    let e = errors_of(&BASE.replace(
        "allowed_senders = [\"*@example.com\"]",
        "allowed_senders = [\"*@example.com\"]\nroute = \"bulk\"",
    ));
    assert!(
        e.iter()
            .any(|e| e.contains(":12:") && e.contains("credentials.lan.route")),
        "{e:?}"
    );
}

#[test]
fn literal_secret_is_refused_with_fix() {
    let text = format!(
        "{BASE}\n[upstreams.api]\nkind = \"http\"\nurl = \"https://x/\"\nbearer_token = \"hunter2\"\n"
    );
    let e = errors_of(&text);
    assert!(
        e.iter().any(|e| e.contains("upstreams.api.bearer_token")
            && e.contains("env:NAME")
            && e.contains(":23:")),
        "{e:?}"
    );
}

#[test]
fn bad_units_and_cidrs() {
    let e = errors_of(&BASE.replace("state_dir = \"state\"", "command_timeout = \"soon\""));
    assert!(
        e[0].contains("server.command_timeout") && e[0].contains("invalid duration"),
        "{e:?}"
    );
    let e = errors_of(&BASE.replace("state_dir = \"state\"", "max_message_size = \"12 parsecs\""));
    assert!(e[0].contains("server.max_message_size"), "{e:?}");
    let e = errors_of(&BASE.replace("127.0.0.0/8", "127.0.0.0/99"));
    assert!(
        e[0].contains("credentials.lan.networks") && e[0].contains(":10:"),
        "{e:?}"
    );
}

#[test]
fn tls_listener_needs_tls_section() {
    let e = errors_of(&BASE.replace("tls = \"none\"", "tls = \"starttls\""));
    assert!(
        e[0].contains("listeners.tls") && e[0].contains("[tls]"),
        "{e:?}"
    );
}

#[test]
fn includes_merge_and_refuse_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/app.toml"),
        "[credentials.app]\nnetworks = [\"10.0.0.0/8\"]\nallowed_senders = [\"*\"]\n",
    )
    .unwrap();
    let main = dir.path().join("main.toml");
    let text = format!("include = [\"conf.d/*.toml\"]\n{BASE}");
    let c = load_str(&main, &text).unwrap();
    assert!(c.credentials.contains_key("app"));
    assert_eq!(c.files.len(), 2);

    std::fs::write(
        dir.path().join("conf.d/dup.toml"),
        "[credentials.lan]\nnetworks = [\"10.0.0.0/8\"]\nallowed_senders = [\"*\"]\n",
    )
    .unwrap();
    let e = load_str(&main, &text).unwrap_err().to_string();
    assert!(
        e.contains("dup.toml:1:") && e.contains("credentials.lan") && e.contains("already defined"),
        "{e}"
    );

    let e = load_str(&main, &format!("include = [\"missing.toml\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("main.toml:1:") && e.contains("does not exist"),
        "{e}"
    );
}

/// Found by the config fuzz target: `include = ["/**/"]` walked the whole
/// filesystem (and ran out of memory); an include that names a device or a
/// huge file must not be read whole either.
#[test]
fn includes_refuse_recursive_globs_devices_and_huge_files() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.toml");
    let e = load_str(&main, &format!("include = [\"/**/\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("main.toml:1:") && e.contains("wildcards are allowed only in the file name"),
        "{e}"
    );
    // Found next: wildcards in many directory levels from / (a walk of
    // /proc and everything else that took minutes).
    let e = load_str(&main, &format!("include = [\"/*/*/*/*/x.toml\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wildcards are allowed only in the file name"),
        "{e}"
    );
    let e = load_str(&main, &format!("include = [\"conf*/a.toml\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wildcards are allowed only in the file name"),
        "{e}"
    );
    let e = load_str(&main, &format!("include = [\"/dev/zero\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // A FIFO would block the open itself; /proc/kmsg a read (the config
    // target's second finding hung there).
    let fifo = dir.path().join("fifo.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let e = load_str(&main, &format!("include = [\"fifo.toml\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    // Returning at all is the point (a hang fails the test by timeout).
    if let Err(e) = load_str(&main, &format!("include = [\"/proc/kmsg\"]\n{BASE}")) {
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; (4 << 20) + 1]).unwrap();
    let e = load_str(&main, &format!("include = [\"big.toml\"]\n{BASE}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than 4 MiB"), "{e}");
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors_of(&BASE.replace("upstreams = [\"out\"]", "upstreams = [\"a\", \"b\"]"));
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn connection_limits_have_defaults_and_refuse_zero() {
    let c = load_str(Path::new("/etc/p/main.toml"), BASE).unwrap();
    assert_eq!(c.server.write_timeout, Duration::from_secs(60));
    assert_eq!(c.server.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_session_duration, Duration::from_secs(1800));
    assert_eq!(c.server.max_junk_commands, 100);
    assert_eq!(c.server.max_rcpt_commands, 1000);
    let set = BASE.replace(
        "state_dir = \"state\"",
        "state_dir = \"state\"\nwrite_timeout = \"5s\"\ntls_handshake_timeout = \"2s\"\n\
         max_session_duration = \"1h\"\nmax_junk_commands = 7\nmax_rcpt_commands = 9",
    );
    let c = load_str(Path::new("/etc/p/main.toml"), &set).unwrap();
    assert_eq!(
        (
            c.server.write_timeout,
            c.server.tls_handshake_timeout,
            c.server.max_session_duration,
            c.server.max_junk_commands,
            c.server.max_rcpt_commands
        ),
        (
            Duration::from_secs(5),
            Duration::from_secs(2),
            Duration::from_secs(3600),
            7,
            9
        )
    );
    for (key, value, why) in [
        ("write_timeout", "\"0s\"", "must be longer than zero"),
        (
            "tls_handshake_timeout",
            "\"0s\"",
            "must be longer than zero",
        ),
        ("max_session_duration", "\"0s\"", "must be longer than zero"),
        ("max_junk_commands", "0", "must be at least 1"),
        ("max_rcpt_commands", "0", "must be at least 1"),
    ] {
        let e = errors_of(&BASE.replace(
            "state_dir = \"state\"",
            &format!("state_dir = \"state\"\n{key} = {value}"),
        ));
        assert_eq!(e.len(), 1, "{key}: {e:?}");
        assert!(
            e[0].starts_with("/etc/p/main.toml:4:")
                && e[0].contains(&format!("`server.{key}`"))
                && e[0].contains(why),
            "{key}: {e:?}"
        );
    }
}
