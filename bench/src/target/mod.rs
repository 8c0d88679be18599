//! The systems a workload runs against, behind one [`Target`] trait: direct TCP, Tandem in
//! process (drivers × relay paths), and the HAProxy / nginx / socat baselines as child processes.

mod baseline;
mod direct;
mod echo;
pub mod floors;
pub mod mesh;
mod mesh_files;
mod remote;
mod tandem;

use std::net::{Ipv4Addr, TcpStream};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::procfs::Resources;
use crate::workload::PairCreation;

pub use baseline::{Baseline, baseline_version};
pub use direct::Direct;
pub use echo::EchoServer;
pub use remote::{Remote, RemoteSettings};
pub use tandem::Tandem;

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Loopback TCP with no relay: the ceiling.
    Direct,
    /// Tandem in process, io_uring driver, splice path.
    TandemUringSplice,
    /// Tandem in process, io_uring driver, copy path (pipe pool of 0).
    TandemUringCopy,
    /// Tandem in process, epoll driver, splice path.
    TandemEpollSplice,
    /// Tandem in process, epoll driver, copy path.
    TandemEpollCopy,
    /// HAProxy `mode tcp` with `option splice-request` and `option splice-response`.
    HaproxySplice,
    /// HAProxy `mode tcp` with its defaults (no splice).
    HaproxyDefault,
    /// nginx `stream {}` proxy.
    Nginx,
    /// socat, one forked process per connection.
    Socat,
    /// A running `proxy` at `--target ADDR`: pairs created through its ControlService.
    TandemProxy,
}

impl System {
    /// Every system that runs on this machine without outside help, in report order
    /// ([`System::TandemProxy`] needs `--target ADDR` and is not in this list).
    pub const ALL: [System; 9] = [
        System::Direct,
        System::TandemUringSplice,
        System::TandemUringCopy,
        System::TandemEpollSplice,
        System::TandemEpollCopy,
        System::HaproxySplice,
        System::HaproxyDefault,
        System::Nginx,
        System::Socat,
    ];

    /// Stable name (CLI, JSON, table).
    pub fn as_str(&self) -> &'static str {
        match self {
            System::Direct => "direct",
            System::TandemUringSplice => "tandem-uring-splice",
            System::TandemUringCopy => "tandem-uring-copy",
            System::TandemEpollSplice => "tandem-epoll-splice",
            System::TandemEpollCopy => "tandem-epoll-copy",
            System::HaproxySplice => "haproxy-splice",
            System::HaproxyDefault => "haproxy-default",
            System::Nginx => "nginx",
            System::Socat => "socat",
            System::TandemProxy => "tandem-proxy",
        }
    }

    /// True for the in-process Tandem variants.
    pub fn is_tandem(&self) -> bool {
        matches!(
            self,
            System::TandemUringSplice
                | System::TandemUringCopy
                | System::TandemEpollSplice
                | System::TandemEpollCopy
        )
    }

    /// True for systems whose pairs hold a relay (everything but direct).
    pub fn is_relay(&self) -> bool {
        *self != System::Direct
    }
}

impl FromStr for System {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        System::ALL
            .into_iter()
            .chain([System::TandemProxy])
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let mut names: Vec<_> = System::ALL.iter().map(|x| x.as_str()).collect();
                names.push(System::TandemProxy.as_str());
                format!("unknown system {s:?}; one of {}", names.join(", "))
            })
    }
}

/// How the relay is placed: worker count and optional CPU pinning.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Placement {
    /// Relay workers: Tandem cores, HAProxy `nbthread`, nginx `worker_processes`.
    pub workers: usize,
    /// CPUs to pin the relay to (`taskset -c` for baselines, engine pinning for Tandem).
    pub cpus: Option<Vec<usize>>,
    /// The engine's pipe size for the Tandem splice variants (`None`: the engine default).
    pub pipe_size: Option<usize>,
}

/// A running system under test. Every call is bounded by [`crate::net::STEP`].
pub trait Target: Send + Sync {
    /// Which system this is.
    fn system(&self) -> System;

    /// Opens one relayed connection pair: bytes written to `.0` come out of `.1` and back.
    /// Called from one thread at a time.
    fn open_pair(&self) -> anyhow::Result<(TcpStream, TcpStream)>;

    /// Prepares `ops` setup-rate operations for `threads` workers (Tandem creates the tokens
    /// here, outside the timed part, unless `creation` asks for one ControlService call per
    /// operation; relays start an echo server).
    fn prepare_setup(
        &self,
        ops: usize,
        threads: usize,
        creation: PairCreation,
    ) -> anyhow::Result<()>;

    /// One setup-rate operation: connect (both legs), tokens, 64-byte echo, close.
    fn setup_op(&self, from: Option<Ipv4Addr>) -> anyhow::Result<()>;

    /// Ends the setup-rate phase (stops the echo server).
    fn finish_setup(&self);

    /// CPU time the relay has used so far (`None` for direct TCP).
    fn relay_cpu(&self) -> Option<Duration>;

    /// The relay's memory, fds and io-wq threads (`None` for direct TCP).
    fn relay_resources(&self) -> Option<Resources>;

    /// How long a pair must be quiet before the relay parks it (Tandem's `park_after`), if it
    /// parks pairs at all.
    fn park_after(&self) -> Option<Duration> {
        None
    }

    /// Pairs the relay holds parked now (Tandem), if it parks pairs.
    fn parked_pairs(&self) -> Option<u64> {
        None
    }

    /// Times the relay gave memory back after pairs parked (Tandem), if it does.
    fn memory_releases(&self) -> Option<u64> {
        None
    }

    /// Most pairs this target can hold at once (its connection limit), if it has one.
    fn max_pairs(&self) -> Option<usize> {
        None
    }

    /// Which path moved the bytes, when the target can tell (Tandem: splice leases, copy
    /// fallbacks), for the report to prove the variant ran the path it names.
    fn path_note(&self) -> Option<String> {
        None
    }
}

/// Starts `system` with `placement`; `Ok(None)` with a reason when it is not installed.
pub fn start(
    system: System,
    placement: &Placement,
) -> anyhow::Result<Result<Box<dyn Target>, String>> {
    Ok(match system {
        System::Direct => Ok(Box::new(Direct::start()?)),
        s if s.is_tandem() => Ok(Box::new(Tandem::start(s, placement)?)),
        System::TandemProxy => Err("tandem-proxy needs --target ADDR (a running proxy)".into()),
        s => match Baseline::start(s, placement)? {
            Ok(b) => Ok(Box::new(b)),
            Err(why) => Err(why),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in System::ALL {
            assert_eq!(s.as_str().parse::<System>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!("nope".parse::<System>().is_err());
        assert_eq!("tandem-proxy".parse::<System>(), Ok(System::TandemProxy));
        assert!(!System::ALL.contains(&System::TandemProxy));
    }
}
