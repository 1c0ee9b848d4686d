//! `postern spool list|show|retry|purge|hold|release|adopt`.
//!
//! `list` and `show` ask the running daemon (which knows what is being
//! delivered and when each message is due) and, when no daemon answers,
//! read the spool directory directly: that is safe, it only reads. The
//! other commands change what delivery does, so they need the daemon and
//! refuse, exit 1, without it. `adopt` asks the running daemon to move
//! the other spool in and deliver it at once; without a daemon it moves
//! the files itself (holding this spool's lock) and they are delivered
//! when postern starts.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use super::target::{Target, ago, ask, clean, decode, needs_daemon, size, stamp, when};
use crate::control::{self, BatchResult, MessageSummary, MessageView, Request};
use crate::spool::SpoolDir;

/// What `postern spool` was asked to do.
#[derive(Debug, Clone)]
pub enum SpoolAction {
    List {
        dead: bool,
        json: bool,
    },
    Show {
        id: String,
        json: bool,
    },
    Retry {
        ids: Vec<String>,
        all_dead: bool,
    },
    Purge {
        ids: Vec<String>,
        all_dead: bool,
        yes: bool,
    },
    Hold {
        ids: Vec<String>,
    },
    Release {
        ids: Vec<String>,
    },
    Adopt {
        path: std::path::PathBuf,
    },
}

pub fn spool(target: &Target, action: SpoolAction) -> ExitCode {
    let state_dir = match target.state_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let result = match action {
        SpoolAction::List { dead, json } => list(&state_dir, dead, json),
        SpoolAction::Show { id, json } => show(&state_dir, &id, json),
        SpoolAction::Retry { ids, all_dead } => batch(
            &state_dir,
            "spool retry",
            Request::SpoolRetry { ids, all_dead },
        ),
        SpoolAction::Purge { ids, all_dead, yes } => purge(&state_dir, ids, all_dead, yes),
        SpoolAction::Hold { ids } => batch(&state_dir, "spool hold", Request::SpoolHold { ids }),
        SpoolAction::Release { ids } => {
            batch(&state_dir, "spool release", Request::SpoolRelease { ids })
        }
        SpoolAction::Adopt { path } => adopt(&state_dir, &path),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(1)
        }
    }
}

/// Tells the operator that what follows comes from the files alone.
fn offline_note(state_dir: &std::path::Path, err: &control::ClientError) {
    eprintln!(
        "postern: {err}; reading the spool in {} directly (whether a message is being delivered right now is unknown)",
        state_dir.display()
    );
}

fn list(state_dir: &std::path::Path, dead: bool, json: bool) -> Result<ExitCode, String> {
    let lines: Vec<MessageSummary> = match ask(state_dir, &Request::SpoolList { dead }) {
        Ok(v) => decode(v)?,
        Err(e) if e.is_not_running() => {
            offline_note(state_dir, &e);
            let dir = SpoolDir::new(state_dir.join("spool"));
            dir.list(dead)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|entry| control::summary(entry, None))
                .collect()
        }
        Err(e) => return Err(e.to_string()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_list(&lines, dead);
    Ok(ExitCode::SUCCESS)
}

fn print_list(lines: &[MessageSummary], dead: bool) {
    if lines.is_empty() {
        println!(
            "{}",
            if dead {
                "no dead letters"
            } else {
                "the queue is empty"
            }
        );
        return;
    }
    println!(
        "{:<20}  {:<15}  {:>7}  {:>9}  {:>8}  {:<14}  SENDER -> RECIPIENTS",
        "ID", "STATE", "AGE", "SIZE", "ATTEMPTS", "NEXT ATTEMPT"
    );
    for m in lines {
        let rcpts = match m.recipients.as_slice() {
            [] => "-".to_string(),
            [one] => format!("<{}>", clean(one)),
            [first, rest @ ..] => format!("<{}> (+{} more)", clean(first), rest.len()),
        };
        let sender = m
            .sender
            .as_deref()
            .map_or("-".to_string(), |s| format!("<{}>", clean(s)));
        println!(
            "{:<20}  {:<15}  {:>7}  {:>9}  {:>8}  {:<14}  {sender} -> {rcpts}",
            clean(&m.id),
            m.state,
            m.received_at.map_or("-".to_string(), ago),
            m.size.map_or("-".to_string(), size),
            m.attempts,
            m.next_attempt.map_or("-".to_string(), when),
        );
        let error = m.error.as_deref().or(m.last_error.as_deref());
        if let Some(e) = error {
            let by = m
                .last_upstream
                .as_deref()
                .map_or(String::new(), |u| format!("{}: ", clean(u)));
            println!("    last error: {by}{}", clean(e));
        }
    }
    println!("{} message(s)", lines.len());
}

fn show(state_dir: &std::path::Path, id: &str, json: bool) -> Result<ExitCode, String> {
    let view: MessageView = match ask(state_dir, &Request::SpoolShow { id: id.to_string() }) {
        Ok(v) => decode(v)?,
        Err(e) if e.is_not_running() => {
            offline_note(state_dir, &e);
            let dir = SpoolDir::new(state_dir.join("spool"));
            control::view(dir.show(id).map_err(|e| e.to_string())?, None)
        }
        Err(e) => return Err(e.to_string()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_view(&view);
    Ok(ExitCode::SUCCESS)
}

fn print_view(v: &MessageView) {
    let m = &v.summary;
    let field = |name: &str, value: String| println!("  {name:<13} {value}");
    println!("Message {}", clean(&m.id));
    let state = match (m.state.as_str(), m.next_attempt) {
        (s, Some(t)) => format!("{s} (next attempt {})", when(t)),
        (s, None) => s.to_string(),
    };
    field("state:", state);
    if let Some(t) = m.received_at {
        field("received:", format!("{} ({} ago)", stamp(t), ago(t)));
    }
    if let Some(t) = v.requeued_at {
        field("requeued:", format!("{} ({} ago)", stamp(t), ago(t)));
    }
    if let Some(t) = m.held_since {
        field("held since:", format!("{} ({} ago)", stamp(t), ago(t)));
    }
    if let Some(t) = m.dead_at {
        field("dead since:", format!("{} ({} ago)", stamp(t), ago(t)));
    }
    if let Some(c) = &m.credential {
        field("credential:", clean(c));
    }
    field("route:", clean(&v.route));
    if let Some(s) = &m.sender {
        field("sender:", format!("<{}>", clean(s)));
    }
    let rcpts: Vec<String> = m
        .recipients
        .iter()
        .map(|r| format!("<{}>", clean(r)))
        .collect();
    field("recipients:", rcpts.join(", "));
    if let Some(s) = m.size {
        field("size:", format!("{s} bytes"));
    }
    field("attempts:", m.attempts.to_string());
    if let Some(e) = &m.last_error {
        let by = m
            .last_upstream
            .as_deref()
            .map_or(String::new(), |u| format!("{}: ", clean(u)));
        field("last error:", format!("{by}{}", clean(e)));
    }
    println!();
    println!(
        "Headers{}:",
        if v.headers_truncated {
            " (cut: the header block is longer than shown)"
        } else {
            ""
        }
    );
    for line in v.headers.lines() {
        println!("  {}", clean(line));
    }
    println!();
    if v.history.is_empty() {
        println!("History: no failed attempt recorded");
        return;
    }
    println!("History:");
    for h in &v.history {
        let up = h.upstream.as_deref().map_or("-".to_string(), clean);
        println!(
            "  {}  {:<12}  {:<13}  {}",
            stamp(h.time),
            up,
            h.outcome,
            clean(&h.detail)
        );
    }
}

/// Sends a batch command and prints one line per id; exit 1 if any failed.
fn batch(state_dir: &std::path::Path, command: &str, req: Request) -> Result<ExitCode, String> {
    let result: BatchResult = decode(ask(state_dir, &req).map_err(|e| needs_daemon(command, &e))?)?;
    if result.results.is_empty() {
        println!("no dead letters");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    for r in &result.results {
        if r.ok {
            println!(
                "{}: {}",
                clean(&r.id),
                clean(r.detail.as_deref().unwrap_or("done"))
            );
        } else {
            failed += 1;
            eprintln!(
                "postern: {}: {}",
                clean(&r.id),
                clean(r.error.as_deref().unwrap_or("failed"))
            );
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Purge deletes mail for good: without `--yes` a person at a terminal is
/// asked, and without a terminal the command refuses.
fn purge(
    state_dir: &std::path::Path,
    ids: Vec<String>,
    all_dead: bool,
    yes: bool,
) -> Result<ExitCode, String> {
    // Before asking anyone: a stopped daemon cannot purge anyway.
    ask(state_dir, &Request::Ping).map_err(|e| needs_daemon("spool purge", &e))?;
    if !yes {
        let what = if all_dead {
            "every dead letter".to_string()
        } else {
            format!("{} message(s) ({})", ids.len(), ids.join(", "))
        };
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "purge deletes {what} for good; stdin is not a terminal, so nobody can be asked: pass --yes to confirm"
            ));
        }
        eprint!("Delete {what} for good? This cannot be undone. [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("postern: nothing purged");
            return Ok(ExitCode::from(1));
        }
    }
    batch(
        state_dir,
        "spool purge",
        Request::SpoolPurge { ids, all_dead },
    )
}

/// `spool adopt PATH`: through the daemon when it runs, else offline.
fn adopt(state_dir: &std::path::Path, path: &std::path::Path) -> Result<ExitCode, String> {
    // The daemon's working directory is not ours.
    let path =
        std::fs::canonicalize(path).map_err(|e| format!("spool adopt: {}: {e}", path.display()))?;
    let text = path
        .to_str()
        .ok_or_else(|| format!("spool adopt: {} is not UTF-8", path.display()))?;
    let request = Request::SpoolAdopt {
        path: text.to_string(),
    };
    let (report, live) = match ask(state_dir, &request) {
        Ok(v) => (decode::<control::AdoptReport>(v)?, true),
        Err(e) if e.is_not_running() => {
            let here = SpoolDir::new(state_dir.join("spool"));
            let _lock = here.lock_for_adoption().map_err(|e| e.to_string())?;
            let adopted = here.adopt_from(&path).map_err(|e| e.to_string())?;
            (control::AdoptReport::of(&adopted), false)
        }
        Err(e) => return Err(e.to_string()),
    };
    for id in &report.queued {
        println!("{}: adopted into the queue", clean(id));
    }
    for id in &report.dead {
        println!("{}: adopted into the dead letters", clean(id));
    }
    for (name, why) in &report.skipped {
        eprintln!("postern: {}: left in place: {}", clean(name), clean(why));
    }
    println!(
        "adopted {} queued message(s) and {} dead letter(s) from {}{}",
        report.queued.len(),
        report.dead.len(),
        path.display(),
        if live {
            "; delivering them now"
        } else {
            "; postern is not running: they are delivered when it starts"
        }
    );
    Ok(if report.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
