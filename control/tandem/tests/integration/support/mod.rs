//! Set-up shared by the system tests: the test mesh's files and processes ([`seed`]), the public
//! proxy process with a stand-in Hyper node ([`proxy_process`]), the `sd` process ([`sd_process`]).

pub mod proxy_process;
pub mod reload;
pub mod sd_process;
pub mod seed;
