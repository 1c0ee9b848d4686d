//! DKIM: each configured selector of the domain must publish the public
//! half of the configured private key, or receivers cannot verify what
//! postern signs.

use std::time::SystemTime;

use base64::Engine as _;

use super::{Finding, Status, Txt, tags};
use crate::dkim::Key;
use crate::dkim::zone_record;

pub(super) async fn check(dns: &dyn Txt, domain: &str, keys: &[Key]) -> Vec<Finding> {
    if keys.is_empty() {
        return vec![
            Finding::new(
                "dkim",
                Status::Warn,
                format!("no [[dkim]] key is configured for {domain}: its mail leaves unsigned"),
            )
            .fix(format!(
                "postern dkim keygen --domain {domain} --selector SELECTOR, then add the printed [[dkim]] block and TXT record"
            )),
        ];
    }
    let mut out = Vec::new();
    for key in keys {
        out.push(check_key(dns, key).await);
    }
    out
}

async fn check_key(dns: &dyn Txt, key: &Key) -> Finding {
    let name = format!("{}._domainkey.{}", key.selector, key.domain);
    let expected = key.key.dns_record();
    let publish = format!(
        "publish {}",
        zone_record(&key.selector, &key.domain, &expected)
    );
    let now = SystemTime::now();
    let when = match (key.not_before, key.not_after) {
        (Some(t), _) if t > now => " (not active yet)",
        (_, Some(t)) if t <= now => " (retired)",
        _ => "",
    };
    let head = format!("selector {}{when} ({})", key.selector, key.algorithm);
    let fail = |detail: String| Finding::new("dkim", Status::Fail, format!("{head}: {detail}"));
    let records: Vec<String> = match dns.txt(&name).await {
        Ok(values) => values
            .into_iter()
            // Records without v= are DKIM too (v= is optional, RFC 6376 §3.6.1).
            .filter(|v| v.contains("p="))
            .collect(),
        Err(e) => return fail(format!("cannot look up {name}: {e}")),
    };
    let record = match records.as_slice() {
        [] => return fail(format!("no DKIM record at {name}")).fix(publish),
        [one] => one,
        _ => {
            return fail(format!("several DKIM records at {name}"))
                .fix(format!("keep only one: {publish}"));
        }
    };
    let Some(tags) = tags(record) else {
        return fail(format!("record at {name} is not a tag=value list")).fix(publish);
    };
    let tag = |t: &str| tags.iter().find(|(k, _)| k == t).map(|(_, v)| v.as_str());
    if tag("v").is_some_and(|v| v != "DKIM1") {
        return fail("v= is not DKIM1".to_string()).fix(publish);
    }
    let k = tag("k").unwrap_or("rsa");
    if !k.eq_ignore_ascii_case(key.algorithm.name()) {
        return fail(format!(
            "record says k={k} but the configured key is {}",
            key.algorithm
        ))
        .fix(publish);
    }
    let p: String = tag("p")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if p.is_empty() {
        return fail(format!("the key at {name} is revoked (empty p=)")).fix(publish);
    }
    let Ok(published) = base64::engine::general_purpose::STANDARD.decode(&p) else {
        return fail(format!("p= at {name} is not valid base64")).fix(publish);
    };
    if !same_key(key.key.public_key(), &published) {
        return fail(format!(
            "the public key at {name} does not match the configured private key"
        ))
        .fix(publish);
    }
    let testing = tag("t").is_some_and(|t| t.split(':').any(|f| f.trim() == "y"));
    if testing {
        return Finding::new(
            "dkim",
            Status::Warn,
            format!("{head}: key matches, but t=y marks it as testing"),
        )
        .fix("remove t=y once signatures verify");
    }
    Finding::new(
        "dkim",
        Status::Pass,
        format!("{head}: {name} publishes the configured key"),
    )
}

/// RSA keys are published as SubjectPublicKeyInfo, but a bare PKCS#1
/// RSAPublicKey (the tail of the SPKI's bit string) verifies too.
fn same_key(configured: &[u8], published: &[u8]) -> bool {
    configured == published
        || (published.len() >= 64
            && published.first() == Some(&0x30)
            && configured.ends_with(published))
}

#[cfg(test)]
mod tests;
