use super::*;
use mail_parser::MessageParser;

fn field(head: &str, items: &[Item<'_>]) -> String {
    let mut out = Vec::new();
    write_field(head.as_bytes(), items, &mut out);
    String::from_utf8(out).unwrap()
}

fn subject(value: &str) -> String {
    field("Subject:", &text_items(value, false))
}

/// What mail-parser (an independent RFC 2047 decoder) reads back.
fn decoded_subject(raw: &str) -> String {
    let msg = format!("{raw}\r\nbody\r\n");
    MessageParser::new()
        .parse(msg.as_bytes())
        .unwrap()
        .subject()
        .unwrap()
        .to_string()
}

/// Every line at most `max` octets, every encoded-word well formed.
fn check_syntax(raw: &str, max: usize) {
    assert!(raw.is_ascii(), "{raw}");
    assert!(raw.ends_with("\r\n"), "{raw:?}");
    for line in raw.trim_end_matches("\r\n").split("\r\n") {
        assert!(line.len() <= max, "line of {} octets: {line:?}", line.len());
        let words = line
            .split([' ', '\t'])
            .map(|w| w.trim_start_matches('(').trim_end_matches(')'));
        for word in words.filter(|w| w.starts_with("=?")) {
            assert!(word.len() <= MAX_WORD, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap_or_else(|| panic!("not an encoded-word: {word}"));
            let bytes = STANDARD.decode(b64).unwrap();
            // Each encoded-word holds whole characters.
            assert!(
                String::from_utf8(bytes).is_ok(),
                "{word} splits a character"
            );
        }
    }
}

#[test]
fn encoded_word_syntax() {
    assert_eq!(encoded_word("für"), "=?UTF-8?B?ZsO8cg==?=");
    assert_eq!(MAX_BYTES, 45);
    let full = "ä".repeat(22) + "x";
    assert_eq!(full.len(), 45);
    assert_eq!(encoded_word(&full).len(), 72);
    assert!(encoded_word(&full).len() <= MAX_WORD);
}

#[test]
fn fit_never_splits_a_character() {
    let s = "€".repeat(30); // 3 bytes each
    assert_eq!(fit(&s, MAX_WORD), 45);
    let s = "😀".repeat(20); // 4 bytes each
    assert_eq!(fit(&s, MAX_WORD), 44);
    assert_eq!(fit(&s, 12 + 4), 0); // 3 bytes of room: no whole emoji
    assert_eq!(fit(&s, 12 + 8), 4);
    assert_eq!(fit("ab", 5), 0);
    assert_eq!(fit("ab", MAX_WORD), 2);
}

#[test]
fn only_8bit_words_are_encoded() {
    let raw = subject(" Rechnung für März 2026");
    assert_eq!(
        raw,
        "Subject: Rechnung =?UTF-8?B?ZsO8ciBNw6Ryeg==?= 2026\r\n"
    );
    check_syntax(&raw, FOLD_AT);
    assert_eq!(decoded_subject(&raw), "Rechnung für März 2026");
    // Whitespace between 8-bit words travels inside the encoded-word.
    assert_eq!(
        subject(" a  ü  ö\tb"),
        format!("Subject: a  {}\tb\r\n", encoded_word("ü  ö"))
    );
    // Whitespace between an encoded-word and ASCII stays outside.
    assert_eq!(subject(" ü  b"), "Subject: =?UTF-8?B?w7w=?=  b\r\n");
    // No space after the colon: one is added, which readers strip.
    assert_eq!(subject("für"), "Subject: =?UTF-8?B?ZsO8cg==?=\r\n");
    // A word is the unit: ASCII glued to 8-bit is encoded with it.
    assert_eq!(decoded_subject(&subject(" Nr.5für")), "Nr.5für");
    assert_eq!(subject(" plain"), "Subject: plain\r\n");
}

#[test]
fn long_text_is_folded_between_encoded_words() {
    let text = "Grüße aus Köln, Düsseldorf und München — ".repeat(8);
    let raw = subject(&format!(" {text}"));
    check_syntax(&raw, FOLD_AT);
    assert!(raw.matches("\r\n").count() > 5, "{raw}");
    // (mail-parser trims the trailing space of the text.)
    assert_eq!(decoded_subject(&raw), text.trim_end());
    // A single 8-bit word longer than one encoded-word.
    let word = "ü".repeat(100);
    let raw = subject(&format!(" {word}"));
    check_syntax(&raw, FOLD_AT);
    assert_eq!(decoded_subject(&raw), word);
    // Emoji (4-byte sequences) are never split across encoded-words.
    let emoji = "😀".repeat(40);
    let raw = subject(&format!(" x {emoji}"));
    check_syntax(&raw, FOLD_AT);
    assert_eq!(decoded_subject(&raw), format!("x {emoji}"));
}

#[test]
fn ascii_words_of_a_repaired_field_are_refolded_at_whitespace() {
    let ascii = "word ".repeat(30);
    let raw = subject(&format!(" ü {ascii}"));
    check_syntax(&raw, FOLD_AT);
    assert_eq!(decoded_subject(&raw), format!("ü {ascii}").trim_end());
    // Original folds are kept where they were.
    let raw = subject(" ü\r\n\tnext line");
    assert_eq!(raw, "Subject: =?UTF-8?B?w7w=?=\r\n\tnext line\r\n");
    // A token longer than a line is never split, but nothing exceeds 998.
    let long = "x".repeat(900);
    let raw = subject(&format!(" ü {long}"));
    check_syntax(&raw, 998);
    assert!(raw.contains(&format!("\r\n {long}")), "{raw}");
}

#[test]
fn first_line_room_is_used_and_long_names_fold_after_the_colon() {
    let raw = subject(&format!(" {}", "ä".repeat(40)));
    let first = raw.split("\r\n").next().unwrap();
    assert!(first.len() > 60 && first.len() <= FOLD_AT, "{raw}");
    let name = format!("X-{}:", "n".repeat(70));
    let raw = field(&name, &text_items(" ü", false));
    assert_eq!(raw, format!("{name}\r\n =?UTF-8?B?w7w=?=\r\n"));
}

#[test]
fn neighbouring_encoded_word_lookalikes_keep_their_space() {
    // The sender's own encoded-word next to a raw 8-bit word: the space
    // between them would be dropped by decoders, so it is encoded too.
    let raw = subject(" =?UTF-8?Q?a?= für =?UTF-8?Q?b?=");
    assert_eq!(decoded_subject(&raw), "a für b");
}

#[test]
fn comment_items_split_at_parentheses_and_unescape() {
    let items = text_items("Büro (intern) M\\(ü\\)nchen", true);
    assert_eq!(
        items,
        [
            Item::Encode("Büro".into()),
            Item::Ws(" "),
            Item::Text("(".into()),
            Item::Text("intern".into()),
            Item::Text(")".into()),
            Item::Ws(" "),
            Item::Encode("M(ü)nchen".into()),
        ]
    );
    // No space is needed between an encoded-word and a parenthesis.
    let mut items = vec![Item::Text("(".into())];
    items.extend(text_items("ü", true));
    items.push(Item::Text(")".into()));
    assert_eq!(field("X:", &items), "X:(=?UTF-8?B?w7w=?=)\r\n");
    // The closing parenthesis is kept within the line.
    let mut items = vec![
        Item::Ws(" "),
        Item::Text("x".repeat(50).into()),
        Item::Ws(" "),
    ];
    items.push(Item::Text("(".into()));
    items.extend(text_items("Büro", true));
    items.push(Item::Text(")".into()));
    let raw = field("From:", &items);
    check_syntax(&raw, FOLD_AT);
    assert!(raw.ends_with("?=)\r\n"), "{raw}");
}

#[test]
fn encoded_words_are_separated_from_adjacent_specials() {
    let items = [
        Item::Encode("Müller, Hans".into()),
        Item::Text("<a@b>".into()),
    ];
    assert_eq!(
        field("From:", &items),
        "From: =?UTF-8?B?TcO8bGxlciwgSGFucw==?= <a@b>\r\n"
    );
    let items = [
        Item::Ws(" "),
        Item::Text("a@b".into()),
        Item::Text(",".into()),
        Item::Encode("ü".into()),
        Item::Ws(" "),
        Item::Text("<c@d>".into()),
    ];
    assert_eq!(field("To:", &items), "To: a@b, =?UTF-8?B?w7w=?= <c@d>\r\n");
}

#[test]
fn a_break_comes_before_tokens_glued_together() {
    let mut items = vec![Item::Ws(" "), Item::Encode("ä".repeat(22))];
    for t in ["<", "someone", "@", "example.com", ">", ","] {
        items.push(Item::Text(t.into()));
    }
    let raw = field("To:", &items);
    check_syntax(&raw, FOLD_AT);
    assert!(raw.ends_with("?=\r\n <someone@example.com>,\r\n"), "{raw}");
}

#[test]
fn unfold_and_unescape() {
    assert_eq!(unfold("a\r\n b"), "a b");
    assert!(matches!(unfold("a b"), Cow::Borrowed(_)));
    assert_eq!(unescape(r#"M\"ü\\ller"#), r#"M"ü\ller"#);
    assert!(looks_encoded("=?x?q?y?=") && !looks_encoded("=?=") && !looks_encoded("a"));
}
