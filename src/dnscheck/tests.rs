use super::*;

#[test]
fn line_format_and_json_shape() {
    let f = Finding::new("spf", Status::Fail, "no SPF record").fix("add one");
    assert_eq!(f.to_string(), "FAIL spf: no SPF record [fix: add one]");
    assert_eq!(
        Finding::new("dmarc", Status::Pass, "ok").to_string(),
        "PASS dmarc: ok"
    );
    let json = serde_json::to_value([&f]).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"check": "spf", "status": "FAIL", "detail": "no SPF record", "fix": "add one"}])
    );
}

#[test]
fn tag_lists() {
    assert_eq!(
        tags(" v=DKIM1; K=rsa ;p=AB CD; "),
        Some(vec![
            ("v".into(), "DKIM1".into()),
            ("k".into(), "rsa".into()),
            ("p".into(), "AB CD".into())
        ])
    );
    assert_eq!(tags("v=DMARC1; nonsense"), None);
}
