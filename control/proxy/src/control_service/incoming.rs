//! The ControlService's connections: TCP from the listener admitted by the serving kit, a rustls
//! handshake under the kit's deadline (client certificates verified against our CA by the
//! `ServerConfig`), then the admin check of the client certificate, once per connection. The
//! result rides along as tonic's connect info; every call checks it, so a non-admin gets
//! `PermissionDenied` on each call and each refusal is counted. An admin's connection is
//! established (tonic's keepalive and maximum age watch it); a non-admin's never is: it stays
//! evictable and the kit cuts it at the first-request deadline, so valid non-admin certificates
//! cannot hold the port.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tandem_net::tls::ServerTls;
use tracing::{debug, info};

use super::metrics::Metrics;
use super::policy::{AdminPolicy, Denied};
use tandem_net::grpc::{TlsListener, TlsPeers};
use tandem_serving::{Acceptor, Admission, Handshake, Slot};

/// Handshaken connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 16;

/// Who is calling: tonic's connect info, attached to every request of the connection.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer's TCP address.
    pub addr: Option<SocketAddr>,
    /// The admin name the certificate maps to, or why it does not.
    pub admin: Result<String, Denied>,
}

/// Checks each control client's certificate against the admin policy. Every client that
/// completes the handshake is served (its calls are refused one by one when it is no admin);
/// only an admin's connection is established.
#[derive(Clone)]
pub(crate) struct AdminPeers {
    pub(crate) policy: AdminPolicy,
    pub(crate) metrics: Arc<Metrics>,
}

impl TlsPeers for AdminPeers {
    type Info = Caller;

    async fn identify(
        &self,
        leaf: Option<CertificateDer<'static>>,
        addr: SocketAddr,
        slot: &Slot,
    ) -> Option<Caller> {
        let admin = self.policy.authorize(leaf.as_deref()).await;
        match &admin {
            Ok(name) => {
                slot.establish();
                debug!(admin = %name, "control client identified");
            }
            Err(d) => info!(reason = d.kind(), detail = %d, "control client is not an admin"),
        }
        Some(Caller {
            addr: Some(addr),
            admin,
        })
    }

    fn handshake_failed(&self, slot: &Slot, error: &io::Error) {
        let why = match slot.cut_reason() {
            Some(reason) => reason.as_str().to_owned(),
            None => format!("TLS handshake failed: {error}"),
        };
        self.metrics.handshake_failed(&why);
    }
}

/// The control port's listener under `admission`.
pub(crate) fn listener(
    listener: tandem_serving::ListenerGroup,
    tls: ServerTls,
    admission: Admission,
    peers: AdminPeers,
) -> TlsListener<AdminPeers> {
    TlsListener {
        acceptor: Acceptor::new(listener, admission, Handshake::Tls),
        tls,
        peers,
        ready_queue: READY_QUEUE,
    }
}
