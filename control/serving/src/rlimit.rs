//! The open-file soft limit raised to the hard limit at start: every connection a listener admits
//! is a file descriptor, and a soft limit of 1,024 (a common default) would make `accept` fail with
//! `EMFILE` long before the serving kit's caps. Raising the soft limit up to the hard one needs no
//! privilege; the hard limit itself is the operator's (systemd `LimitNOFILE=`).

use tracing::{debug, warn};

/// Raises `RLIMIT_NOFILE`'s soft limit to its hard limit; returns the soft limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "reading the open-file limit failed");
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the valid rlimit struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            debug!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "open-file limit raised"
            );
            return Some(raised.rlim_cur);
        }
        warn!(error = %std::io::Error::last_os_error(), "raising the open-file limit failed");
    }
    Some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = super::raise_open_file_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(now, limit.rlim_cur);
    }
}
