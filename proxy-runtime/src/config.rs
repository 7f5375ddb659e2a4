//! Command-line flags and the runtime configuration they produce.
//!
//! [`Cli`] is what `mesh-proxy --help` documents; [`Config`] is the plain value the rest of the
//! crate runs on (tests build it directly, without clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How an endpoint is chosen within a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoadBalancer {
    /// Each request goes to the next endpoint in turn.
    RoundRobin,
    /// Two endpoints drawn at random; the one with fewer requests in flight wins.
    P2c,
}

/// Format of the diagnostic log on stderr (the access log on stdout is always JSON lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The meshc sidecar: loads a compiled artifact, serves mutual-TLS inbound traffic for the local
/// application and routes its outbound requests.
///
/// Log verbosity follows `RUST_LOG` (default `info`); diagnostics go to stderr, the access log
/// (with `--access-log`) to stdout as JSON lines. Durations accept `ms`, `s` and `m` suffixes
/// (`250ms`, `10s`, `2m`); a bare number is seconds.
#[derive(Debug, Parser)]
#[command(name = "mesh-proxy", version, max_term_width = 100)]
pub struct Cli {
    /// Compiled artifact for this sidecar (written by `meshc build`); its folder is watched and a
    /// changed artifact is swapped in once it verifies
    #[arg(long, env = "MESH_PROXY_ARTIFACT", value_name = "PATH")]
    pub artifact: PathBuf,

    /// PEM certificate chain of this sidecar; its URI SAN is the sidecar's SPIFFE ID (reloaded
    /// when the file changes)
    #[arg(long, env = "MESH_PROXY_CERT", value_name = "PATH")]
    pub cert: PathBuf,

    /// PEM private key (PKCS#8, SEC1 or PKCS#1) for `--cert` (reloaded when the file changes)
    #[arg(long, env = "MESH_PROXY_KEY", value_name = "PATH")]
    pub key: PathBuf,

    /// PEM CA certificates trusted for peer sidecars, inbound and outbound (reloaded when the
    /// file changes)
    #[arg(long, env = "MESH_PROXY_TRUST_BUNDLE", value_name = "PATH")]
    pub trust_bundle: PathBuf,

    /// Admin listener: /ready, /live, /metrics, /config [default: 127.0.0.1:<artifact admin_port>]
    #[arg(long, value_name = "ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Inbound (mutual TLS) listener [default: 0.0.0.0:<artifact inbound_port>]
    #[arg(long, value_name = "ADDR")]
    pub inbound_addr: Option<SocketAddr>,

    /// Outbound listener for the local application [default: 127.0.0.1:<artifact outbound_port>]
    #[arg(long, value_name = "ADDR")]
    pub outbound_addr: Option<SocketAddr>,

    /// Where inbound requests are forwarded [default: 127.0.0.1:<artifact app_port>]
    #[arg(long, value_name = "ADDR")]
    pub app_addr: Option<SocketAddr>,

    /// Print one JSON line per request on stdout
    #[arg(long)]
    pub access_log: bool,

    /// On SIGTERM or SIGINT, how long in-flight requests may take to finish
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,

    /// Most client connections held open at once, inbound and outbound together; further
    /// connections wait in the listen backlog
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_connections: u32,

    /// How long a client may take to send a request's headers (and the TLS handshake)
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,

    /// Largest request head accepted, in bytes; larger heads get 431
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(8192..), value_name = "BYTES")]
    pub max_header_bytes: u32,

    /// Re-read the artifact and certificates this often even without a file event; `0s` turns
    /// the periodic re-read off
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub reload_interval: Duration,

    /// Timeout of a TCP connect plus TLS handshake to a destination sidecar
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// Idle pooled upstream connections are closed after this long
    #[arg(long, default_value = "90s", value_parser = parse_duration, value_name = "DURATION")]
    pub pool_idle_timeout: Duration,

    /// How an endpoint is chosen within a cluster
    #[arg(long, value_enum, default_value_t = LoadBalancer::P2c)]
    pub load_balancer: LoadBalancer,

    /// Worker threads [default: number of CPUs; 1 runs everything on one thread]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub workers: Option<u16>,

    /// Format of the diagnostic log on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runtime configuration: everything but the artifact itself.
#[derive(Clone, Debug)]
pub struct Config {
    pub artifact: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust_bundle: PathBuf,
    pub admin_addr: Option<SocketAddr>,
    pub inbound_addr: Option<SocketAddr>,
    pub outbound_addr: Option<SocketAddr>,
    pub app_addr: Option<SocketAddr>,
    pub access_log: bool,
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// `None`: no periodic re-read.
    pub reload_interval: Option<Duration>,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub load_balancer: LoadBalancer,
    /// Debounce window of the file watcher.
    pub watch_debounce: Duration,
}

impl Config {
    /// Defaults for everything but the four paths (the values `--help` shows).
    pub fn new(artifact: PathBuf, cert: PathBuf, key: PathBuf, trust_bundle: PathBuf) -> Self {
        Config {
            artifact,
            cert,
            key,
            trust_bundle,
            admin_addr: None,
            inbound_addr: None,
            outbound_addr: None,
            app_addr: None,
            access_log: false,
            drain_timeout: Duration::from_secs(15),
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 65_536,
            reload_interval: Some(Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            load_balancer: LoadBalancer::P2c,
            watch_debounce: Duration::from_millis(100),
        }
    }
}

impl Cli {
    pub fn into_config(self) -> Config {
        let mut c = Config::new(self.artifact, self.cert, self.key, self.trust_bundle);
        c.admin_addr = self.admin_addr;
        c.inbound_addr = self.inbound_addr;
        c.outbound_addr = self.outbound_addr;
        c.app_addr = self.app_addr;
        c.access_log = self.access_log;
        c.drain_timeout = self.drain_timeout;
        c.max_connections = self.max_connections as usize;
        c.header_read_timeout = self.header_read_timeout;
        c.max_header_bytes = self.max_header_bytes as usize;
        c.reload_interval = (!self.reload_interval.is_zero()).then_some(self.reload_interval);
        c.connect_timeout = self.connect_timeout;
        c.pool_idle_timeout = self.pool_idle_timeout;
        c.load_balancer = self.load_balancer;
        c
    }
}

/// Parse `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else {
        (t, 1000)
    };
    let n: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. `250ms`, `10s`, `2m`)"))?;
    n.checked_mul(scale_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999m").is_err());
    }

    #[test]
    fn cli_parses_and_zero_interval_disables_reread() {
        let cli = Cli::try_parse_from([
            "mesh-proxy",
            "--artifact",
            "a.json",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--trust-bundle",
            "ca.pem",
            "--reload-interval",
            "0s",
            "--load-balancer",
            "round-robin",
            "--max-header-bytes",
            "9000",
        ])
        .unwrap();
        let c = cli.into_config();
        assert_eq!(c.reload_interval, None);
        assert_eq!(c.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(c.max_header_bytes, 9000);
        assert_eq!(c.drain_timeout, Duration::from_secs(15));
    }

    #[test]
    fn cli_refuses_tiny_header_limit_and_missing_paths() {
        let base = ["mesh-proxy", "--artifact", "a", "--cert", "c", "--key", "k"];
        assert!(
            Cli::try_parse_from(base).is_err(),
            "missing --trust-bundle must be refused"
        );
        let mut args = base.to_vec();
        args.extend(["--trust-bundle", "t", "--max-header-bytes", "100"]);
        assert!(Cli::try_parse_from(args).is_err());
    }

    #[test]
    fn help_documents_every_flag() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            assert!(
                arg.get_help().is_some(),
                "flag `{}` has no help text",
                arg.get_id()
            );
        }
    }
}
