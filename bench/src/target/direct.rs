//! Direct loopback TCP: the ceiling every relay is measured against.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use super::echo::{ECHO_LEN, EchoServer};
use super::{System, Target};
use crate::net::{STEP, accept_timeout, dial, listen};
use crate::procfs::Resources;
use crate::workload::PairCreation;

/// A listener in this process; pairs are (client, accepted).
pub struct Direct {
    listener: TcpListener,
    echo: Mutex<Option<EchoServer>>,
}

impl Direct {
    /// Binds the listener.
    pub fn start() -> anyhow::Result<Self> {
        Ok(Direct {
            listener: listen()?,
            echo: Mutex::new(None),
        })
    }
}

/// Connects to `front` and accepts the connection the relay (or the client) makes to `back`.
pub(super) fn pair_via(
    front: std::net::SocketAddr,
    back: &TcpListener,
) -> anyhow::Result<(TcpStream, TcpStream)> {
    let a = dial(front, None).context("connect")?;
    let b = accept_timeout(back, STEP)?.context("backend saw no connection")?;
    Ok((a, b))
}

/// One short connection to an echo server at `to`: connect, 64-byte echo, close.
pub(super) fn echo_op(to: std::net::SocketAddr, from: Option<Ipv4Addr>) -> anyhow::Result<()> {
    let mut s = dial(to, from).context("connect")?;
    let msg = [0x42u8; ECHO_LEN];
    s.write_all(&msg)?;
    let mut back = [0u8; ECHO_LEN];
    s.read_exact(&mut back)?;
    anyhow::ensure!(back == msg, "echo corrupted");
    Ok(())
}

impl Target for Direct {
    fn system(&self) -> System {
        System::Direct
    }

    fn open_pair(&self) -> anyhow::Result<(TcpStream, TcpStream)> {
        pair_via(self.listener.local_addr()?, &self.listener)
    }

    fn prepare_setup(
        &self,
        _ops: usize,
        threads: usize,
        _creation: PairCreation,
    ) -> anyhow::Result<()> {
        let e = EchoServer::start(&self.listener, threads)?;
        *self.echo.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(e);
        Ok(())
    }

    fn setup_op(&self, from: Option<Ipv4Addr>) -> anyhow::Result<()> {
        echo_op(self.listener.local_addr()?, from)
    }

    fn finish_setup(&self) {
        if let Ok(mut e) = self.echo.lock() {
            e.take();
        }
    }

    fn relay_cpu(&self) -> Option<Duration> {
        None
    }

    fn relay_resources(&self) -> Option<Resources> {
        None
    }
}
