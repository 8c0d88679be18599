//! `proxied-cold`: single calls, each after the proxy closed the idle pair under hd-1's cached
//! channel, so each one asks the proxy for a new pair (requestConnection, `_connectionRequest`,
//! both dials, pairing, TLS, the call). The proxy's ControlService counts the pairs made.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tandem_settings::tls::TlsSettings;

use super::caller::{Http, JsonRpcServer, connect};
use super::phases::{Ctx, load_avg};
use super::report::PhaseRow;
use super::{LoadFigures, Row};
use crate::stats::Latencies;
use crate::target::mesh::Mesh;

/// Extra wait after the proxy's pair idle timeout before a cold call: two engine ticks (100 ms
/// each) for the expiry to fire, and time for hd-1 to see the reset.
const COLD_SLACK: Duration = Duration::from_millis(400);

/// Pairs the proxy's engine made so far (ControlService `Stats`, as the admin `demo-app`).
async fn pairs_made(mesh: &Mesh) -> anyhow::Result<u64> {
    let certs = mesh.certs();
    let tls = TlsSettings {
        ca_certificate_files: vec![certs.join("root.crt")],
        certificate_file: Some(certs.join("demo-app.crt")),
        key_file: Some(certs.join("demo-app.key")),
        server_name: Some("public-proxy-1.ga".into()),
        verify_client: false,
        request_client_cert: false,
        insecure_skip_verify: false,
    };
    let config = tandem_net::tls::client_config(&tls, &[b"h2"])?;
    let name = rustls_pki_types::ServerName::try_from("public-proxy-1.ga")?;
    let addr = format!("127.0.0.1:{}", mesh.control_port());
    let client = tandem_proxy::control_service::ControlClient::connect(
        &addr,
        config,
        name,
        Duration::from_secs(10),
    )
    .await?;
    Ok(client.stats().await?.cores.iter().map(|c| c.paired).sum())
}

/// `cold_calls` single calls, each after the proxy closed the idle pair (so hd-1 must ask for a
/// new one); the app's own connection to hd-1 is opened before the clock starts.
pub(super) fn cold(ctx: &mut Ctx<'_>, mesh: &Mesh, server: &JsonRpcServer) -> anyhow::Result<()> {
    let s = ctx.s;
    let load = load_avg();
    let pairs_before = ctx.rt.block_on(pairs_made(mesh))?;
    let mut lat = Latencies::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..s.cold_calls {
        std::thread::sleep(s.pair_idle_timeout + COLD_SLACK);
        let outcome = ctx.rt.block_on(async {
            let mut conn = connect(server, Http::H1, None).await?;
            let t = Instant::now();
            let r = tokio::time::timeout(
                s.call_timeout,
                conn.call(server, &s.method, 1_000_000 + i as u64),
            )
            .await;
            match r {
                Ok(Ok(())) => Ok(t.elapsed()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {:?}", s.call_timeout)),
            }
        });
        match outcome {
            Ok(d) => lat.record(d),
            Err(e) => *reasons.entry(e).or_default() += 1,
        }
    }
    let pairs = ctx
        .rt
        .block_on(pairs_made(mesh))?
        .saturating_sub(pairs_before);
    let wall = started.elapsed().as_secs_f64();
    let ok = lat.len();
    let note = format!(
        "{pairs} new pairs for {} calls (each call after {:?} idle)",
        s.cold_calls,
        s.pair_idle_timeout + COLD_SLACK
    );
    eprintln!(
        "broker: proxied-cold: p50 {:.0} µs p99 {:.0} µs; {note}",
        lat.summary().p50_us,
        lat.summary().p99_us
    );
    ctx.rows.push(PhaseRow {
        row: Row::ProxiedCold,
        http: "h1".into(),
        figures: LoadFigures {
            callers: 1,
            calls_ok: ok,
            errors: reasons.values().sum(),
            error_reasons: reasons,
            wall_seconds: wall,
            calls_per_sec: 0.0,
            latency: lat.summary(),
        },
        cpu_us_per_call: BTreeMap::new(),
        load_avg: load,
        note: Some(note),
        round: None,
    });
    Ok(())
}
