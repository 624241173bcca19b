//! File descriptors: the open-files limit (`RLIMIT_NOFILE`) raised from its soft to its hard
//! value at start, as Go programs do since Go 1.19, and the descriptors shared out between
//! the connections the exporter serves and those its polls open, so that a fleet of targets
//! can never take the descriptors `/metrics`, `/probe` and `/-/healthy` need.
//!
//! systemd starts services with a soft limit of 1024 and a hard one of 524288: raised, a
//! fleet of thousands of targets fits. When the hard limit itself is low, the budget keeps
//! the exporter answering and polls wait for a descriptor instead of failing.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors set aside for everything but connections: the runtime (epoll, eventfd), the
/// listeners, standard streams, the state file and its lock, `/proc` reads, CA and secret
/// files, name resolution.
pub const RESERVED: u64 = 64;

/// Requests one poll makes at once, each on its own connection at worst: Jira's node list,
/// its state for the cluster reading and its state for the responder reading.
pub const CONNECTIONS_PER_POLL: usize = 3;

/// Connections the HTTP server holds at most by default (`ServeOptions::max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// A limit read as "unlimited" is planned as this many descriptors.
const UNLIMITED: u64 = 1 << 20;

/// The open-files limit before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileRaise {
    /// The soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit in force afterwards.
    pub after: Option<u64>,
    /// The hard limit.
    pub hard: Option<u64>,
}

/// Raises the soft open-files limit to the hard one (as Go 1.19+ does); a failure leaves
/// the soft limit as it was. Returns the limits before and after.
pub fn raise_nofile_limit() -> NofileRaise {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let mut after = current;
    // Unlimited hard limit: the kernel refuses more than fs.nr_open anyway; keep the soft one.
    if let (Some(soft), Some(hard)) = (current, maximum) {
        if hard > soft
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .is_ok()
        {
            after = getrlimit(Resource::Nofile).current;
        }
    }
    NofileRaise {
        before: current,
        after,
        hard: maximum,
    }
}

/// The soft open-files limit in force (`None`: unlimited).
pub fn nofile_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// How the descriptors above [`RESERVED`] are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The open-files limit planned for.
    pub limit: u64,
    /// Connections the HTTP server may hold at once.
    pub serve: usize,
    /// Descriptors polls may hold at once: kept-alive connections and new ones.
    pub polls: usize,
}

impl FdBudget {
    /// The budget for an open-files limit (`None`: unlimited) and the server's own
    /// connection cap: a quarter of what is left after [`RESERVED`] for served connections
    /// (at most `max_connections`), the rest for polls.
    pub fn plan(limit: Option<u64>, max_connections: usize) -> FdBudget {
        let limit = limit.unwrap_or(UNLIMITED).min(UNLIMITED);
        // At an absurdly low limit, something is still planned: requests fail as they would.
        let usable = limit.saturating_sub(RESERVED).max(4);
        let serve = (usable / 4).min(max_connections as u64).max(1);
        let polls = (usable - serve).max(2);
        FdBudget {
            limit,
            serve: serve as usize,
            polls: polls as usize,
        }
    }

    /// The budget for the limit in force now.
    pub fn current(max_connections: usize) -> FdBudget {
        Self::plan(nofile_limit(), max_connections)
    }

    /// Polls that may run at once: half the poll descriptors, at
    /// [`CONNECTIONS_PER_POLL`] each; the other half is for kept-alive connections.
    pub fn concurrent_polls(&self) -> usize {
        (self.polls / 2 / CONNECTIONS_PER_POLL).max(1)
    }

    /// Whether one kept-alive connection per upstream origin fits beside the polls in
    /// progress: otherwise each poll opens its connections and closes them after.
    pub fn keep_alive(&self, origins: usize) -> bool {
        origins + self.concurrent_polls() * CONNECTIONS_PER_POLL <= self.polls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_default_soft_limit_keeps_the_server_its_share() {
        let b = FdBudget::plan(Some(1024), 512);
        assert_eq!(b.serve, 240);
        assert_eq!(b.polls, 720);
        assert_eq!(b.concurrent_polls(), 120);
        assert!(b.keep_alive(360));
        assert!(!b.keep_alive(361));
        // Every descriptor planned fits under the limit with the reserve left over.
        assert!(b.serve as u64 + b.polls as u64 + RESERVED <= 1024);
    }

    #[test]
    fn a_high_limit_keeps_the_connection_cap_and_every_origin_alive() {
        let b = FdBudget::plan(Some(524_288), 512);
        assert_eq!(b.serve, 512);
        assert!(b.keep_alive(10_000));
        assert_eq!(FdBudget::plan(None, 512).limit, UNLIMITED);
    }

    #[test]
    fn a_tiny_limit_still_plans_one_of_each() {
        let b = FdBudget::plan(Some(16), 512);
        assert_eq!((b.serve, b.polls, b.concurrent_polls()), (1, 3, 1));
        assert!(!b.keep_alive(3));
    }

    #[test]
    fn raising_never_lowers_the_soft_limit() {
        let r = raise_nofile_limit();
        if let (Some(before), Some(after)) = (r.before, r.after) {
            assert!(after >= before);
        }
        assert_eq!(r.after, nofile_limit());
        if let (Some(after), Some(hard)) = (r.after, r.hard) {
            assert_eq!(after, hard);
        }
    }
}
