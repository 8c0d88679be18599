//! `proxy ctl`: the ControlService's command line for operators and scripts.
//!
//! ```text
//! proxy ctl [--addr HOST:PORT] [--operator NAME | --cert F --key F --ca F] [--server-name N] ACTION
//!   pair create [--json] [--ttl SECS]   {"endpoint":"HOST:PORT","tokens":["<b64>","<b64>"],"expires_at":"<RFC 3339>"}
//!   pairs [--json] [--limit N]
//!   stats [--json] [--watch [--interval SECS] [--count N]]
//!   drain [--grace SECS]
//!   events [--json] [--count N]
//!   reload
//!   quotas [--json]
//! ```

mod quotas;
mod render;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use rustls_pki_types::ServerName;

use super::client::{ClientError, ControlClient};
use tandem_net::tls::TlsError;
use tandem_settings::tls::TlsSettings;

/// Where the dev certificates live when `--operator NAME` is given without explicit files.
const DEV_CERTS: &str = "settings/dev/certs";
/// Longest `stats --watch` refresh interval, in seconds (a typo like `--interval 3600` still redraws).
const MAX_INTERVAL_SECS: u64 = 300;

/// `proxy ctl`: the target flags and one action.
#[derive(Debug, Clone, Args)]
pub struct CtlCommand {
    /// Which proxy to talk to and as whom.
    #[command(flatten)]
    pub target: CtlTarget,
    /// What to do.
    #[command(subcommand)]
    pub action: CtlAction,
}

/// The control service to reach and the client identity.
#[derive(Debug, Clone, Args)]
pub struct CtlTarget {
    /// The proxy's control address, HOST:PORT.
    #[arg(long, env = "PROXY_CTL_ADDR", global = true)]
    pub addr: Option<String>,
    /// Use the dev certificates of this operator (`settings/dev/certs/<NAME>.crt/.key`, `root.crt`)
    /// for whatever --cert/--key/--ca leave unset.
    #[arg(long, env = "PROXY_CTL_OPERATOR", global = true)]
    pub operator: Option<String>,
    /// Client certificate (PEM chain).
    #[arg(long, env = "PROXY_CTL_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, env = "PROXY_CTL_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// CA certificate the proxy's certificate must chain to.
    #[arg(long, env = "PROXY_CTL_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// Name to verify the proxy's certificate against (default: the host of --addr).
    #[arg(long, env = "PROXY_CTL_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
    /// Seconds allowed to connect and for each call.
    #[arg(long, env = "PROXY_CTL_TIMEOUT", default_value_t = 10, global = true)]
    pub timeout: u64,
}

/// One `proxy ctl` action.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlAction {
    /// Pairs: `pair create`.
    #[command(subcommand)]
    Pair(PairCommand),
    /// List live and waiting pairs with per-core counts.
    Pairs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Most pairs to list (0 = the server's default).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Per-core engine counters.
    Stats {
        /// Print JSON (one object per refresh with --watch).
        #[arg(long)]
        json: bool,
        /// Redraw every --interval seconds until Ctrl-C or --count refreshes.
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 1, requires = "watch")]
        interval: u64,
        /// Stop after this many refreshes with --watch.
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// Stop new pairs, let live pairs finish for --grace seconds, close the rest.
    Drain {
        /// Seconds live pairs may finish.
        #[arg(long, default_value_t = 10)]
        grace: u64,
    },
    /// Upgrade the proxy's binary in place (as SIGUSR2): the binary at its path takes every
    /// socket and pair; prints the outcome (exit 1 when the old process kept serving).
    Upgrade {
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 120)]
        within: u64,
    },
    /// Re-read the settings and install certificates, keys, CA bundles, admins and the log level
    /// without a restart (as SIGHUP does); on any error nothing changes and the error names the
    /// file and key.
    Reload,
    /// Per-operator quotas: limits and use (operators named in the settings or counted).
    Quotas {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print pair events as they happen, until Ctrl-C or --count events.
    Events {
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `proxy ctl pair ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum PairCommand {
    /// Issue a pair: its endpoint and two single-use tokens.
    Create {
        /// Print `{"endpoint","tokens","expires_at"}`.
        #[arg(long)]
        json: bool,
        /// Token lifetime in seconds (default: the proxy's).
        #[arg(long)]
        ttl: Option<u64>,
    },
}

/// Why `proxy ctl` failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A flag is missing or wrong.
    #[error("{0}")]
    Usage(String),
    /// The client TLS files are unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// The call failed.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// An upgrade did not happen; the old process serves on.
    #[error("upgrade rolled back: {0}")]
    RolledBack(String),
}

impl CtlError {
    /// A stable label (scripts may branch on the exit message's kind).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::RolledBack(_) => "rolled_back",
            Self::Tls(e) => e.kind(),
            Self::Client(e) => e.kind(),
            Self::Output(_) => "output",
        }
    }
}

impl From<serde_json::Error> for CtlError {
    fn from(e: serde_json::Error) -> Self {
        Self::Output(e.into())
    }
}

impl CtlTarget {
    fn file(
        &self,
        given: &Option<PathBuf>,
        dev_name: impl Fn(&str) -> String,
        what: &str,
    ) -> Result<PathBuf, CtlError> {
        if let Some(p) = given {
            return Ok(p.clone());
        }
        match &self.operator {
            Some(op) => Ok(PathBuf::from(DEV_CERTS).join(dev_name(op))),
            None => Err(CtlError::Usage(format!(
                "--{what} (or PROXY_CTL_{}) is required unless --operator NAME is given",
                what.to_uppercase()
            ))),
        }
    }

    /// The client TLS settings these flags describe.
    pub fn tls_settings(&self) -> Result<TlsSettings, CtlError> {
        Ok(TlsSettings {
            ca_certificate_files: vec![self.file(&self.ca, |_| "root.crt".into(), "ca")?],
            certificate_file: Some(self.file(&self.cert, |op| format!("{op}.crt"), "cert")?),
            key_file: Some(self.file(&self.key, |op| format!("{op}.key"), "key")?),
            server_name: self.server_name.clone(),
            verify_client: false,
            request_client_cert: false,
            insecure_skip_verify: false,
        })
    }

    /// Connects as these flags say.
    pub async fn connect(&self) -> Result<ControlClient, CtlError> {
        let addr = self.addr.as_deref().ok_or_else(|| {
            CtlError::Usage("--addr HOST:PORT (or PROXY_CTL_ADDR) is required".into())
        })?;
        let settings = self.tls_settings()?;
        let tls = tandem_net::tls::client_config(&settings, &[b"h2"])?;
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let name: ServerName<'static> = tandem_net::tls::server_name(&settings, host)?;
        let timeout = Duration::from_secs(self.timeout.max(1));
        Ok(ControlClient::connect(addr, Arc::clone(&tls), name, timeout).await?)
    }
}

/// Runs one `proxy ctl` command, writing its output to `out`.
pub async fn run(cmd: CtlCommand, out: &mut impl Write) -> Result<(), CtlError> {
    let client = cmd.target.connect().await?;
    match cmd.action {
        CtlAction::Pair(PairCommand::Create { json, ttl }) => {
            let pair = client.create_pair(ttl.map(Duration::from_secs)).await?;
            render::created_pair(out, &pair, json)?;
        }
        CtlAction::Pairs { json, limit } => {
            let list = client.list_pairs(limit).await?;
            render::pairs(out, &list, json)?;
        }
        CtlAction::Stats {
            json,
            watch,
            interval,
            count,
        } => {
            if watch {
                let every = Duration::from_secs(interval.clamp(1, MAX_INTERVAL_SECS));
                watch_stats(&client, out, json, every, count).await?;
            } else {
                render::stats(out, &client.stats().await?, json)?;
            }
        }
        CtlAction::Drain { grace } => {
            let done = client.drain(Duration::from_secs(grace)).await?;
            writeln!(
                out,
                "drained: {} live pairs at start, took {} ms",
                done.live_at_start, done.took_ms
            )?;
        }
        CtlAction::Upgrade { within } => {
            let r = client.upgrade(Duration::from_secs(within)).await?;
            if !r.completed {
                return Err(CtlError::RolledBack(r.reason));
            }
            writeln!(
                out,
                "upgraded: new pid {}, {} live and {} issued pairs handed over in {} ms",
                r.new_pid, r.live_pairs, r.issued_pairs, r.took_ms
            )?;
        }
        CtlAction::Events { json, count } => watch_events(&client, out, json, count).await?,
        CtlAction::Reload => {
            let done = client.reload().await?;
            writeln!(out, "reloaded: {}", done.applied.join(", "))?;
        }
        CtlAction::Quotas { json } => quotas::render(out, &client.quotas().await?, json)?,
    }
    out.flush()?;
    Ok(())
}

/// Redraws the stats table in place every `every` until Ctrl-C or `count` refreshes.
async fn watch_stats(
    client: &ControlClient,
    out: &mut impl Write,
    json: bool,
    every: Duration,
    count: Option<u64>,
) -> Result<(), CtlError> {
    let mut ticker = tokio::time::interval(every);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut drawn = 0usize;
    let mut refreshes = 0u64;
    while count.is_none_or(|c| refreshes < c) {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = ticker.tick() => {}
        }
        let stats = client.stats().await?;
        if json {
            render::stats(out, &stats, true)?;
        } else {
            drawn = render::redraw_stats(out, &stats, drawn)?;
        }
        out.flush()?;
        refreshes += 1;
    }
    Ok(())
}

/// Prints events until Ctrl-C, the end of the stream or `count` events.
async fn watch_events(
    client: &ControlClient,
    out: &mut impl Write,
    json: bool,
    count: Option<u64>,
) -> Result<(), CtlError> {
    let mut stream = client.watch_events().await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        let event = tokio::select! {
            _ = &mut ctrl_c => break,
            next = stream.message() => match next.map_err(ClientError::from)? {
                Some(e) => e,
                None => break,
            },
        };
        render::event(out, &event, json)?;
        out.flush()?;
        seen += 1;
    }
    Ok(())
}
