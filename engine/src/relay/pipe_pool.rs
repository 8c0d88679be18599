//! Per-core pools: pipes for the splice path and buffers for the copy fallback. A transfer
//! leases one, and returns it only when it is empty (a pipe with bytes left is closed instead).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tracing::warn;

/// The smallest pipe worth splicing through (the kernel's default pipe). Once a user's pipes
/// hold `fs.pipe-user-pages-soft` pages (64 MiB by default) the kernel makes new pipes of two
/// pages and refuses to grow them; splicing 8 KiB at a time costs more than copying 64 KiB.
pub const MIN_PIPE_CAPACITY: usize = 64 * 1024;

/// A non-blocking pipe. Owns both ends; closing happens on drop.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// Creates a pipe (O_NONBLOCK | O_CLOEXEC) and asks for `size` bytes of capacity; what the
    /// kernel granted is [`Pipe::capacity`].
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
        // SAFETY: fcntl on an fd we own; F_SETPIPE_SZ takes an int. It fails above
        // pipe-max-size (without CAP_SYS_RESOURCE) or past the user's pipe budget; the size
        // actually granted is read back below either way.
        let granted = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
        let capacity = if granted > 0 {
            granted
        } else {
            // SAFETY: as above; F_GETPIPE_SZ takes no argument.
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) }
        };
        if capacity < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            read,
            write,
            capacity: usize::try_from(capacity).unwrap_or(0),
        })
    }

    /// The capacity the kernel granted, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
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

/// Why [`PipePool::lease`] has no pipe: the transfer takes the copy path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPipe {
    /// Every pipe the pool may hold is leased, or the kernel refused one (EMFILE).
    Exhausted,
    /// The kernel made a pipe below [`MIN_PIPE_CAPACITY`] (the user's pipe budget is spent);
    /// it was closed and the pool stopped growing at its current size.
    Undersized,
}

/// Pool of pipes of one core; at most `max` exist at once (leased plus idle).
#[derive(Debug)]
pub struct PipePool {
    /// Lowered to the pool's size when the kernel grants an undersized pipe.
    max: Cell<usize>,
    size: usize,
    idle: RefCell<Vec<Pipe>>,
    existing: Cell<usize>,
    /// Makes a pipe of the asked size ([`Pipe::new`]; tests stand in for a kernel whose pipe
    /// budget runs out).
    make: fn(usize) -> io::Result<Pipe>,
}

impl PipePool {
    /// A pool that creates pipes lazily, up to `max`, each of `size` bytes.
    pub fn new(max: usize, size: usize) -> Self {
        PipePool {
            max: Cell::new(max),
            size,
            idle: RefCell::new(Vec::new()),
            existing: Cell::new(0),
            make: Pipe::new,
        }
    }

    /// An idle or new pipe, or why there is none.
    pub fn lease(&self) -> Result<Pipe, NoPipe> {
        if let Some(p) = self.idle.borrow_mut().pop() {
            return Ok(p);
        }
        if self.existing.get() >= self.max.get() {
            return Err(NoPipe::Exhausted);
        }
        let pipe = (self.make)(self.size).map_err(|_| NoPipe::Exhausted)?;
        if pipe.capacity() < MIN_PIPE_CAPACITY.min(self.size) {
            warn!(
                granted = pipe.capacity(),
                asked = self.size,
                pipes = self.existing.get(),
                "the kernel granted an undersized pipe (fs.pipe-user-pages-soft spent?); \
                 this core's pipe pool stops growing, further transfers copy"
            );
            self.max.set(self.existing.get());
            return Err(NoPipe::Undersized);
        }
        self.existing.set(self.existing.get() + 1);
        Ok(pipe)
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
        assert_eq!(pool.lease().unwrap_err(), NoPipe::Exhausted);
        assert_eq!(pool.in_use(), 2);
        pool.give_back(a);
        let c = pool.lease().unwrap();
        pool.discard(b);
        assert!(pool.lease().is_ok());
        drop(c);
    }

    /// Grants the asked size for the first three pipes of this thread, then two pages, as the
    /// kernel does once an unprivileged user's pipes hold `fs.pipe-user-pages-soft` pages.
    fn budget_of_three(size: usize) -> io::Result<Pipe> {
        thread_local!(static MADE: Cell<usize> = const { Cell::new(0) });
        let made = MADE.with(|m| m.replace(m.get() + 1));
        Pipe::new(if made < 3 { size } else { 8192 })
    }

    #[test]
    fn a_spent_pipe_budget_stops_the_pool_growing_and_says_why() {
        let pool = PipePool {
            make: budget_of_three,
            ..PipePool::new(100, 256 * 1024)
        };
        let leased: Vec<Pipe> = (0..3).map(|_| pool.lease().unwrap()).collect();
        assert!(leased.iter().all(|p| p.capacity() == 256 * 1024));
        // The fourth is two pages: closed, reported, and the pool stops at three.
        assert_eq!(pool.lease().unwrap_err(), NoPipe::Undersized);
        assert_eq!(pool.lease().unwrap_err(), NoPipe::Exhausted);
        assert_eq!(pool.in_use(), 3);
        // The three it has keep serving.
        let mut leased = leased.into_iter();
        pool.give_back(leased.next().unwrap());
        assert_eq!(pool.lease().unwrap().capacity(), 256 * 1024);
    }

    #[test]
    fn a_pipe_reports_the_capacity_the_kernel_granted() {
        let small = Pipe::new(64 * 1024).unwrap();
        assert_eq!(small.capacity(), 64 * 1024);
        // Rounded up to a power-of-two number of pages.
        let odd = Pipe::new(100 * 1024).unwrap();
        assert_eq!(odd.capacity(), 128 * 1024);
        // Above pipe-max-size: refused without CAP_SYS_RESOURCE, granted with it; either way
        // the capacity is what the kernel says, not what was asked.
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let big = Pipe::new(max * 4).unwrap();
        assert!(
            big.capacity() == max * 4 || big.capacity() <= max,
            "{}",
            big.capacity()
        );
    }
}
