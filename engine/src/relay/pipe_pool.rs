//! Per-core pools: pipes for the splice path and buffers for the copy fallback. A transfer
//! leases one, and returns it only when it is empty (a pipe with bytes left is closed instead).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking pipe. Owns both ends; closing happens on drop.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// Creates a pipe (O_NONBLOCK | O_CLOEXEC) and asks for `size` bytes of capacity.
    pub fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid, writable array of two ints, as pipe2(2) requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl on an fd we own; F_SETPIPE_SZ takes an int. Failure (size above
        // pipe-max-size for an unprivileged user) leaves the default 64 KiB, which still works.
        let _ = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
        Ok(Pipe { read, write })
    }

    /// The read end.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The write end.
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

/// Pool of pipes of one core; at most `max` exist at once (leased plus idle).
#[derive(Debug)]
pub struct PipePool {
    max: usize,
    size: usize,
    idle: RefCell<Vec<Pipe>>,
    existing: Cell<usize>,
}

impl PipePool {
    /// A pool that creates pipes lazily, up to `max`, each of `size` bytes.
    pub fn new(max: usize, size: usize) -> Self {
        PipePool {
            max,
            size,
            idle: RefCell::new(Vec::new()),
            existing: Cell::new(0),
        }
    }

    /// An idle or new pipe; `None` when `max` are leased or the kernel refuses one (EMFILE).
    pub fn lease(&self) -> Option<Pipe> {
        if let Some(p) = self.idle.borrow_mut().pop() {
            return Some(p);
        }
        if self.existing.get() >= self.max {
            return None;
        }
        let pipe = Pipe::new(self.size).ok()?;
        self.existing.set(self.existing.get() + 1);
        Some(pipe)
    }

    /// Returns a drained pipe to the pool.
    pub fn give_back(&self, pipe: Pipe) {
        self.idle.borrow_mut().push(pipe);
    }

    /// Forgets a pipe that was closed with bytes in it.
    pub fn discard(&self, pipe: Pipe) {
        drop(pipe);
        self.existing.set(self.existing.get().saturating_sub(1));
    }

    /// Pipes leased right now.
    pub fn in_use(&self) -> usize {
        self.existing.get() - self.idle.borrow().len()
    }

    /// The capacity asked of each pipe, in bytes.
    pub fn pipe_size(&self) -> usize {
        self.size
    }
}

/// Pool of copy buffers of one core. A lease always succeeds (one buffer per direction at a
/// time, so the total is bounded by the connection limit); at most `keep` are kept for reuse.
#[derive(Debug)]
pub struct BufPool {
    keep: usize,
    size: usize,
    idle: RefCell<Vec<Box<[u8]>>>,
}

impl BufPool {
    /// A pool of `size`-byte buffers keeping at most `keep` idle.
    pub fn new(keep: usize, size: usize) -> Self {
        BufPool {
            keep,
            size,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// An idle or new buffer.
    pub fn lease(&self) -> Box<[u8]> {
        self.idle
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    /// Returns a buffer (dropped when `keep` are idle).
    pub fn give_back(&self, buf: Box<[u8]>) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.keep {
            idle.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_pool_is_bounded_and_reuses() {
        let pool = PipePool::new(2, 128 * 1024);
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert!(pool.lease().is_none());
        assert_eq!(pool.in_use(), 2);
        pool.give_back(a);
        let c = pool.lease().unwrap();
        pool.discard(b);
        assert!(pool.lease().is_some());
        drop(c);
    }
}
