//! Interleaved rounds for the ratio targets. The direct and the proxied mesh run side by side with
//! the floors, and each round measures, in an order rotated by one each round, the one-caller p50
//! and the 64-caller rate of every path the targets compare. Each ratio is taken within its round
//! (its two sides ran seconds apart, on the same machine state), and the verdict
//! ([`crate::verdict::judge`]) sees the spread over rounds: rounds that disagree by more than the
//! effect make a goal UNMEASURABLE, never MET.

use anyhow::Context;
use serde_json::Value;

use super::caller::Http;
use super::load::Dest;
use super::phases::{Ctx, first_answer, gateway_of, mesh_settings};
use super::{BrokerSettings, Row};
use crate::target::floors::Floors;
use crate::target::mesh::{Mesh, MeshPath};

/// The callers of the rate targets ("64 callers: calls/s").
pub const RATE_CALLERS: usize = 64;

/// Whether the run has rounds to make: both compared paths asked, no `--target`.
pub(super) fn wanted(s: &BrokerSettings) -> bool {
    s.rounds > 0
        && s.target.is_none()
        && s.rows.contains(&Row::Direct)
        && s.rows.contains(&Row::ProxiedWarm)
}

/// Runs the rounds into `ctx.rounds`.
pub(super) fn rounds(ctx: &mut Ctx<'_>, captured: &mut Option<Value>) -> anyhow::Result<()> {
    let s = ctx.s;
    if !wanted(s) {
        return Ok(());
    }
    let direct = Mesh::start(&mesh_settings(s, MeshPath::Direct))
        .context("starting the direct mesh for the rounds")?;
    let d = gateway_of(&direct, direct.gateway(), "hd-1")?;
    let result = first_answer(&ctx.rt, &d, &s.method)?;
    captured.get_or_insert(result.clone());
    // Started once the direct mesh serves: its ports are bound, so the second block differs.
    let proxied = Mesh::start(&mesh_settings(s, MeshPath::Proxied))
        .context("starting the proxied mesh for the rounds")?;
    let w = gateway_of(&proxied, proxied.gateway(), "hd-1")?;
    first_answer(&ctx.rt, &w, &s.method)?;
    let floors = ctx.rt.block_on(Floors::start(result))?;
    let json = |server: &super::caller::JsonRpcServer| Dest::JsonRpc {
        server: server.clone(),
        http: Http::H1,
        method: s.method.clone(),
    };
    let plan: Vec<(Row, &str, Dest, usize)> = vec![
        (Row::Direct, "h1", json(&d), 1),
        (Row::ProxiedWarm, "h1", json(&w), 1),
        (
            Row::FloorTonic,
            "grpc",
            Dest::Grpc {
                server: floors.grpc.clone(),
                method: s.method.clone(),
            },
            1,
        ),
        (Row::FloorAxum, "h1", json(&floors.axum), 1),
        (Row::Direct, "h1", json(&d), RATE_CALLERS),
        (Row::ProxiedWarm, "h1", json(&w), RATE_CALLERS),
    ];
    // CPU per call is the sweep's figure; here both meshes run, so only the harness is read.
    ctx.pids.clear();
    for round in 0..s.rounds {
        for i in 0..plan.len() {
            let (row, http, dest, callers) = &plan[(i + round) % plan.len()];
            let mut phase = ctx.phase(*row, http, dest, *callers);
            phase.round = Some(round);
            ctx.rounds.push(phase);
        }
    }
    ctx.rt.block_on(async move { drop(floors) });
    drop((direct, proxied));
    Ok(())
}
