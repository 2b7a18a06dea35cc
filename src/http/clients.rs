//! Connections per client address: a cap (`server.max_connections_per_client`),
//! and the slot each open connection holds. A client is an IPv4 address or
//! an IPv6 /64 (what one host or one home is given); a trusted proxy
//! (`server.trusted_proxies`) is not capped, since all its clients arrive
//! from its address. At the cap, the client's connection that has waited
//! for a request the longest (an idle keep-alive, a slow head, an answer
//! read slowly), if for `EVICT_AFTER` or more, is closed to make room, so a
//! client holding its slots open without asking anything never locks out
//! its own next click; when all of them are busy, a new connection is
//! closed as soon as it is accepted, before any byte is read (nginx's
//! `limit_conn`).

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Duration, Instant};

use super::watch::{Watch, WeakWatch};

/// How long a connection must have waited for a request before it is
/// closed to make room for another of its client (a fresh one is about to
/// send its request).
pub const EVICT_AFTER: Duration = Duration::from_secs(2);

/// Open connections by client, and the cap.
#[derive(Debug)]
pub struct ClientCap {
    cap: u32,
    open: DashMap<u128, Client>,
    exempt: Vec<ipnet::IpNet>,
}

/// One client's open connections.
#[derive(Debug, Default)]
struct Client {
    count: u32,
    /// Their watches, once their connections are set up (after a TLS
    /// handshake): the ones that may be evicted.
    watches: Vec<WeakWatch>,
}

/// One open connection's place in its client's count (given back on drop).
#[derive(Debug)]
pub struct ClientSlot {
    cap: Arc<ClientCap>,
    client: u128,
}

/// What admits a connection: its place in the listeners' budget and in
/// its client's count; held while the connection lasts.
#[derive(Debug, Default)]
pub struct Admission {
    pub budget: Option<OwnedSemaphorePermit>,
    pub client: Option<ClientSlot>,
}

impl ClientCap {
    /// `None` when `cap` is 0 (no cap).
    pub fn new(cap: u32, trusted_proxies: &[ipnet::IpNet]) -> Option<Arc<ClientCap>> {
        (cap > 0).then(|| {
            Arc::new(ClientCap {
                cap,
                open: DashMap::new(),
                exempt: trusted_proxies.to_vec(),
            })
        })
    }

    /// A slot for a connection from `ip`: `Ok(None)` for a trusted proxy,
    /// `Err(())` when the client has `cap` open already.
    #[allow(clippy::result_unit_err)]
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Option<ClientSlot>, ()> {
        let ip = ip.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Ok(None);
        }
        let client = client_of(ip);
        let mut open = self.open.entry(client).or_default();
        if open.count >= self.cap && !evict_one(&mut open.watches, Instant::now()) {
            return Err(());
        }
        open.count += 1;
        Ok(Some(ClientSlot {
            cap: Arc::clone(self),
            client,
        }))
    }

    /// Connections open from the client of `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.open
            .get(&client_of(ip.to_canonical()))
            .map_or(0, |c| c.count)
    }
}

/// Closes the connection among `watches` that has waited for a request the
/// longest, if for `EVICT_AFTER` or more; true when one was.
fn evict_one(watches: &mut Vec<WeakWatch>, now: Instant) -> bool {
    watches.retain(|w| !w.is_gone());
    let oldest = watches
        .iter()
        .filter_map(|w| {
            let watch = w.upgrade()?;
            Some((watch.waiting_since()?, watch))
        })
        .min_by_key(|(since, _)| *since);
    match oldest {
        Some((since, watch)) if now.saturating_duration_since(since) >= EVICT_AFTER => {
            watch.evict();
            true
        }
        _ => false,
    }
}

impl ClientSlot {
    /// The connection's watch, once it is set up: its client may evict it.
    pub fn attach(&self, watch: &Watch) {
        if let Some(mut client) = self.cap.open.get_mut(&self.client) {
            client.watches.push(watch.downgrade());
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.cap.open.remove_if_mut(&self.client, |_, client| {
            client.count = client.count.saturating_sub(1);
            client.watches.retain(|w| !w.is_gone());
            client.count == 0
        });
    }
}

/// An IPv4 address, or the /64 of an IPv6 one, as one number (IPv4 in a
/// range no /64 takes).
fn client_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (1 << 127) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) >> 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let cap = ClientCap::new(2, &[]).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let watch = || Watch::start(Duration::from_secs(60), Duration::from_secs(10));
        let (s1, s2) = (
            cap.admit(a).unwrap().unwrap(),
            cap.admit(a).unwrap().unwrap(),
        );
        let (w1, w2) = (watch(), watch());
        s1.attach(&w1);
        tokio::time::advance(Duration::from_millis(500)).await;
        s2.attach(&w2);
        // Both await their first request, for less than EVICT_AFTER.
        assert!(cap.admit(a).is_err(), "a fresh connection is not evicted");
        tokio::time::advance(EVICT_AFTER).await;
        let s3 = cap.admit(a).unwrap();
        assert!(s3.is_some());
        assert_eq!(
            tokio::time::timeout(Duration::from_millis(10), w1.expired()).await,
            Ok(super::super::watch::Expired::Evicted),
            "the one waiting longest"
        );
        assert!(w2.waiting_since().is_some(), "the other stays");
        drop((s1, s2, s3));
        assert!(cap.open.is_empty());
    }

    #[test]
    fn each_client_gets_its_cap_and_slots_come_back() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let cap = ClientCap::new(2, &[proxy]).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (a1, a2) = (cap.admit(a).unwrap(), cap.admit(a).unwrap());
        assert!(cap.admit(a).is_err(), "the third from one address");
        assert!(
            cap.admit(b).unwrap().is_some(),
            "another address is counted apart"
        );
        // An IPv4-mapped IPv6 peer is the same client.
        assert!(cap.admit("::ffff:192.0.2.1".parse().unwrap()).is_err());
        drop(a1);
        assert_eq!(cap.open_from(a), 1);
        let a3 = cap.admit(a).unwrap();
        assert!(a3.is_some());
        drop((a2, a3));
        assert_eq!(cap.open_from(a), 0);
        assert!(cap.open.is_empty(), "nothing kept for a client gone");
        // One /64 is one client; the next /64 is another.
        let v6 = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (x, y) = (
            cap.admit(v6("2001:db8::1")).unwrap(),
            cap.admit(v6("2001:db8::ffff:2")).unwrap(),
        );
        assert!(cap.admit(v6("2001:db8::3")).is_err());
        assert!(cap.admit(v6("2001:db8:0:1::1")).unwrap().is_some());
        drop((x, y));
        // A trusted proxy is never capped.
        let many: Vec<_> = (0..10)
            .map(|_| cap.admit(v6("::ffff:10.1.2.3")).unwrap())
            .collect();
        assert!(many.iter().all(Option::is_none));
        assert!(ClientCap::new(0, &[]).is_none(), "0: no cap");
    }
}
