//! Worker threads: pinning, driver choice with fallback, and the monoio runtime.

use std::cell::Cell;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::thread::JoinHandle;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::{info, warn};

use crate::config::{Driver, DriverInUse};
use crate::core::Core;
use crate::error::EngineError;
use crate::pair_table::Port;
use crate::shared::Shared;
use crate::token::CoreId;

thread_local! {
    /// On a worker thread: the address of its engine's `Shared` and its core.
    static CURRENT: Cell<Option<(usize, CoreId)>> = const { Cell::new(None) };
}

/// The core of `shared`'s engine that the calling thread runs, if it is one of its workers
/// (the SNI resolver runs there: its pairs are created on the core holding the TLS client).
pub(crate) fn current_core(shared: &Arc<Shared>) -> Option<CoreId> {
    let engine = Arc::as_ptr(shared) as usize;
    CURRENT
        .with(Cell::get)
        .filter(|(e, _)| *e == engine)
        .map(|(_, core)| core)
}

/// io_uring submission queue entries per core: one op per readiness wait in flight is
/// typical; monoio submits early when the ring is full.
const URING_ENTRIES: u32 = 4096;

enum Rt {
    Uring(monoio::Runtime<TimeDriver<IoUringDriver>>),
    Legacy(monoio::Runtime<TimeDriver<LegacyDriver>>),
}

fn build(driver: Driver) -> io::Result<Rt> {
    let legacy = || {
        RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Rt::Legacy)
    };
    let uring_with = |coop: bool| {
        let mut urb = io_uring::IoUring::builder();
        if coop {
            // A completion (a socket turned readable) does not interrupt the core thread while
            // it runs: its task work runs at the thread's next kernel entry, which a busy core
            // makes within microseconds (every splice is one), and a core waiting in
            // io_uring_enter is woken as before. Saves the forced kernel/user transition and
            // the IPI per completion; the ring has one thread, so nothing waits on another's.
            urb.setup_coop_taskrun().setup_taskrun_flag();
        }
        RuntimeBuilder::<IoUringDriver>::new()
            .uring_builder(urb)
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()
            .map(Rt::Uring)
    };
    // COOP_TASKRUN needs Linux 5.19; older kernels refuse the flag and get the plain ring.
    let uring = || uring_with(true).or_else(|_| uring_with(false));
    match driver {
        Driver::Legacy => legacy(),
        Driver::IoUring => uring(),
        Driver::Auto => uring().or_else(|e| {
            warn!(error = %e, "io_uring unavailable; falling back to epoll");
            legacy()
        }),
    }
}

/// Starts the worker thread of core `id` on CPU `cpu`; returns once its runtime is built.
pub(crate) fn spawn_worker(
    id: CoreId,
    cpu: usize,
    shared: Arc<Shared>,
    listeners: Vec<(Port, TcpListener)>,
) -> Result<JoinHandle<()>, EngineError> {
    let (ready_tx, ready_rx) = channel::<io::Result<DriverInUse>>();
    let driver = shared.config.driver;
    let pin = shared.config.pin;
    let thread = std::thread::Builder::new()
        .name(format!("tandem-core-{}", id.0))
        .spawn(move || {
            if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                warn!(core = id.0, cpu, "cannot pin worker");
            }
            let rt = match build(driver) {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let used = match rt {
                Rt::Uring(_) => DriverInUse::IoUring,
                Rt::Legacy(_) => DriverInUse::Legacy,
            };
            shared.cores[id.0].stats.set_driver(used);
            CURRENT.with(|c| c.set(Some((Arc::as_ptr(&shared) as usize, id))));
            info!(core = id.0, cpu, driver = used.as_str(), "worker started");
            let _ = ready_tx.send(Ok(used));
            match rt {
                Rt::Uring(mut rt) => rt.block_on(async move {
                    crate::worker::run(Core::new(id, shared), listeners).await
                }),
                Rt::Legacy(mut rt) => rt.block_on(async move {
                    crate::worker::run(Core::new(id, shared), listeners).await
                }),
            }
        })
        .map_err(|source| EngineError::Worker { core: id.0, source })?;
    match ready_rx.recv() {
        Ok(Ok(_)) => Ok(thread),
        Ok(Err(source)) => {
            let _ = thread.join();
            Err(EngineError::Worker { core: id.0, source })
        }
        Err(_) => {
            let _ = thread.join();
            Err(EngineError::WorkerPanicked { core: id.0 })
        }
    }
}
