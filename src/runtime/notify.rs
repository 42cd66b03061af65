//! Change notification for watchers (`job.watch()`, `await job.wait_async()`, progress bars).
//!
//! A watcher holds an eventfd that becomes readable whenever the Job has stepped. Python
//! waits on it with `select`/`poll` (sync) or `loop.add_reader` (asyncio), so no thread is
//! ever parked on the watcher's behalf, and dropping the watcher is all a cancellation needs.
//! The eventfd counts, so a burst of steps is one wake-up: watchers re-read the status and
//! coalesce changes themselves.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The readable end a watcher polls.
#[derive(Debug)]
pub struct ChangeFd {
    fd: OwnedFd,
}

impl ChangeFd {
    fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; a non-negative result is a new fd we own.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` was just returned by eventfd and nothing else owns it.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Consumes pending notifications (the fd stops being readable).
    pub fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a u64 we own; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut count).cast(), 8) };
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a u64 we own; a full counter (EAGAIN) is still readable.
        unsafe { libc::write(self.fd.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// The watchers of one Job. Watchers are held weakly: a dropped watcher just disappears.
#[derive(Default)]
pub struct Watchers {
    any: AtomicBool,
    list: Mutex<Vec<Weak<ChangeFd>>>,
}

impl Watchers {
    pub fn subscribe(&self) -> io::Result<Arc<ChangeFd>> {
        let change = Arc::new(ChangeFd::new()?);
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&change));
        self.any.store(true, Ordering::Release);
        Ok(change)
    }

    /// Wakes every watcher. Costs one atomic load when nobody watches.
    pub fn notify(&self) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|w| match w.upgrade() {
            Some(change) => {
                change.signal();
                true
            }
            None => false,
        });
        self.any.store(!list.is_empty(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&raw mut p, 1, 0) == 1 }
    }

    #[test]
    fn a_notification_makes_every_live_watcher_readable_until_cleared() {
        let watchers = Watchers::default();
        let a = watchers.subscribe().unwrap();
        let b = watchers.subscribe().unwrap();
        assert!(!readable(a.raw_fd()));
        watchers.notify();
        watchers.notify();
        assert!(readable(a.raw_fd()) && readable(b.raw_fd()));
        a.clear();
        assert!(!readable(a.raw_fd()) && readable(b.raw_fd()));
        drop(b);
        watchers.notify();
        assert!(readable(a.raw_fd()));
        assert_eq!(watchers.list.lock().unwrap().len(), 1, "the dropped watcher is forgotten");
        drop(a);
        watchers.notify();
        assert!(!watchers.any.load(Ordering::Acquire));
    }
}
