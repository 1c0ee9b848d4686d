//! Runners for the real external clients the tests drive: swaks, Python's
//! smtplib scripts under tests/py/, and the `postern` CLI itself (for
//! `hash-secret`, `token new`, `check-config`). They exist so tests exercise
//! the same code paths an operator and a legacy application would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;

/// The password every username/password credential in the tests uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// Path of the binary under test.
pub fn postern_bin() -> &'static str {
    env!("CARGO_BIN_EXE_postern")
}

/// Runs `postern ARGS` with `stdin` fed in; returns the finished output.
pub fn postern_cmd(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(postern_bin())
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn postern");
    if let Some(mut si) = child.stdin.take() {
        // A command that does not read stdin may close it early; that is fine.
        let _ = si.write_all(stdin);
    }
    child.wait_with_output().expect("wait for postern")
}

/// `postern hash-secret` for `password` (the real code path for PHC strings).
pub fn hash_secret(password: &str) -> String {
    let out = postern_cmd(&["hash-secret"], format!("{password}\n").as_bytes());
    assert!(
        out.status.success(),
        "postern hash-secret failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("$argon2"))
        .unwrap_or_else(|| panic!("no PHC string in hash-secret output: {text:?}"));
    line.to_string()
}

/// The PHC hash of [`PASSWORD`], computed once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_secret(PASSWORD))
}

/// Result of one swaks run.
pub struct SwaksRun {
    pub status: ExitStatus,
    /// stdout and stderr together (swaks prints the transcript to stdout).
    pub output: String,
}

impl SwaksRun {
    /// The queue ID from the `250 ... queued as ID` reply, if any.
    pub fn queue_id(&self) -> Option<String> {
        queue_id_in(&self.output)
    }

    /// Panics with the transcript unless swaks succeeded.
    pub fn assert_ok(&self) {
        assert!(
            self.status.success(),
            "swaks failed ({:?}):\n{}",
            self.status,
            self.output
        );
    }
}

/// Finds `queued as ID` in a transcript.
pub fn queue_id_in(text: &str) -> Option<String> {
    let idx = text.find("queued as ")?;
    let rest = &text[idx + "queued as ".len()..];
    let id: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ']')
        .collect();
    (!id.is_empty()).then_some(id)
}

fn swaks_path() -> &'static str {
    for p in ["/usr/bin/swaks", "/usr/local/bin/swaks"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    panic!(
        "swaks is not installed; run `apt-get install -y swaks` (the README's test command does)"
    )
}

/// Runs swaks with `args` (a generous `--timeout` is added).
pub fn swaks(args: &[&str]) -> SwaksRun {
    let out = Command::new(swaks_path())
        .args(args)
        .args(["--timeout", "60"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    SwaksRun {
        status: out.status,
        output,
    }
}

/// Absolute path of a script under tests/py/.
pub fn py_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
        .join(name)
}

/// The interpreter: `$POSTERN_PYTHON` (the venv tests/run.sh makes) or `python3`.
pub fn python_bin() -> String {
    std::env::var("POSTERN_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Runs `python3 tests/py/SCRIPT ARGS`; returns the finished output.
pub fn python(script: &str, args: &[&str]) -> Output {
    Command::new(python_bin())
        .arg(py_script(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3")
}

/// Python's `email` package's reading of the headers `names` of `msg`
/// (tests/py/decode_headers.py): an independent check that repaired
/// headers decode to what the client meant. Keys: `headers` (decoded
/// values), `legacy` (`decode_header` + `make_header`), `addresses`
/// (`[display name, addr-spec]`), `defects`, `filenames`.
pub fn decode_headers(msg: &[u8], names: &[&str]) -> serde_json::Value {
    let file = tempfile::NamedTempFile::new().expect("temp message file");
    std::fs::write(file.path(), msg).expect("write message");
    let path = file.path().to_string_lossy().into_owned();
    let mut args = vec![path.as_str()];
    args.extend_from_slice(names);
    let out = python("decode_headers.py", &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "decode_headers.py failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("decode_headers.py output is not JSON ({e}): {stdout}"))
}
