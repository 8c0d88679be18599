//! `proxy`: the public proxy (engine data plane + JSON-RPC control plane) and the private proxy.
//! Settings come from `PROXY_SETTINGS` (a colon-separated list of settings files or directories).

use std::process::ExitCode;
use std::time::Duration;

use tandem_proxy::upgrade::{Inherited, ListenerRole, Upgrade};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tandem_net::cli::{LogArgs, VERSION, shutdown_signal};
use tandem_proxy::control_service::CtlCommand;
use tandem_proxy::settings::ProxySettings;
use tandem_proxy::{PrivateProxy, ProxyError, PublicProxy, bind_private, bind_public};

// The system allocator (unlike `hyper` and `sd`, which run mimalloc for their JSON work): the
// proxy's per-call work is the engine's, which allocates per pair, not per byte; and after idle
// pairs park, the engine gives their freed memory back with glibc's `malloc_trim`
// (`tandem_proxy::memory`), which mimalloc offers no equivalent of for an idle core thread.

/// The Tandem proxy: P2P pairing and TLS passthrough (public), outbound forwarding (private).
#[derive(Debug, Parser)]
#[command(name = "proxy", version = VERSION, after_help = "Example:\n  PROXY_SETTINGS=settings/dev/roles/public-proxy-1 proxy run public")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a proxy until SIGINT or SIGTERM (the public proxy then drains its pairs). SIGHUP (and,
    /// for the public proxy, `proxy ctl reload`) reloads certificates, keys, CA bundles, control
    /// admins and the log level. The public proxy upgrades on SIGUSR2: it starts the binary at its
    /// path and hands it every socket and pair (docs/operating.md, "Upgrade and rollback").
    Run {
        /// Which proxy.
        #[arg(value_enum)]
        which: Which,
        /// Seconds the new process of an upgrade may take from receiving the state to ready;
        /// past them it is killed and this process takes everything back.
        #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
        upgrade_ready_within: f64,
    },
    /// Validate the settings (and read their certificate, key and CA files, as a reload does) and
    /// print them, or every problem with file and key.
    CheckSettings,
    /// Drive a running public proxy through its ControlService (pairs, stats, drain, events).
    Ctl(CtlCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    /// `public:` settings.
    Public,
    /// `private:` settings.
    Private,
}

/// A positive, finite number of seconds.
fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!("`{text}` is not a number of seconds in (0, 3600]")),
    }
}

fn main() -> ExitCode {
    // The binary's path and arguments as started: an upgrade starts what is at that path then.
    let upgrade_binary = std::env::current_exe().ok();
    let upgrade_args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "proxy", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = cli.log.init() {
        eprintln!("proxy: {e}");
        return ExitCode::from(2);
    }
    tandem_serving::raise_open_file_limit();
    let command = match cli.command {
        Command::Version => {
            println!("proxy {VERSION}");
            return ExitCode::SUCCESS;
        }
        Command::Ctl(cmd) => return ctl(cmd),
        other => other,
    };
    let settings = match ProxySettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: invalid settings:\n{e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::CheckSettings => match tandem_proxy::reload::prepare(settings) {
            Ok(prepared) => {
                print!("{}", prepared.settings);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("proxy: invalid settings:\n{e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            which,
            upgrade_ready_within,
        } => {
            let upgrade = upgrade_binary.map(|binary| Upgrade {
                binary,
                args: upgrade_args,
                ready_within: Duration::from_secs_f64(upgrade_ready_within),
            });
            run(&settings, which, upgrade)
        }
        Command::Version | Command::Ctl(_) | Command::Completions { .. } => ExitCode::SUCCESS,
    }
}

fn ctl(cmd: CtlCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy ctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    match runtime.block_on(tandem_proxy::control_service::run(cmd, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy ctl: {e}");
            if e.kind() == "usage" {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Binds the `metrics:` address (served by whichever proxy runs).
async fn bind_metrics(
    m: &tandem_settings::MetricsSettings,
) -> Result<tandem_serving::ListenerGroup, ProxyError> {
    Ok(tandem_net::metrics::bind(m).await?)
}

fn run(settings: &ProxySettings, which: Which, upgrade: Option<Upgrade>) -> ExitCode {
    // Started by an upgrade: the previous process's state, before anything binds.
    let mut inherited = match (which, Inherited::from_env()) {
        (Which::Public, Some(Ok(i))) => Some(i),
        (_, Some(Err(e))) => {
            eprintln!("proxy: cannot take over from the previous process: {e}");
            return ExitCode::FAILURE;
        }
        _ => None,
    };
    let refuser = inherited.as_ref().and_then(Inherited::refuser);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), ProxyError> = runtime.block_on(async {
        tandem_proxy::reload::prepare(settings.clone())
            .map_err(|e| ProxyError::Settings(e.to_string()))?;
        tandem_net::reload::apply_log_level(settings.log_level.as_deref());
        match which {
            Which::Public => {
                let s = settings.public.as_ref().ok_or_else(|| {
                    ProxyError::Settings("`proxy run public` needs a `public:` block".into())
                })?;
                let (jsonrpc, metrics) = match inherited.as_mut() {
                    Some(i) => (
                        i.listener(ListenerRole::JsonRpc)?,
                        i.listener(ListenerRole::Metrics)?,
                    ),
                    None => (None, None),
                };
                let listener = match jsonrpc {
                    Some(l) => l,
                    None => bind_public(s).await?,
                };
                let source: tandem_proxy::reload::ProxySettingsSource =
                    std::sync::Arc::new(ProxySettings::from_env);
                let mut proxy = match inherited.take() {
                    Some(i) => PublicProxy::start_inherited(s, listener, i).await?,
                    None => PublicProxy::start(s, listener).await?,
                }
                .with_reloads(source);
                if let Some(m) = &settings.metrics {
                    let l = match metrics {
                        Some(l) => l,
                        None => bind_metrics(m).await?,
                    };
                    proxy = proxy.with_metrics(l);
                }
                if let Some(up) = upgrade {
                    proxy = proxy.with_upgrade(up);
                }
                proxy.serve(shutdown_signal()).await
            }
            Which::Private => {
                let s = settings.private.as_ref().ok_or_else(|| {
                    ProxyError::Settings("`proxy run private` needs a `private:` block".into())
                })?;
                let listener = bind_private(s).await?;
                let source: tandem_proxy::reload::ProxySettingsSource =
                    std::sync::Arc::new(ProxySettings::from_env);
                let mut proxy = PrivateProxy::start(s, listener).await?.with_reloads(source);
                if let Some(m) = &settings.metrics {
                    proxy = proxy.with_metrics(bind_metrics(m).await?);
                }
                proxy.serve(shutdown_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, "proxy failed");
            eprintln!("proxy: {e}");
            if let Some(r) = refuser {
                r.refuse(&e.to_string());
            }
            ExitCode::FAILURE
        }
    }
}
