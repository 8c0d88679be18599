//! A core's parking lot: relaying pairs that went quiet for `park_after`, held as a compact
//! record (no task, no future, no timer) until a byte or a close arrives on one of their
//! sockets.
//!
//! One `epoll` instance per core watches every parked socket (level-triggered; a socket whose
//! direction already reached EOF only for errors and hang-ups, else `EPOLLIN | EPOLLRDHUP`),
//! each with its slab key, side and a generation as event data, so that an event of a pair
//! that left the lot in the same batch is recognised and dropped. A socket leaves the epoll
//! set (`EPOLL_CTL_DEL`) whenever its record leaves the lot, whatever for: a socket handed on
//! (binary upgrade) stays open elsewhere and would otherwise keep reporting here. The core
//! waits for this epoll fd's readiness through its own driver (`core_park.rs`); this module
//! does no waiting and owns no task.
//!
//! Core-local (`RefCell`); no borrow is held across an await or a call out.
//! Ownership: each record owns its two sockets' fds until it leaves the lot.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use slab::Slab;

/// Events one `epoll_wait` returns at most: bounds the work one wake-up of the lot's task does
/// before it lets the core's other tasks run (each event resumes at most one pair).
pub(crate) const WAKE_BATCH: usize = 64;

/// A parked pair: its two sockets, what the epoll registration needs, its idle time and the
/// core's record `T` (counters, guards, throttles).
#[derive(Debug)]
pub(crate) struct Parked<T> {
    /// `[a, b]`.
    pub fds: [OwnedFd; 2],
    /// Directions `[a→b, b→a]` that reached EOF (their source is watched for errors only).
    pub eof: [bool; 2],
    /// When a byte last moved (the idle timeout runs on while parked).
    pub last: Instant,
    /// The core's part of the record.
    pub pair: T,
}

/// A pair leaving the lot because one of its sockets reported.
#[derive(Debug)]
pub(crate) struct Woken<T> {
    pub parked: Parked<T>,
    /// A socket whose direction had reached EOF reported an error or hang-up: the peer reset
    /// (a relay would not notice it until the other side spoke).
    pub reset: bool,
}

struct Slot<T> {
    generation: u32,
    parked: Parked<T>,
}

/// The parked pairs of one core. Bounded by the pairs the core holds (each relaying pair is in
/// the lot at most once, and `max_conns_per_core` bounds them).
pub(crate) struct ParkingLot<T> {
    epoll: OwnedFd,
    slots: RefCell<Slab<Slot<T>>>,
    generation: Cell<u32>,
}

/// Event data: generation (32 bits), slab key (31 bits), side (1 bit).
fn token(generation: u32, key: usize, side: usize) -> u64 {
    (u64::from(generation) << 32) | ((key as u64 & 0x7fff_ffff) << 1) | side as u64
}

fn untoken(data: u64) -> (u32, usize) {
    ((data >> 32) as u32, ((data >> 1) & 0x7fff_ffff) as usize)
}

/// Largest slab key the event data can name.
const MAX_KEY: usize = 0x7fff_ffff;

impl<T> ParkingLot<T> {
    /// An empty lot with its own epoll instance (close-on-exec).
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes flags only; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            slots: RefCell::default(),
            generation: Cell::new(0),
        })
    }

    /// A second fd of the lot's epoll instance, for the core's driver to wait on readiness.
    pub(crate) fn watch_fd(&self) -> io::Result<OwnedFd> {
        self.epoll.try_clone()
    }

    /// Pairs parked now.
    pub(crate) fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: `ev` is a valid epoll_event for the call; both fds are open.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn unwatch(&self, p: &Parked<T>) {
        for fd in &p.fds {
            // ENOENT when its registration failed half-way: nothing to remove.
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0);
        }
    }

    /// Parks `p`; on an epoll error (or a full key space) gives it back, watching nothing.
    pub(crate) fn park(&self, p: Parked<T>) -> Result<(), (Parked<T>, io::Error)> {
        let generation = self.generation.get().wrapping_add(1);
        self.generation.set(generation);
        let mut slots = self.slots.borrow_mut();
        let entry = slots.vacant_entry();
        let key = entry.key();
        if key > MAX_KEY {
            return Err((p, io::Error::from(io::ErrorKind::OutOfMemory)));
        }
        for side in 0..2 {
            let events = if p.eof[side] {
                0 // EPOLLERR and EPOLLHUP are always reported.
            } else {
                (libc::EPOLLIN | libc::EPOLLRDHUP) as u32
            };
            let fd = p.fds[side].as_raw_fd();
            if let Err(e) = self.ctl(
                libc::EPOLL_CTL_ADD,
                fd,
                events,
                token(generation, key, side),
            ) {
                self.unwatch(&p);
                return Err((p, e));
            }
        }
        entry.insert(Slot {
            generation,
            parked: p,
        });
        Ok(())
    }

    /// The pairs whose sockets reported, at most [`WAKE_BATCH`] events' worth (none when the
    /// lot's epoll has nothing ready). Each leaves the lot.
    pub(crate) fn wake(&self) -> Vec<Woken<T>> {
        // SAFETY: epoll_event is plain data; all-zero is a valid value.
        let mut events: [libc::epoll_event; WAKE_BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: `events` holds WAKE_BATCH entries; a zero timeout never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                WAKE_BATCH as libc::c_int,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        let mut woken = Vec::new();
        let mut slots = self.slots.borrow_mut();
        for ev in &events[..n] {
            let data = ev.u64;
            let (generation, key) = untoken(data);
            let side = (data & 1) as usize;
            // Stale: the pair left the lot earlier in this batch (and its key may be reused).
            if slots.get(key).is_none_or(|s| s.generation != generation) {
                continue;
            }
            let slot = slots.remove(key);
            self.unwatch(&slot.parked);
            let hangup = ev.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            woken.push(Woken {
                reset: hangup && slot.parked.eof[side],
                parked: slot.parked,
            });
        }
        woken
    }

    /// The pairs parked with no byte moved for `idle` before `now`; they leave the lot.
    /// O(parked pairs); the core calls it from its tick.
    pub(crate) fn expire(&self, now: Instant, idle: Duration) -> Vec<Parked<T>> {
        let mut slots = self.slots.borrow_mut();
        let keys: Vec<usize> = slots
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.parked.last) >= idle)
            .map(|(k, _)| k)
            .collect();
        keys.into_iter()
            .map(|k| {
                let slot = slots.remove(k);
                self.unwatch(&slot.parked);
                slot.parked
            })
            .collect()
    }

    /// Every parked pair (drain, hand-over); the lot is empty after.
    pub(crate) fn take_all(&self) -> Vec<Parked<T>> {
        let slots = std::mem::take(&mut *self.slots.borrow_mut());
        slots
            .into_iter()
            .map(|(_, s)| {
                self.unwatch(&s.parked);
                s.parked
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "lot_tests.rs"]
mod tests;
