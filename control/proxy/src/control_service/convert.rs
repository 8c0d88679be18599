//! Engine and hub types to `control.proto` messages, and the one place service errors become a
//! `tonic::Status`.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use tandem_engine::{CloseReason, CoreStatsSnapshot, EngineError, PairEvent, PairId};
use tandem_proto::control as pb;
use tonic::Status;

use super::book::Tracked;
use super::hub::HubEvent;
use super::policy::Denied;

/// RFC 3339 in UTC with millisecond precision (`2025-01-02T03:04:05.678Z`).
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn pair_id(id: PairId) -> pb::PairId {
    pb::PairId {
        core: u32::try_from(id.core.0).unwrap_or(u32::MAX),
        seq: id.seq,
    }
}

pub(crate) fn close_reason(r: CloseReason) -> pb::CloseReason {
    match r {
        CloseReason::Normal => pb::CloseReason::Normal,
        CloseReason::Reset => pb::CloseReason::Reset,
        CloseReason::Idle => pb::CloseReason::Idle,
        CloseReason::Drain => pb::CloseReason::Drain,
        CloseReason::Expired => pb::CloseReason::Expired,
        CloseReason::Cancelled => pb::CloseReason::Cancelled,
    }
}

pub(crate) fn event(e: &HubEvent) -> pb::PairEvent {
    let kind = match &e.event {
        PairEvent::Paired { id, .. } => pb::pair_event::Kind::Paired(pb::Paired {
            id: Some(pair_id(*id)),
        }),
        PairEvent::Closed {
            id,
            reason,
            bytes_a_to_b,
            bytes_b_to_a,
        } => pb::pair_event::Kind::Closed(pb::Closed {
            id: Some(pair_id(*id)),
            reason: close_reason(*reason).into(),
            bytes_a_to_b: *bytes_a_to_b,
            bytes_b_to_a: *bytes_b_to_a,
        }),
    };
    pb::PairEvent {
        seq: e.seq,
        at: rfc3339(e.at),
        kind: Some(kind),
    }
}

pub(crate) fn gap(missed: u64) -> pb::PairEvent {
    pb::PairEvent {
        seq: 0,
        at: rfc3339(SystemTime::now()),
        kind: Some(pb::pair_event::Kind::Gap(pb::Gap { missed })),
    }
}

pub(crate) fn pair_info(id: PairId, t: Tracked) -> pb::PairInfo {
    let (state, since, expires_at) = match t {
        Tracked::Issued { since, expires_at } => {
            (pb::PairState::Issued, since, rfc3339(expires_at))
        }
        Tracked::Live { since } => (pb::PairState::Live, since, String::new()),
    };
    pb::PairInfo {
        id: Some(pair_id(id)),
        state: state.into(),
        since: rfc3339(since),
        expires_at,
    }
}

pub(crate) fn core_counts(core: usize, s: &CoreStatsSnapshot) -> pb::CoreCounts {
    pb::CoreCounts {
        core: u32::try_from(core).unwrap_or(u32::MAX),
        issued: s.issued_pairs,
        waiting: s.waiting,
        live: s.live_pairs,
    }
}

pub(crate) fn core_stats(core: usize, s: &CoreStatsSnapshot) -> pb::CoreStats {
    pb::CoreStats {
        core: u32::try_from(core).unwrap_or(u32::MAX),
        driver: s.driver.map(|d| d.as_str().to_owned()).unwrap_or_default(),
        accepted: s.accepted,
        refused_at_accept: s.refused_at_accept,
        handoffs_in: s.handoffs_in,
        handoffs_out: s.handoffs_out,
        handoffs_dropped: s.handoffs_dropped,
        paired: s.paired,
        live_pairs: s.live_pairs,
        issued_pairs: s.issued_pairs,
        waiting: s.waiting,
        open_conns: s.open_conns,
        bytes_a_to_b: s.bytes_a_to_b,
        bytes_b_to_a: s.bytes_b_to_a,
        closed_normal: s.closed_normal,
        closed_reset: s.closed_reset,
        closed_idle: s.closed_idle,
        closed_drain: s.closed_drain,
        preamble_timeouts: s.preamble_timeouts,
        expired: s.expired,
        bad_unknown: s.bad_unknown,
        bad_expired: s.bad_expired,
        bad_reused: s.bad_reused,
        bad_wrong_side: s.bad_wrong_side,
        bad_cancelled: s.bad_cancelled,
        waiting_full: s.waiting_full,
        bad_hellos: s.bad_hellos,
        pipe_leases: s.pipe_leases,
        copy_fallbacks: s.copy_fallbacks,
        pipes_in_use: s.pipes_in_use,
        events_dropped: s.events_dropped,
        accept_errors: s.accept_errors,
        pipes_undersized: s.pipes_undersized,
    }
}

/// The status of a refused caller.
pub(crate) fn denied_status(d: &Denied) -> Status {
    match d {
        Denied::Directory(_) => Status::unavailable(format!("admin check: {d}")),
        Denied::NoCertificate | Denied::NotAdmin { .. } | Denied::NotPinned { .. } => {
            Status::permission_denied(d.to_string())
        }
    }
}

/// The status of an engine refusal to create a pair.
pub(crate) fn engine_status(e: &EngineError) -> Status {
    match e {
        EngineError::ShuttingDown => Status::unavailable("the proxy is draining"),
        EngineError::MailboxFull { .. } => {
            Status::resource_exhausted(format!("engine busy, retry: {e}"))
        }
        _ => Status::internal(format!("engine: {e}")),
    }
}

/// One operator's quotas as `proxy ctl quotas` shows them (limit 0: unlimited).
pub(crate) fn operator_quotas(q: &crate::quota::OperatorQuota) -> pb::OperatorQuotas {
    use crate::quota::QuotaKind;
    let rate = |r: Option<tandem_engine::ByteRate>| r.map_or(0, |r| r.per_second.get());
    pb::OperatorQuotas {
        operator: q.operator.clone(),
        quotas: QuotaKind::ALL
            .into_iter()
            .map(|k| pb::QuotaUse {
                quota: k.as_str().to_owned(),
                used: k.used(&q.usage),
                limit: k.limit(&q.limits).unwrap_or(0),
            })
            .collect(),
        pair_bytes_per_second: rate(q.limits.pair_bandwidth),
        operator_bytes_per_second: rate(q.limits.operator_bandwidth),
    }
}

/// The status of a quota refusal: `RESOURCE_EXHAUSTED` naming the quota and its limit (a
/// remote counter that cannot be asked is `UNAVAILABLE`).
pub(crate) fn quota_status(e: &crate::quota::QuotaError) -> Status {
    match e {
        crate::quota::QuotaError::Unavailable(_) => Status::unavailable(e.to_string()),
        _ => Status::resource_exhausted(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_is_utc_with_millis() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn refusals_map_to_their_codes() {
        let not_admin = Denied::NotAdmin { names: vec![] };
        assert_eq!(
            denied_status(&not_admin).code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            denied_status(&Denied::Directory(
                tandem_directory::source::SourceError::Unreachable {
                    directory: "sd".into(),
                    reason: "x".into(),
                }
            ))
            .code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            engine_status(&EngineError::ShuttingDown).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            engine_status(&EngineError::MailboxFull { core: 1 }).code(),
            tonic::Code::ResourceExhausted
        );
    }
}
