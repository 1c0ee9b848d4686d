//! SPF (RFC 7208) as a receiver evaluates it: exactly one `v=spf1` record,
//! valid terms, at most 10 DNS-querying terms across the whole include
//! tree, a closing `-all`/`~all`, and an `include:` for the infrastructure
//! each configured upstream sends from.

use std::collections::BTreeSet;

use super::{Finding, Status, Txt};
use crate::upstream::Kind;

/// RFC 7208 §4.6.4.
const MAX_LOOKUPS: usize = 10;
/// Bounds the include tree walk (loops, hostile records).
const MAX_RECORDS: usize = 30;

/// One parsed term.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    /// Mechanism name (lower case), qualifier, argument after `:` / `/`.
    Mechanism {
        qualifier: char,
        name: String,
        arg: Option<String>,
    },
    Modifier {
        name: String,
        value: String,
    },
}

const MECHANISMS: &[&str] = &["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"];

/// The terms of a `v=spf1` record, or the first term that is not valid.
fn parse(record: &str) -> Result<Vec<Term>, String> {
    let mut parts = record.split_ascii_whitespace();
    match parts.next() {
        Some(v) if v.eq_ignore_ascii_case("v=spf1") => {}
        _ => return Err("record does not start with v=spf1".to_string()),
    }
    let mut terms = Vec::new();
    for part in parts {
        let bad = || format!("invalid term {part:?}");
        if let Some((name, value)) = part.split_once('=')
            && !name.contains(':')
            && !name.contains('/')
        {
            let ok_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok_name {
                return Err(bad());
            }
            terms.push(Term::Modifier {
                name: name.to_ascii_lowercase(),
                value: value.to_string(),
            });
            continue;
        }
        let (qualifier, rest) = match part.chars().next() {
            Some(q @ ('+' | '-' | '~' | '?')) => (q, &part[1..]),
            _ => ('+', part),
        };
        let split = rest.find([':', '/']).unwrap_or(rest.len());
        let name = rest[..split].to_ascii_lowercase();
        if !MECHANISMS.contains(&name.as_str()) {
            return Err(format!("unknown mechanism {part:?}"));
        }
        let arg = rest[split..]
            .strip_prefix(':')
            .or_else(|| rest[split..].strip_prefix('/').map(|_| &rest[split..]))
            .map(str::to_string);
        let needs_arg = matches!(name.as_str(), "include" | "ip4" | "ip6" | "exists");
        if needs_arg && arg.as_deref().is_none_or(str::is_empty) {
            return Err(format!("{part:?} needs an argument"));
        }
        if name == "all" && split != rest.len() {
            return Err(bad());
        }
        if let (Some(a), "ip4" | "ip6") = (&arg, name.as_str()) {
            let addr = a.split('/').next().unwrap_or("");
            let ok = if name == "ip4" {
                addr.parse::<std::net::Ipv4Addr>().is_ok()
            } else {
                addr.parse::<std::net::Ipv6Addr>().is_ok()
            };
            if !ok {
                return Err(format!("{part:?} is not a valid {name} address"));
            }
        }
        terms.push(Term::Mechanism {
            qualifier,
            name,
            arg,
        });
    }
    Ok(terms)
}

/// Terms that cost the receiver a DNS query (RFC 7208 §4.6.4).
fn lookups(terms: &[Term]) -> usize {
    terms
        .iter()
        .filter(|t| match t {
            Term::Mechanism { name, .. } => {
                matches!(name.as_str(), "include" | "a" | "mx" | "ptr" | "exists")
            }
            Term::Modifier { name, .. } => name == "redirect",
        })
        .count()
}

/// Domains a record hands evaluation to: include targets and redirect.
fn delegates(terms: &[Term]) -> Vec<String> {
    terms
        .iter()
        .filter_map(|t| match t {
            Term::Mechanism {
                name, arg: Some(a), ..
            } if name == "include" => Some(a.to_ascii_lowercase()),
            Term::Modifier { name, value } if name == "redirect" => {
                Some(value.to_ascii_lowercase())
            }
            _ => None,
        })
        .collect()
}

fn spf_records(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .filter(|v| {
            let v = v.trim_start();
            v.len() >= 6
                && v[..6].eq_ignore_ascii_case("v=spf1")
                && v[6..].chars().next().is_none_or(|c| c == ' ')
        })
        .collect()
}

pub(super) async fn check(
    dns: &dyn Txt,
    domain: &str,
    upstreams: &[(String, Kind)],
) -> Vec<Finding> {
    let example = format!(
        "{domain}. IN TXT \"v=spf1 {}-all\"",
        suggested_includes(upstreams)
    );
    let records = match dns.txt(domain).await {
        Ok(v) => spf_records(v),
        Err(e) => {
            return vec![Finding::new(
                "spf",
                Status::Fail,
                format!("cannot look up TXT records of {domain}: {e}"),
            )];
        }
    };
    let record = match records.as_slice() {
        [] => {
            return vec![
                Finding::new("spf", Status::Fail, format!("no SPF record at {domain}"))
                    .fix(format!("publish {example}")),
            ];
        }
        [one] => one.clone(),
        many => {
            return vec![
                Finding::new(
                    "spf",
                    Status::Fail,
                    format!(
                        "{} SPF records at {domain}; receivers treat that as a permanent error",
                        many.len()
                    ),
                )
                .fix("merge them into one v=spf1 record"),
            ];
        }
    };
    let mut out = vec![Finding::new(
        "spf",
        Status::Pass,
        format!("one SPF record: \"{record}\""),
    )];
    let terms = match parse(&record) {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::new("spf-syntax", Status::Fail, e).fix(
                "correct the record (RFC 7208 §5: all, include, a, mx, ptr, ip4, ip6, exists)",
            ));
            return out;
        }
    };
    out.push(Finding::new(
        "spf-syntax",
        Status::Pass,
        "record syntax is valid",
    ));
    let tree = walk(dns, &terms).await;
    out.push(lookup_finding(lookups(&terms), &tree));
    out.push(all_finding(&terms));
    out.extend(upstream_findings(upstreams, &tree.included));
    out
}

/// What the include tree below the record held.
#[derive(Default)]
struct Tree {
    /// DNS-querying terms in included / redirected records.
    nested_lookups: usize,
    /// Every domain reached through include/redirect, lower case.
    included: BTreeSet<String>,
    /// Problems met on the way (missing or broken records).
    problems: Vec<String>,
}

async fn walk(dns: &dyn Txt, terms: &[Term]) -> Tree {
    let mut tree = Tree::default();
    let mut queue = delegates(terms);
    let mut fetched = 0;
    while let Some(target) = queue.pop() {
        if !tree.included.insert(target.clone()) {
            continue;
        }
        fetched += 1;
        if fetched > MAX_RECORDS {
            tree.problems
                .push(format!("include tree deeper than {MAX_RECORDS} records"));
            break;
        }
        let records = match dns.txt(&target).await {
            Ok(v) => spf_records(v),
            Err(e) => {
                tree.problems.push(format!("cannot look up {target}: {e}"));
                continue;
            }
        };
        match records.as_slice() {
            [one] => match parse(one) {
                Ok(t) => {
                    tree.nested_lookups += lookups(&t);
                    queue.extend(delegates(&t));
                }
                Err(e) => tree.problems.push(format!("{target}: {e}")),
            },
            // RFC 7208 §5.2: an include without exactly one record is a permerror.
            [] => tree.problems.push(format!("{target} has no SPF record")),
            _ => tree
                .problems
                .push(format!("{target} has several SPF records")),
        }
    }
    tree
}

fn lookup_finding(top: usize, tree: &Tree) -> Finding {
    let total = top + tree.nested_lookups;
    let detail = format!(
        "{total} DNS-querying terms ({top} in the record, {} in included records; limit {MAX_LOOKUPS})",
        tree.nested_lookups
    );
    if total > MAX_LOOKUPS {
        Finding::new("spf-lookups", Status::Fail, detail)
            .fix("replace includes with ip4:/ip6: ranges or drop unused ones (receivers answer permerror above 10)")
    } else if !tree.problems.is_empty() {
        Finding::new(
            "spf-lookups",
            Status::Warn,
            format!("{detail}; {}", tree.problems.join("; ")),
        )
        .fix("every include: must point at exactly one valid SPF record")
    } else {
        Finding::new("spf-lookups", Status::Pass, detail)
    }
}

fn all_finding(terms: &[Term]) -> Finding {
    let last_all = terms.iter().rev().find_map(|t| match t {
        Term::Mechanism {
            qualifier, name, ..
        } if name == "all" => Some(*qualifier),
        _ => None,
    });
    let redirect = terms
        .iter()
        .any(|t| matches!(t, Term::Modifier { name, .. } if name == "redirect"));
    match last_all {
        Some('-') => Finding::new("spf-all", Status::Pass, "ends in -all (fail)"),
        Some('~') => Finding::new("spf-all", Status::Pass, "ends in ~all (softfail)"),
        Some(q) => Finding::new(
            "spf-all",
            Status::Warn,
            format!(
                "ends in {}all: any server on the internet passes or is neutral",
                if q == '?' { "?" } else { "+" }
            ),
        )
        .fix("end the record with -all (or ~all while testing)"),
        None if redirect => Finding::new(
            "spf-all",
            Status::Pass,
            "no all mechanism; the redirect= target decides",
        ),
        None => Finding::new(
            "spf-all",
            Status::Warn,
            "no all mechanism: mail from other servers gets a neutral result",
        )
        .fix("end the record with -all (or ~all while testing)"),
    }
}

fn upstream_findings(upstreams: &[(String, Kind)], included: &BTreeSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, kind) in upstreams {
        let Some((provider, include)) = kind.spf() else {
            continue;
        };
        if included.contains(include) {
            out.push(Finding::new(
                "spf-upstream",
                Status::Pass,
                format!("upstream {name:?} ({provider}) is authorized by include:{include}"),
            ));
        } else {
            out.push(
                Finding::new(
                    "spf-upstream",
                    Status::Fail,
                    format!("upstream {name:?} ({provider}) sends from servers the record does not authorize"),
                )
                .fix(format!("add include:{include} before the all mechanism")),
            );
        }
    }
    out
}

fn suggested_includes(upstreams: &[(String, Kind)]) -> String {
    let mut seen = BTreeSet::new();
    let mut text = String::new();
    for (_, kind) in upstreams {
        if let Some((_, inc)) = kind.spf()
            && seen.insert(inc)
        {
            text.push_str(&format!("include:{inc} "));
        }
    }
    text
}

#[cfg(test)]
mod tests;
