//! What every core and the handle share: the cores' mailboxes and counters, the token map,
//! the event sender, the settings and the resolver (immutable or atomic only, `Send + Sync`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{SyncSender, TrySendError};

use crate::config::EngineConfig;
use crate::core_msg::CoreMsg;
use crate::events::{PairEvent, SniResolver};
use crate::mailbox::Mailbox;
use crate::stats::CoreStats;
use crate::token::{CoreId, TokenMap};

/// State shared by all cores and the handle (immutable or atomic only).
pub(crate) struct Shared {
    pub cores: Vec<CoreShared>,
    pub map: TokenMap,
    pub events: SyncSender<PairEvent>,
    pub config: EngineConfig,
    pub resolver: Arc<dyn SniResolver>,
    /// Accept loops still running, over all cores and ports (the last to stop on drain logs it).
    pub accepting: AtomicUsize,
}

/// The cross-thread face of one core.
pub(crate) struct CoreShared {
    pub mailbox: Mailbox<CoreMsg>,
    pub stats: CoreStats,
}

impl Shared {
    pub(crate) fn emit(&self, core: CoreId, ev: PairEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(ev) {
            CoreStats::inc(&self.cores[core.0].stats.events_dropped);
        }
    }
}

/// Counts an open connection of a core for as long as it lives.
pub(crate) struct ConnGuard {
    shared: Arc<Shared>,
    core: CoreId,
}

impl ConnGuard {
    pub(crate) fn new(shared: Arc<Shared>, core: CoreId) -> Self {
        CoreStats::inc(&shared.cores[core.0].stats.open_conns);
        ConnGuard { shared, core }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        CoreStats::dec(&self.shared.cores[self.core.0].stats.open_conns);
    }
}
