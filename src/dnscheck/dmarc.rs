//! DMARC (RFC 7489): the policy receivers apply to mail that fails SPF and
//! DKIM alignment, and whether the owner gets reports about it.

use super::{Finding, Status, Txt, tags};

pub(super) async fn check(dns: &dyn Txt, domain: &str) -> Vec<Finding> {
    let example = format!(
        "_dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{domain}\""
    );
    // A subdomain without its own record inherits the parent's (sp= first).
    let mut found = None;
    let mut owner = domain;
    loop {
        let name = format!("_dmarc.{owner}");
        let records: Vec<String> = match dns.txt(&name).await {
            Ok(v) => v.into_iter().filter(|r| is_dmarc(r)).collect(),
            Err(e) => {
                return vec![Finding::new(
                    "dmarc",
                    Status::Fail,
                    format!("cannot look up {name}: {e}"),
                )];
            }
        };
        match records.len() {
            0 => {}
            1 => {
                found = records.into_iter().next().map(|r| (name, r));
                break;
            }
            n => {
                return vec![
                    Finding::new(
                        "dmarc",
                        Status::Fail,
                        format!("{n} DMARC records at {name}; receivers ignore them all"),
                    )
                    .fix("keep exactly one v=DMARC1 record"),
                ];
            }
        }
        // Stop before a bare top-level domain.
        match owner.split_once('.') {
            Some((_, parent)) if parent.contains('.') => owner = parent,
            _ => break,
        }
    }
    let Some((name, record)) = found else {
        return vec![
            Finding::new(
                "dmarc",
                Status::Fail,
                format!("no DMARC record at _dmarc.{domain}"),
            )
            .fix(format!("publish {example}")),
        ];
    };
    let inherited = name != format!("_dmarc.{domain}");
    let Some(tags) = tags(&record) else {
        return vec![
            Finding::new(
                "dmarc",
                Status::Fail,
                format!("record at {name} is not a tag=value list"),
            )
            .fix(format!("publish {example}")),
        ];
    };
    let tag = |t: &str| tags.iter().find(|(k, _)| k == t).map(|(_, v)| v.as_str());
    let mut out = vec![Finding::new(
        "dmarc",
        Status::Pass,
        if inherited {
            format!("no record at _dmarc.{domain}; inherits \"{record}\" from {name}")
        } else {
            format!("record at {name}: \"{record}\"")
        },
    )];
    let policy_tag = if inherited && tag("sp").is_some() {
        "sp"
    } else {
        "p"
    };
    out.push(match tag(policy_tag).map(str::to_ascii_lowercase).as_deref() {
        Some(p @ ("quarantine" | "reject")) => Finding::new(
            "dmarc-policy",
            Status::Pass,
            format!("{policy_tag}={p}: failing mail is {}", if p == "reject" { "rejected" } else { "quarantined" }),
        ),
        Some("none") => Finding::new(
            "dmarc-policy",
            Status::Warn,
            format!("{policy_tag}=none: receivers only monitor, spoofed mail is still delivered"),
        )
        .fix("move to p=quarantine, then p=reject, once the reports show only legitimate senders"),
        Some(other) => Finding::new("dmarc-policy", Status::Fail, format!("invalid {policy_tag}={other}"))
            .fix("use p=quarantine or p=reject"),
        None => Finding::new("dmarc-policy", Status::Fail, "the record has no p= tag")
            .fix(format!("publish {example}")),
    });
    if let Some(pct) = tag("pct")
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|&p| p < 100)
    {
        out.push(
            Finding::new(
                "dmarc-policy",
                Status::Warn,
                format!("pct={pct}: the policy applies to only {pct}% of failing mail"),
            )
            .fix("remove pct= (default 100) once you are confident"),
        );
    }
    out.push(match tag("rua") {
        Some(rua) if !rua.is_empty() => Finding::new(
            "dmarc-rua",
            Status::Pass,
            format!("aggregate reports go to {rua}"),
        ),
        _ => Finding::new(
            "dmarc-rua",
            Status::Warn,
            "no rua=: you get no reports about who sends as this domain",
        )
        .fix(format!("add rua=mailto:dmarc-reports@{domain}")),
    });
    let mode = |t: &str| match tag(t) {
        Some(v) if v.eq_ignore_ascii_case("s") => "strict",
        _ => "relaxed",
    };
    out.push(Finding::new(
        "dmarc-alignment",
        Status::Pass,
        format!(
            "adkim={} ({}), aspf={} ({}); postern signs with d={domain}, which aligns either way",
            tag("adkim").unwrap_or("r"),
            mode("adkim"),
            tag("aspf").unwrap_or("r"),
            mode("aspf"),
        ),
    ));
    out
}

fn is_dmarc(record: &str) -> bool {
    let r = record.trim_start();
    r.len() >= 8
        && r[..8].eq_ignore_ascii_case("v=DMARC1")
        && r[8..].trim_start().chars().next().is_none_or(|c| c == ';')
}

#[cfg(test)]
mod tests;
