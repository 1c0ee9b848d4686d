use super::*;

fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v2_tcp4(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut p = src.to_vec();
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&25u16.to_be_bytes());
    v2(1, 0x11, &p)
}

#[test]
fn v1_tcp4_and_tcp6_name_the_client() {
    let h = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 25\r\nEHLO x\r\n";
    assert_eq!(
        decode(h),
        Ok((Some("192.0.2.7:40000".parse().unwrap()), 41))
    );
    let h = b"PROXY TCP6 2001:db8::7 ::1 40000 25\r\n";
    assert_eq!(
        decode(h),
        Ok((Some("[2001:db8::7]:40000".parse().unwrap()), h.len()))
    );
    assert_eq!(decode(b"PROXY UNKNOWN\r\n"), Ok((None, 15)));
}

#[test]
fn v2_proxy_and_local() {
    let mut h = v2_tcp4([192, 0, 2, 9], 5555);
    let len = h.len();
    h.extend_from_slice(b"\x16\x03\x01"); // a ClientHello follows
    assert_eq!(
        decode(&h),
        Ok((Some("192.0.2.9:5555".parse().unwrap()), len))
    );
    assert_eq!(decode(&v2(0, 0x00, &[])), Ok((None, 16)));
}

#[test]
fn v2_tlvs_are_walked_and_ignored() {
    let mut p = vec![192, 0, 2, 1, 127, 0, 0, 1, 0, 1, 0, 25];
    p.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN
    assert_eq!(
        decode(&v2(1, 0x11, &p)).map(|r| r.0),
        Ok(Some("192.0.2.1:1".parse().unwrap()))
    );
    // A TLV whose length runs past the header.
    let mut p = vec![192, 0, 2, 1, 127, 0, 0, 1, 0, 1, 0, 25];
    p.extend_from_slice(&[0x01, 0x00, 0x09, b'h']);
    assert!(matches!(
        decode(&v2(1, 0x11, &p)),
        Err(ProxyError::Malformed(_))
    ));
}

#[test]
fn malformed_truncated_and_foreign_input_is_refused() {
    assert_eq!(decode(b"EHLO client\r\n"), Err(ProxyError::NotProxy));
    assert_eq!(decode(b"PROXY TCP4 1.2.3.4"), Err(ProxyError::Truncated));
    assert!(matches!(
        decode(b"PROXY TCP4 1.2.3.999 127.0.0.1 1 25\r\n"),
        Err(ProxyError::Malformed(_))
    ));
    assert!(matches!(
        decode(b"PROXY TCP4 1.2.3.4 127.0.0.1 1 25\n"),
        Err(ProxyError::Malformed(_))
    ));
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    assert_eq!(decode(&long), Err(ProxyError::TooLong));
    let h = v2_tcp4([192, 0, 2, 9], 5555);
    assert_eq!(decode(&h[..h.len() - 1]), Err(ProxyError::Truncated));
    // Version 1 in the binary header, and an IPv4 block too short.
    let mut bad = h.clone();
    bad[12] = 0x11;
    assert!(matches!(decode(&bad), Err(ProxyError::Malformed(_))));
    assert!(matches!(
        decode(&v2(1, 0x11, &[1, 2, 3])),
        Err(ProxyError::Malformed(_))
    ));
}

#[test]
fn trusted_matches_cidrs_and_mapped_addresses() {
    let t = Trusted::new(vec![
        "10.0.0.0/24".parse().unwrap(),
        "::1/128".parse().unwrap(),
    ]);
    assert!(t.contains("10.0.0.7".parse().unwrap()));
    assert!(t.contains("::ffff:10.0.0.7".parse().unwrap()));
    assert!(t.contains("::1".parse().unwrap()));
    assert!(!t.contains("10.0.1.7".parse().unwrap()));
}

#[tokio::test]
async fn read_header_consumes_exactly_the_header() {
    let mut input = v2_tcp4([198, 51, 100, 4], 1234);
    input.extend_from_slice(b"rest");
    let mut r = &input[..];
    let got = read_header(&mut r, Duration::from_secs(1)).await;
    assert_eq!(got, Ok(Some("198.51.100.4:1234".parse().unwrap())));
    assert_eq!(r, b"rest");
    let mut r = &b"PROXY TCP4 198.51.100.4 127.0.0.1 9 25\r\nEHLO"[..];
    let got = read_header(&mut r, Duration::from_secs(1)).await;
    assert_eq!(got, Ok(Some("198.51.100.4:9".parse().unwrap())));
    assert_eq!(r, b"EHLO");
}

#[tokio::test]
async fn read_header_times_out() {
    let (mut a, _b) = tokio::io::duplex(64);
    let got = read_header(&mut a, Duration::from_millis(20)).await;
    assert_eq!(got, Err(ProxyError::Timeout(Duration::from_millis(20))));
}
