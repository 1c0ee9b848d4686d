<?php
// Send one message with PHPMailer (Debian's libphp-phpmailer), the way a PHP
// web application (WordPress plugins, shops, CRMs) talks SMTP.
//
// Used by tests/it/clients.rs. PHPMailer composes the MIME message itself
// (RFC 2047 subject, base64 attachment) and verifies postern's certificate
// against --cafile. Prints `SENT: queued as ID` on success.

require '/usr/share/php/libphp-phpmailer/autoload.php';

use PHPMailer\PHPMailer\PHPMailer;

$o = getopt('', ['port:', 'mode:', 'cafile:', 'user:', 'password:', 'from:', 'to:',
                 'subject:', 'body-file:', 'attach-file:', 'attach-type:']);
foreach (['port', 'mode', 'cafile', 'user', 'password', 'from', 'to', 'subject',
          'body-file', 'attach-file', 'attach-type'] as $k) {
    if (!isset($o[$k])) {
        fwrite(STDERR, "missing --$k\n");
        exit(2);
    }
}

$m = new PHPMailer(true);
try {
    $m->isSMTP();
    $m->Host = '127.0.0.1';
    $m->Port = (int)$o['port'];
    $m->Helo = 'phpmailer.client.test';
    $m->SMTPAuth = true;
    $m->Username = $o['user'];
    $m->Password = $o['password'];
    $m->SMTPSecure = $o['mode'] === 'implicit' ? PHPMailer::ENCRYPTION_SMTPS
                                               : PHPMailer::ENCRYPTION_STARTTLS;
    $m->SMTPOptions = ['ssl' => [
        'cafile' => $o['cafile'],
        'verify_peer' => true,
        'verify_peer_name' => true,
        'allow_self_signed' => false,
    ]];
    $m->Timeout = 60;
    $m->CharSet = PHPMailer::CHARSET_UTF8;
    $m->setFrom($o['from'], 'App');
    foreach (explode(',', $o['to']) as $rcpt) {
        $m->addAddress($rcpt);
    }
    $m->Subject = $o['subject'];
    $m->Body = file_get_contents($o['body-file']);
    $m->addAttachment($o['attach-file'], basename($o['attach-file']),
                      PHPMailer::ENCODING_BASE64, $o['attach-type']);
    $m->send();
    // The queue ID PHPMailer read from the reply to the final dot.
    echo 'SENT: queued as ', $m->getSMTPInstance()->getLastTransactionID(), "\n";
} catch (Exception $e) {
    echo 'FAILED: ', $m->ErrorInfo, "\n";
    exit(1);
}
