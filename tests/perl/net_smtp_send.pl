#!/usr/bin/perl
# Send one message with Perl's Net::SMTP (libnet), as monitoring scripts and
# old CGI code do: the script builds the MIME message with core modules only
# (Encode's MIME-Header for the subject, MIME::Base64 for the attachment),
# then STARTTLS (`starttls`, IO::Socket::SSL) or implicit TLS (`SSL => 1`),
# AUTH (Authen::SASL), MAIL, RCPT, DATA.
#
# Used by tests/it/clients.rs. Writes the message it handed to `datasend` to
# --out and prints `DATA-REPLY: CODE TEXT` for the reply to the final dot.
use strict;
use warnings;
use Encode qw(encode);
use Getopt::Long;
use MIME::Base64 qw(encode_base64);
use Net::SMTP;

my %o;
GetOptions(\%o, 'port=i', 'mode=s', 'cafile=s', 'user=s', 'password=s', 'from=s',
           'to=s', 'subject=s', 'body-file=s', 'attach-file=s', 'attach-type=s',
           'out=s') or exit 2;
for my $k (qw(port mode cafile user password from to subject body-file
              attach-file attach-type out)) {
    die "missing --$k\n" unless defined $o{$k};
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!\n";
    local $/;
    return <$fh>;
}

my @rcpts = split /,/, $o{to};
my $name = $o{'attach-file'};
$name =~ s{.*/}{};
my $boundary = 'perl-boundary-' . $$;
# The options arrive as UTF-8 bytes; MIME-Header wants characters.
my $subject = encode('MIME-Header', Encode::decode('UTF-8', $o{subject}));
my $msg = "From: App <$o{from}>\n"
    . 'To: ' . join(', ', @rcpts) . "\n"
    . "Subject: $subject\n"
    . "Date: Mon, 02 Mar 2026 10:00:00 +0000\n"
    . "Message-ID: <net-smtp-$o{port}\@example.com>\n"
    . "MIME-Version: 1.0\n"
    . "Content-Type: multipart/mixed; boundary=\"$boundary\"\n"
    . "\n"
    . "--$boundary\n"
    . "Content-Type: text/plain; charset=UTF-8\n"
    . "Content-Transfer-Encoding: base64\n\n"
    . encode_base64(slurp($o{'body-file'}))
    . "--$boundary\n"
    . "Content-Type: $o{'attach-type'}; name=\"$name\"\n"
    . "Content-Transfer-Encoding: base64\n"
    . "Content-Disposition: attachment; filename=\"$name\"\n\n"
    . encode_base64(slurp($o{'attach-file'}))
    . "--$boundary--\n";
open(my $out, '>:raw', $o{out}) or die "$o{out}: $!\n";
print $out $msg;
close $out;

my %tls = (SSL_ca_file => $o{cafile}, SSL_verify_mode => 1);
my $smtp = Net::SMTP->new('127.0.0.1',
    Port => $o{port},
    Hello => 'perl.client.test',
    Timeout => 60,
    ($o{mode} eq 'implicit' ? (SSL => 1, %tls) : ()),
) or die "connect: $@\n";
if ($o{mode} ne 'implicit') {
    $smtp->starttls(%tls) or die 'STARTTLS failed: ' . $smtp->message . " $IO::Socket::SSL::SSL_ERROR\n";
}
$smtp->auth($o{user}, $o{password}) or die 'AUTH failed: ' . $smtp->code . ' ' . $smtp->message;
$smtp->mail($o{from}) or die 'MAIL failed: ' . $smtp->code . ' ' . $smtp->message;
for my $r (@rcpts) {
    $smtp->to($r) or die "RCPT $r failed: " . $smtp->code . ' ' . $smtp->message;
}
$smtp->data() or die 'DATA failed: ' . $smtp->code . ' ' . $smtp->message;
$smtp->datasend($msg);
my $ok = $smtp->dataend();
my $text = $smtp->message;
$text =~ s/\s+$//;
print 'DATA-REPLY: ', $smtp->code, ' ', $text, "\n";
$smtp->quit;
exit($ok ? 0 : 1);
