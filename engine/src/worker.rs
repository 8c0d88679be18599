//! The body of one worker thread: its listeners' accept loops, the tick and the mailbox, then
//! drain. Everything it does to the core goes through `Core`'s methods.

use std::rc::Rc;

use crate::core::Core;
use crate::pair_table::Port;

/// Runs core `core` with `listeners` until drain has finished.
pub(crate) async fn run(core: Rc<Core>, listeners: Vec<(Port, std::net::TcpListener)>) {
    for (port, l) in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => core.spawn(crate::accept::accept_loop(core.clone(), l, port)),
            Err(e) => tracing::error!(core = core.id().0, error = %e, "cannot adopt listener"),
        }
    }
    core.spawn(serve_adopted_listeners(core.clone()));
    core.spawn(core.clone().tick_until_closed());
    core.spawn(crate::core::serve_lot(core.clone()));
    core.serve_mailbox().await;
    core.drain().await;
}

/// Serves the listeners a core adopts after a binary upgrade's pause (its own again after a
/// failed upgrade, or the previous process's), until the core closes all connections.
async fn serve_adopted_listeners(core: Rc<Core>) {
    loop {
        let offered = core.listeners_offered();
        monoio::select! {
            _ = offered.wait() => {}
            _ = core.close_all().wait() => return,
        }
        for (port, l) in core.take_listeners() {
            match monoio::net::TcpListener::from_std(l) {
                Ok(l) => core.spawn(crate::accept::accept_loop(core.clone(), l, port)),
                Err(e) => tracing::error!(core = core.id().0, error = %e, "cannot adopt listener"),
            }
        }
    }
}
