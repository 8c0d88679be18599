//! The data plane: a thread-per-core relay that pairs inbound connections by single-use token
//! and moves bytes between them with `splice(2)`. See ARCHITECTURE.md.
