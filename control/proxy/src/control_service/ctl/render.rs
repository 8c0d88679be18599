//! What `proxy ctl` prints: the documented JSON for scripts, compact tables for people.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Value, json};
use tandem_proto::control as pb;

use super::super::client::CreatedPair;

/// ANSI: move the cursor up `n` lines is `ESC [ n A`; clear the line; clear to the end of screen.
const CLEAR_LINE: &str = "\r\x1b[2K";
const CLEAR_BELOW: &str = "\x1b[J";

/// The documented `pair create --json` shape; field order is the documented order.
#[derive(Serialize)]
struct PairJson<'a> {
    endpoint: &'a str,
    tokens: [String; 2],
    expires_at: &'a str,
}

/// `pair create`: `{"endpoint":"HOST:PORT","tokens":["<base64>","<base64>"],"expires_at":"<RFC 3339>"}`.
pub(super) fn created_pair(out: &mut impl Write, pair: &CreatedPair, json: bool) -> io::Result<()> {
    let [a, b] = &pair.tokens;
    let (a, b) = (a.to_base64(), b.to_base64());
    if json {
        let doc = PairJson {
            endpoint: &pair.endpoint,
            tokens: [a, b],
            expires_at: &pair.expires_at,
        };
        serde_json::to_writer(&mut *out, &doc)?;
        writeln!(out)
    } else {
        writeln!(out, "pair       {}-{}", pair.id.0, pair.id.1)?;
        writeln!(out, "endpoint   {}", pair.endpoint)?;
        writeln!(out, "token A    {a}")?;
        writeln!(out, "token B    {b}")?;
        writeln!(out, "expires at {}", pair.expires_at)
    }
}

fn id(id: Option<&pb::PairId>) -> String {
    id.map_or_else(|| "?".into(), |i| format!("{}-{}", i.core, i.seq))
}

fn state(s: i32) -> &'static str {
    match pb::PairState::try_from(s) {
        Ok(pb::PairState::Issued) => "issued",
        Ok(pb::PairState::Live) => "live",
        _ => "unknown",
    }
}

/// `pairs`: per-core counts, then the tracked pairs.
pub(super) fn pairs(
    out: &mut impl Write,
    list: &pb::ListPairsResponse,
    json: bool,
) -> io::Result<()> {
    if json {
        let doc = json!({
            "cores": list.cores.iter().map(|c| json!({
                "core": c.core, "issued": c.issued, "waiting": c.waiting, "live": c.live,
            })).collect::<Vec<_>>(),
            "pairs": list.pairs.iter().map(|p| json!({
                "id": id(p.id.as_ref()), "state": state(p.state),
                "since": p.since, "expires_at": p.expires_at,
            })).collect::<Vec<_>>(),
            "truncated": list.truncated,
            "events_dropped": list.events_dropped,
        });
        serde_json::to_writer(&mut *out, &doc)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "{:>4} {:>10} {:>10} {:>10}",
        "core", "issued", "waiting", "live"
    )?;
    for c in &list.cores {
        writeln!(
            out,
            "{:>4} {:>10} {:>10} {:>10}",
            c.core, c.issued, c.waiting, c.live
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<16} {:<7} {:<25} expires at",
        "pair", "state", "since"
    )?;
    for p in &list.pairs {
        writeln!(
            out,
            "{:<16} {:<7} {:<25} {}",
            id(p.id.as_ref()),
            state(p.state),
            p.since,
            p.expires_at
        )?;
    }
    if list.truncated {
        writeln!(out, "(more pairs than listed; use --limit)")?;
    }
    if list.events_dropped > 0 {
        writeln!(
            out,
            "({} engine events dropped: the list may be incomplete)",
            list.events_dropped
        )?;
    }
    Ok(())
}

fn core_json(c: &pb::CoreStats) -> Value {
    json!({
        "core": c.core, "driver": c.driver, "accepted": c.accepted,
        "refused_at_accept": c.refused_at_accept, "handoffs_in": c.handoffs_in,
        "handoffs_out": c.handoffs_out, "handoffs_dropped": c.handoffs_dropped,
        "paired": c.paired, "live_pairs": c.live_pairs, "issued_pairs": c.issued_pairs,
        "waiting": c.waiting, "open_conns": c.open_conns, "bytes_a_to_b": c.bytes_a_to_b,
        "bytes_b_to_a": c.bytes_b_to_a, "closed_normal": c.closed_normal,
        "closed_reset": c.closed_reset, "closed_idle": c.closed_idle,
        "closed_drain": c.closed_drain, "preamble_timeouts": c.preamble_timeouts,
        "expired": c.expired, "bad_unknown": c.bad_unknown, "bad_expired": c.bad_expired,
        "bad_reused": c.bad_reused, "bad_wrong_side": c.bad_wrong_side,
        "bad_cancelled": c.bad_cancelled, "waiting_full": c.waiting_full,
        "bad_hellos": c.bad_hellos, "pipe_leases": c.pipe_leases,
        "copy_fallbacks": c.copy_fallbacks, "pipes_in_use": c.pipes_in_use,
        "events_dropped": c.events_dropped, "accept_errors": c.accept_errors,
        "pipes_undersized": c.pipes_undersized,
    })
}

fn service_json(s: &pb::ServiceStats) -> Value {
    json!({
        "pairs_created": s.pairs_created, "create_failures": s.create_failures,
        "denied_calls": s.denied_calls, "handshake_failures": s.handshake_failures,
        "events_received": s.events_received, "events_lagged": s.events_lagged,
        "watchers": s.watchers, "draining": s.draining,
    })
}

/// The compact per-core table, one line each (header first).
fn stats_lines(stats: &pb::StatsResponse) -> Vec<String> {
    let mut lines = vec![format!(
        "{:>4} {:<8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>14} {:>14} {:>8} {:>8}",
        "core",
        "driver",
        "accepted",
        "paired",
        "live",
        "waiting",
        "issued",
        "bytes a>b",
        "bytes b>a",
        "bad",
        "expired"
    )];
    for c in &stats.cores {
        let bad = c.bad_unknown + c.bad_expired + c.bad_reused + c.bad_wrong_side + c.bad_cancelled;
        lines.push(format!(
            "{:>4} {:<8} {:>10} {:>10} {:>8} {:>8} {:>8} {:>14} {:>14} {:>8} {:>8}",
            c.core,
            c.driver,
            c.accepted,
            c.paired,
            c.live_pairs,
            c.waiting,
            c.issued_pairs,
            c.bytes_a_to_b,
            c.bytes_b_to_a,
            bad,
            c.expired
        ));
    }
    if let Some(s) = &stats.service {
        lines.push(format!(
            "created {}  create failures {}  denied {}  handshake failures {}  watchers {}{}",
            s.pairs_created,
            s.create_failures,
            s.denied_calls,
            s.handshake_failures,
            s.watchers,
            if s.draining { "  DRAINING" } else { "" }
        ));
    }
    lines
}

/// `stats`: the table, or one JSON object `{"cores":[...],"service":{...}}`.
pub(super) fn stats(out: &mut impl Write, stats: &pb::StatsResponse, json: bool) -> io::Result<()> {
    if json {
        let doc = json!({
            "cores": stats.cores.iter().map(core_json).collect::<Vec<_>>(),
            "service": stats.service.as_ref().map(service_json),
        });
        serde_json::to_writer(&mut *out, &doc)?;
        return writeln!(out);
    }
    for line in stats_lines(stats) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Draws the table over the `drawn` lines drawn last time; returns the lines drawn now.
pub(super) fn redraw_stats(
    out: &mut impl Write,
    stats: &pb::StatsResponse,
    drawn: usize,
) -> io::Result<usize> {
    if drawn > 0 {
        write!(out, "\x1b[{drawn}A")?;
    }
    let lines = stats_lines(stats);
    for line in &lines {
        writeln!(out, "{CLEAR_LINE}{line}")?;
    }
    write!(out, "{CLEAR_BELOW}")?;
    Ok(lines.len())
}

/// `events`: one line per event (JSON with `--json`).
pub(super) fn event(out: &mut impl Write, e: &pb::PairEvent, json: bool) -> io::Result<()> {
    use pb::pair_event::Kind;
    let doc = match &e.kind {
        Some(Kind::Paired(p)) => {
            json!({"seq": e.seq, "at": e.at, "kind": "paired", "id": id(p.id.as_ref())})
        }
        Some(Kind::Closed(c)) => json!({
            "seq": e.seq, "at": e.at, "kind": "closed", "id": id(c.id.as_ref()),
            "reason": reason(c.reason), "bytes_a_to_b": c.bytes_a_to_b, "bytes_b_to_a": c.bytes_b_to_a,
        }),
        Some(Kind::Gap(g)) => json!({"seq": e.seq, "at": e.at, "kind": "gap", "missed": g.missed}),
        None => json!({"seq": e.seq, "at": e.at, "kind": "unknown"}),
    };
    if json {
        serde_json::to_writer(&mut *out, &doc)?;
        return writeln!(out);
    }
    match &e.kind {
        Some(Kind::Paired(p)) => writeln!(out, "{} paired {}", e.at, id(p.id.as_ref())),
        Some(Kind::Closed(c)) => writeln!(
            out,
            "{} closed {} {} a>b {} b>a {}",
            e.at,
            id(c.id.as_ref()),
            reason(c.reason),
            c.bytes_a_to_b,
            c.bytes_b_to_a
        ),
        Some(Kind::Gap(g)) => writeln!(
            out,
            "{} gap: {} events missed (watcher too slow)",
            e.at, g.missed
        ),
        None => writeln!(out, "{} unknown event", e.at),
    }
}

fn reason(r: i32) -> &'static str {
    match pb::CloseReason::try_from(r) {
        Ok(pb::CloseReason::Normal) => "normal",
        Ok(pb::CloseReason::Reset) => "reset",
        Ok(pb::CloseReason::Idle) => "idle",
        Ok(pb::CloseReason::Drain) => "drain",
        Ok(pb::CloseReason::Expired) => "expired",
        Ok(pb::CloseReason::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn pair_json_has_the_documented_shape_and_order() {
        let pair = CreatedPair {
            id: (0, 1),
            endpoint: "127.0.0.1:4000".into(),
            tokens: [
                tandem_types::Token::from_bytes([0xff; 32]),
                tandem_types::Token::from_bytes([0; 32]),
            ],
            expires_at: "2030-01-01T00:00:00.000Z".into(),
        };
        let mut out = Vec::new();
        created_pair(&mut out, &pair, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        let a = STANDARD.encode([0xffu8; 32]);
        let b = STANDARD.encode([0u8; 32]);
        assert_eq!(
            text,
            format!(
                "{{\"endpoint\":\"127.0.0.1:4000\",\"tokens\":[\"{a}\",\"{b}\"],\"expires_at\":\"2030-01-01T00:00:00.000Z\"}}\n"
            )
        );
        assert!(a.ends_with('='), "standard base64 with padding");
    }

    #[test]
    fn redraw_moves_up_over_the_previous_table() {
        let stats = pb::StatsResponse {
            cores: vec![
                pb::CoreStats::default(),
                pb::CoreStats {
                    core: 1,
                    ..Default::default()
                },
            ],
            service: None,
        };
        let mut out = Vec::new();
        let n = redraw_stats(&mut out, &stats, 0).unwrap();
        assert_eq!(n, 3);
        assert!(!String::from_utf8_lossy(&out).contains("\x1b[3A"));
        out.clear();
        redraw_stats(&mut out, &stats, n).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("\x1b[3A"));
        assert_eq!(text.matches(CLEAR_LINE).count(), 3);
    }
}
