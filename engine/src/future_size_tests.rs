//! Sizes of the per-connection and per-pair task futures, built without being polled.
//!
//! Every accepted connection and every idle pair holds one of these on the worker's heap for
//! its whole life, so a buffer kept across an await is paid per connection. The bounds below
//! are deterministic for a given compiler (no RSS involved) and fail when a large local is
//! held across an await again; the printed figures are what the report quotes.

use std::mem::size_of;

use crate::accept::{conn_task, read_hello, read_token, serve};
use crate::core::relay_task;
use crate::relay::{pump, relay};

/// Size of the future `f` returns, without calling it.
fn ret1<A, F>(_: impl FnOnce(A) -> F) -> usize {
    size_of::<F>()
}
fn ret2<A, B, F>(_: impl FnOnce(A, B) -> F) -> usize {
    size_of::<F>()
}
fn ret4<A, B, C, D, F>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
    size_of::<F>()
}
fn ret5<A, B, C, D, E, F>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
    size_of::<F>()
}

/// Bytes a task future may take: each is below it (the largest, `conn_task`, ~1.8 KiB with
/// its preamble deadline's monoio `Sleep`; `relay_task`, what every relaying pair holds,
/// ~1.1 KiB: two pumps' readiness waits and the two streams, its idle deadline a slot in the
/// core's `IdleClocks`), and a 4 KiB buffer held across an await, or a future stored twice,
/// exceeds it.
const MAX_TASK_FUTURE: usize = 2048;
/// `relay_task` alone: a relaying pair's task was 2.7 KiB before issue 14 (a per-pair timer
/// and its connections stored twice); a per-pair timer again (640 bytes) exceeds this.
const MAX_RELAY_TASK_FUTURE: usize = 1280;

#[test]
fn task_futures_hold_no_buffers() {
    let sizes = [
        ("accept::conn_task", ret5(conn_task)),
        ("accept::serve", ret5(serve)),
        ("accept::read_token", ret2(read_token)),
        ("accept::read_hello", ret4(read_hello)),
        ("proxied::client", ret4(crate::proxied::client)),
        ("worker::relay_task", ret5(relay_task)),
        ("relay::relay", ret5(relay)),
        ("relay::pump::pump", ret4(pump::pump)),
        ("relay::pump::wait_ready", ret2(pump::wait_ready)),
        ("monoio::time::sleep", ret1(monoio::time::sleep)),
    ];
    for (name, size) in sizes {
        eprintln!("future size {name}: {size} bytes");
    }
    for (name, size) in sizes {
        assert!(size <= MAX_TASK_FUTURE, "{name} future is {size} bytes");
    }
    let relay = ret5(relay_task);
    assert!(
        relay <= MAX_RELAY_TASK_FUTURE,
        "relay_task future is {relay} bytes"
    );
}
