//! A hand-over in hand: the state and the sockets its indices name, owned until sent or adopted.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::state::{FdIndex, HandoverState, ListenerEntry, ListenerRole};
use super::wire::Message;
use super::{HandoverError, fdpass};

/// A [`HandoverState`] and its sockets (`fds[i]` is the socket of `FdIndex(i)`; `None` once
/// taken out for adoption). Dropping it closes the sockets it still holds.
#[derive(Debug, Default)]
pub struct Bundle {
    /// The state.
    pub state: HandoverState,
    fds: Vec<Option<OwnedFd>>,
}

impl Bundle {
    /// An empty bundle for an engine of `cores` cores whose token map has `token_key`.
    pub fn new(cores: u16, token_key: [u64; 2]) -> Self {
        Bundle {
            state: HandoverState {
                token_key,
                cores,
                ..Default::default()
            },
            fds: Vec::new(),
        }
    }

    /// A received state and its sockets (checked by the decoder: one socket per index).
    pub fn from_parts(state: HandoverState, fds: Vec<OwnedFd>) -> Self {
        Bundle {
            state,
            fds: fds.into_iter().map(Some).collect(),
        }
    }

    /// Adds a socket; returns its index.
    pub fn push(&mut self, fd: OwnedFd) -> FdIndex {
        self.fds.push(Some(fd));
        self.state.fds = self.fds.len() as u32;
        FdIndex(self.state.fds - 1)
    }

    /// Adds a listening socket with its role.
    pub fn push_listener(&mut self, role: ListenerRole, fd: OwnedFd) {
        let fd = self.push(fd);
        self.state.listeners.push(ListenerEntry { role, fd });
    }

    /// Takes the socket of `i` out (once).
    pub fn take(&mut self, i: FdIndex) -> Option<OwnedFd> {
        self.fds.get_mut(i.0 as usize).and_then(Option::take)
    }

    /// Takes out the first listener with `role` still held.
    pub fn take_listener(&mut self, role: ListenerRole) -> Option<OwnedFd> {
        let fds: Vec<FdIndex> = self.fds_of(role);
        fds.into_iter().find_map(|fd| self.take(fd))
    }

    /// Takes out every listener with `role` still held, in the order they were pushed (one
    /// listener bound on several addresses travels as several sockets of one role).
    pub fn take_listeners(&mut self, role: ListenerRole) -> Vec<OwnedFd> {
        let fds: Vec<FdIndex> = self.fds_of(role);
        fds.into_iter().filter_map(|fd| self.take(fd)).collect()
    }

    fn fds_of(&self, role: ListenerRole) -> Vec<FdIndex> {
        self.state
            .listeners
            .iter()
            .filter(|l| l.role == role)
            .map(|l| l.fd)
            .collect()
    }

    /// Sends the state as an offer with its sockets.
    pub fn send(&self, sock: &UnixStream) -> Result<(), HandoverError> {
        let fds: Option<Vec<BorrowedFd<'_>>> = self
            .fds
            .iter()
            .map(|f| f.as_ref().map(AsFd::as_fd))
            .collect();
        let fds = fds.ok_or(HandoverError::Protocol("a socket was taken before sending"))?;
        fdpass::send(sock, &Message::Offer(self.state.clone()), &fds)
    }
}
