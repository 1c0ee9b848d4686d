//! Replays every input kept under `fuzz/corpus/TARGET/` (seeds and the
//! inputs of crashes once found) through its harness.

use std::path::Path;

#[test]
fn every_corpus_input_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, harness) in super::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no seeds for {name}");
        for path in inputs {
            let data = std::fs::read(&path).expect("read corpus input");
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
        }
    }
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_session_seeds_reach_the_queue() {
    // Seeds that stopped short of DATA would leave most of the session
    // unfuzzed.
    assert_eq!(
        super::session::run_session(&seed("smtp_session", "networks-plain")),
        1
    );
    assert_eq!(
        super::session::run_session(&seed("smtp_session", "starttls-auth")),
        1
    );
    assert_eq!(
        super::session::run_session(&seed("smtp_session", "stranger-relay")),
        0
    );
}
