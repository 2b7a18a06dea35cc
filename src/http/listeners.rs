//! The sockets a node serves, bound from the config before it serves (or
//! bound by a test to `127.0.0.1:0` and handed in).

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{AdminConfig, ServerConfig, TlsConfig};

/// The bound listeners a node serves (bound by the caller, so tests can pass
/// `127.0.0.1:0` listeners and read their addresses).
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP (`server.listen`); like `tls`, the first socket of a
    /// `SO_REUSEPORT` group, so that each public thread can have its own.
    pub public: TcpListener,
    pub admin: TcpListener,
    /// HTTPS (`tls.listen`), when TLS is configured.
    pub tls: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen`, `admin.listen` and `tls.listen`.
    pub async fn bind(
        server: &ServerConfig,
        admin: &AdminConfig,
        tls: &TlsConfig,
    ) -> anyhow::Result<Listeners> {
        let public = super::per_core::bind_new_group(server.listen)
            .with_context(|| format!("server.listen: cannot bind {}", server.listen))?;
        let admin = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("admin.listen: cannot bind {}", admin.listen))?;
        let tls = match tls.listen {
            Some(addr) => Some(
                super::per_core::bind_new_group(addr)
                    .with_context(|| format!("tls.listen: cannot bind {addr}"))?,
            ),
            None => None,
        };
        Ok(Listeners { public, admin, tls })
    }
}
