//! Connections per client address: a cap (`server.max_connections_per_client`),
//! and the slot each open connection holds. A client is an IPv4 address or
//! an IPv6 /64 (what one host or one home is given); a trusted proxy
//! (`server.trusted_proxies`) is not capped, since all its clients arrive
//! from its address. Over the cap, a new connection is closed as soon as it
//! is accepted, before any byte is read (nginx's `limit_conn`).

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::OwnedSemaphorePermit;

/// Open connections by client, and the cap.
#[derive(Debug)]
pub struct ClientCap {
    cap: u32,
    open: DashMap<u128, u32>,
    exempt: Vec<ipnet::IpNet>,
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
        let mut open = self.open.entry(client).or_insert(0);
        if *open >= self.cap {
            return Err(());
        }
        *open += 1;
        Ok(Some(ClientSlot {
            cap: Arc::clone(self),
            client,
        }))
    }

    /// Connections open from the client of `ip`.
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.open
            .get(&client_of(ip.to_canonical()))
            .map_or(0, |n| *n)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.cap.open.remove_if_mut(&self.client, |_, open| {
            *open = open.saturating_sub(1);
            *open == 0
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
