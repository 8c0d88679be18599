//! Set-up shared by the proxy suites: the public proxy with a fake Hyper node ([`proxy`]), the SNI
//! passthrough stack ([`sni`]), the private proxy ([`private`]), the ControlService on a real engine
//! ([`control_service`]), identity checks ([`identity`]), expired certificates and dead peers
//! ([`faults`]), and both ends of a brokered P2P connection ([`p2p`]).

pub mod control_service;
pub mod faults;
pub mod identity;
pub mod p2p;
pub mod private;
pub mod proxy;
pub mod sni;
