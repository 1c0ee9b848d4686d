//! Reading, merging and validating configuration files.
//!
//! The main file may `include` more files (conf.d style) so each
//! application's policy can live in its own file. Singletons (`[server]`,
//! `[tls]`, ...) may be set once across all files; named tables
//! (`[credentials.X]`, ...) must be unique across files; listeners add up.
//! All errors are collected and reported together with their positions.

use super::error::{self, ConfigError, ConfigErrors, Loc, path_arc};
use super::schema::*;
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

/// The embedded demo configuration used by `postern run --demo`.
pub const DEMO_CONFIG: &str = include_str!("../../config.demo.toml");

const MAX_INCLUDE_DEPTH: usize = 8;

/// One parsed file and what is needed to report positions in it.
pub(super) struct File {
    pub(super) path: Arc<Path>,
    pub(super) source: Arc<str>,
    pub(super) raw: RawFile,
    /// The keys each `[upstreams.NAME]` table sets, so a key its kind does
    /// not take can be named (`upstream_ctx`).
    pub(super) upstream_keys: BTreeMap<String, Vec<String>>,
}

impl File {
    pub(super) fn loc<T>(&self, s: &Spanned<T>) -> Loc {
        Loc::from_offset(&self.path, &self.source, s.span().start)
    }

    /// Relative paths in a file are relative to that file's directory, so a
    /// config tree can be moved as a whole.
    pub(super) fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        match self.path.parent() {
            Some(dir) if p.is_relative() && !dir.as_os_str().is_empty() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// Loads and validates the configuration rooted at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::file(path, format!("cannot read config file: {e}")))?;
    load_str(path, &text)
}

/// Loads a configuration whose main file's text is already in memory
/// (the embedded demo); includes are still read from disk.
pub fn load_str(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut files = Vec::new();
    let mut errors = ConfigErrors::default();
    let mut seen = BTreeSet::new();
    parse_tree(
        path,
        text.to_string(),
        0,
        &mut files,
        &mut seen,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    let config = build(&files, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

fn parse_tree(
    path: &Path,
    text: String,
    depth: usize,
    files: &mut Vec<File>,
    seen: &mut BTreeSet<PathBuf>,
    errors: &mut ConfigErrors,
) {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canonical) {
        errors
            .0
            .extend(ConfigErrors::file(path, "file is included more than once (include cycle?)").0);
        return;
    }
    let arc = path_arc(path);
    let raw: RawFile = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let line = Loc::from_offset(&arc, &text, offset).line;
            let table = error::table_at(&text, line);
            errors.push(error::from_toml(&arc, &text, &e, &table));
            return;
        }
    };
    let upstream_keys = upstream_keys(&text);
    let file = File {
        path: arc,
        source: Arc::from(text),
        raw,
        upstream_keys,
    };
    let mut children = Vec::new();
    for inc in &file.raw.include {
        let loc = file.loc(inc);
        if depth >= MAX_INCLUDE_DEPTH {
            errors.push(ConfigError::new(
                loc,
                "include",
                "includes nested too deeply",
            ));
            continue;
        }
        let pattern = file.resolve_path(inc.get_ref());
        let pattern_text = pattern.to_string_lossy().into_owned();
        let is_glob = pattern_text.contains(['*', '?', '[']);
        let wild_dirs = pattern
            .parent()
            .is_some_and(|d| d.to_string_lossy().contains(['*', '?', '[']));
        if wild_dirs || pattern_text.contains("**") {
            // `/**/` or `/*/*/*/...` would walk the whole filesystem at
            // every start and reload (the config fuzz target's findings).
            errors.push(ConfigError::new(
                loc,
                "include",
                "wildcards are allowed only in the file name; name the directory, e.g. \"conf.d/*.toml\"",
            ));
            continue;
        }
        let mut matched: Vec<PathBuf> = match glob::glob(&pattern_text) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                errors.push(ConfigError::new(
                    loc,
                    "include",
                    format!("bad glob pattern: {e}"),
                ));
                continue;
            }
        };
        matched.sort();
        // A glob that matches nothing is an empty conf.d; a plain path that
        // does not exist is a mistake.
        if matched.is_empty() && !is_glob {
            errors.push(ConfigError::new(
                loc.clone(),
                "include",
                format!("included file {} does not exist", pattern.display()),
            ));
        }
        for child in matched {
            match read_config_file(&child) {
                Ok(text) => children.push((child, text)),
                Err(e) => errors.push(ConfigError::new(
                    loc.clone(),
                    "include",
                    format!("cannot read included file {}: {e}", child.display()),
                )),
            }
        }
    }
    files.push(file);
    for (child, text) in children {
        parse_tree(&child, text, depth + 1, files, seen, errors);
    }
}

/// Takes a singleton table from whichever file sets it, refusing a second one.
pub(super) fn singleton<'a, T>(
    files: &'a [File],
    key: &str,
    get: impl Fn(&RawFile) -> Option<&Spanned<T>>,
    errors: &mut ConfigErrors,
) -> Option<(&'a File, &'a T)> {
    let mut found: Option<(&File, &T)> = None;
    for f in files {
        if let Some(v) = get(&f.raw) {
            if let Some((first, _)) = found {
                errors.push(ConfigError::new(
                    f.loc(v),
                    key,
                    format!("[{key}] is already set in {}", first.path.display()),
                ));
            } else {
                found = Some((f, v.get_ref()));
            }
        }
    }
    found
}

/// Collects a named table (`[credentials.X]` ...) across files.
pub(super) fn named<'a, T>(
    files: &'a [File],
    key: &str,
    get: impl Fn(&RawFile) -> &BTreeMap<String, Spanned<T>>,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, (&'a File, &'a Spanned<T>)> {
    let mut out: BTreeMap<String, (&File, &Spanned<T>)> = BTreeMap::new();
    for f in files {
        for (name, v) in get(&f.raw) {
            if let Some((first, _)) = out.get(name) {
                errors.push(ConfigError::new(
                    f.loc(v),
                    format!("{key}.{name}"),
                    format!(
                        "{key}.{name} is already defined in {}",
                        first.path.display()
                    ),
                ));
            } else {
                out.insert(name.clone(), (f, v));
            }
        }
    }
    out
}

fn build(files: &[File], errors: &mut ConfigErrors) -> Config {
    let found_server = singleton(files, "server", |r| r.server.as_ref(), errors);
    if let Some((f, s)) = found_server
        && let Some(n) = &s.max_recipients
        && *n.get_ref() > crate::spool::MAX_RECIPIENTS
    {
        // A message answered 250 must always be readable back: the spool's
        // envelope line is sized for this many recipients of the longest
        // path RFC 5321 allows.
        errors.push(ConfigError::new(
            f.loc(n),
            "server.max_recipients",
            format!(
                "at most {} (what the spool's envelope holds)",
                crate::spool::MAX_RECIPIENTS
            ),
        ));
    }
    let server = build_server(found_server, errors);
    let tls = build_tls(singleton(files, "tls", |r| r.tls.as_ref(), errors), errors);
    let listeners = build_listeners(files, tls.is_some(), errors);
    let delivery = build_delivery(
        singleton(files, "delivery", |r| r.delivery.as_ref(), errors),
        errors,
    );
    let log = build_log(singleton(files, "log", |r| r.log.as_ref(), errors), errors);

    let upstreams: BTreeMap<String, UpstreamEntry> =
        named(files, "upstreams", |r| &r.upstreams, errors)
            .into_iter()
            .filter_map(|(name, (f, u))| {
                super::upstreams::build(
                    &name,
                    f.loc(u),
                    u.get_ref(),
                    f.upstream_keys.get(&name).map_or(&[][..], Vec::as_slice),
                    &|p| f.resolve_path(p),
                    &|s| f.loc(s),
                    errors,
                )
                .map(|u| (name, u))
            })
            .collect();

    let mut routes = BTreeMap::new();
    for (name, (f, r)) in named(files, "routes", |r| &r.routes, errors) {
        if r.get_ref().upstreams.is_empty() {
            errors.push(ConfigError::new(
                f.loc(r),
                format!("routes.{name}.upstreams"),
                "a route needs at least one upstream",
            ));
        }
        for u in &r.get_ref().upstreams {
            if !upstreams.contains_key(u.get_ref())
                && !files
                    .iter()
                    .any(|f| f.raw.upstreams.contains_key(u.get_ref()))
            {
                errors.push(ConfigError::new(
                    f.loc(u),
                    format!("routes.{name}.upstreams"),
                    format!(
                        "upstream {:?} is not defined (add an [upstreams.{}] table)",
                        u.get_ref(),
                        u.get_ref()
                    ),
                ));
            }
        }
        let list = r
            .get_ref()
            .upstreams
            .iter()
            .map(|u| u.get_ref().clone())
            .collect();
        routes.insert(name, Route { upstreams: list });
    }

    let mut credentials = BTreeMap::new();
    let mut usernames: BTreeMap<String, String> = BTreeMap::new();
    for (name, (f, c)) in named(files, "credentials", |r| &r.credentials, errors) {
        if let Some(cred) = super::credential::build(&name, f, c, &routes, files, errors) {
            if let Some(login) = &cred.login
                && let Some(other) = usernames.insert(login.username.clone(), name.clone())
            {
                errors.push(ConfigError::new(
                    f.loc(c),
                    format!("credentials.{name}.username"),
                    format!(
                        "username {:?} is already used by credentials.{other}",
                        login.username
                    ),
                ));
            }
            credentials.insert(name, cred);
        }
    }

    Config {
        dkim: super::dkim::build(files, errors),
        inspect: super::inspect::build(files, errors),
        validation: super::validation::build(files, errors),
        quota: super::quota::build(files, errors),
        abuse: super::abuse::build(files, errors),
        admin: super::admin::build(files, tls.is_some(), errors),
        alerts: super::alerts::build(files, &server.hostname, errors),
        cluster: super::cluster::build(files, errors),
        server,
        tls,
        listeners,
        delivery,
        log,
        credentials,
        routes,
        upstreams,
        files: files.iter().map(|f| f.path.to_path_buf()).collect(),
    }
}

/// Key names of every `[upstreams.NAME]` table in `text` (which already
/// parsed as a `RawFile`).
fn upstream_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return BTreeMap::new();
    };
    let Some(ups) = table.get("upstreams").and_then(toml::Value::as_table) else {
        return BTreeMap::new();
    };
    ups.iter()
        .filter_map(|(name, v)| Some((name.clone(), v.as_table()?.keys().cloned().collect())))
        .collect()
}

pub(super) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn build_server(found: Option<(&File, &RawServer)>, errors: &mut ConfigErrors) -> Server {
    let default = RawServer::default();
    let (file, s) = match found {
        Some((f, s)) => (Some(f), s),
        None => (None, &default),
    };
    // A zero here would close every connection at once: refused, located.
    let mut duration =
        |v: &Option<Spanned<units::Dur>>, key: &str, default: Duration| match (v, file) {
            (Some(d), Some(f)) if d.get_ref().0.is_zero() => {
                errors.push(ConfigError::new(
                    f.loc(d),
                    format!("server.{key}"),
                    "must be longer than zero",
                ));
                default
            }
            (Some(d), _) => d.get_ref().0,
            (None, _) => default,
        };
    let write_timeout = duration(&s.write_timeout, "write_timeout", Duration::from_secs(60));
    let tls_handshake_timeout = duration(
        &s.tls_handshake_timeout,
        "tls_handshake_timeout",
        Duration::from_secs(10),
    );
    let max_session_duration = duration(
        &s.max_session_duration,
        "max_session_duration",
        Duration::from_secs(30 * 60),
    );
    let mut count = |v: &Option<Spanned<u32>>, key: &str, default: u32| match (v, file) {
        (Some(n), Some(f)) if *n.get_ref() == 0 => {
            errors.push(ConfigError::new(
                f.loc(n),
                format!("server.{key}"),
                "must be at least 1",
            ));
            default
        }
        (Some(n), _) => *n.get_ref(),
        (None, _) => default,
    };
    let max_junk_commands = count(&s.max_junk_commands, "max_junk_commands", 100);
    let max_rcpt_commands = count(&s.max_rcpt_commands, "max_rcpt_commands", 1000);
    let state_dir = match (&s.state_dir, file) {
        (Some(d), Some(f)) => f.resolve_path(d.get_ref()),
        _ => PathBuf::from("/var/lib/postern"),
    };
    let max_message_size = s.max_message_size.map_or(25 << 20, |v| v.0);
    Server {
        hostname: s.hostname.clone().unwrap_or_else(system_hostname),
        state_dir,
        max_message_size,
        // As Postfix's smtpd: room for one and a half of the largest
        // message, so retry records and mail already in DATA still fit.
        min_free_space: s
            .min_free_space
            .map_or(max_message_size.saturating_add(max_message_size / 2), |v| {
                v.0
            }),
        max_recipients: s
            .max_recipients
            .as_ref()
            .map_or(100, |n| *n.get_ref())
            .max(1),
        bare_newline: s
            .bare_newline
            .unwrap_or(crate::smtp::data::BareNewline::Normalize),
        max_line_length: s.max_line_length.unwrap_or(2048).max(512),
        command_timeout: s.command_timeout.map_or(Duration::from_secs(300), |d| d.0),
        data_timeout: s.data_timeout.map_or(Duration::from_secs(600), |d| d.0),
        max_bad_commands: s.max_bad_commands.unwrap_or(20),
        max_connections: s.max_connections.unwrap_or(500).max(1),
        max_connections_per_ip: s.max_connections_per_ip.unwrap_or(50).max(1),
        shutdown_timeout: s.shutdown_timeout.map_or(Duration::from_secs(30), |d| d.0),
        write_timeout,
        tls_handshake_timeout,
        max_session_duration,
        max_junk_commands,
        max_rcpt_commands,
    }
}

fn readable_file(f: &File, s: &Spanned<String>, key: &str, errors: &mut ConfigErrors) -> PathBuf {
    let p = f.resolve_path(s.get_ref());
    if let Err(e) = std::fs::File::open(&p) {
        errors.push(ConfigError::new(
            f.loc(s),
            key,
            format!("cannot read {}: {e}", p.display()),
        ));
    }
    p
}

fn build_tls(found: Option<(&File, &RawTls)>, errors: &mut ConfigErrors) -> Option<TlsSource> {
    let (f, t) = found?;
    match (&t.certificate, &t.private_key, t.self_signed) {
        (None, None, true) => Some(TlsSource::SelfSigned),
        (Some(c), Some(k), false) => Some(TlsSource::Files {
            certificate: readable_file(f, c, "tls.certificate", errors),
            private_key: readable_file(f, k, "tls.private_key", errors),
        }),
        (_, _, true) => {
            errors.push(ConfigError::new(
                Loc::file_start(&f.path),
                "tls.self_signed",
                "self_signed = true cannot be combined with certificate/private_key",
            ));
            None
        }
        _ => {
            errors.push(ConfigError::new(
                Loc::file_start(&f.path),
                "tls",
                "[tls] needs both certificate and private_key (PEM files), or self_signed = true",
            ));
            None
        }
    }
}

fn build_listeners(files: &[File], have_tls: bool, errors: &mut ConfigErrors) -> Vec<Listener> {
    let mut out: Vec<Listener> = Vec::new();
    for f in files {
        for l in &f.raw.listeners {
            let loc = f.loc(&l.get_ref().address);
            let address = match l.get_ref().address.get_ref().parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    errors.push(ConfigError::new(
                        loc,
                        "listeners.address",
                        format!(
                            "{:?} is not an address:port (IPv6 as \"[::1]:587\")",
                            l.get_ref().address.get_ref()
                        ),
                    ));
                    continue;
                }
            };
            if l.get_ref().tls != TlsMode::None && !have_tls {
                errors.push(ConfigError::new(f.loc(l), "listeners.tls", "this listener uses TLS but there is no [tls] section with a certificate (or self_signed = true)"));
            }
            if out.iter().any(|o| o.address == address) {
                errors.push(ConfigError::new(
                    loc,
                    "listeners.address",
                    format!("{address} is listed twice"),
                ));
            }
            let proxy = super::cluster::listener_proxy(f, l.get_ref(), errors);
            out.push(Listener {
                address,
                tls: l.get_ref().tls,
                proxy,
            });
        }
    }
    if out.is_empty()
        && let Some(f) = files.first()
    {
        errors.push(ConfigError::new(
            Loc::file_start(&f.path),
            "listeners",
            "no [[listeners]] configured",
        ));
    }
    out
}

fn build_delivery(
    found: Option<(&File, &RawDelivery)>,
    errors: &mut ConfigErrors,
) -> crate::deliver::Settings {
    let default = RawDelivery::default();
    let d = found.map_or(&default, |(_, d)| d);
    let out = crate::deliver::Settings {
        workers: d.workers.unwrap_or(16).clamp(1, 1024),
        retry: crate::deliver::RetryPolicy {
            initial: d.retry_initial.map_or(Duration::from_secs(30), |v| v.0),
            max: d.retry_max.map_or(Duration::from_secs(3600), |v| v.0),
            max_age: d.max_age.map_or(Duration::from_secs(5 * 86400), |v| v.0),
        },
    };
    if out.retry.initial > out.retry.max
        && let Some((f, _)) = found
    {
        errors.push(ConfigError::new(
            Loc::file_start(&f.path),
            "delivery.retry_initial",
            "retry_initial is longer than retry_max",
        ));
    }
    out
}

fn build_log(found: Option<(&File, &RawLog)>, errors: &mut ConfigErrors) -> Log {
    let default = RawLog::default();
    let (file, l) = match found {
        Some((f, l)) => (Some(f), l),
        None => (None, &default),
    };
    let level = l
        .level
        .as_ref()
        .map_or_else(|| "info".to_string(), |s| s.get_ref().clone());
    if let (Err(e), Some(f), Some(s)) = (
        tracing_subscriber::EnvFilter::try_new(&level),
        file,
        &l.level,
    ) {
        errors.push(ConfigError::new(
            f.loc(s),
            "log.level",
            format!("invalid level filter: {e}"),
        ));
    }
    let audit_file = match (&l.audit_file, file) {
        (Some(p), Some(f)) => {
            let path = f.resolve_path(p.get_ref());
            if !path.parent().is_some_and(Path::is_dir) {
                errors.push(ConfigError::new(
                    f.loc(p),
                    "log.audit_file",
                    format!("directory of {} does not exist", path.display()),
                ));
            }
            Some(path)
        }
        _ => None,
    };
    Log {
        format: l.format.unwrap_or_default(),
        level,
        audit_file,
    }
}

/// Lower-cased sender pattern, or why it is not one.
pub(crate) fn sender_pattern(p: &str) -> Result<String, String> {
    let p = p.trim().to_ascii_lowercase();
    if p == "*" {
        return Ok(p);
    }
    let valid = match p.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('*')
                && (local == "*" || !local.contains('*'))
                && !p.contains(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(p)
    } else {
        Err(format!(
            "invalid sender pattern {p:?}: use \"user@domain\", \"*@domain\" or \"*\""
        ))
    }
}

/// Largest included file: configuration is small, and a pattern that
/// matched /dev/zero or a log file must not be read into memory whole.
const MAX_INCLUDED_SIZE: u64 = 4 << 20;

/// Reads an included file: a regular file of at most [`MAX_INCLUDED_SIZE`].
/// Checked before it is opened (opening a FIFO blocks), and a file the
/// kernel says is empty is not read (a /proc or /sys file like
/// /proc/kmsg says so and would block or never end).
fn read_config_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let too_large =
        || std::io::Error::other(format!("larger than {} MiB", MAX_INCLUDED_SIZE >> 20));
    if meta.len() > MAX_INCLUDED_SIZE {
        return Err(too_large());
    }
    if meta.len() == 0 {
        return Ok(String::new());
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_INCLUDED_SIZE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_INCLUDED_SIZE {
        return Err(too_large());
    }
    Ok(text)
}
