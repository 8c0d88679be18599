//! A listener's sockets: one per distinct address its host name resolves to (`both.example`
//! → `127.0.0.1` and `::1`), all on one port. The accept loop serves every member in turn, so
//! a flood on one member's backlog never starves another; what reports "the" address reports
//! the primary (first) member's.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};

/// At most this many sockets per configured listener (distinct addresses of one host name):
/// a dual-stack name has two, a multi-homed host a few; the bound keeps a resolver answer
/// from making a program open hundreds of sockets. Above it, binding fails naming the count.
pub const MAX_ADDRESSES_PER_LISTENER: usize = 8;

/// One configured listener's bound sockets, never empty, at most
/// [`MAX_ADDRESSES_PER_LISTENER`]. The first is the primary.
#[derive(Debug)]
pub struct ListenerGroup {
    members: Vec<TcpListener>,
    /// The member the next accept polls first (round robin over ready members).
    next: usize,
}

impl ListenerGroup {
    /// The group of `members` (`None` when empty); the first is the primary.
    pub fn new(members: Vec<TcpListener>) -> Option<Self> {
        (!members.is_empty()).then_some(Self { members, next: 0 })
    }

    /// The primary member's address: what logs, endpoints and tests report as "the" address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.primary().local_addr()
    }

    /// Every member's address, primary first.
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.members.iter().map(TcpListener::local_addr).collect()
    }

    /// The primary member.
    pub fn primary(&self) -> &TcpListener {
        // Invariant: `new` and `From` never build an empty group.
        &self.members[0]
    }

    /// Every member, primary first.
    pub fn members(&self) -> &[TcpListener] {
        &self.members
    }

    /// The members, primary first.
    pub fn into_members(self) -> Vec<TcpListener> {
        self.members
    }

    /// How many sockets the group has (at least 1).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false (a group has a primary); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The next connection of any member. Members are polled round robin starting after the
    /// one that last gave a connection, so every member's backlog is served in turn.
    pub async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let n = self.members.len();
        for i in 0..n {
            let at = (self.next + i) % n;
            // Every member polled registers the waker, so a connection on any wakes us.
            if let Poll::Ready(accepted) = self.members[at].poll_accept(cx) {
                self.next = (at + 1) % n;
                return Poll::Ready(accepted);
            }
        }
        Poll::Pending
    }
}

impl From<TcpListener> for ListenerGroup {
    fn from(listener: TcpListener) -> Self {
        Self {
            members: vec![listener],
            next: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_backlog_on_one_member_does_not_starve_another() {
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let mut group = ListenerGroup::new(vec![a, b]).unwrap();
        assert_eq!(
            group.local_addr().unwrap(),
            a_addr,
            "the first is the primary"
        );
        assert_eq!(group.local_addrs().unwrap(), vec![a_addr, b_addr]);
        // Twenty connections wait on the primary, then one on the other member.
        let mut flood = Vec::new();
        for _ in 0..20 {
            flood.push(TcpStream::connect(a_addr).await.unwrap());
        }
        let late = TcpStream::connect(b_addr).await.unwrap();
        let late_addr = late.local_addr().unwrap();
        // Round robin: the late client is among the first two accepted.
        let mut peers = Vec::new();
        for _ in 0..2 {
            peers.push(group.accept().await.unwrap().1);
        }
        assert!(peers.contains(&late_addr), "{peers:?} lacks {late_addr}");
    }
}
