//! Set-up shared by the serving-kit suites.

pub mod kit;
