//! The system tests: Tandem's own binaries (`sd`, `hyper`, `proxy`, which cargo builds for this
//! package only: `CARGO_BIN_EXE_*`) run as child processes with the repository's roles, settings and
//! scripts. Everything that runs in-process lives in the tests of the crate it exercises.
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod binaries_link;
mod binaries_metrics;
mod check_settings;
mod completions;
mod deploy_units;
mod dual_stack_names;
mod fleet;
mod fleet_announce;
mod fleet_sd;
mod hyper_socket_activation;
mod migration;
mod notify_units;
mod proxy_access_log;
mod proxy_drain;
mod proxy_dual_stack_names;
mod proxy_flood;
mod proxy_reload;
mod proxy_upgrade;
mod proxy_upgrade_notify;
mod proxy_upgrade_quotas;
mod sd_crash_restart;
mod sd_e2e;
mod sd_metrics;
mod sd_reload;
mod sd_socket_activation;
mod seed_scenario;
mod tokens_in_logs;
