use super::*;

#[test]
fn sender_patterns() {
    let p = vec![
        "billing@example.com".to_string(),
        "*@erp.example.com".to_string(),
    ];
    assert!(sender_allowed(&p, "Billing@Example.com"));
    assert!(sender_allowed(&p, "x@erp.example.com"));
    assert!(!sender_allowed(&p, "x@sub.erp.example.com"));
    assert!(!sender_allowed(&p, "x@example.com"));
    assert!(!sender_allowed(&p, ""));
    assert!(!sender_allowed(&p, "billing@example.com.evil"));
    assert!(sender_allowed(&["*".to_string()], "anyone@any.where"));
}

#[test]
fn mapped_ipv4_is_canonicalised() {
    let ip: IpAddr = "::ffff:192.168.1.5".parse().unwrap();
    assert_eq!(canonical_ip(ip), "192.168.1.5".parse::<IpAddr>().unwrap());
}
