// Send one message with nodemailer, the SMTP client of most Node.js
// applications. nodemailer composes the message (RFC 2047 subject, base64
// attachment), and verifies postern's certificate against --cafile.
//
// Used by tests/it/clients.rs:
//   node send.js PORT starttls|implicit CAFILE USER PASSWORD FROM TO,TO SUBJECT BODYFILE ATTACHFILE TYPE
// Prints `RESPONSE: LAST SMTP REPLY` on success.
'use strict';

const fs = require('fs');
const path = require('path');
const nodemailer = require('nodemailer');

async function main() {
    const [port, mode, cafile, user, pass, from, to, subject, bodyFile, attachFile, attachType] =
        process.argv.slice(2);
    if (!attachType) {
        console.error('usage: send.js PORT MODE CAFILE USER PASSWORD FROM TO SUBJECT BODY ATTACH TYPE');
        process.exit(2);
    }
    const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: Number(port),
        secure: mode === 'implicit',
        requireTLS: mode !== 'implicit',
        name: 'nodemailer.client.test',
        auth: { user, pass },
        tls: { ca: [fs.readFileSync(cafile)], rejectUnauthorized: true },
        connectionTimeout: 60000,
        socketTimeout: 60000,
    });
    const info = await transport.sendMail({
        from: { name: 'App', address: from },
        to: to.split(','),
        subject,
        text: fs.readFileSync(bodyFile, 'utf8'),
        attachments: [{
            filename: path.basename(attachFile),
            content: fs.readFileSync(attachFile),
            contentType: attachType,
        }],
    });
    console.log('RESPONSE: ' + info.response);
}

main().catch((err) => {
    console.error('FAILED: ' + (err && err.stack ? err.stack : err));
    process.exit(1);
});
