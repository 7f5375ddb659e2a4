//! Switched protocols: once an upstream answers `101 Switching Protocols` to a request that
//! asked for an `Upgrade` (WebSocket's opening handshake is the common one), the caller's
//! connection and the upstream's are spliced and bytes are copied both ways until either side
//! closes. The request that opened the tunnel was routed and authorized like any other; what
//! flows through it afterwards is the switched protocol's own business.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http::{ProxyBody, local_reply, strip_hop_by_hop};
use crate::upstream::UpstreamBody;

type Splice = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The connection's [`Tunnel`] for a request that may ask to switch protocols (hyper offers
/// the connection's hand-over), else `None`: the common request takes no reference to it.
pub fn for_request<B>(req: &hyper::Request<B>, tunnel: &Tunnel) -> Option<Tunnel> {
    req.extensions().get::<OnUpgrade>().map(|_| tunnel.clone())
}

/// The tunnel one caller connection switched to, if any (a connection that switched carries no
/// further requests, so there is at most one). The request handler sets it; the connection's
/// task runs it once hyper has handed the connection over ([`crate::server::serve_http`]), so
/// a tunnel keeps its connection's slot under the connection limit and counts as in flight
/// while the proxy drains.
#[derive(Clone, Default)]
pub struct Tunnel(Arc<Mutex<Option<Splice>>>);

impl Tunnel {
    /// Splice `caller` and `upstream` once both have switched; closed after `idle` with no
    /// bytes either way, when given.
    pub fn set(&self, caller: OnUpgrade, upstream: OnUpgrade, idle: Option<Duration>) {
        let splice = Box::pin(async move {
            let (caller, upstream) = match tokio::try_join!(caller, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "protocol switch failed");
                    return;
                }
            };
            splice(TokioIo::new(caller), TokioIo::new(upstream), idle).await;
        });
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(splice);
        }
    }

    /// Run the tunnel to its end, if the connection switched to one.
    pub async fn run(&self) {
        let splice = self.0.lock().ok().and_then(|mut slot| slot.take());
        if let Some(splice) = splice {
            splice.await;
        }
    }
}

/// Copy bytes both ways until both directions have ended (each end's close is passed on as a
/// half-close), either side fails, or nothing has moved for `idle`.
async fn splice<A, B>(a: A, b: B, idle: Option<Duration>)
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let both = async {
        tokio::try_join!(
            pipe(&mut ar, &mut bw, &last, start),
            pipe(&mut br, &mut aw, &last, start)
        )
    };
    let watchdog = async {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let quiet = start
                .elapsed()
                .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
            if quiet >= idle {
                return quiet;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        r = both => match r {
            Ok((sent, received)) => tracing::debug!(sent, received, "tunnel closed"),
            Err(e) => tracing::debug!(error = %e, "tunnel ended with an error"),
        },
        quiet = watchdog => tracing::debug!(quiet_ms = quiet.as_millis(), "idle tunnel closed"),
    }
}

/// One direction of a tunnel: copy until end of stream, then half-close the writer. Notes the
/// time of each transfer in `last` (milliseconds since `start`).
async fn pipe<R, W>(r: &mut R, w: &mut W, last: &AtomicU64, start: Instant) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 8 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            w.shutdown().await?;
            return Ok(total);
        }
        w.write_all(buf.get(..n).unwrap_or_default()).await?;
        w.flush().await?;
        total += n as u64;
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        last.store(now, Ordering::Relaxed);
    }
}

/// What a request asked about switching protocols, carried from its head to its answer.
pub struct Upgrade {
    /// The request's `Upgrade` value, when it asks for a switch this proxy passes on.
    value: Option<HeaderValue>,
    /// The caller's connection, handed over by hyper once a `101` has been written.
    caller: Option<OnUpgrade>,
}

impl Upgrade {
    /// Whether the request asks to switch protocols: HTTP/1.1, `upgrade` among its
    /// `Connection` tokens, and an `Upgrade` header. An upgrade to `h2c` is never passed on:
    /// each hop negotiates HTTP/2 itself, and a spliced HTTP/2 connection would carry later
    /// requests past routing and authorization. Takes the caller's connection hand-over out of
    /// the request when it asks.
    pub fn asked(parts: &mut Parts) -> Self {
        // hyper offers a hand-over only for a request with an `Upgrade` header (or a CONNECT):
        // the common request stops here, on an empty extension map.
        if parts.extensions.get::<OnUpgrade>().is_none() {
            return Upgrade {
                value: None,
                caller: None,
            };
        }
        let value = upgrade_value(parts);
        let caller = value
            .as_ref()
            .and_then(|_| parts.extensions.remove::<OnUpgrade>());
        match caller {
            Some(caller) => Upgrade {
                value,
                caller: Some(caller),
            },
            None => Upgrade {
                value: None,
                caller: None,
            },
        }
    }

    pub fn is_asked(&self) -> bool {
        self.value.is_some()
    }

    /// Put back the two hop-by-hop headers of the ask after the request's hop-by-hop headers
    /// were stripped.
    pub fn ask(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.value {
            put_back(headers, v.clone());
        }
    }

    /// The upstream's answer with its hop-by-hop headers stripped. A `101` to a request that
    /// asked leaves the splice of the two connections in `tunnel` and keeps the headers of the
    /// switch; a `101` to a request that did not ask is refused.
    pub fn answer(
        self,
        mut resp: Response<UpstreamBody>,
        tunnel: Option<&Tunnel>,
        idle: Option<Duration>,
    ) -> Result<Response<UpstreamBody>, Unasked> {
        let switched = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let theirs = switched
            .then(|| resp.headers().get(header::UPGRADE).cloned())
            .flatten();
        strip_hop_by_hop(resp.headers_mut());
        if !switched {
            return Ok(resp);
        }
        match (self.value, self.caller, tunnel) {
            (Some(ours), Some(caller), Some(tunnel)) => {
                tunnel.set(caller, hyper::upgrade::on(&mut resp), idle);
                put_back(resp.headers_mut(), theirs.unwrap_or(ours));
                Ok(resp)
            }
            _ => Err(Unasked),
        }
    }
}

/// An upstream answered `101 Switching Protocols` to a request that did not ask to switch.
#[derive(Debug)]
pub struct Unasked;

impl Unasked {
    pub fn reply(self) -> Response<ProxyBody> {
        local_reply(
            StatusCode::BAD_GATEWAY,
            "mesh-proxy: upstream switched protocols unasked\n",
        )
    }
}

fn upgrade_value(parts: &Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let upgrade = parts.headers.get(header::UPGRADE)?;
    let asks = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let h2c = upgrade.to_str().map_or(true, |v| {
        v.split(',').any(|t| t.trim().eq_ignore_ascii_case("h2c"))
    });
    (asks && !h2c).then(|| upgrade.clone())
}

fn put_back(headers: &mut HeaderMap, upgrade: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, upgrade);
}
