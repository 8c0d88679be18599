//! (Child of `core`.) The task of one relaying pair: relays until the pair closes or a hand-over
//! pauses it, then counts the close, emits its event, or parks the pair for the next process.

use std::rc::Rc;
use std::time::Instant;

use tracing::debug;

use super::{Conn, Core};
use crate::events::PairEvent;
use crate::pair_table::PairId;
use crate::relay::throttle::BandwidthLimits;
use crate::relay::{self, CloseReason, Ended, RelayEnv, Resume};
use crate::stats::CoreStats;

/// The task of one pair: relays until it closes, then counts the close and emits its event.
///
/// A plain function returning an `async move` block: the block captures each part of the two
/// connections once (an `async fn` would store its `Conn` arguments and the parts destructured
/// from them side by side), and the streams are borrowed by `relay`, not moved into it.
pub(crate) fn relay_task(
    core: Rc<Core>,
    id: PairId,
    a: Conn,
    b: Conn,
    start: Option<Box<Resume>>,
) -> impl Future<Output = ()> {
    let Conn {
        stream: sa,
        prefix: pa,
        _guard: ga,
        sni: sni_a,
        ..
    } = a;
    let Conn {
        stream: sb,
        prefix: pb,
        _guard: gb,
        sni: sni_b,
        ..
    } = b;
    // A ClientHello to replay and SNI budget slots are rare (TLS port only): boxed, so that
    // a plain pair's task does not carry their room.
    let extras = (!pa.is_empty() || !pb.is_empty() || sni_a.is_some() || sni_b.is_some())
        .then(|| Box::new((pa, pb, sni_a, sni_b)));
    let pause = core.pause_signal();
    async move {
        let throttle = core.bandwidth.start(id.seq, Instant::now());
        let env = RelayEnv {
            pipes: &core.pipes,
            bufs: &core.bufs,
            stats: core.stats(),
            idle: core.shared.config.idle_timeout,
            clocks: &core.clocks,
            pause: &pause,
            start,
            throttles: throttle.as_deref().map(|t| &t.dirs),
        };
        let prefixes: [&[u8]; 2] = match &extras {
            Some(e) => [&e.0, &e.1],
            None => [&[], &[]],
        };
        let (ended, bytes) = relay::relay(&sa, &sb, prefixes, &env, &core.close_all).await;
        let reason = match ended {
            Ended::Closed(reason) => reason,
            Ended::Paused { eof } => {
                let limits = throttle
                    .as_ref()
                    .map_or(BandwidthLimits::UNLIMITED, |t| t.limits);
                core.bandwidth.end(throttle);
                core.park(id, [sa, sb], bytes, eof, limits);
                drop((ga, gb, extras));
                CoreStats::dec(&core.stats().live_pairs);
                core.live.set(core.live.get() - 1);
                return;
            }
        };
        drop((sa, sb, ga, gb, extras));
        core.bandwidth.end(throttle);
        debug!(
            reason = reason.as_str(),
            a_to_b = bytes[0],
            b_to_a = bytes[1],
            "pair closed"
        );
        let s = core.stats();
        CoreStats::dec(&s.live_pairs);
        CoreStats::inc(match reason {
            CloseReason::Normal => &s.closed_normal,
            CloseReason::Reset => &s.closed_reset,
            CloseReason::Idle => &s.closed_idle,
            _ => &s.closed_drain,
        });
        core.live.set(core.live.get() - 1);
        core.shared
            .emit(core.id, PairEvent::closed(id, reason, bytes));
    }
}
