//! (Child of `core`.) The task of one relaying pair: relays until the pair closes, a hand-over
//! pauses it or it goes quiet, then counts the close and emits its event, keeps it for the
//! next process, or parks it in the core's parking lot.

use std::rc::Rc;

use monoio::net::TcpStream;
use tracing::debug;

use super::Core;
use crate::admission::SniSlot;
use crate::pair_table::PairId;
use crate::relay::bandwidth::PairThrottle;
use crate::relay::throttle::BandwidthLimits;
use crate::relay::{self, Ended, RelayEnv, Resume};
use crate::shared::ConnGuard;
use crate::stats::CoreStats;

/// What a relaying pair holds besides its two streams; a parked pair keeps it in its record.
pub(crate) struct Held {
    /// The two connections' counts in `open_conns`.
    pub guards: [ConnGuard; 2],
    /// A ClientHello to replay and SNI budget slots (TLS port only: boxed, so that a plain
    /// pair does not carry their room).
    pub extras: Option<Box<Extras>>,
    /// A limited pair's throttles (boxed where held: only limited pairs pay their room).
    pub throttle: Option<Box<PairThrottle>>,
}

/// The rare parts of a pair.
pub(crate) struct Extras {
    /// Written `[to b, to a]` before relaying (empty once written: a resumed pair has none).
    pub prefixes: [Vec<u8>; 2],
    /// The sides' claims on the SNI budget, given back when the pair closes.
    pub sni: [Option<SniSlot>; 2],
}

/// The task of one pair: relays until it closes, then counts the close and emits its event.
///
/// A plain function returning an `async move` block: the block captures each part once (an
/// `async fn` would store its arguments and the parts destructured from them side by side),
/// and the streams are borrowed by `relay`, not moved into it.
pub(crate) fn relay_task(
    core: Rc<Core>,
    id: PairId,
    streams: [TcpStream; 2],
    held: Held,
    start: Option<Box<Resume>>,
) -> impl Future<Output = ()> {
    let [sa, sb] = streams;
    let Held {
        guards,
        extras,
        throttle,
    } = held;
    let pause = core.pause_signal();
    async move {
        let env = RelayEnv {
            pipes: &core.pipes,
            bufs: &core.bufs,
            stats: core.stats(),
            idle: core.shared.config.idle_timeout,
            park: core.parks(),
            clocks: &core.clocks,
            pause: &pause,
            start,
            throttles: throttle.as_deref().map(|t| &t.dirs),
        };
        let prefixes: [&[u8]; 2] = match &extras {
            Some(e) => [&e.prefixes[0], &e.prefixes[1]],
            None => [&[], &[]],
        };
        let (ended, bytes) = relay::relay(&sa, &sb, prefixes, &env, &core.close_all).await;
        drop(env);
        core.live.set(core.live.get() - 1);
        let reason = match ended {
            Ended::Closed(reason) => reason,
            Ended::Paused { eof } => {
                let limits = throttle
                    .as_ref()
                    .map_or(BandwidthLimits::UNLIMITED, |t| t.limits);
                core.bandwidth.end(throttle);
                core.park(id, [sa, sb], bytes, eof, limits);
                drop((guards, extras));
                CoreStats::dec(&core.stats().live_pairs);
                return;
            }
            Ended::Parked { eof, last } => {
                let held = Held {
                    guards,
                    extras: extras.and_then(|mut e| {
                        e.prefixes = Default::default();
                        e.sni.iter().any(Option::is_some).then_some(e)
                    }),
                    throttle,
                };
                core.park_quiet(
                    id,
                    [sa, sb],
                    held,
                    Resume {
                        bytes,
                        eof,
                        last: Some(last),
                    },
                );
                return;
            }
        };
        drop((sa, sb, guards, extras));
        core.bandwidth.end(throttle);
        debug!(
            reason = reason.as_str(),
            a_to_b = bytes[0],
            b_to_a = bytes[1],
            "pair closed"
        );
        core.pair_closed(id, reason, bytes);
    }
}
