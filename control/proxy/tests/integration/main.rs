//! Integration tests of tandem-proxy, in-process on 127.0.0.1:0 over the real engine: the public and private proxies (brokering, SNI passthrough, announcements, faults, deadlines, Redis outages), the ControlService, metrics, identity checks at every door, and the deadlines and expired-certificate refusals of every role's listeners (sd and Hyper servers included: this is the most downstream role crate).
//!
//! One test binary (`integration`) with a module per suite; nextest still runs every test in its own
//! process, so the suites keep their isolation (ports, env, signals).
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The largest suite futures (announce_owners) nest past the default query depth of 128.
#![recursion_limit = "256"]

mod announce_owners;
mod brokered_p2p;
mod control_service_authz;
mod control_service_ctl;
mod control_service_drain;
mod control_service_pairs;
mod deadlines_firing;
mod expired_certificates;
mod faults;
mod identity_endpoints;
mod identity_names;
mod listeners_under_attack;
mod metrics_private;
mod metrics_public;
mod operating_guide_settings;
mod private;
mod private_deadlines;
mod proxy_protocol;
mod public;
mod public_redis_outage;
mod quota_fleet;
mod quota_fleet_proxies;
mod quotas;
mod shared_announcements;
mod sni;
mod sni_hostile_clients;
mod sni_quotas;
mod support;
