//! Command line entry point: parses arguments and dispatches; no logic here.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "postern",
    version,
    about = "SMTP submission relay that delivers mail through HTTPS email APIs",
    after_help = "Examples:\n  \
        postern run --demo                               # try it: 127.0.0.1:2525, self-signed TLS, writes .eml files\n  \
        postern check-config --config /etc/postern/postern.toml\n  \
        echo -n 'app password' | postern hash-secret     # argon2id hash for secret_hash\n  \
        postern token new erp [--expires 2027-01-31]     # fresh token + [credentials.erp] block\n  \
        postern run --config /etc/postern/postern.toml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay daemon.
    Run {
        /// Main configuration file.
        #[arg(long, default_value = postern::config::DEFAULT_PATH, conflicts_with = "demo")]
        config: PathBuf,
        /// Use the embedded demo configuration (127.0.0.1:2525, user demo / demo-password).
        #[arg(long)]
        demo: bool,
    },
    /// Validate the configuration (like `nginx -t`) and exit.
    CheckConfig {
        #[arg(long, default_value = postern::config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Read a password on stdin and print its argon2id PHC hash.
    HashSecret,
    /// Manage application tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// DKIM signing keys.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// Check DOMAIN's SPF, DKIM and DMARC records against the configuration.
    DnsCheck {
        /// The sending domain, e.g. example.com.
        domain: String,
        /// Configuration to read DKIM selectors and upstreams from
        /// (default /etc/postern/postern.toml, skipped with a WARN if absent).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print a JSON array of {check, status, detail, fix}.
        #[arg(long)]
        json: bool,
        /// Ask this DNS server (IP:PORT) instead of the system resolver.
        #[arg(long, value_name = "IP:PORT")]
        resolver: Option<String>,
    },
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Write a new private key (mode 0600) and print its DNS TXT record and [[dkim]] block.
    Keygen {
        /// Signing domain (d=), e.g. example.com.
        #[arg(long)]
        domain: String,
        /// Selector (s=); the record goes to SELECTOR._domainkey.DOMAIN.
        #[arg(long)]
        selector: String,
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
        /// RSA key size (2048 to 4096; default 2048).
        #[arg(long)]
        bits: Option<usize>,
        /// Directory for DOMAIN.SELECTOR.pem (created with mode 0700 if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a fresh random token once, and the [credentials.NAME] block to paste.
    New {
        /// Credential name (also used as the SMTP username).
        name: String,
        /// The token stops working at this instant: a date (2027-01-31,
        /// midnight UTC) or an RFC 3339 time with offset (2027-01-31T12:00:00Z).
        #[arg(long, value_name = "DATE")]
        expires: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, demo } => {
            postern::daemon::main(if demo { None } else { Some(config) })
        }
        Command::CheckConfig { config } => postern::cli::check_config(&config),
        Command::HashSecret => postern::cli::hash_secret(),
        Command::Token(TokenCommand::New { name, expires }) => {
            postern::cli::token_new(&name, expires.as_deref())
        }
        Command::DnsCheck {
            domain,
            config,
            json,
            resolver,
        } => postern::cli::dns_check(&postern::cli::DnsCheck {
            domain,
            config,
            json,
            resolver,
        }),
        Command::Dkim(DkimCommand::Keygen {
            domain,
            selector,
            algorithm,
            bits,
            out,
        }) => postern::cli::dkim_keygen(&postern::dkim::KeygenRequest {
            domain: &domain,
            selector: &selector,
            algorithm: &algorithm,
            bits,
            out: &out,
        }),
    }
}
