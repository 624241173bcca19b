//! The table of open connections: what each is doing and since when, and which one makes
//! room when a new connection arrives at the connection cap.

use std::net::SocketAddr;
use std::sync::Arc;

/// Where a connection is in its life, for choosing which one makes room at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Accepted, no request finished reading yet (TLS handshake or first head pending).
    Fresh,
    /// A request is being served.
    Busy,
    /// Between requests (keep-alive).
    Idle,
}

/// One open connection as the table sees it.
#[derive(Debug)]
struct ConnEntry {
    phase: Phase,
    /// When it entered `phase`.
    since: std::time::Instant,
    /// Asked to make room (already told: not chosen again).
    evicting: bool,
    /// The client, as the bcrypt queue sees it (an address, an IPv6 /64).
    client: std::net::IpAddr,
    /// Tells the connection to make room.
    evict: Arc<tokio::sync::Notify>,
}

/// Every open connection: what it is doing and since when.
#[derive(Debug, Default)]
pub(super) struct ConnTable {
    conns: std::sync::Mutex<std::collections::HashMap<u64, ConnEntry>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl ConnTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(self: &Arc<Self>, peer: SocketAddr) -> ConnHandle {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evict = Arc::new(tokio::sync::Notify::new());
        self.lock().insert(
            id,
            ConnEntry {
                phase: Phase::Fresh,
                since: std::time::Instant::now(),
                evicting: false,
                client: crate::web::basic_auth::client_key(peer.ip()),
                evict: evict.clone(),
            },
        );
        ConnHandle {
            table: self.clone(),
            id,
            evict,
        }
    }

    /// Asks one connection to make room: of the client holding the most connections that
    /// are not serving a request, the longest idle one, else the oldest fresh one. False
    /// when every connection is busy serving a request.
    pub(super) fn evict_one(&self) -> bool {
        let mut conns = self.lock();
        // Few distinct clients in practice: a small list beats a map (this runs once per
        // connection accepted at the cap, i.e. thousands of times a second under a flood);
        // a map once there are many.
        let mut few: Vec<(std::net::IpAddr, usize)> = Vec::with_capacity(8);
        let mut many: std::collections::HashMap<std::net::IpAddr, usize> = Default::default();
        for c in conns
            .values()
            .filter(|c| c.phase != Phase::Busy && !c.evicting)
        {
            if let Some((_, n)) = few.iter_mut().find(|(ip, _)| *ip == c.client) {
                *n += 1;
            } else if few.len() < 16 {
                few.push((c.client, 1));
            } else {
                *many.entry(c.client).or_default() += 1;
            }
        }
        let held = few.into_iter().chain(many);
        let Some((client, _)) = held.into_iter().max_by_key(|(_, n)| *n) else {
            return false;
        };
        let Some(id) =
            oldest(&conns, client, Phase::Idle).or_else(|| oldest(&conns, client, Phase::Fresh))
        else {
            return false;
        };
        let Some(c) = conns.get_mut(&id) else {
            return false;
        };
        c.evicting = true;
        // notify_one keeps a permit if the connection is not waiting right now.
        c.evict.notify_one();
        true
    }
}

/// `client`'s connection in `phase` longest, not already asked to make room.
fn oldest(
    conns: &std::collections::HashMap<u64, ConnEntry>,
    client: std::net::IpAddr,
    phase: Phase,
) -> Option<u64> {
    conns
        .iter()
        .filter(|(_, c)| c.client == client && c.phase == phase && !c.evicting)
        .min_by_key(|(_, c)| c.since)
        .map(|(id, _)| *id)
}

/// A connection's entry in the [`ConnTable`]; removed when dropped.
#[derive(Debug, Clone)]
pub(super) struct ConnHandle {
    table: Arc<ConnTable>,
    id: u64,
    pub(super) evict: Arc<tokio::sync::Notify>,
}

impl ConnHandle {
    pub(super) fn set(&self, phase: Phase) {
        if let Some(c) = self.table.lock().get_mut(&self.id) {
            c.phase = phase;
            c.since = std::time::Instant::now();
        }
    }

    pub(super) fn phase(&self) -> Option<Phase> {
        self.table.lock().get(&self.id).map(|c| c.phase)
    }

    pub(super) fn remove(&self) {
        self.table.lock().remove(&self.id);
    }
}

/// Removes the connection from the table when its task ends, however it ends.
pub(super) struct Unregister(pub(super) ConnHandle);

impl Drop for Unregister {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// Marks the connection idle again when its request's handler is done (or dropped).
pub(super) struct IdleWhenDone(pub(super) ConnHandle);

impl Drop for IdleWhenDone {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_from_the_heaviest_client_idle_first_never_busy() {
        let table = Arc::new(ConnTable::default());
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        let prom_idle = table.insert(a);
        prom_idle.set(Phase::Idle);
        let flood_fresh = table.insert(b);
        let flood_idle = table.insert(b);
        flood_idle.set(Phase::Idle);
        let flood_busy = table.insert(b);
        flood_busy.set(Phase::Busy);
        let chosen = |h: &ConnHandle| table.lock().get(&h.id).is_some_and(|c| c.evicting);
        // b holds two connections not serving a request, a one: b's idle one goes first.
        assert!(table.evict_one());
        assert!(chosen(&flood_idle) && !chosen(&prom_idle) && !chosen(&flood_fresh));
        // Then b's fresh one and a's idle one tie at one each; either may go, busy never.
        assert!(table.evict_one());
        assert!(table.evict_one());
        assert!(chosen(&flood_fresh) && chosen(&prom_idle));
        assert!(!table.evict_one(), "only a busy connection is left");
        assert!(!chosen(&flood_busy));
        flood_busy.remove();
        assert!(table.lock().get(&flood_busy.id).is_none());
    }
}
