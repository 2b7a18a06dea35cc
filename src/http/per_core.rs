//! The public threads: one single-threaded runtime per thread, serving its
//! own listening socket of each public listener (plain HTTP, and HTTPS when
//! on), and which thread gets a new connection.
//!
//! A listener's sockets form one `SO_REUSEPORT` group. By default the kernel
//! picks a socket by hashing the connection's addresses, which spreads
//! connections evenly, and the scheduler runs each thread on whichever CPU
//! is free. With `server.pin_threads` and one thread per allowed CPU, each
//! thread is pinned to its CPU and the group gets a three-instruction
//! classic BPF program that picks the socket of the CPU that handled the
//! connection's handshake, so a connection's packets and its requests stay
//! on the same core (the per-queue locality that `SO_INCOMING_CPU`-style
//! servers use with multi-queue NICs). That is for cores given to the edge
//! alone: where the edge shares its cores (with one client on 2 shared
//! cores, `loadtest/one-client.sh`), a pinned thread waits for its CPU while
//! the other is idle, and the edge served about 15 % fewer requests with
//! twice the sleeps and wake-ups a request. nginx and HAProxy leave affinity
//! off by default too (`worker_cpu_affinity`, `cpu-map`).
//!
//! The three system calls involved are `sys::cpu`'s.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::sys::cpu::{allowed_cpus, pin_current_thread, steer_by_cpu};
use crate::tls::TlsAccept;

use super::balance::Balancer;
use super::server::{Limits, Source, serve};

/// Pending connections a listening socket holds (tokio's own default).
const LISTEN_BACKLOG: u32 = 1024;

/// Binds a listener with `SO_REUSEPORT`, so that other threads can join it
/// with [`twin`].
pub fn bind_shared_port(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds the first socket of a new group, refusing an address another
/// socket already listens on, even one with `SO_REUSEPORT` (a second edge
/// started on the same port by mistake would otherwise silently share its
/// connections). The check binds a plain socket first; port 0 resolves to
/// the port that socket got.
pub fn bind_new_group(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let probe = std::net::TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    bind_shared_port(addr)
}

/// Another socket in `listener`'s `SO_REUSEPORT` group (same address and
/// port). Fails (address in use) when `listener` was not bound with
/// `SO_REUSEPORT`. Must be called inside a runtime.
pub fn twin(listener: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    bind_shared_port(listener.local_addr()?)
}

/// Whether `threads` public threads can be pinned one per CPU with the
/// group steered by CPU: exactly one thread per allowed CPU, and the allowed
/// CPUs numbered `0..threads` (the BPF program maps CPU `c` to socket `c`).
pub fn can_steer(threads: usize, cpus: &[usize]) -> bool {
    threads > 1 && cpus.len() == threads && cpus.iter().enumerate().all(|(i, c)| i == *c)
}

/// A future that serves one thread's share of a listener; true when its
/// connections drained cleanly.
pub type Serving = Pin<Box<dyn Future<Output = bool> + Send>>;

/// What every listener of the public threads is served with: the limits,
/// the stop signal and the drain deadline.
#[derive(Debug, Clone)]
pub struct PerThread {
    pub limits: Limits,
    pub stop: watch::Receiver<bool>,
    pub drain: Duration,
}

impl PerThread {
    /// A listener for `per_core::serve_per_thread`: each public thread runs
    /// `serve` over its own socket of it, with `tls` for HTTPS.
    pub fn group<F, S>(
        &self,
        name: &'static str,
        listener: TcpListener,
        steer: bool,
        tls: Option<TlsAccept>,
        make_service: F,
    ) -> Group
    where
        F: Fn(SocketAddr) -> S + Clone + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + Unpin + 'static,
    {
        let this = self.clone();
        Group::new(name, listener, steer, move |source| {
            serve(
                source,
                name,
                tls.clone(),
                this.limits.clone(),
                make_service.clone(),
                this.stop.clone(),
                this.drain,
            )
        })
    }
}

/// One listening socket that every public thread serves: its name (for the
/// logs), the socket, whether its connections are steered to the thread of
/// their CPU (else hashed over the threads), and how a thread serves its own
/// share of it.
pub struct Group {
    pub name: &'static str,
    pub listener: TcpListener,
    pub steer: bool,
    pub serve: Box<dyn Fn(Source) -> Serving + Send>,
}

impl Group {
    pub fn new<F, Fut>(name: &'static str, listener: TcpListener, steer: bool, serve: F) -> Group
    where
        F: Fn(Source) -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Group {
            name,
            listener,
            steer,
            serve: Box::new(move |source| Box::pin(serve(source))),
        }
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("name", &self.name).finish()
    }
}

/// A group's listener, as a std socket the threads clone or twin.
struct Shared {
    name: &'static str,
    listener: std::net::TcpListener,
    steer: bool,
    serve: Box<dyn Fn(Source) -> Serving + Send>,
    /// Without `SO_REUSEPORT` the threads share this one socket.
    one_socket: bool,
}

/// Runs every group (plain HTTP, and HTTPS when on) on `threads` threads,
/// each with one single-threaded runtime and, per group, its own listening
/// socket: the first thread takes the group's listener, the others a twin in
/// its `SO_REUSEPORT` group. With `pin` and one thread per allowed CPU, each
/// thread is pinned to its CPU and a connection goes to the thread of the
/// CPU that handled its handshake; otherwise the kernel hashes connections
/// over the sockets. Either way a thread with far more connections of a group than
/// another passes new ones on (`Balancer`). A listener bound without
/// `SO_REUSEPORT` (as tests pass) is shared by the threads instead. The
/// returned task ends when every thread has, with true when all of them
/// drained cleanly. A thread that cannot be started is logged and left out;
/// with none, the groups are served on the caller's runtime.
pub fn serve_per_thread(
    threads: usize,
    pin: bool,
    groups: Vec<Group>,
) -> tokio::task::JoinHandle<bool> {
    let mut shared = Vec::with_capacity(groups.len());
    for g in groups {
        match g.listener.into_std() {
            Ok(listener) => shared.push(Shared {
                name: g.name,
                listener,
                steer: g.steer,
                serve: g.serve,
                one_socket: false,
            }),
            Err(e) => {
                tracing::error!(error = %e, listener = g.name, "cannot hand a listener to the public threads");
                return tokio::spawn(std::future::ready(false));
            }
        }
    }
    let threads = threads.max(1);
    let mut parts = Vec::with_capacity(threads);
    for i in 0..threads {
        let made = (|| -> std::io::Result<(tokio::runtime::Runtime, Vec<TcpListener>)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let _in_runtime = runtime.enter();
            let mut own = Vec::with_capacity(shared.len());
            for g in &mut shared {
                own.push(match i {
                    0 => TcpListener::from_std(g.listener.try_clone()?)?,
                    _ => twin(&g.listener).or_else(|_| {
                        g.one_socket = true;
                        TcpListener::from_std(g.listener.try_clone()?)
                    })?,
                });
            }
            drop(_in_runtime);
            Ok((runtime, own))
        })();
        match made {
            Ok(part) => parts.push(part),
            Err(e) => {
                tracing::error!(error = %e, thread = i, "cannot start a public listener thread")
            }
        }
    }
    let cpus = allowed_cpus();
    let steerable = pin && can_steer(parts.len(), &cpus);
    if pin && !steerable {
        tracing::warn!(
            threads = parts.len(),
            cpus = ?cpus,
            "server.pin_threads needs one public thread per allowed CPU, numbered from 0; the threads are not pinned"
        );
    }
    // Threads are pinned to their CPUs when a group is steered to them.
    let mut pinned = false;
    for (k, g) in shared.iter().enumerate() {
        let steered = steerable
            && g.steer
            && !g.one_socket
            && match steer_by_cpu(&parts[0].1[k], parts.len() as u32) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, listener = g.name, "cannot steer connections by CPU; the kernel hashes them over the threads");
                    false
                }
            };
        pinned |= steered;
        tracing::info!(
            listener = g.name,
            threads = parts.len(),
            spread = if g.one_socket {
                "one shared socket"
            } else if steered {
                "one socket per thread, each thread pinned to its CPU, connections steered to the CPU that handled them"
            } else {
                "one socket per thread, connections hashed over them"
            },
            "listener served by the public threads"
        );
    }
    let mut balances: Vec<_> = shared
        .iter()
        .map(|_| Balancer::for_threads(parts.len()).into_iter())
        .collect();
    let mut handles = Vec::with_capacity(parts.len());
    // Each thread says when it has its name and its CPU; the wait below ends
    // when every thread has said so or ended, so that the node turns ready
    // only once its public threads run.
    let (started, on_start) = std::sync::mpsc::channel::<()>();
    for (i, (runtime, own)) in parts.into_iter().enumerate() {
        let serving: Vec<Serving> = own
            .into_iter()
            .zip(&shared)
            .zip(&mut balances)
            .map(|((listener, g), balance)| {
                let balance = balance.next().expect("one balance per thread");
                (g.serve)(Source::balanced(listener, balance))
            })
            .collect();
        let started = started.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("refedge-public-{i}"))
            .spawn(move || {
                if pinned && let Err(e) = pin_current_thread(i) {
                    tracing::warn!(error = %e, thread = i, "cannot pin a public thread to its CPU");
                }
                started.send(()).ok();
                drop(started);
                runtime.block_on(all_clean(serving))
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                tracing::error!(error = %e, thread = i, "cannot start a public listener thread")
            }
        }
    }
    drop(started);
    while on_start.recv().is_ok() {}
    if handles.is_empty() {
        let mut serving = Vec::with_capacity(shared.len());
        for g in shared {
            match TcpListener::from_std(g.listener) {
                Ok(l) => serving.push((g.serve)(l.into())),
                Err(e) => {
                    tracing::error!(error = %e, listener = g.name, "cannot serve a listener");
                    serving.push(Box::pin(std::future::ready(false)));
                }
            }
        }
        return tokio::spawn(all_clean(serving));
    }
    tokio::task::spawn_blocking(move || {
        let drained: Vec<bool> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect();
        drained.into_iter().all(|clean| clean)
    })
}

/// Runs the futures side by side on the current runtime; true when all of
/// them end true.
async fn all_clean(serving: Vec<Serving>) -> bool {
    let tasks: Vec<_> = serving.into_iter().map(tokio::spawn).collect();
    let mut clean = true;
    for task in tasks {
        clean &= task.await.unwrap_or(false);
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_needs_one_thread_per_cpu_numbered_from_zero() {
        assert!(can_steer(2, &[0, 1]));
        assert!(can_steer(4, &[0, 1, 2, 3]));
        assert!(!can_steer(1, &[0]));
        assert!(!can_steer(2, &[0, 1, 2]));
        assert!(!can_steer(2, &[2, 3]));
        assert!(!can_steer(3, &[0, 1]));
    }

    #[tokio::test]
    async fn twins_share_the_port_and_take_connections() {
        let first = bind_shared_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let first = first.into_std().unwrap();
        let second = twin(&first).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let first = TcpListener::from_std(first).unwrap();
        steer_by_cpu(&first, 2).unwrap();
        // Every connection is accepted by one of the two sockets.
        for _ in 0..8 {
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::select! {
                a = first.accept() => { a.unwrap(); }
                b = second.accept() => { b.unwrap(); }
            }
        }
        // A listener bound without SO_REUSEPORT has no twin.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(twin(&plain).is_err());
    }

    #[tokio::test]
    async fn a_new_group_refuses_a_port_already_listened_on() {
        let first = bind_new_group("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        // A twin joins; a second node (a new group) is refused.
        let _twin = twin(&first.into_std().unwrap()).unwrap();
        let err = bind_new_group(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }

    /// A connection made from CPU `c` is accepted by socket `c`.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn connections_go_to_the_socket_of_their_cpu() {
        let cpus = allowed_cpus();
        assert!(
            can_steer(cpus.len(), &cpus),
            "this test needs a machine with 2+ CPUs numbered from 0, got {cpus:?}"
        );
        let first = bind_shared_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let first = first.into_std().unwrap();
        let mut sockets = vec![first.try_clone().unwrap()];
        for _ in 1..cpus.len() {
            sockets.push(twin(&first).unwrap().into_std().unwrap());
        }
        steer_by_cpu(&TcpListener::from_std(first).unwrap(), cpus.len() as u32).unwrap();
        for round in 0..3 {
            for &cpu in &cpus {
                let client = std::thread::spawn(move || {
                    pin_current_thread(cpu).unwrap();
                    std::net::TcpStream::connect(addr).unwrap()
                })
                .join()
                .unwrap();
                let accepted: Vec<usize> = (0..sockets.len())
                    .filter(|&i| sockets[i].accept().is_ok())
                    .collect();
                assert_eq!(accepted, vec![cpu], "round {round}");
                drop(client);
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_a_thread_to_an_allowed_cpu() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(last).unwrap();
            assert_eq!(allowed_cpus(), vec![last]);
        })
        .join()
        .unwrap();
    }
}
