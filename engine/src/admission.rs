//! What a core lets in: the checks at accept (open connections, the bad-preamble limiter, the
//! per-port accept rates) and the SNI budget's slots. All of it is core-local state: each core
//! limits what it accepts with its share of the engine-wide limits (see `limiter`).

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::limiter::{
    AcceptRate, AcceptRateLimiter, BadTokenLimiter, RateVerdict, SniBudget, SniRefusal, SniTicket,
    core_share,
};
use crate::pair_table::Port;
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::token::CoreId;

/// Why a connection was closed right at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcceptRefusal {
    /// The core holds `max_conns_per_core` open connections.
    ConnLimit,
    /// The source is over the bad-preamble limit.
    Limited,
    /// The source is over an accept rate of this port.
    Rate,
}

impl AcceptRefusal {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            AcceptRefusal::ConnLimit => "conn_limit",
            AcceptRefusal::Limited => "bad_preambles",
            AcceptRefusal::Rate => "accept_rate",
        }
    }
}

/// The per-core limit tables, built from the engine-wide settings.
pub(crate) struct Limits {
    /// Sources that sent bad preambles (tokens, hellos), refused at accept while blocked.
    bad: RefCell<BadTokenLimiter>,
    /// One accept-rate table per data port, indexed by [`port_index`].
    rates: [RefCell<AcceptRateLimiter>; 2],
    /// Open SNI pairs per source and per domain; shared with the slots that hold its tickets.
    sni: Rc<RefCell<SniBudget>>,
}

fn port_index(port: Port) -> usize {
    match port {
        Port::Pairing => 0,
        Port::Tls => 1,
    }
}

impl Limits {
    pub(crate) fn new(shared: &Shared) -> Limits {
        let c = &shared.config;
        let cores = shared.cores.len();
        let rates: Vec<_> = c
            .accept_rates
            .iter()
            .map(|r| AcceptRate {
                window: r.window,
                limit: core_share(r.limit, cores),
            })
            .collect();
        let table = || RefCell::new(AcceptRateLimiter::new(&rates, c.accept_rate_table));
        Limits {
            bad: RefCell::new(BadTokenLimiter::new(
                c.bad_token_limit,
                c.bad_token_window,
                c.bad_token_table,
            )),
            rates: [table(), table()],
            sni: Rc::new(RefCell::new(SniBudget::new(
                core_share(c.sni_pairs_per_source, cores),
                core_share(c.sni_pairs_per_domain, cores),
            ))),
        }
    }
}

impl Limits {
    /// Decides whether a connection just accepted by `core` on `port` from `source` may stay;
    /// a refusal is counted by reason (the caller closes the socket). Checked in order: open
    /// connections, then (when the source is known: `None` is a trusted proxy's connection whose
    /// client comes in its PROXY header) [`Limits::admit_source`].
    pub(crate) fn admit(
        &self,
        shared: &Shared,
        core: CoreId,
        port: Port,
        source: Option<IpAddr>,
    ) -> Result<(), AcceptRefusal> {
        let stats = &shared.cores[core.0].stats;
        let open = stats.open_conns.load(Ordering::Relaxed) as usize;
        if open >= shared.config.max_conns_per_core {
            return Err(refuse(
                stats,
                AcceptRefusal::ConnLimit,
                &stats.refused_conn_limit,
            ));
        }
        match source {
            Some(ip) => self.admit_source(shared, core, port, ip),
            None => Ok(()),
        }
    }

    /// The per-source checks of a connection from `ip`: the bad-preamble limiter, then the
    /// accept rate (which counts only admitted connections). Refusals counted by reason.
    pub(crate) fn admit_source(
        &self,
        shared: &Shared,
        core: CoreId,
        port: Port,
        ip: IpAddr,
    ) -> Result<(), AcceptRefusal> {
        let stats = &shared.cores[core.0].stats;
        let now = Instant::now();
        if self.bad.borrow().is_blocked(ip, now) {
            return Err(refuse(
                stats,
                AcceptRefusal::Limited,
                &stats.limited_refusals,
            ));
        }
        let rates = &self.rates;
        let mut table = rates[port_index(port)].borrow_mut();
        let verdict = table.check(ip, now);
        drop(table);
        let tracked = rates.iter().map(|t| t.borrow().len() as u64).sum();
        stats.rate_sources.store(tracked, Ordering::Relaxed);
        match verdict {
            RateVerdict::Admitted => Ok(()),
            RateVerdict::Refused => Err(refuse(stats, AcceptRefusal::Rate, &stats.rate_refusals)),
        }
    }

    /// Counts one bad preamble (token, short token, timeout, bad hello) against `ip` and
    /// updates the tracked-sources gauge of `stats`.
    pub(crate) fn record_bad(&self, stats: &CoreStats, ip: IpAddr) {
        let mut limiter = self.bad.borrow_mut();
        limiter.record(ip, Instant::now());
        stats
            .limited_sources
            .store(limiter.len() as u64, Ordering::Relaxed);
    }

    /// Takes an SNI budget slot of `core` for a routed hello from `ip` naming `domain`; a
    /// refusal is counted by budget. The slot gives its ticket back when dropped.
    pub(crate) fn sni_slot(
        &self,
        shared: &Arc<Shared>,
        core: CoreId,
        ip: IpAddr,
        domain: &str,
    ) -> Result<SniSlot, SniRefusal> {
        let acquired = self.sni.borrow_mut().try_acquire(ip, domain);
        let stats = &shared.cores[core.0].stats;
        match acquired {
            Ok(ticket) => {
                let slot = SniSlot {
                    budget: self.sni.clone(),
                    ticket: Some(ticket),
                    shared: shared.clone(),
                    core,
                };
                slot.update_gauge();
                Ok(slot)
            }
            Err(refusal) => {
                CoreStats::inc(match refusal {
                    SniRefusal::Source => &stats.sni_source_refusals,
                    SniRefusal::Domain => &stats.sni_domain_refusals,
                });
                Err(refusal)
            }
        }
    }
}

/// Counts a refusal at accept under `counter` and returns its reason.
fn refuse(stats: &CoreStats, reason: AcceptRefusal, counter: &AtomicU64) -> AcceptRefusal {
    CoreStats::inc(&stats.refused_at_accept);
    CoreStats::inc(counter);
    reason
}

/// An open SNI pair's claim on its core's budget, held by the TLS client's connection until it
/// closes (waiting in the pair table, then relaying). Core-local (`Rc`): a connection handed to
/// another core gives its slot back at the hand-off (the SNI resolver creates its pairs on the
/// accepting core, so that does not happen for them).
pub(crate) struct SniSlot {
    budget: Rc<RefCell<SniBudget>>,
    ticket: Option<SniTicket>,
    shared: Arc<Shared>,
    core: CoreId,
}

impl SniSlot {
    fn update_gauge(&self) {
        let held = self.budget.borrow().held() as u64;
        let stats = &self.shared.cores[self.core.0].stats;
        stats.sni_pairs_held.store(held, Ordering::Relaxed);
    }
}

impl Drop for SniSlot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.budget.borrow_mut().release(ticket);
        }
        self.update_gauge();
    }
}
