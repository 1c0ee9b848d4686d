//! `postern credential suspend NAME [--for 2h] [--reason TEXT]` and
//! `postern credential resume NAME`: in force at once, in every open
//! session (at its next MAIL), kept across reloads and restarts.

use std::process::ExitCode;

use super::target::{Target, ask, clean, decode, needs_daemon, stamp};
use crate::access::suspend::Suspension;
use crate::control::Request;

/// `postern credential suspend`.
pub fn credential_suspend(
    target: &Target,
    name: &str,
    duration: Option<&str>,
    reason: Option<String>,
) -> ExitCode {
    let for_secs = match duration
        .map(crate::config::units::parse_duration)
        .transpose()
    {
        Ok(d) => d.map(|d| d.as_secs()),
        Err(e) => {
            eprintln!("postern: --for: {e}");
            return ExitCode::from(2);
        }
    };
    if for_secs == Some(0) {
        eprintln!("postern: --for: at least one second");
        return ExitCode::from(2);
    }
    let req = Request::CredentialSuspend {
        name: name.to_string(),
        for_secs,
        reason,
    };
    run(target, "credential suspend", &req, |s| {
        let until = s.until.map_or("until resumed".to_string(), |u| {
            format!("until {}", stamp(u))
        });
        format!(
            "credential \"{}\" suspended {until}: AUTH is refused and open sessions are refused at their next MAIL",
            clean(&s.credential)
        )
    })
}

/// `postern credential resume`.
pub fn credential_resume(target: &Target, name: &str) -> ExitCode {
    let req = Request::CredentialResume {
        name: name.to_string(),
    };
    run(target, "credential resume", &req, |s| {
        format!("credential \"{}\" resumed", clean(&s.credential))
    })
}

fn run(
    target: &Target,
    command: &str,
    req: &Request,
    done: impl Fn(&Suspension) -> String,
) -> ExitCode {
    let result = target.state_dir().and_then(|dir| {
        let v = ask(&dir, req).map_err(|e| format!("postern: {}", needs_daemon(command, &e)))?;
        decode::<Suspension>(v).map_err(|e| format!("postern: {e}"))
    });
    match result {
        Ok(s) => {
            println!("{}", done(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
