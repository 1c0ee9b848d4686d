//! The documentation against the code it describes, so the docs cannot
//! drift silently: every configuration key postern accepts is in
//! docs/configuration.md (the keys are read from the `deny_unknown_fields`
//! structs of src/config/, the schema serde enforces); every `src/...` path
//! in docs/flow.md exists and every top-level module is on its map; every
//! test SECURITY.md names exists; README keeps its two commands (and demo.sh runs the demo) and stays
//! short; relative links and their anchors resolve; and
//! config.example.toml, with every commented block uncommented too, passes
//! `postern check-config`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestCa;
use crate::common::clients::postern_bin;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// `(struct name, field names)` of every `#[serde(deny_unknown_fields)]`
/// struct in `src` (a Rust file's text). A field's TOML key is its name
/// unless `#[serde(rename = "...")]` says otherwise.
fn strict_structs(src: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].contains("deny_unknown_fields") {
            i += 1;
            continue;
        }
        // The struct line follows its attributes.
        let Some(start) =
            (i..lines.len()).find(|&j| lines[j].trim_start().starts_with("pub struct "))
        else {
            break;
        };
        let name = lines[start]
            .trim_start()
            .trim_start_matches("pub struct ")
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut fields = Vec::new();
        let mut rename: Option<String> = None;
        let mut j = start + 1;
        while j < lines.len() && lines[j] != "}" {
            let l = lines[j].trim();
            if let Some(r) = l.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            } else if let Some(rest) = l.strip_prefix("pub ")
                && let Some((field, _)) = rest.split_once(':')
                && field
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                fields.push(rename.take().unwrap_or_else(|| field.to_string()));
            }
            j += 1;
        }
        out.push((name, fields));
        i = j;
    }
    out
}

/// Every key the configuration schema accepts, by struct.
fn schema_keys() -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    let dir = root().join("src/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read src/config")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read config source");
        all.extend(strict_structs(&text));
    }
    all
}

fn key_set() -> BTreeSet<String> {
    schema_keys().into_iter().flat_map(|(_, f)| f).collect()
}

/// The places of `doc` that document a key: the first cell of a table row
/// (`` | `key` | ``), and headings (`` ## `[server]` ``, `` ## `include` ``).
fn reference_entries(doc: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code {
        } else if let Some(row) = line.strip_prefix("| ") {
            out.push_str(row.split(" |").next().unwrap_or(""));
            out.push('\n');
        } else if line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A key has a row of its own (`` `key` `` in a first cell), or, for a
/// table-valued key, a heading or row naming the table (`[key]`,
/// `[[key]]`, `[key.NAME]`, `[quota.key]`).
fn documented(entries: &str, key: &str) -> bool {
    [
        format!("`{key}`"),
        format!("[{key}]"),
        format!("[{key}."),
        format!(".{key}]"),
    ]
    .iter()
    .any(|form| entries.contains(form.as_str()))
}

#[test]
fn every_config_key_is_in_the_reference() {
    let structs = schema_keys();
    // The parser must keep finding the schema, or this test proves nothing.
    let names: Vec<&str> = structs.iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "RawFile",
        "RawServer",
        "RawUpstream",
        "RawCredential",
        "RawInspect",
        "RawAbuse",
        "RawAlerts",
        "RawHook",
    ] {
        assert!(
            names.contains(&must),
            "schema struct {must} not found in src/config/: {names:?}"
        );
    }
    let keys = key_set();
    assert!(
        keys.len() > 150,
        "only {} keys parsed: {keys:?}",
        keys.len()
    );
    for k in [
        "max_session_duration",
        "header_recipients",
        "webhook_secret",
        "not_after",
        "hash",
    ] {
        assert!(keys.contains(k), "key {k} not parsed from the schema");
    }
    let doc = reference_entries(&read("docs/configuration.md"));
    let missing: Vec<String> = structs
        .iter()
        .flat_map(|(s, fields)| {
            fields
                .iter()
                .filter(|k| !documented(&doc, k))
                .map(move |k| format!("{s}.{k}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys postern accepts but docs/configuration.md does not document: {missing:?}"
    );
}

/// The key of a TOML line (`key = ...`, after any `# ` of a commented
/// example) and the keys of an inline table on it (`{ a = 1, b = 2 }`).
fn keys_on_line(line: &str) -> Vec<String> {
    let l = line.trim_start_matches('#').trim_start();
    let is_key = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let mut out = Vec::new();
    if let Some((k, _)) = l.split_once('=')
        && is_key(k.trim())
        && k.ends_with(' ')
    {
        out.push(k.trim().to_string());
        if let (Some(open), Some(close)) = (l.find('{'), l.rfind('}')) {
            for part in l[open + 1..close].split(',') {
                if let Some((ik, _)) = part.split_once('=')
                    && is_key(ik.trim())
                {
                    out.push(ik.trim().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_key_in_config_example_is_a_key_postern_accepts() {
    let keys = key_set();
    let example = read("config.example.toml");
    let mut seen = 0;
    for (n, line) in example.lines().enumerate() {
        for k in keys_on_line(line) {
            seen += 1;
            assert!(
                keys.contains(&k),
                "config.example.toml:{}: `{k}` is not a key postern accepts",
                n + 1
            );
        }
    }
    assert!(seen > 100, "only {seen} keys found in config.example.toml");
}

/// Every `src/...` path in `text`.
fn src_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("src/") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-')))
            .unwrap_or(tail.len());
        let path = tail[..end].trim_end_matches('.');
        // `fuzz/src/...` and the like are not paths of this crate.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/') {
            out.push(path.to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn flow_names_only_modules_that_exist_and_maps_every_module() {
    let flow = read("docs/flow.md");
    let paths = src_paths(&flow);
    assert!(
        paths.len() > 60,
        "only {} src/ paths in docs/flow.md",
        paths.len()
    );
    let missing: Vec<&String> = paths.iter().filter(|p| !root().join(p).exists()).collect();
    assert!(
        missing.is_empty(),
        "docs/flow.md names paths that do not exist: {missing:?}"
    );
    // Every top-level module (src/NAME.rs or src/NAME/) is on the map.
    let mut unmapped = Vec::new();
    for entry in std::fs::read_dir(root().join("src")).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let module = name.trim_end_matches(".rs");
        if path.is_dir() && path.with_extension("rs").exists() {
            // src/NAME/ holding NAME.rs's submodules or tests: NAME.rs is the module.
            continue;
        }
        if !flow.contains(&format!("`src/{module}.rs`"))
            && !flow.contains(&format!("`src/{module}/`"))
        {
            unmapped.push(name);
        }
    }
    assert!(
        unmapped.is_empty(),
        "modules missing from docs/flow.md: {unmapped:?}"
    );
}

/// `(file, fn)` of every `` `path.rs::fn` `` in `text`.
fn named_tests(text: &str) -> Vec<(String, String)> {
    text.split('`')
        .filter_map(|span| {
            let (file, f) = span.split_once(".rs::")?;
            let ok = (file.starts_with("tests/it/") || file.starts_with("src/"))
                && file.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '/')
                })
                && !f.is_empty()
                && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ok.then(|| (format!("{file}.rs"), f.to_string()))
        })
        .collect()
}

#[test]
fn security_md_names_only_tests_that_exist() {
    let security = read("SECURITY.md");
    let named = named_tests(&security);
    assert!(
        named.len() >= 40,
        "only {} tests named in SECURITY.md",
        named.len()
    );
    let mut broken = Vec::new();
    for (file, f) in &named {
        match std::fs::read_to_string(root().join(file)) {
            Ok(text) if text.contains(&format!("fn {f}(")) => {}
            Ok(_) => broken.push(format!("{file}::{f}: no such fn")),
            Err(e) => broken.push(format!("{file}: {e}")),
        }
    }
    assert!(
        broken.is_empty(),
        "SECURITY.md names tests that do not exist: {broken:?}"
    );
    // One row per item of the security review, each with a test.
    for item in ["1", "2", "3", "4", "5", "6a", "6b", "6c", "6d"] {
        let row = security
            .lines()
            .find(|l| l.starts_with(&format!("| {item} |")))
            .unwrap_or_else(|| panic!("SECURITY.md has no row for item {item}"));
        assert!(
            row.contains(".rs::"),
            "SECURITY.md item {item} names no test: {row}"
        );
    }
}

#[test]
fn readme_is_short_and_keeps_its_two_commands() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; the limit is 150"
    );
    for block in ["```sh\n./demo.sh\n```\n", "```sh\n./tests/run.sh\n```\n"] {
        assert!(
            readme.contains(block),
            "README.md lost the command block {block:?}"
        );
    }
    assert!(root().join("tests/run.sh").exists());
    // The demo script installs the build's packages, then runs the demo.
    assert!(read("demo.sh").contains("\nexec cargo run --release -- run --demo"));
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Link targets of `[text](target)` in `markdown`, outside code blocks.
fn links(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let tail = &rest[at + 2..];
            let Some(end) = tail.find(')') else { break };
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn relative_links_and_anchors_resolve() {
    let mut docs = vec!["README.md".to_string(), "SECURITY.md".to_string()];
    for e in std::fs::read_dir(root().join("docs")).expect("read docs") {
        let p = e.expect("dir entry").path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(format!("docs/{}", p.file_name().unwrap().to_string_lossy()));
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text = read(doc);
        let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let rel = if file.is_empty() {
                PathBuf::from(doc)
            } else {
                normalize(&dir.join(file))
            };
            let rel_str = rel.to_string_lossy().to_string();
            if !root().join(&rel).exists() {
                broken.push(format!("{doc}: {target} (no file {rel_str})"));
                continue;
            }
            if let Some(a) = anchor
                && rel_str.ends_with(".md")
                && !anchors(&read(&rel_str)).contains(a)
            {
                broken.push(format!("{doc}: {target} (no heading #{a} in {rel_str})"));
            }
        }
    }
    assert!(checked > 30, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// `docs/../x` → `x`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The commented blocks of the example (`# [table]` and the `# key = ...`
/// lines after it), uncommented.
fn commented_blocks(example: &str) -> Vec<String> {
    let header = |rest: &str| {
        let t = rest.split('#').next().unwrap_or("").trim();
        t.starts_with('[') && t.ends_with(']')
    };
    let keyish = |rest: &str| rest.trim_start().starts_with('#') || !keys_on_line(rest).is_empty();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in example.lines() {
        let rest = line.strip_prefix("# ");
        match rest {
            Some(r) if header(r) => {
                blocks.extend(current.take());
                current = Some(format!("{r}\n"));
            }
            Some(r) if current.is_some() && keyish(r) => {
                if let Some(b) = current.as_mut() {
                    b.push_str(r);
                    b.push('\n');
                }
            }
            _ => blocks.extend(current.take()),
        }
    }
    blocks.extend(current);
    blocks
}

/// `env:NAME` references in `text`.
fn env_refs(text: &str) -> BTreeSet<String> {
    text.split("\"env:")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

/// IdP metadata for `[admin.saml]`: an entity id, an HTTP-Redirect
/// SingleSignOnService and a signing certificate (only decoded, never
/// used to verify anything here).
const IDP_METADATA: &str = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIBszCCAVmgAwIBAgIU</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#;

/// Runs check-config on the example, its files replaced by test fixtures.
fn check_example(text: &str, dir: &Path, creds: &Path) -> std::process::Output {
    let path = dir.join("postern.toml");
    std::fs::write(&path, text).expect("write config");
    let mut cmd = Command::new(postern_bin());
    cmd.args(["check-config", "--config"]).arg(&path);
    for var in env_refs(text) {
        cmd.env(var, "test-secret-value");
    }
    cmd.env("CREDENTIALS_DIRECTORY", creds);
    cmd.output().expect("run postern check-config")
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: check-config failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

#[test]
fn config_example_passes_check_config_with_and_without_its_commented_blocks() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).expect("mkdir credentials");
    let example = read("config.example.toml")
        .replace(
            "/etc/postern/tls/fullchain.pem",
            &ca.cert_pem.to_string_lossy(),
        )
        .replace(
            "/etc/postern/tls/privkey.pem",
            &ca.key_pem.to_string_lossy(),
        );
    assert_ok(
        &check_example(&example, dir.path(), &creds),
        "config.example.toml as shipped",
    );

    // Every commented block uncommented: each must be complete and valid.
    let blocks = commented_blocks(&example);
    for must in [
        "[upstreams.graph]",
        "[upstreams.gmail]",
        "[upstreams.ses]",
        "[[dkim]]",
        "[inspect]",
        "[alerts]",
        "[[quota.rules]]",
        "[validation.hook]",
        "[admin.console]",
        "[admin.saml]",
    ] {
        assert!(
            blocks.iter().any(|b| b.starts_with(must)),
            "no commented {must} block found in config.example.toml"
        );
    }
    // Fixtures for the files and credentials the blocks refer to.
    let (key_pem, _) = crate::common_oauth::rsa_key();
    let kp = rcgen::KeyPair::from_pem(key_pem).expect("rcgen loads the RSA key");
    let cert = rcgen::CertificateParams::new(vec!["postern-graph-app".to_string()])
        .expect("params")
        .self_signed(&kp)
        .expect("self-signed");
    let app_pem = dir.path().join("app.pem");
    std::fs::write(&app_pem, cert.pem()).expect("write app.pem");
    std::fs::write(creds.join("graph-app-key"), key_pem).expect("write key");
    std::fs::write(creds.join("graph-client-secret"), "test-client-secret").expect("write secret");
    let gmail_key = dir.path().join("gmail-key.json");
    std::fs::write(&gmail_key, crate::gmail_setup::key_json()).expect("write gmail key");
    let idp_md = dir.path().join("idp-metadata.xml");
    std::fs::write(&idp_md, IDP_METADATA).expect("write IdP metadata");
    let dkim_dir = dir.path().join("dkim");
    let keygen = Command::new(postern_bin())
        .args([
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "pst2026e",
        ])
        .args(["--algorithm", "ed25519", "--out"])
        .arg(&dkim_dir)
        .output()
        .expect("run postern dkim keygen");
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let full = format!("{example}\n{}", blocks.join("\n"))
        .replace("/etc/postern/graph/app.pem", &app_pem.to_string_lossy())
        .replace("/etc/postern/gmail-key.json", &gmail_key.to_string_lossy())
        .replace("/etc/postern/dkim", &dkim_dir.to_string_lossy())
        .replace("/etc/postern/idp-metadata.xml", &idp_md.to_string_lossy())
        .replace("/etc/postern/redis-ca.pem", &ca.ca_pem.to_string_lossy());
    assert_ok(
        &check_example(&full, dir.path(), &creds),
        "config.example.toml with every block uncommented",
    );
}
