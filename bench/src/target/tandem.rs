//! Tandem's engine started in this process, one variant per driver and relay path.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tandem_engine::{
    Driver, DriverInUse, Engine, EngineConfig, EngineError, EngineHandle, PairEvent, PairKind,
    RefuseAll, Token,
};

use super::echo::ECHO_LEN;
use super::{Placement, System, Target};
use crate::net::{dial, echo_through};
use crate::procfs::{Resources, own_threads_cpu, resources};
use crate::workload::PairCreation;
use std::io::Write;

/// Thread-name prefixes whose CPU is the relay's: the engine's workers and their io-wq threads.
const RELAY_THREADS: [&str; 2] = ["tandem-core-", "iou-wrk"];
/// Bound on retries of one `create_pair` against a full mailbox (each retry yields the CPU).
const CREATE_RETRIES: usize = 1_000_000;

/// An in-process engine.
pub struct Tandem {
    system: System,
    handle: EngineHandle,
    addr: SocketAddr,
    /// The engine's `park_after` (its default: quiet pairs park after 2 s).
    park_after: Option<Duration>,
    tickets: Mutex<Vec<[Token; 2]>>,
    // Held so the bounded event channel is drained by nobody: when full the engine drops and
    // counts events, it never blocks (see `EngineConfig::events_capacity`).
    _events: Mutex<Receiver<PairEvent>>,
}

impl Tandem {
    /// Starts the engine for `system` (one of the `Tandem*` variants).
    pub fn start(system: System, placement: &Placement) -> anyhow::Result<Self> {
        let (driver, copy) = match system {
            System::TandemUringSplice => (Driver::IoUring, false),
            System::TandemUringCopy => (Driver::IoUring, true),
            System::TandemEpollSplice => (Driver::Legacy, false),
            System::TandemEpollCopy => (Driver::Legacy, true),
            other => bail!("{} is not a Tandem variant", other.as_str()),
        };
        let workers = placement.workers.max(1);
        let (cores, pin) = match &placement.cpus {
            Some(c) => (c.iter().copied().cycle().take(workers).collect(), true),
            None => ((0..workers).collect(), false),
        };
        let defaults = EngineConfig::default();
        let cfg = EngineConfig {
            cores: Some(cores),
            pin,
            driver,
            pipe_pool_size: if copy { 0 } else { defaults.pipe_pool_size },
            pipe_size: placement.pipe_size.unwrap_or(defaults.pipe_size),
            idle_timeout: None,
            // What the proxy binary passes: the pairs' freed memory is returned after they park.
            release_memory: Some(tandem_proxy::memory::release_memory),
            ..defaults
        };
        let park_after = cfg.park_after;
        let (handle, events) =
            Engine::start(cfg, Arc::new(RefuseAll)).context("starting the engine")?;
        let want = if driver == Driver::IoUring {
            DriverInUse::IoUring
        } else {
            DriverInUse::Legacy
        };
        // Workers report their driver once started; a forced driver that cannot run fails start.
        anyhow::ensure!(
            handle.drivers().iter().all(|d| d.is_none_or(|d| d == want)),
            "engine runs {:?}, asked {want:?}",
            handle.drivers()
        );
        Ok(Tandem {
            system,
            park_after,
            addr: handle.local_addrs().pairing,
            handle,
            tickets: Mutex::new(Vec::new()),
            _events: Mutex::new(events),
        })
    }

    /// The engine's pairing address.
    pub fn pairing_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates one pair's tokens, retrying (bounded) while the owner's mailbox is full.
    pub fn create(&self) -> anyhow::Result<[Token; 2]> {
        for _ in 0..CREATE_RETRIES {
            match self.handle.create_pair(PairKind::Direct) {
                Ok(t) => return Ok([t.side_a, t.side_b]),
                Err(EngineError::MailboxFull { .. }) => std::thread::yield_now(),
                Err(e) => return Err(e.into()),
            }
        }
        bail!("engine mailbox stayed full")
    }

    fn join(
        &self,
        tokens: &[Token; 2],
        from: Option<Ipv4Addr>,
    ) -> anyhow::Result<(TcpStream, TcpStream)> {
        let mut a = dial(self.addr, from).context("connect side A")?;
        a.write_all(tokens[0].as_bytes())?;
        let mut b = dial(self.addr, from).context("connect side B")?;
        b.write_all(tokens[1].as_bytes())?;
        Ok((a, b))
    }
}

impl Target for Tandem {
    fn system(&self) -> System {
        self.system
    }

    fn open_pair(&self) -> anyhow::Result<(TcpStream, TcpStream)> {
        let t = self.create()?;
        self.join(&t, None)
    }

    fn prepare_setup(
        &self,
        ops: usize,
        _threads: usize,
        creation: PairCreation,
    ) -> anyhow::Result<()> {
        if creation == PairCreation::ControlPerPair {
            bail!("pair creation through ControlService needs --target ADDR (a running proxy)");
        }
        let made = (0..ops)
            .map(|_| self.create())
            .collect::<Result<Vec<_>, _>>()?;
        *self
            .tickets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))? = made;
        Ok(())
    }

    fn setup_op(&self, from: Option<Ipv4Addr>) -> anyhow::Result<()> {
        let t = self
            .tickets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .pop()
            .context("no pre-created tokens left")?;
        let (mut a, mut b) = self.join(&t, from)?;
        echo_through(&mut a, &mut b, &[0x42u8; ECHO_LEN])?;
        Ok(())
    }

    fn finish_setup(&self) {
        let left: Vec<_> = self
            .tickets
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        // Unused tokens expire with their TTL; nothing else to do.
        drop(left);
    }

    fn relay_cpu(&self) -> Option<Duration> {
        Some(own_threads_cpu(&RELAY_THREADS))
    }

    fn relay_resources(&self) -> Option<Resources> {
        // The engine shares this process with the load generator: RSS and fds are the
        // process's; the idle workload reports growth, which is the engine's plus the
        // client sockets' (2 fds per pair each).
        Some(resources("self"))
    }

    fn park_after(&self) -> Option<Duration> {
        self.park_after
    }

    fn memory_releases(&self) -> Option<u64> {
        Some(self.handle.stats().iter().map(|c| c.memory_releases).sum())
    }

    fn parked_pairs(&self) -> Option<u64> {
        Some(self.handle.stats().iter().map(|c| c.parked_pairs).sum())
    }

    fn path_note(&self) -> Option<String> {
        let s = self.handle.stats();
        let leases: u64 = s.iter().map(|c| c.pipe_leases).sum();
        let copies: u64 = s.iter().map(|c| c.copy_fallbacks).sum();
        let driver = s
            .first()
            .and_then(|c| c.driver)
            .map_or("starting", |d| d.as_str());
        Some(format!(
            "{driver}: {leases} pipe leases, {copies} copy fallbacks"
        ))
    }
}

impl Drop for Tandem {
    fn drop(&mut self) {
        if let Err(e) = self.handle.shutdown() {
            tracing::warn!(error = %e, "engine shutdown");
        }
    }
}
