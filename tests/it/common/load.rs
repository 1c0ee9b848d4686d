//! A load generator for the fault tests: client threads that each open a
//! new connection per message (what legacy senders do) and keep going
//! while postern is stopped, killed, reloaded or out of disk. Every message
//! is unique (its subject and body name it), and the generator remembers
//! which ones postern answered 250 and with which queue id, so a test can
//! check that each of those reaches the upstream, once and whole.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Recorded, simple_message};

/// What one attempt to send a message ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `250` with this queue id.
    Queued(String),
    /// A reply other than 250 after DATA (or before it), e.g. `452`.
    Refused(String),
    /// No connection, or it broke before the final reply: nothing promised.
    Unanswered(String),
}

/// One SMTP transaction on a new plaintext connection, without panicking:
/// postern may be down or go away at any point.
pub fn try_send(port: u16, from: &str, to: &str, msg: &[u8]) -> Outcome {
    match exchange(port, from, to, msg) {
        Ok(Ok(id)) => Outcome::Queued(id),
        Ok(Err(reply)) => Outcome::Refused(reply),
        Err(e) => Outcome::Unanswered(e.to_string()),
    }
}

fn exchange(
    port: u16,
    from: &str,
    to: &str,
    msg: &[u8],
) -> std::io::Result<Result<String, String>> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut step = |line: Option<&[u8]>, want: &str| -> std::io::Result<Result<String, String>> {
        if let Some(line) = line {
            w.write_all(line)?;
        }
        let reply = read_reply(&mut r)?;
        Ok(if reply.starts_with(want) {
            Ok(reply)
        } else {
            Err(reply)
        })
    };
    for (line, want) in [
        (None, "220"),
        (Some(&b"EHLO load.test\r\n"[..]), "250"),
        (Some(format!("MAIL FROM:<{from}>\r\n").as_bytes()), "250"),
        (Some(format!("RCPT TO:<{to}>\r\n").as_bytes()), "250"),
        (Some(&b"DATA\r\n"[..]), "354"),
    ] {
        if let Err(reply) = step(line, want)? {
            return Ok(Err(reply));
        }
    }
    let mut body = super::dot_stuff(msg);
    body.extend_from_slice(b".\r\n");
    let end = step(Some(&body), "250")?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(end.map(|reply| {
        reply
            .rsplit("queued as ")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }))
}

/// Reads one (possibly multi-line) reply; returns its last line.
fn read_reply(r: &mut impl BufRead) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a reply",
            ));
        }
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return Ok(line.trim_end().to_string());
        }
    }
}

/// Client threads sending unique messages until told to stop or until
/// `total` messages have been answered 250.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    queued: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    /// Message-ID → the queue id it was answered 250 under, and the message.
    queued: BTreeMap<String, (String, Vec<u8>)>,
    /// Attempts that got no final reply (the message is sent again).
    unanswered: usize,
    /// Last lines of the refusals seen, with a count each.
    refused: BTreeMap<String, usize>,
}

/// What the generator saw, once stopped.
pub struct Report {
    pub queued: BTreeMap<String, (String, Vec<u8>)>,
    pub unanswered: usize,
    pub refused: BTreeMap<String, usize>,
}

impl Load {
    /// Starts `clients` threads sending to `port` as app@example.com, each
    /// stopping once `total` messages in all were queued.
    pub fn start(port: u16, clients: usize, total: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let queued = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|client| {
                let (stop, state, queued) = (stop.clone(), state.clone(), queued.clone());
                std::thread::spawn(move || {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) && queued.load(Ordering::Relaxed) < total {
                        n += 1;
                        let subject = format!("load c{client} n{n}");
                        let mut msg = simple_message("app@example.com", "bob@dest.test", &subject);
                        // A body that names the message, so a truncated or
                        // mixed-up delivery cannot pass for another.
                        msg.extend_from_slice(format!("{subject} ends here\r\n").as_bytes());
                        // Like a real sender, the same message again until
                        // it is answered 250: a 250 lost on the way is a
                        // duplicate at the upstream.
                        loop {
                            let outcome = try_send(port, "app@example.com", "bob@dest.test", &msg);
                            let mut s = state.lock().unwrap();
                            match outcome {
                                Outcome::Queued(id) => {
                                    queued.fetch_add(1, Ordering::Relaxed);
                                    let key = message_id(&msg);
                                    assert!(
                                        s.queued.insert(key, (id, msg)).is_none(),
                                        "{subject} queued twice"
                                    );
                                    break;
                                }
                                Outcome::Refused(reply) => {
                                    *s.refused.entry(reply).or_default() += 1;
                                }
                                Outcome::Unanswered(_) => s.unanswered += 1,
                            }
                            drop(s);
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            // postern is down or busy: try again shortly.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            state,
            queued,
        }
    }

    /// Messages answered 250 so far.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Waits until `n` messages were answered 250 (or `timeout` passed).
    pub fn wait_queued(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.queued() >= n)
    }

    /// Waits for every thread to reach its total, then reports.
    pub fn finish(mut self) -> Report {
        for t in self.threads.drain(..) {
            t.join().expect("load thread panicked");
        }
        self.report()
    }

    /// Stops the threads after their current message and reports.
    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.finish_threads();
        self.report()
    }

    fn finish_threads(&mut self) {
        for t in self.threads.drain(..) {
            t.join().expect("load thread panicked");
        }
    }

    fn report(&self) -> Report {
        let s = std::mem::take(&mut *self.state.lock().unwrap());
        Report {
            queued: s.queued,
            unanswered: s.unanswered,
            refused: s.refused,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.finish_threads();
    }
}

/// How the upstream's requests cover what was queued, by Message-ID (a
/// message sent again after a lost 250 has a new queue id but the same
/// Message-ID: it counts as a duplicate too).
pub struct Coverage {
    /// Queued messages the upstream never received.
    pub missing: Vec<String>,
    /// Message-ID → how many times it arrived, for those that came more than once.
    pub duplicates: BTreeMap<String, usize>,
    /// Message-IDs whose delivered bytes are not the message that was sent.
    pub damaged: Vec<String>,
}

/// The Message-ID header's value of a message the generator made.
fn message_id(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl Report {
    /// Matches the upstream's requests against the queued messages by
    /// Message-ID, checking each delivered body whole.
    pub fn coverage(&self, requests: &[Recorded]) -> Coverage {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut damaged = Vec::new();
        for r in requests {
            let id = message_id(&r.body);
            if let Some((_, sent)) = self.queued.get(&id)
                && !delivered_whole(&r.body, sent)
            {
                damaged.push(id.clone());
            }
            *seen.entry(id).or_default() += 1;
        }
        Coverage {
            missing: self
                .queued
                .keys()
                .filter(|id| !seen.contains_key(*id))
                .cloned()
                .collect(),
            duplicates: seen.into_iter().filter(|(_, n)| *n > 1).collect(),
            damaged,
        }
    }
}

/// The forwarded bytes are postern's `Received:` line and then the
/// message exactly as sent.
fn delivered_whole(forwarded: &[u8], sent: &[u8]) -> bool {
    forwarded.starts_with(b"Received: from ") && super::split_received(forwarded).1 == sent
}
