//! Set-up shared by the system tests: the test mesh's files and processes ([`seed`]), the public
//! proxy process with a stand-in Hyper node ([`proxy_process`]), the `sd` process ([`sd_process`]), the fleet test bed in network namespaces ([`fleet_bed`], its files in [`fleet_layout`], its Redis in
//! [`fleet_redis`]).

pub mod fleet_bed;
pub mod fleet_layout;
pub mod fleet_redis;
pub mod proxy_process;
pub mod reload;
pub mod sd_process;
pub mod seed;
pub mod upgrade;
