<?php
// Send one message with PHP's mail(), as old PHP code does: the script
// writes the MIME structure by hand, passes the subject as raw UTF-8 (no
// RFC 2047, as most such code does), and PHP pipes the result to the
// `sendmail_path` program, here msmtp (`php -d sendmail_path='msmtp -C FILE -t'`).
//
// Used by tests/it/clients.rs. Prints `MAIL: OK` when mail() reported success
// (msmtp exited 0, so postern answered 250).

$o = getopt('', ['to:', 'from:', 'subject:', 'body-file:', 'attach-file:', 'attach-type:']);
foreach (['to', 'from', 'subject', 'body-file', 'attach-file', 'attach-type'] as $k) {
    if (!isset($o[$k])) {
        fwrite(STDERR, "missing --$k\n");
        exit(2);
    }
}

$boundary = 'b1_' . bin2hex(random_bytes(8));
$name = basename($o['attach-file']);
$headers = [
    'From' => 'App <' . $o['from'] . '>',
    'Date' => date(DATE_RFC2822),
    'Message-ID' => '<php-mail-' . bin2hex(random_bytes(6)) . '@example.com>',
    'MIME-Version' => '1.0',
    'Content-Type' => "multipart/mixed; boundary=\"$boundary\"",
];
$body = "This is a multi-part message in MIME format.\n"
    . "--$boundary\n"
    . "Content-Type: text/plain; charset=UTF-8\n"
    . "Content-Transfer-Encoding: 8bit\n\n"
    . file_get_contents($o['body-file'])
    . "--$boundary\n"
    . "Content-Type: {$o['attach-type']}; name=\"$name\"\n"
    . "Content-Transfer-Encoding: base64\n"
    . "Content-Disposition: attachment; filename=\"$name\"\n\n"
    . chunk_split(base64_encode(file_get_contents($o['attach-file'])), 76, "\n")
    . "--$boundary--\n";

if (!mail(str_replace(',', ', ', $o['to']), $o['subject'], $body, $headers)) {
    echo "MAIL: FAILED\n";
    exit(1);
}
echo "MAIL: OK\n";
