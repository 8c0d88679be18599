//! Bounds of `EngineConfig::validate`.

use super::*;

#[test]
fn copy_buf_size_is_bounded_both_ways() {
    let with = |n| EngineConfig {
        copy_buf_size: n,
        ..EngineConfig::default()
    };
    assert_eq!(EngineConfig::default().copy_buf_size, 64 * 1024);
    assert!(with(MIN_COPY_BUF).validate().is_ok());
    assert!(with(MAX_COPY_BUF).validate().is_ok());
    assert!(with(MIN_COPY_BUF - 1).validate().is_err());
    assert!(with(MAX_COPY_BUF + 1).validate().is_err());
}

#[test]
fn a_port_has_at_most_eight_addresses() {
    let more = |n: usize| EngineConfig {
        pairing_more: vec![SocketAddr::from(([127, 0, 0, 2], 0)); n],
        ..EngineConfig::default()
    };
    assert!(more(MAX_ADDRESSES_PER_PORT - 1).validate().is_ok());
    let err = more(MAX_ADDRESSES_PER_PORT).validate().unwrap_err();
    assert!(
        err.to_string()
            .contains("at most 8 addresses per port, got 9"),
        "{err}"
    );
    let tls = EngineConfig {
        tls_more: vec![SocketAddr::from(([127, 0, 0, 2], 0)); MAX_ADDRESSES_PER_PORT],
        ..EngineConfig::default()
    };
    assert!(tls.validate().is_err());
}

#[test]
fn limits_are_checked() {
    let rate = |limit| AcceptRate {
        window: Duration::from_secs(1),
        limit,
    };
    let with = |rates: Vec<AcceptRate>| EngineConfig {
        accept_rates: rates,
        ..EngineConfig::default()
    };
    assert!(with(vec![rate(1); MAX_ACCEPT_RATES]).validate().is_ok());
    assert!(
        with(vec![rate(1); MAX_ACCEPT_RATES + 1])
            .validate()
            .is_err()
    );
    assert!(with(vec![rate(0)]).validate().is_err());
    let zero_budget = EngineConfig {
        sni_pairs_per_domain: 0,
        ..EngineConfig::default()
    };
    assert!(zero_budget.validate().is_err());
}
