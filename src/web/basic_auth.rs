//! `basic_auth_users`: the bcrypt hashes as Go's `bcrypt.Cost` accepts them, the
//! `Authorization: Basic` header, and the check itself: bcrypt on the blocking pool, one
//! at a time, a cache of successes (the fast path: no queue at all), unknown users paying a
//! bcrypt too so timing does not reveal which users exist, and a fair queue: each client
//! address (an IPv6 /64) waits in its own short queue and the checks take turns between
//! addresses, so a flood of wrong passwords from one address, even for a real user name,
//! delays another address's check by about one bcrypt per flooding address, not by the
//! flood's length. A client over its own queue gets 429; the server over its total bound
//! drops the newest waiter of the longest queue first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::{invalid, WebConfigError};

/// How many successful (user, password) checks are remembered.
const AUTH_CACHE_SIZE: usize = 100;
/// How many requests may wait for a bcrypt check at once, all clients together.
const BCRYPT_QUEUE: usize = 32;
/// How many requests of one client address may wait for a bcrypt check; more get 429.
const BCRYPT_QUEUE_PER_CLIENT: usize = 4;
/// Longest `Authorization` credentials decoded.
const MAX_CREDENTIALS: usize = 16 * 1024;

/// Go's `base64.StdEncoding`, as `net/http`'s `BasicAuth` uses it: padding required,
/// non-zero trailing bits tolerated.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Checks a configured hash as Go's `bcrypt.Cost` does, with the toolkit's messages.
pub fn validate_hash(user: &str, hash: &str) -> Result<(), WebConfigError> {
    // What Go's bcrypt.Cost accepts: $2a$/$2b$/$2x$/$2y$, a two-digit cost 4..=31, then
    // 53 characters of salt and hash.
    let b = hash.as_bytes();
    if b.len() < 59 {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: hashedSecret too short to be a bcrypted password"
        )));
    }
    if b[0] != b'$' || b[1] != b'2' {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: bcrypt algorithm version '{}' requested is newer than current version '2'",
            String::from_utf8_lossy(&b[1..2])
        )));
    }
    if hash.parse::<bcrypt::HashParts>().is_err() {
        return Err(invalid(format!(
            "basic_auth_users: {user}: not a bcrypt hash (expected $2y$10$... as made by `htpasswd -nBC 10`)"
        )));
    }
    Ok(())
}

/// The (user, password) of an `Authorization: Basic` header; `None` when absent or
/// malformed.
pub fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = rest.trim();
    if encoded.len() > MAX_CREDENTIALS {
        return None;
    }
    let decoded = GO_STD_BASE64.decode(encoded).ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Outcome of a basic-auth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Known user, right password.
    Allowed,
    /// Unknown user or wrong password.
    Denied,
    /// Too many bcrypt checks queued, all clients together (503).
    Busy,
    /// Too many bcrypt checks queued from this client address (429).
    TooMany,
}

/// Checks basic-auth credentials: bcrypt runs on the blocking pool, one at a time (it is
/// CPU-bound by design), in turns between client addresses; successes are cached so
/// repeated scrapes pay it once.
#[derive(Debug)]
pub struct Authenticator {
    cache: Mutex<HashSet<[u8; 32]>>,
    turns: Arc<Turns>,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            cache: Mutex::new(HashSet::new()),
            turns: Arc::new(Turns::new(BCRYPT_QUEUE, BCRYPT_QUEUE_PER_CLIENT)),
        }
    }
}

/// Who a client is for the queue: its address, an IPv6 one cut to its /64 (one host or
/// network may hold a whole /64), a v4-mapped one as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

/// Why a turn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// This client has [`Turns::per_client`] checks waiting.
    Client,
    /// The server has [`Turns::total`] checks waiting, none of them droppable.
    Server,
}

/// Round-robin turns at the one bcrypt slot between client addresses, each with a bounded
/// FIFO queue.
#[derive(Debug)]
struct Turns {
    state: Mutex<TurnState>,
    total: usize,
    per_client: usize,
}

#[derive(Debug, Default)]
struct TurnState {
    /// Someone holds the slot.
    busy: bool,
    /// Waiters per client, oldest first.
    queues: HashMap<IpAddr, VecDeque<tokio::sync::oneshot::Sender<Turn>>>,
    /// Clients with waiters, in the order they get the next turn.
    order: VecDeque<IpAddr>,
    /// Waiters, all clients together.
    waiting: usize,
    /// The client holding the slot.
    current: Option<IpAddr>,
}

/// The bcrypt slot; handing it on when dropped.
#[derive(Debug)]
struct Turn {
    turns: Option<Arc<Turns>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(t) = self.turns.take() {
            t.pass_on();
        }
    }
}

impl Turns {
    fn new(total: usize, per_client: usize) -> Turns {
        Turns {
            state: Mutex::new(TurnState::default()),
            total,
            per_client,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `client`'s turn at the slot.
    async fn take(self: &Arc<Self>, client: IpAddr) -> Result<Turn, Refused> {
        let rx = {
            let mut st = self.lock();
            if !st.busy && st.waiting == 0 {
                st.busy = true;
                st.current = Some(client);
                return Ok(Turn {
                    turns: Some(self.clone()),
                });
            }
            let mine = st.queues.get(&client).map_or(0, VecDeque::len);
            if mine >= self.per_client {
                return Err(Refused::Client);
            }
            if st.waiting >= self.total {
                // Make room by dropping the newest waiter of the longest queue, if that is
                // longer than this client's would become.
                let longest = st
                    .queues
                    .iter()
                    .max_by_key(|(_, q)| q.len())
                    .map(|(ip, q)| (*ip, q.len()));
                match longest {
                    Some((ip, len)) if len > mine + 1 => {
                        let q = st.queues.get_mut(&ip).expect("present");
                        drop(q.pop_back());
                        st.waiting -= 1;
                    }
                    _ => return Err(Refused::Server),
                }
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let q = st.queues.entry(client).or_default();
            if q.is_empty() {
                // A newcomer goes before the client holding the slot (which has had its
                // turn), not after it.
                let at = match st.order.back() {
                    Some(last) if Some(*last) == st.current => st.order.len() - 1,
                    _ => st.order.len(),
                };
                st.order.insert(at, client);
            }
            st.queues.get_mut(&client).expect("present").push_back(tx);
            st.waiting += 1;
            rx
        };
        // A dropped sender: this waiter was dropped to make room for another client.
        rx.await.map_err(|_| Refused::Client)
    }

    /// Gives the slot to the oldest waiter of the next client in turn, or frees it.
    fn pass_on(self: &Arc<Self>) {
        let mut st = self.lock();
        loop {
            let Some(client) = st.order.pop_front() else {
                st.busy = false;
                st.current = None;
                return;
            };
            let Some(q) = st.queues.get_mut(&client) else {
                continue;
            };
            let next = q.pop_front();
            let more = !q.is_empty();
            if more {
                st.order.push_back(client);
            } else {
                st.queues.remove(&client);
            }
            let Some(tx) = next else { continue };
            st.waiting -= 1;
            let turn = Turn {
                turns: Some(self.clone()),
            };
            match tx.send(turn) {
                Ok(()) => {
                    st.current = Some(client);
                    return;
                }
                // The waiter went away: disarm its turn and try the next one.
                Err(mut turn) => turn.turns = None,
            }
        }
    }
}

/// The cache key: SHA-256 over the length-prefixed user, hash and password, so the
/// password itself is never stored.
fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash to check `user` against and whether the user is known: an unknown user is
/// checked against the costliest configured hash. `None`: no users at all.
fn hash_for<'a>(users: &'a BTreeMap<String, String>, user: &str) -> Option<(&'a str, bool)> {
    if let Some(h) = users.get(user) {
        return Some((h, true));
    }
    users
        .values()
        .max_by_key(|h| h.get(4..6).and_then(|c| c.parse::<u32>().ok()))
        .map(|h| (h.as_str(), false))
}

impl Authenticator {
    /// [`Authenticator::check_from`] for a client whose address is not known (all such
    /// requests share one queue).
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        user: &str,
        password: &str,
    ) -> AuthResult {
        self.check_from(IpAddr::from([0, 0, 0, 0]), users, user, password)
            .await
    }

    /// Checks `user`/`password` from `client` against `users`. Unknown users cost a bcrypt
    /// check too (on the costliest configured hash), so timing does not reveal which users
    /// exist. A recent success is answered from the cache without queueing.
    pub async fn check_from(
        &self,
        client: IpAddr,
        users: &BTreeMap<String, String>,
        user: &str,
        password: &str,
    ) -> AuthResult {
        let Some((hash, known)) = hash_for(users, user) else {
            return AuthResult::Denied;
        };
        let key = cache_key(user, hash, password);
        if known && self.lock_cache().contains(&key) {
            return AuthResult::Allowed;
        }
        let turn = match self.turns.take(client_key(client)).await {
            Ok(t) => t,
            Err(Refused::Client) => return AuthResult::TooMany,
            Err(Refused::Server) => return AuthResult::Busy,
        };
        let (password, hash) = (password.to_string(), hash.to_string());
        // The turn is held until bcrypt ends, even if this request goes away meanwhile.
        let matched = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if known && matched {
            let mut cache = self.lock_cache();
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key);
            AuthResult::Allowed
        } else {
            AuthResult::Denied
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(v: &str) -> Option<(String, String)> {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        credentials(&h)
    }

    #[test]
    fn basic_credentials() {
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(auth("Basic YWxpY2U6cHc="), pair("alice", "pw"));
        assert_eq!(auth("basic  YWxpY2U6cHc= "), pair("alice", "pw"));
        // "a:b:c": the password may hold colons.
        assert_eq!(auth("Basic YTpiOmM="), pair("a", "b:c"));
        // Padding is required, as in Go's StdEncoding; trailing bits are tolerated.
        assert_eq!(auth("Basic YWxpY2U6cHc"), None);
        assert_eq!(auth("Basic YWxpY2U6cHd="), pair("alice", "pw"));
        assert_eq!(auth("Basic YW=j"), None);
        assert_eq!(auth("Basic Y"), None);
        assert_eq!(auth("Basic YWJj"), None, "no colon");
        assert_eq!(auth("Bearer YWxpY2U6cHc="), None);
        assert_eq!(credentials(&HeaderMap::new()), None);
        let long = format!("Basic {}", "QUFB".repeat(MAX_CREDENTIALS / 4 + 1));
        assert_eq!(auth(&long), None);
    }

    #[test]
    fn unknown_users_are_checked_against_the_costliest_hash() {
        let mut users = BTreeMap::new();
        users.insert("a".to_string(), "$2y$04$x".to_string());
        users.insert("b".to_string(), "$2y$12$y".to_string());
        assert_eq!(hash_for(&users, "a"), Some(("$2y$04$x", true)));
        assert_eq!(hash_for(&users, "zz"), Some(("$2y$12$y", false)));
        assert_eq!(hash_for(&BTreeMap::new(), "a"), None);
    }

    #[tokio::test]
    async fn turns_alternate_between_clients_and_bound_each_queue() {
        let turns = Arc::new(Turns::new(6, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = turns.take(a).await.unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (who, name) in [(a, "a1"), (a, "a2"), (a, "a3"), (b, "b1")] {
            let (turns, log) = (turns.clone(), log.clone());
            waiters.push(tokio::spawn(async move {
                let t = turns.take(who).await;
                log.lock().unwrap().push(name);
                drop(t);
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // a's queue is full: 429 for a, b still gets in.
        assert_eq!(turns.take(a).await.unwrap_err(), Refused::Client);
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        // b waited for the check in progress only, not behind a's queue.
        assert_eq!(*log.lock().unwrap(), ["b1", "a1", "a2", "a3"]);
        assert!(!turns.lock().busy);
    }

    #[tokio::test]
    async fn a_full_server_drops_the_longest_queue_first() {
        let turns = Arc::new(Turns::new(3, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held = turns.take(a).await.unwrap();
        let mut a_waiters = Vec::new();
        for _ in 0..3 {
            let t = turns.clone();
            a_waiters.push(tokio::spawn(async move { t.take(a).await.map(drop) }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let t = turns.clone();
        let b_waiter = tokio::spawn(async move { t.take(b).await.map(drop) });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(b_waiter.await.unwrap(), Ok(()));
        let results: Vec<_> = futures_util::future::join_all(a_waiters)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_err()).count(),
            1,
            "{results:?}"
        );
    }

    #[test]
    fn clients_are_addresses_and_ipv6_slash_64s() {
        let k = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(k("127.0.0.2"), "127.0.0.2");
        assert_eq!(k("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(k("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
    }
}
