//! `sd`: the service directory server. Settings come from `SD_SETTINGS` (a colon-separated list of
//! settings files or directories).

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tandem_net::cli::{LogArgs, VERSION, shutdown_signal};
use tandem_settings::SdSettings;

/// mimalloc: one brokered call allocates thousands of small JSON and protobuf nodes, and glibc's
/// malloc and free took a third of the node's CPU per call (bench/README.md, `broker`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Tandem service directory: stores signed change records and serves directory entries.
#[derive(Debug, Parser)]
#[command(name = "sd", version = VERSION, after_help = "Example:\n  SD_SETTINGS=settings/dev/roles/sd-1 sd run")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the directory until SIGINT or SIGTERM; SIGHUP reloads the certificates, keys, CA
    /// bundle, limits and log level from the settings. Adopts the sockets systemd passes
    /// (`LISTEN_FDS`, names `jsonrpc_server` and `metrics`) instead of binding them.
    Run,
    /// Validate the settings (and read their certificate, key and CA files, as a reload does) and
    /// print them (secrets masked), or every problem with file and key.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "sd", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = cli.log.init() {
        eprintln!("sd: {e}");
        return ExitCode::from(2);
    }
    tandem_serving::raise_open_file_limit();
    if let Err(e) = tandem_serving::adopt_from_env() {
        eprintln!("sd: socket activation: {e}");
        return ExitCode::from(2);
    }
    if let Command::Version = cli.command {
        println!("sd {VERSION}");
        return ExitCode::SUCCESS;
    }
    let settings = match SdSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sd: invalid settings:\n{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckSettings => match tandem_sd::reload::prepare(settings) {
            Ok(prepared) => {
                println!("{}", prepared.settings);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sd: invalid settings:\n{e}");
                ExitCode::from(2)
            }
        },
        Command::Run => run(&settings),
        Command::Version | Command::Completions { .. } => ExitCode::SUCCESS,
    }
}

fn run(settings: &SdSettings) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tandem_sd::bind(settings).await?;
        let source: tandem_sd::SettingsSource = std::sync::Arc::new(SdSettings::from_env);
        tandem_sd::run_reloading(settings, listener, shutdown_signal(), source).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, "sd failed");
            eprintln!("sd: {e}");
            ExitCode::FAILURE
        }
    }
}
