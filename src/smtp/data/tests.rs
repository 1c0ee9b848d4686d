use super::*;

const MAX: usize = 1 << 20;

/// Feeds `input` in chunks split at `splits`; returns (consumed, done, outcome).
fn run_split(input: &[u8], splits: &[usize], policy: BareNewline) -> (usize, DataOutcome) {
    let mut d = DataDecoder::new(MAX, policy);
    let mut consumed = 0;
    let mut start = 0;
    for &end in splits.iter().chain(std::iter::once(&input.len())) {
        if d.is_done() {
            break;
        }
        let n = d.feed(&input[start..end]);
        consumed += n;
        if d.is_done() {
            break;
        }
        assert_eq!(
            n,
            end - start,
            "a chunk before the marker must be consumed whole"
        );
        start = end;
    }
    (consumed, d.finish())
}

fn run(input: &[u8], policy: BareNewline) -> (usize, DataOutcome) {
    run_split(input, &[], policy)
}

fn message(input: &[u8]) -> Vec<u8> {
    match run(input, BareNewline::Normalize) {
        (_, DataOutcome::Message(m)) => m,
        (_, other) => panic!("expected a message, got {other:?}"),
    }
}

/// Independent model of the rules: the data ends at the first `CRLF.CRLF`
/// in `CRLF + input`; the content before it is split on CRLF|CR|LF
/// (longest match first), each line unstuffed if it starts with "." and has
/// more characters, then joined with CRLF.
fn reference(input: &[u8], max: usize, policy: BareNewline) -> (usize, DataOutcome) {
    let mut prefixed = b"\r\n".to_vec();
    prefixed.extend_from_slice(input);
    let Some(k) = prefixed.windows(5).position(|w| w == b"\r\n.\r\n") else {
        return (input.len(), DataOutcome::Incomplete);
    };
    let content = &input[..k];
    let (mut out, mut bare, mut line) = (Vec::new(), false, Vec::new());
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        let ending = if b == b'\r' && content.get(i + 1) == Some(&b'\n') {
            i += 2;
            Some(false)
        } else if b == b'\r' || b == b'\n' {
            i += 1;
            Some(true)
        } else {
            line.push(b);
            i += 1;
            None
        };
        if let Some(is_bare) = ending {
            bare |= is_bare;
            let l: &[u8] = if line.len() > 1 && line[0] == b'.' {
                &line[1..]
            } else {
                &line
            };
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
            line.clear();
        }
    }
    assert!(line.is_empty(), "content always ends with CRLF");
    let outcome = if bare && policy == BareNewline::Reject {
        DataOutcome::BareNewline
    } else if out.len() > max {
        DataOutcome::TooLarge
    } else {
        DataOutcome::Message(out)
    };
    (k + 3, outcome)
}

#[test]
fn simple_message_and_pipelined_tail_left_unconsumed() {
    let input = b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let mut d = DataDecoder::new(MAX, BareNewline::Reject);
    let n = d.feed(input);
    assert_eq!(&input[n..], b"QUIT\r\n");
    assert!(d.is_done());
    assert_eq!(d.feed(b"more"), 0);
    assert_eq!(
        d.finish(),
        DataOutcome::Message(b"Subject: hi\r\n\r\nbody\r\n".to_vec())
    );
}

#[test]
fn empty_message_is_a_lone_dot_first_line() {
    assert_eq!(
        run(b".\r\nRSET\r\n", BareNewline::Reject),
        (3, DataOutcome::Message(vec![]))
    );
}

#[test]
fn smuggling_sequences_do_not_end_data() {
    let cases: [&[u8]; 11] = [
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\n.\r",
        b"\r\n.\r",
        b"\r\n.\n",
        b"\r\n\x00.\r\n",
        b"\r\n.\r\r\n",
        b"\r\r\n.\r\r\n",
    ];
    for seq in cases {
        for policy in [BareNewline::Normalize, BareNewline::Reject] {
            let mut input = b"a".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            let mut d = DataDecoder::new(MAX, policy);
            assert_eq!(d.feed(&input), input.len(), "{seq:?} ended the data");
            assert!(!d.is_done(), "{seq:?} ended the data");
            // Only the real marker ends it, and everything before is content.
            assert_eq!(d.feed(b"\r\n.\r\n"), 5);
            assert!(d.is_done());
            let out = d.finish();
            if policy == BareNewline::Normalize {
                let DataOutcome::Message(m) = out else {
                    panic!("{seq:?}: {out:?}")
                };
                assert!(m.ends_with(b"MAIL FROM:<evil@x>\r\n\r\n"), "{seq:?}");
                assert_no_bare_newlines(&m);
            } else if seq != b"\r\n\x00.\r\n" {
                assert_eq!(out, DataOutcome::BareNewline, "{seq:?}");
            }
        }
    }
}

fn assert_no_bare_newlines(m: &[u8]) {
    for (i, &b) in m.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(m.get(i + 1), Some(&b'\n'), "bare CR at {i} in {m:?}");
        }
        if b == b'\n' {
            assert!(i > 0 && m[i - 1] == b'\r', "bare LF at {i} in {m:?}");
        }
    }
}

#[test]
fn bare_newlines_are_normalized() {
    assert_eq!(
        message(b"a\nb\rc\r\r\nd\r\n.\r\n"),
        b"a\r\nb\r\nc\r\n\r\nd\r\n"
    );
    assert_eq!(message(b"x\r\n\ny\r\n.\r\n"), b"x\r\n\r\ny\r\n");
    // After a bare LF, ".CRLF" is content, not the end.
    assert_eq!(
        run(b"x\r\n\n.\r\n", BareNewline::Normalize),
        (7, DataOutcome::Incomplete)
    );
}

#[test]
fn bare_newlines_are_rejected_but_consumed_to_the_marker() {
    let input = b"a\nb\r\n.\r\nNOOP\r\n";
    assert_eq!(
        run(input, BareNewline::Reject),
        (input.len() - 6, DataOutcome::BareNewline)
    );
    let clean = b"a\r\nb\r\n.\r\n";
    assert_eq!(
        run(clean, BareNewline::Reject).1,
        DataOutcome::Message(b"a\r\nb\r\n".to_vec())
    );
}

#[test]
fn dot_unstuffing() {
    // Real line starts.
    assert_eq!(message(b"..\r\n.a\r\n...\r\n.\r\n"), b".\r\na\r\n..\r\n");
    // First line.
    assert_eq!(message(b"..x\r\n.\r\n"), b".x\r\n");
    // A dot not at a line start is content.
    assert_eq!(message(b"a.\r\nb..c\r\n.\r\n"), b"a.\r\nb..c\r\n");
    // Soft line starts (after a bare newline) unstuff too ...
    assert_eq!(message(b"a\n..b\r\n.\r\n"), b"a\r\n.b\r\n");
    assert_eq!(message(b"a\r.x\r\n.\r\n"), b"a\r\nx\r\n");
    // ... but a lone dot there is kept, never treated as an end marker.
    assert_eq!(message(b"a\n.\r\nb\r\n.\r\n"), b"a\r\n.\r\nb\r\n");
    assert_eq!(message(b".\n.\r\r\n.\r\n"), b".\r\n.\r\n\r\n");
}

#[test]
fn crlf_split_across_chunks_is_one_line_ending() {
    let input = b"line one\r\n..two\r\n.\r\n";
    for split in 0..=input.len() {
        assert_eq!(
            run_split(input, &[split], BareNewline::Reject),
            (
                input.len(),
                DataOutcome::Message(b"line one\r\n.two\r\n".to_vec())
            ),
            "split at {split}"
        );
    }
    let bytes: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run_split(input, &bytes, BareNewline::Reject).0, input.len());
}

#[test]
fn matches_reference_model_for_all_short_inputs_and_splits() {
    const ALPHABET: [u8; 4] = [b'\r', b'\n', b'.', b'a'];
    let mut checked = 0;
    for len in 0..=7u32 {
        for mut code in 0..4usize.pow(len) {
            let mut input = Vec::new();
            for _ in 0..len {
                input.push(ALPHABET[code % 4]);
                code /= 4;
            }
            input.extend_from_slice(b"\r\n.\r\nTAIL");
            for policy in [BareNewline::Normalize, BareNewline::Reject] {
                let expected = reference(&input, 12, policy);
                let mut d = DataDecoder::new(12, policy);
                assert_eq!((d.feed(&input), d.finish()), expected, "{input:?}");
                for split in 1..input.len() {
                    let got = {
                        let mut d = DataDecoder::new(12, policy);
                        let a = d.feed(&input[..split]);
                        let b = if d.is_done() {
                            0
                        } else {
                            d.feed(&input[split..])
                        };
                        (a + b, d.finish())
                    };
                    assert_eq!(got, expected, "{input:?} split at {split}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100_000);
}

#[test]
fn size_limit_counts_output_bytes_and_keeps_reading() {
    // "..x\r\n" decodes to 4 bytes: the stuffed dot does not count.
    let input = b"..x\r\n.\r\n";
    assert_eq!(
        run_limited(input, 4),
        DataOutcome::Message(b".x\r\n".to_vec())
    );
    assert_eq!(run_limited(input, 3), DataOutcome::TooLarge);
    let big = [b"y".repeat(10_000).as_slice(), b"\r\n.\r\nQUIT\r\n"].concat();
    let mut d = DataDecoder::new(100, BareNewline::Normalize);
    assert_eq!(d.feed(&big[..5000]), 5000);
    assert_eq!(d.stored_len(), 0, "buffer freed once over the limit");
    assert_eq!(d.feed(&big[5000..]), big.len() - 5000 - 6);
    assert_eq!(d.finish(), DataOutcome::TooLarge);
}

fn run_limited(input: &[u8], max: usize) -> DataOutcome {
    let mut d = DataDecoder::new(max, BareNewline::Normalize);
    d.feed(input);
    d.finish()
}

#[test]
fn buffer_never_grows_past_the_limit() {
    let mut d = DataDecoder::new(5000, BareNewline::Normalize);
    for _ in 0..49 {
        d.feed(&[b'z'; 100]);
    }
    assert!(d.out.capacity() <= 5000);
    d.feed(b"\r\n.\r\n");
    let DataOutcome::Message(m) = d.finish() else {
        panic!()
    };
    assert_eq!(m.len(), 4902);
}

#[test]
fn finish_before_marker_is_incomplete() {
    let mut d = DataDecoder::new(MAX, BareNewline::Normalize);
    d.feed(b"half a message\r\n");
    assert_eq!(d.finish(), DataOutcome::Incomplete);
}

#[test]
fn scanner_finds_first_newline_at_every_offset() {
    for len in 0..40 {
        for pos in 0..len {
            for nl in [b'\r', b'\n'] {
                let mut s = vec![0x8du8; len]; // high bytes must not false-match
                s[pos] = nl;
                if pos + 1 < len {
                    s[pos + 1] = b'\n';
                }
                assert_eq!(find_cr_or_lf(&s), Some(pos));
            }
        }
        assert_eq!(find_cr_or_lf(&vec![b'\x0c'; len]), None);
    }
}
