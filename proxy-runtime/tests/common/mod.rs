//! Test harness: a throwaway PKI, a tiny application server, artifact builders, and proxies
//! started in-process on 127.0.0.1 with real sockets and real TLS.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_artifact::{
    AuthzBundle, AuthzMode, Body, Cluster, Destination, DestinationPort, Endpoint, MeshInfo,
    MtlsMode, PathMatch, PolicyText, Protocol, RouteEntry, RouteTable, RuleAction, SidecarInfo,
    SourcePos, WeightedCluster,
};
use mesh_policy::model::{PolicyModel, ServiceEntry, entities_json, schema_text};
use mesh_proxy::{Config, ProxyHandle};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TD: &str = "cluster.local";

pub fn spiffe(name: &str) -> String {
    format!("spiffe://{TD}/ns/default/sa/{name}")
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------------
// PKI

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with a SPIFFE URI SAN (when `spiffe` is given) and a DNS SAN.
    pub fn leaf(&self, spiffe: Option<&str>, dns: &str, expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![dns.to_string()]).unwrap();
        if let Some(id) = spiffe {
            params
                .subject_alt_names
                .push(SanType::URI(id.try_into().unwrap()));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn workload(&self, name: &str) -> Leaf {
        self.leaf(
            Some(&spiffe(name)),
            &format!("{name}.default.svc.cluster.local"),
            false,
        )
    }
}

/// Write a file atomically (temporary name, then rename), as `meshc build` does.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The application

/// A tiny HTTP/1.1 + h2c application that answers with a JSON description of each request.
///
/// Paths: anything containing `slow` sleeps 600 ms; `/status/NNN` answers NNN; paths containing
/// `flaky` answer 503 on every odd hit and 200 on every even one; paths containing `trailers`
/// end the answer with gRPC-style trailers (`grpc-status: 0`, and `x-got-trailer` echoing the
/// request's trailer `x-req-trailer`, or `none`); a request asking for an `Upgrade` on a path
/// containing `ws` is answered `101` (its `Upgrade` value, and `x-caller` with the caller's
/// `x-mesh-caller`), after which the connection echoes what it receives.
pub struct App {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
}

impl App {
    pub async fn start(name: &'static str) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let flaky = Arc::new(AtomicUsize::new(0));
        let (h, f) = (hits.clone(), flaky.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (h, f) = (h.clone(), f.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (h, f) = (h.clone(), f.clone());
                        async move { Ok::<_, Infallible>(app_answer(name, req, &h, &f).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        App { addr, hits, flaky }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn app_answer(
    name: &str,
    req: Request<Incoming>,
    hits: &AtomicUsize,
    flaky: &AtomicUsize,
) -> Response<AppBody> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    if path.contains("ws")
        && let Some(protocol) = req.headers().get("upgrade").cloned()
    {
        let mut req = req;
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = on.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        let mut r = Response::new(AppBody {
            data: None,
            trailers: None,
        });
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r.headers_mut().insert("upgrade", protocol);
        if let Some(c) = req.headers().get("x-mesh-caller") {
            r.headers_mut().insert("x-caller", c.clone());
        }
        return r;
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let info = serde_json::json!({
        "app": name,
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "version": format!("{:?}", req.version()),
        "host": header("host"),
        "authority": req.uri().authority().map(|a| a.as_str().to_string()),
        "caller": header("x-mesh-caller"),
        "route_header": header("x-mesh-route"),
        "added": header("x-added"),
        "connection": header("connection"),
    });
    let collected = req.into_body().collect().await.ok();
    let got_trailer = collected
        .as_ref()
        .and_then(|c| c.trailers())
        .and_then(|t| t.get("x-req-trailer"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let body = collected.map_or(0, |c| c.to_bytes().len());
    let mut status = StatusCode::OK;
    if path.contains("slow") {
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
    }
    if path.contains("flaky") && flaky.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut info = info;
    info["body_len"] = body.into();
    let trailers = path.contains("trailers").then(|| {
        let mut t = hyper::HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        t.insert("x-got-trailer", got_trailer.parse().unwrap());
        t
    });
    let mut r = Response::new(AppBody {
        data: Some(Bytes::from(info.to_string())),
        trailers,
    });
    *r.status_mut() = status;
    r.headers_mut().insert("x-app", name.parse().unwrap());
    r
}

/// A TLS 1.3 client configuration that trusts `ca` and presents `leaf` (a sidecar's or a
/// workload's certificate), with no ALPN.
pub fn mtls_client_config(ca: &Ca, leaf: &Leaf) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
}

/// An application that reads each request head and answers it with the bytes of `answer`,
/// then closes the connection, or with `hold` keeps it open until the peer closes it (for
/// answers that are not HTTP a hyper server would write).
pub async fn canned_app(answer: &'static [u8], hold: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp.write_all(answer).await;
                while hold && matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// The application's answer: one data frame, then trailers if any.
pub struct AppBody {
    data: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl hyper::body::Body for AppBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let frame = match self.data.take() {
            Some(d) => Some(hyper::body::Frame::data(d)),
            None => self.trailers.take().map(hyper::body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match (&self.data, &self.trailers) {
            (Some(d), None) => hyper::body::SizeHint::with_exact(d.len() as u64),
            (None, None) => hyper::body::SizeHint::with_exact(0),
            _ => hyper::body::SizeHint::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Artifacts

pub fn source() -> SourcePos {
    SourcePos {
        file: "mesh/routes.yaml".into(),
        line: 1,
        column: 1,
    }
}

/// An authorization bundle for the `default` namespace's services, with policy texts.
pub fn authz_bundle(services: &[&str], policies: &[&str]) -> AuthzBundle {
    let model = PolicyModel {
        trust_domain: TD.into(),
        services: services
            .iter()
            .map(|s| ServiceEntry::new("default", *s))
            .collect(),
        context_headers: vec!["x-user".into()],
    };
    AuthzBundle {
        schema: schema_text(&model),
        policies: policies
            .iter()
            .enumerate()
            .map(|(i, t)| PolicyText {
                id: format!("p{i}"),
                source: source(),
                text: t.to_string(),
            })
            .collect(),
        entities: entities_json(&model),
        context_headers: vec!["x-user".into()],
    }
}

/// Lets every workload in the mesh call.
pub const PERMIT_ALL: &str = "permit (principal, action, resource);";

/// A sidecar body with no destinations.
pub fn sidecar(name: &str, app: SocketAddr, policies: &[&str]) -> Body {
    Body {
        mesh: MeshInfo {
            name: "test".into(),
            trust_domain: TD.into(),
            mtls: MtlsMode::Strict,
        },
        sidecar: SidecarInfo {
            service: format!("default/{name}"),
            namespace: "default".into(),
            identity: spiffe(name),
            inbound_port: 15006,
            outbound_port: 15001,
            admin_port: 15000,
            app_port: app.port(),
            app_ports: Vec::new(),
            app_protocol: Protocol::Http,
            authz_mode: AuthzMode::Enforce,
            encoded_slashes: Default::default(),
        },
        destinations: Vec::new(),
        clusters: BTreeMap::new(),
        authz: authz_bundle(&["a", "b", "c"], policies),
    }
}

pub fn hosts(name: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.default"),
        format!("{name}.default.svc"),
        format!("{name}.default.svc.cluster.local"),
    ]
}

pub fn cluster(service: &str, version: Option<&str>, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        service: format!("default/{service}"),
        port: 80,
        version: version.map(str::to_string),
        protocol: Protocol::Http,
        identity: spiffe(service),
        endpoints: endpoints
            .iter()
            .map(|e| Endpoint {
                address: e.ip().to_string(),
                port: e.port(),
            })
            .collect(),
    }
}

pub fn entry(path: PathMatch, action: u32) -> RouteEntry {
    RouteEntry {
        route: "default/b-route".into(),
        rule: action,
        r#match: 0,
        source: source(),
        path,
        method: None,
        headers: vec![],
        query: vec![],
        action,
    }
}

pub fn to(cluster: &str, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster: cluster.into(),
        weight,
    }
}

/// Add destination `service` (port 80) with the given route table, or direct to `default_cluster`.
pub fn add_destination(
    body: &mut Body,
    service: &str,
    routes: Option<RouteTable>,
    default_cluster: &str,
) {
    body.destinations.push(Destination {
        service: format!("default/{service}"),
        hosts: hosts(service),
        ports: vec![DestinationPort {
            port: 80,
            protocol: Protocol::Http,
            routes,
            default_cluster: default_cluster.into(),
        }],
        encoded_slashes: Default::default(),
    });
    body.destinations.sort_by(|a, b| a.service.cmp(&b.service));
}

pub fn action(backends: Vec<WeightedCluster>) -> RuleAction {
    RuleAction {
        backends,
        ..Default::default()
    }
}

pub fn encode(body: &Body) -> String {
    mesh_artifact::encode(body, "0.1.0-test", "sha256:source").0
}

// ---------------------------------------------------------------------------------------------
// Proxies

/// A proxy started in-process with its files in a temporary folder.
pub struct Proxy {
    pub handle: ProxyHandle,
    pub dir: tempfile::TempDir,
    pub artifact: PathBuf,
}

impl Proxy {
    pub fn inbound(&self) -> SocketAddr {
        self.handle.inbound_addr().unwrap()
    }
    pub fn outbound(&self) -> SocketAddr {
        self.handle.outbound_addr().unwrap()
    }
    pub fn admin(&self) -> SocketAddr {
        self.handle.admin_addr().unwrap()
    }
}

pub fn write_certs(dir: &Path, ca: &Ca, leaf: &Leaf) -> (PathBuf, PathBuf, PathBuf) {
    let (cert, key, bundle) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    write_atomic(&cert, leaf.cert_pem.as_bytes());
    write_atomic(&key, leaf.key_pem.as_bytes());
    write_atomic(&bundle, ca.pem.as_bytes());
    (cert, key, bundle)
}

pub fn config_for(dir: &Path, artifact: &Path, ca: &Ca, leaf: &Leaf) -> Config {
    let (cert, key, bundle) = write_certs(dir, ca, leaf);
    let mut c = Config::new(artifact.to_path_buf(), cert, key, bundle);
    let any = "127.0.0.1:0".parse().ok();
    c.admin_addr = any;
    c.inbound_addr = any;
    c.outbound_addr = any;
    c.reload_interval = None;
    c.drain_timeout = Duration::from_secs(5);
    c.watch_debounce = Duration::from_millis(50);
    c.load_balancer = mesh_proxy::LoadBalancer::RoundRobin;
    c
}

/// Start a proxy for `body`, identity `name`, certificates from `ca`.
pub async fn start_proxy(ca: &Ca, name: &str, body: &Body) -> Proxy {
    start_proxy_with(ca, name, body, |_| {}).await
}

pub async fn start_proxy_with(
    ca: &Ca,
    name: &str,
    body: &Body,
    tweak: impl FnOnce(&mut Config),
) -> Proxy {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("artifact.json");
    write_atomic(&artifact, encode(body).as_bytes());
    let mut config = config_for(dir.path(), &artifact, ca, &ca.workload(name));
    tweak(&mut config);
    let handle = mesh_proxy::start(config).await.unwrap();
    Proxy {
        handle,
        dir,
        artifact,
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection to `addr`, with `Host: host`.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(addr, "GET", host, path, &[]).await
}

/// A raw request text on a fresh connection; returns the whole response text.
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn admin(p: &Proxy, path: &str) -> Reply {
    get(p.admin(), "admin", path).await
}

/// The value of one metric series in `/metrics` text (`name{labels}` exactly as printed).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

pub async fn metrics(p: &Proxy) -> String {
    admin(p, "/metrics").await.body
}

/// Poll `check` every 20 ms until it holds or `limit` passes; returns how long it took.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
