//! The load-test harness (`tandem-bench`): see bench/README.md.
pub mod checksum;
pub mod net;
pub mod procfs;
pub mod stats;
