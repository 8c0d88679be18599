//! Which crates each binary links: `sd` and `hyper` contain no data-plane code (ARCHITECTURE.md,
//! "Crates and dependency arrows"); `proxy` does, which shows the check can see it.

const SD: &str = env!("CARGO_BIN_EXE_sd");
const HYPER: &str = env!("CARGO_BIN_EXE_hyper");
const PROXY: &str = env!("CARGO_BIN_EXE_proxy");

/// Whether the binary's bytes (its symbol and string tables included) mention `needle`.
fn mentions(binary: &str, needle: &[u8]) -> bool {
    let bytes = std::fs::read(binary).unwrap_or_else(|e| panic!("reading {binary}: {e}"));
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn binaries_link_only_their_role() {
    for needle in [&b"tandem_engine"[..], b"monoio"] {
        let what = String::from_utf8_lossy(needle);
        assert!(
            mentions(PROXY, needle),
            "proxy links {what}: the check can see it"
        );
        assert!(!mentions(SD, needle), "sd must not link {what}");
        assert!(!mentions(HYPER, needle), "hyper must not link {what}");
    }
}
