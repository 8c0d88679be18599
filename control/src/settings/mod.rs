//! Settings: directories of numbered YAML/JSON files (the original Hyper's loader format), merged,
//! interpolated and converted into typed, validated configuration.

pub mod datastore;
pub mod secret;
pub mod tls;
