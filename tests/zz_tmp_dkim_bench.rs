use postern::dkim::*;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
#[test]
fn bench() {
    for (alg, pem) in [(Algorithm::Ed25519, std::fs::read_to_string("/tmp/dkimhelper.amEn/example.com.e1.pem").unwrap()), (Algorithm::Rsa, std::fs::read_to_string("/tmp/dkimhelper.amEn/example.com.s1.pem").unwrap())] {
        let key = Arc::new(PrivateKey::from_pem(alg, &pem).unwrap());
        let s = Signer::new(vec![KeySlot{domain:"example.com".into(), selector:"s".into(), key, not_before:None, not_after:None}], Default::default());
        let mut msg = b"Received: from x\r\n\tby y\r\nFrom: <bench@example.com>\r\nTo: <sink@dest.test>\r\nSubject: bench 1-1\r\nMessage-ID: <1-1@bench.example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
        while msg.len() < 4096 { msg.extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"); }
        let n = 3000;
        let t = Instant::now();
        for _ in 0..n { std::hint::black_box(s.sign(&msg, SystemTime::now()).unwrap()); }
        eprintln!("{alg} sign 4 KiB: {:?}/msg", t.elapsed()/n);
    }
}
