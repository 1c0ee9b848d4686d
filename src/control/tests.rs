//! The wire format and the socket's set-up, without a daemon.

use super::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

#[test]
fn requests_are_tagged_by_command_and_defaults_fill_in() {
    let r: Request = serde_json::from_str(r#"{"command":"spool_list"}"#).unwrap();
    assert_eq!(r, Request::SpoolList { dead: false });
    let r: Request =
        serde_json::from_str(r#"{"command":"spool_purge","all_dead":true,"extra":1}"#).unwrap();
    assert_eq!(
        r,
        Request::SpoolPurge {
            ids: vec![],
            all_dead: true
        }
    );
    let line = serde_json::to_string(&Request::CredentialSuspend {
        name: "erp".into(),
        for_secs: Some(7200),
        reason: None,
    })
    .unwrap();
    assert_eq!(
        line,
        r#"{"command":"credential_suspend","name":"erp","for_secs":7200,"reason":null}"#
    );
    assert!(serde_json::from_str::<Request>(r#"{"command":"rm_rf"}"#).is_err());
    let ok = serde_json::to_string(&Response::error("no")).unwrap();
    assert_eq!(ok, r#"{"ok":false,"error":"no"}"#);
}

#[test]
fn the_socket_is_owner_only_and_a_stale_one_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let path = socket_path(tmp.path());
    // A leftover socket nobody listens on (a crashed daemon's).
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
    let bound = bind(tmp.path()).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Nothing is left of the private directory it was bound in.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [SOCKET_NAME]);
    // It answers (the backlog takes the connection), so a second daemon
    // must not start.
    assert!(matches!(bind(tmp.path()), Err(BindError::Live(_))));
    drop(bound);
    assert!(!path.exists(), "the socket file goes with the daemon");
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let path = socket_path(tmp.path());
    std::fs::write(&path, b"operator's notes").unwrap();
    assert!(matches!(bind(tmp.path()), Err(BindError::NotSocket(_))));
    assert_eq!(std::fs::read(&path).unwrap(), b"operator's notes");
}
