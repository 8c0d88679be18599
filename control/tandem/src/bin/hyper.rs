//! `hyper`: an operator's server and its tools. Settings come from `HYPER_SETTINGS` (a
//! colon-separated list of settings files or directories).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tandem_hyper::certs::{CertsPlan, generate};
use tandem_hyper::cli::{self, CliError};
use tandem_net::cli::{LogArgs, VERSION, shutdown_signal};
use tandem_settings::HyperSettings;

/// mimalloc: one brokered call allocates thousands of small JSON and protobuf nodes, and glibc's
/// malloc and free took a third of the node's CPU per call (bench/README.md, `broker`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Tandem operator: the server and the directory and certificate tools.
#[derive(Debug, Parser)]
#[command(name = "hyper", version = VERSION, after_help = "Examples:
  hyper certs                                   # dev PKI under settings/dev/certs
  HYPER_SETTINGS=settings/dev/roles/hd-1 hyper sd submit-records --reset records.json
  HYPER_SETTINGS=settings/dev/roles/hd-1 hyper sd get-entries --name hd-2")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The operator server.
    #[command(alias = "s")]
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
    /// Service directory commands (sign, submit and read records).
    Sd {
        #[command(subcommand)]
        command: SdCommand,
    },
    /// Generate the dev PKI (root, intermediate, operator TLS and signing certificates) and the
    /// certificates directory file that pins their fingerprints. Idempotent.
    Certs {
        /// Where the certificates go.
        #[arg(long, default_value = "settings/dev/certs")]
        certs_dir: PathBuf,
        /// Where `002_certificates.json` goes.
        #[arg(long, default_value = "settings/dev/directory")]
        directory_dir: PathBuf,
        /// Regenerate everything, even valid files.
        #[arg(long)]
        force: bool,
    },
    /// Validate the settings and print them (secrets masked), or every problem with file and key.
    CheckSettings,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Serve until SIGINT or SIGTERM: the JSON-RPC gateway, gRPC to peers, the directory client.
    /// SIGHUP reloads the listeners' certificates, keys and CA bundles and the log level. Adopts
    /// the sockets systemd passes (`LISTEN_FDS`, names `grpc_server`, `jsonrpc_server`, `metrics`)
    /// instead of binding them.
    Run,
}

#[derive(Debug, Subcommand)]
enum SdCommand {
    /// Sign the records of FILE (`{"records": [...]}`) as a chain after the directory's tip and submit them.
    SubmitRecords {
        /// Start a new chain (the first record becomes a root) instead of appending to the tip.
        #[arg(long)]
        reset: bool,
        /// The records file.
        file: PathBuf,
    },
    /// Print the directory's entries as JSON.
    GetEntries {
        /// Only this operator's entry.
        #[arg(long)]
        name: Option<String>,
    },
    /// Sign the JSON of FILE and print `{"signature": ..., "data": ...}`.
    Sign {
        /// The JSON file.
        file: PathBuf,
    },
    /// Verify a file written by `sign`, with its certificate valid for NAME.
    Verify {
        /// The signed file.
        file: PathBuf,
        /// The operator name the signing certificate must be valid for.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "hyper", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = cli.log.init() {
        eprintln!("hyper: {e}");
        return ExitCode::from(2);
    }
    tandem_serving::raise_open_file_limit();
    if let Err(e) = tandem_serving::adopt_from_env() {
        eprintln!("hyper: socket activation: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Version => {
            println!("hyper {VERSION}");
            ExitCode::SUCCESS
        }
        Command::Completions { .. } => ExitCode::SUCCESS,
        Command::Certs {
            certs_dir,
            directory_dir,
            force,
        } => match generate(&CertsPlan::dev(certs_dir, directory_dir).force(force)) {
            Ok(report) => {
                println!(
                    "certificates: {} written, {} reused; {} {}",
                    report.written.len(),
                    report.reused.len(),
                    report.directory_file.display(),
                    if report.directory_file_written {
                        "written"
                    } else {
                        "up to date"
                    },
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&CliError::from(e)),
        },
        Command::CheckSettings => match HyperSettings::from_env()
            .map_err(tandem_net::reload::ReloadError::from)
            .and_then(tandem_hyper::hyper_server::prepare)
        {
            Ok(prepared) => {
                let settings = prepared.settings;
                println!("{settings}");
                for warning in settings.warnings() {
                    println!("WARNING: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hyper: invalid settings:\n{e}");
                ExitCode::from(2)
            }
        },
        Command::Server {
            command: ServerCommand::Run,
        } => match HyperSettings::from_env() {
            Ok(settings) => run_server(&settings),
            Err(e) => {
                eprintln!("hyper: invalid settings:\n{e}");
                ExitCode::from(2)
            }
        },
        Command::Sd { command } => match HyperSettings::from_env() {
            Ok(settings) => run_sd(&settings, command),
            Err(e) => {
                eprintln!("hyper: invalid settings:\n{e}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_server(settings: &HyperSettings) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listeners = tandem_hyper::hyper_server::Listeners::bind(settings).await?;
        let source: tandem_hyper::hyper_server::HyperSettingsSource =
            std::sync::Arc::new(HyperSettings::from_env);
        tandem_hyper::hyper_server::run_reloading(settings, listeners, shutdown_signal(), source)
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, "hyper server failed");
            eprintln!("hyper: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_sd(settings: &HyperSettings, command: SdCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<String, CliError> = runtime.block_on(async {
        match command {
            SdCommand::SubmitRecords { reset, file } => cli::submit_records(settings, &file, reset)
                .await
                .map(|n| format!("submitted {n} record(s) from {}", file.display())),
            SdCommand::GetEntries { name } => cli::get_entries(settings, name.as_deref())
                .await
                .map(|v| pretty(&v)),
            SdCommand::Sign { file } => cli::sign(settings, &file).map(|s| pretty(&s)),
            SdCommand::Verify { file, name } => cli::verify(settings, &file, &name)
                .map(|signer| format!("valid signature by {signer}")),
        }
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(unprintable: {e})"))
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("hyper: {error}");
    ExitCode::FAILURE
}
