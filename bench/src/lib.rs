//! The load-test harness (`tandem-bench`): see bench/README.md.
pub mod checksum;
pub mod cli;
pub mod goals;
pub mod net;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod stats;
pub mod svg;
pub mod table;
pub mod target;
pub mod verdict;
pub mod workload;
