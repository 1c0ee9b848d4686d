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
        postern run --config /etc/postern/postern.toml\n  \
        postern status                                   # queue, upstreams, lockouts, suspensions\n  \
        postern spool list --dead                        # dead letters; `spool retry --all-dead` requeues them\n  \
        postern credential suspend erp --for 2h --reason 'leaked'"
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
    /// Queued messages and dead letters of the running daemon (list and show
    /// also work on a stopped daemon's spool).
    #[command(subcommand)]
    Spool(SpoolCommand),
    /// What the running daemon is doing: listeners, queue, delivery rate,
    /// upstreams, lockouts, suspended credentials, busiest quota keys.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Suspend or resume a credential at once, without editing the configuration.
    #[command(subcommand)]
    Credential(CredentialCommand),
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

/// Which daemon to talk to.
#[derive(clap::Args, Clone)]
struct TargetArgs {
    /// Configuration whose [server] state_dir locates the daemon.
    #[arg(long, default_value = postern::config::DEFAULT_PATH)]
    config: PathBuf,
    /// The daemon's state_dir (instead of reading the configuration).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl TargetArgs {
    fn target(self) -> postern::cli::Target {
        postern::cli::Target {
            config: self.config,
            state_dir: self.state_dir,
        }
    }
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// List queued messages (or dead letters): id, state, age, size,
    /// attempts, next attempt, sender, recipients, last error.
    List {
        /// The dead letters instead of the queue.
        #[arg(long)]
        dead: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// One message: envelope, headers (never the body), delivery history.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Attempt queued messages now; put dead letters back in the queue.
    Retry {
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete messages or dead letters for good (asks unless --yes).
    Purge {
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        ids: Vec<String>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Stop delivering messages until released (kept across restarts).
    Hold {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Deliver held messages again (attempted at once).
    Release {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Take over the spool another node left (its state_dir or its spool
    /// directory): queued messages and dead letters move here with their
    /// retry state and are delivered by this node. Refused while a live
    /// process holds that spool's lock.
    Adopt {
        path: std::path::PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Refuse AUTH and every MAIL of the credential from now on, in open
    /// sessions too; kept across reloads and restarts.
    Suspend {
        /// Credential name (the [credentials.NAME] key).
        name: String,
        /// Lift the suspension by itself after this long ("2h", "30m", "1d").
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Why (shown by `postern status` and in the audit trail).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Lift a suspension.
    Resume {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
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
        Command::Spool(cmd) => spool(cmd),
        Command::Status { target, json } => postern::cli::status(&target.target(), json),
        Command::Credential(CredentialCommand::Suspend {
            name,
            duration,
            reason,
            target,
        }) => {
            postern::cli::credential_suspend(&target.target(), &name, duration.as_deref(), reason)
        }
        Command::Credential(CredentialCommand::Resume { name, target }) => {
            postern::cli::credential_resume(&target.target(), &name)
        }
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

fn spool(cmd: SpoolCommand) -> ExitCode {
    use postern::cli::SpoolAction as A;
    let (target, action) = match cmd {
        SpoolCommand::List { dead, json, target } => (target, A::List { dead, json }),
        SpoolCommand::Show { id, json, target } => (target, A::Show { id, json }),
        SpoolCommand::Retry {
            ids,
            all_dead,
            target,
        } => (target, A::Retry { ids, all_dead }),
        SpoolCommand::Purge {
            ids,
            all_dead,
            yes,
            target,
        } => (target, A::Purge { ids, all_dead, yes }),
        SpoolCommand::Hold { ids, target } => (target, A::Hold { ids }),
        SpoolCommand::Release { ids, target } => (target, A::Release { ids }),
        SpoolCommand::Adopt { path, target } => (target, A::Adopt { path }),
    };
    postern::cli::spool(&target.target(), action)
}
