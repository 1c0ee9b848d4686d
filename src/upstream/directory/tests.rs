use super::*;

fn message<'a>(id: &'a str, rcpt: &'a [String], data: &'a [u8]) -> OutboundMessage<'a> {
    OutboundMessage {
        id,
        mail_from: "a@example.com",
        rcpt_to: rcpt,
        data,
    }
}

#[tokio::test]
async fn writes_exact_bytes_under_id_and_creates_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out/nested");
    let up = DirectoryUpstream::new("outbox", &Settings { path: path.clone() }).unwrap();
    assert!(path.is_dir());
    let rcpt = vec!["b@example.net".to_string()];
    let data = b"From: a@example.com\r\n\r\nline\r\n.\r\n\xff\x00".to_vec();

    let got = up.send(&message("ABC123", &rcpt, &data)).await.unwrap();
    assert_eq!(got.upstream_id.as_deref(), Some("ABC123.eml"));
    assert_eq!(fs::read(path.join("ABC123.eml")).unwrap(), data);
    let names: Vec<_> = fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ABC123.eml"]);

    // Removed after startup: recreated on the next delivery; same id
    // replaces the file.
    fs::remove_dir_all(&path).unwrap();
    up.send(&message("ABC123", &rcpt, b"v2")).await.unwrap();
    assert_eq!(fs::read(path.join("ABC123.eml")).unwrap(), b"v2");
}

#[tokio::test]
async fn path_traversal_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out");
    let up = DirectoryUpstream::new("outbox", &Settings { path }).unwrap();
    let err = up.send(&message("../x", &[], b"x")).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(!tmp.path().join("x.eml").exists());
}

#[tokio::test]
async fn unwritable_directory_is_transient() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out");
    let up = DirectoryUpstream::new("outbox", &Settings { path: path.clone() }).unwrap();
    // A file where the directory should be fails even for root.
    fs::remove_dir(&path).unwrap();
    fs::write(&path, b"").unwrap();
    let err = up.send(&message("ID1", &[], b"x")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.reason().contains("ID1.eml"), "{err}");
}
