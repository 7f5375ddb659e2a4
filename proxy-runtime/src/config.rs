//! Command-line flags and the runtime configuration they produce.
//!
//! [`Cli`] is what `mesh-proxy --help` documents; [`Config`] is the plain value the rest of the
//! crate runs on (tests build it directly). The flags are one table, [`FLAGS`]: the parser
//! accepts exactly its names and the help text is printed from it, so no flag goes undocumented.
//! The sidecar keeps clap out of its tree (lexopt reads the arguments): its code pages are most
//! of its resident memory.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How an endpoint is chosen within a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBalancer {
    /// Each request goes to the next endpoint in turn.
    RoundRobin,
    /// Two endpoints drawn at random; the one with fewer requests in flight wins.
    P2c,
}

/// Format of the diagnostic log on stderr (the access log on stdout is always JSON lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// One command-line flag as `--help` shows it.
#[derive(Debug)]
pub struct Flag {
    /// Long name, without the dashes.
    pub name: &'static str,
    /// Placeholder of its value; `None` for a switch.
    pub value: Option<&'static str>,
    /// Environment variable read when the flag is absent.
    pub env: Option<&'static str>,
    /// Default shown in the help (the value [`Config::new`] uses).
    pub default: Option<&'static str>,
    pub help: &'static str,
}

impl Flag {
    /// A flag that takes a value, shown as `<value>` in the help.
    const fn takes(name: &'static str, value: &'static str, help: &'static str) -> Flag {
        Flag {
            name,
            value: Some(value),
            env: None,
            default: None,
            help,
        }
    }

    /// A flag without a value.
    const fn switch(name: &'static str, help: &'static str) -> Flag {
        Flag {
            value: None,
            ..Flag::takes(name, "", help)
        }
    }

    /// Read from `env` when the flag is absent.
    const fn or_env(mut self, env: &'static str) -> Flag {
        self.env = Some(env);
        self
    }

    /// The default the help shows.
    const fn or_default(mut self, default: &'static str) -> Flag {
        self.default = Some(default);
        self
    }
}

/// Every flag `mesh-proxy` takes, in the order `--help` lists them. The four paths come first
/// (the parser keeps them apart: each may come from the environment instead).
pub const FLAGS: &[Flag] = &[
    Flag::takes(
        "artifact",
        "PATH",
        "Compiled artifact for this sidecar (written by `meshc build`); its folder is watched and a \
         changed artifact is swapped in once it verifies",
    )
    .or_env("MESH_PROXY_ARTIFACT"),
    Flag::takes(
        "cert",
        "PATH",
        "PEM certificate chain of this sidecar; its URI SAN is the sidecar's SPIFFE ID (reloaded \
         when the file changes)",
    )
    .or_env("MESH_PROXY_CERT"),
    Flag::takes(
        "key",
        "PATH",
        "PEM private key (PKCS#8, SEC1 or PKCS#1) for `--cert` (reloaded when the file changes)",
    )
    .or_env("MESH_PROXY_KEY"),
    Flag::takes(
        "trust-bundle",
        "PATH",
        "PEM CA certificates trusted for peer sidecars, inbound and outbound (reloaded when the \
         file changes)",
    )
    .or_env("MESH_PROXY_TRUST_BUNDLE"),
    Flag::takes(
        "admin-addr",
        "ADDR",
        "Admin listener: /ready, /live, /metrics, /config [default: 127.0.0.1:<artifact \
         admin_port>]",
    ),
    Flag::takes(
        "inbound-addr",
        "ADDR",
        "Inbound (mutual TLS) listener [default: 0.0.0.0:<artifact inbound_port>]",
    ),
    Flag::takes(
        "outbound-addr",
        "ADDR",
        "Outbound listener for the local application [default: 127.0.0.1:<artifact \
         outbound_port>]",
    ),
    Flag::takes(
        "app-addr",
        "ADDR",
        "Where inbound requests are forwarded [default: 127.0.0.1:<artifact app_port>]",
    ),
    Flag::switch(
        "access-log",
        "Print one JSON line per request on stdout",
    ),
    Flag::takes(
        "drain-timeout",
        "DURATION",
        "On SIGTERM or SIGINT, how long in-flight requests may take to finish",
    )
    .or_default("15s"),
    Flag::takes(
        "max-connections",
        "N",
        "Most client connections held open at once, inbound and outbound together; further \
         connections wait in the listen backlog",
    )
    .or_default("10000"),
    Flag::takes(
        "header-read-timeout",
        "DURATION",
        "How long a client may take to send a request's headers (and the TLS handshake); a \
         connection that has started no request this long after its handshake is closed, and \
         an idle HTTP/1.1 keep-alive connection closes after this long",
    )
    .or_default("10s"),
    Flag::takes(
        "idle-timeout",
        "DURATION",
        "A client connection that starts no new request for this long (checked every quarter \
         of it) is shut down gracefully: HTTP/2 gets GOAWAY and its open streams finish. Idle \
         HTTP/1.1 keep-alive connections already close after --header-read-timeout. 0 turns \
         it off",
    )
    .or_default("1h"),
    Flag::takes(
        "max-header-bytes",
        "BYTES",
        "Largest request head accepted, in bytes (at least 8192); larger heads, and heads of more than 100 fields (as Envoy's default), get 431",
    )
    .or_default("65536"),
    Flag::takes(
        "reload-interval",
        "DURATION",
        "Re-read the artifact and certificates this often even without a file event; `0s` turns \
         the periodic re-read off",
    )
    .or_default("10s"),
    Flag::takes(
        "connect-timeout",
        "DURATION",
        "Timeout of a TCP connect plus TLS handshake to a destination sidecar",
    )
    .or_default("1s"),
    Flag::takes(
        "pool-idle-timeout",
        "DURATION",
        "Idle pooled upstream connections are closed after this long",
    )
    .or_default("90s"),
    Flag::takes(
        "tunnel-idle-timeout",
        "DURATION",
        "A connection that switched protocols (WebSocket) is closed after this long with no \
         bytes either way; 0 keeps it open until either side closes",
    )
    .or_default("1h"),
    Flag::takes(
        "load-balancer",
        "round-robin|p2c",
        "How an endpoint is chosen within a cluster: `round-robin` takes each endpoint in turn, \
         `p2c` draws two at random and takes the one with fewer requests in flight",
    )
    .or_default("p2c"),
    Flag::takes(
        "workers",
        "N",
        "Worker threads [default: number of CPUs; 1 runs everything on one thread]",
    ),
    Flag::takes(
        "log-format",
        "text|json",
        "Format of the diagnostic log on stderr",
    )
    .or_default("text"),
];

const ABOUT: &str = "The meshc sidecar: loads a compiled artifact, serves mutual-TLS inbound traffic \
    for the local application and routes its outbound requests.\n\n\
    Log verbosity follows `RUST_LOG` (default `info`); diagnostics go to stderr, the access log \
    (with `--access-log`) to stdout as JSON lines. Durations accept `ms`, `s`, `m` and `h` \
    suffixes (`250ms`, `10s`, `2m`, `1h`); a bare number is seconds.";

/// Width `--help` wraps its text to.
const HELP_WIDTH: usize = 100;

/// The text `mesh-proxy --help` prints.
pub fn help() -> String {
    let mut out = String::new();
    wrap_into(&mut out, ABOUT, 0);
    out.push_str(
        "\nUsage: mesh-proxy [OPTIONS] --artifact <PATH> --cert <PATH> --key <PATH> \
         --trust-bundle <PATH>\n\nOptions:\n",
    );
    for f in FLAGS {
        let _ = match f.value {
            Some(v) => writeln!(out, "      --{} <{v}>", f.name),
            None => writeln!(out, "      --{}", f.name),
        };
        let mut text = f.help.to_string();
        if let Some(d) = f.default {
            let _ = write!(text, " [default: {d}]");
        }
        if let Some(e) = f.env {
            let _ = write!(text, " [env: {e}]");
        }
        wrap_into(&mut out, &text, 10);
    }
    out.push_str("  -h, --help\n          Print help\n  -V, --version\n          Print version\n");
    out
}

/// Append `text` (paragraphs split by blank lines) wrapped at [`HELP_WIDTH`], each line
/// indented by `indent` spaces.
fn wrap_into(out: &mut String, text: &str, indent: usize) {
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for word in para.split_whitespace() {
            if col > indent && col + 1 + word.len() > HELP_WIDTH {
                out.push('\n');
                col = 0;
            }
            if col == 0 {
                out.extend(std::iter::repeat_n(' ', indent));
                col = indent;
            } else {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += word.len();
        }
        out.push('\n');
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Cli>),
    Help,
    Version,
}

/// A command line `mesh-proxy` cannot run with (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unknown flag `{flag}`{}", suggest(.flag))]
    Unknown { flag: String },
    #[error("flag `--{flag}` needs a value")]
    MissingValue { flag: &'static str },
    #[error("flag `--{flag}` takes no value")]
    UnexpectedValue { flag: &'static str },
    #[error("invalid value `{value}` for `--{flag}`: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("missing `--{flag}` (or `{env}` in the environment)")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error("unexpected argument `{0}`: mesh-proxy takes flags only")]
    Positional(String),
    #[error("{0}")]
    Other(String),
}

/// "did you mean" for a misspelt long flag: the known flag with the smallest edit distance,
/// if it is close.
fn suggest(flag: &str) -> String {
    let Some(name) = flag.strip_prefix("--") else {
        return String::new();
    };
    let name = name.split('=').next().unwrap_or(name);
    FLAGS
        .iter()
        .map(|f| (edit_distance(name, f.name), f.name))
        .filter(|(d, n)| *d <= (n.len() / 3).max(1))
        .min()
        .map(|(_, n)| format!("; did you mean `--{n}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The parsed command line: the runtime configuration and the two choices `main` makes before
/// the runtime starts.
#[derive(Debug)]
pub struct Cli {
    pub config: Config,
    /// Worker threads; `None`: one per CPU.
    pub workers: Option<u16>,
    pub log_format: LogFormat,
}

impl Cli {
    /// Parse the process's arguments and environment.
    pub fn parse_env() -> Result<Invocation, CliError> {
        Self::parse_from(std::env::args_os().skip(1), |k| std::env::var_os(k))
    }

    /// Parse `args` (without the program name); `env` looks up the path variables.
    pub fn parse_from<I, E>(args: I, env: E) -> Result<Invocation, CliError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
        E: Fn(&str) -> Option<OsString>,
    {
        use lexopt::Arg;
        let mut paths: [Option<PathBuf>; 4] = Default::default();
        let mut cli = Cli {
            config: Config::new(
                PathBuf::new(),
                PathBuf::new(),
                PathBuf::new(),
                PathBuf::new(),
            ),
            workers: None,
            log_format: LogFormat::Text,
        };
        let mut parser = lexopt::Parser::from_args(args);
        loop {
            let arg = match parser.next() {
                Ok(Some(a)) => a,
                Ok(None) => break,
                Err(e) => return Err(lexopt_error(e)),
            };
            let name = match arg {
                Arg::Short('h') | Arg::Long("help") => return Ok(Invocation::Help),
                Arg::Short('V') | Arg::Long("version") => return Ok(Invocation::Version),
                Arg::Long(n) => n.to_string(),
                Arg::Short(c) => {
                    return Err(CliError::Unknown {
                        flag: format!("-{c}"),
                    });
                }
                Arg::Value(v) => return Err(CliError::Positional(v.to_string_lossy().into())),
            };
            let Some(flag) = FLAGS.iter().find(|f| f.name == name) else {
                return Err(CliError::Unknown {
                    flag: format!("--{name}"),
                });
            };
            if flag.value.is_none() {
                // A switch: `--access-log=yes` is a mistake, not a value.
                if parser.optional_value().is_some() {
                    return Err(CliError::UnexpectedValue { flag: flag.name });
                }
                match flag.name {
                    "access-log" => cli.config.access_log = true,
                    // a new switch without a case is refused, not ignored
                    other => return Err(CliError::Other(format!("flag `--{other}` not handled"))),
                }
                continue;
            }
            let raw = parser
                .value()
                .map_err(|_| CliError::MissingValue { flag: flag.name })?;
            match FLAGS[..4].iter().position(|f| f.name == flag.name) {
                Some(i) => paths[i] = Some(raw.into()),
                None => cli.set(flag, &raw)?,
            }
        }
        let [artifact, cert, key, trust_bundle] = paths;
        let path = |given: Option<PathBuf>, i: usize| {
            let f = &FLAGS[i];
            let var = f.env.unwrap_or_default();
            given
                .or_else(|| env(var).filter(|v| !v.is_empty()).map(PathBuf::from))
                .ok_or(CliError::Missing {
                    flag: f.name,
                    env: var,
                })
        };
        let c = &mut cli.config;
        c.artifact = path(artifact, 0)?;
        c.cert = path(cert, 1)?;
        c.key = path(key, 2)?;
        c.trust_bundle = path(trust_bundle, 3)?;
        Ok(Invocation::Run(Box::new(cli)))
    }

    /// Set the value of one non-path flag.
    fn set(&mut self, flag: &'static Flag, raw: &OsString) -> Result<(), CliError> {
        let value = raw.to_string_lossy();
        let invalid = |reason: String| CliError::Invalid {
            flag: flag.name,
            value: value.to_string(),
            reason,
        };
        let addr = || {
            value
                .parse::<SocketAddr>()
                .map_err(|e| invalid(e.to_string()))
        };
        let duration = || parse_duration(&value).map_err(invalid);
        let at_least = |min| parse_at_least(&value, min).map_err(invalid);
        let c = &mut self.config;
        match flag.name {
            "admin-addr" => c.admin_addr = Some(addr()?),
            "inbound-addr" => c.inbound_addr = Some(addr()?),
            "outbound-addr" => c.outbound_addr = Some(addr()?),
            "app-addr" => c.app_addr = Some(addr()?),
            "drain-timeout" => c.drain_timeout = duration()?,
            "header-read-timeout" => c.header_read_timeout = duration()?,
            "idle-timeout" => c.idle_timeout = Some(duration()?).filter(|d| !d.is_zero()),
            "reload-interval" => c.reload_interval = Some(duration()?).filter(|d| !d.is_zero()),
            "connect-timeout" => c.connect_timeout = duration()?,
            "pool-idle-timeout" => c.pool_idle_timeout = duration()?,
            "tunnel-idle-timeout" => {
                c.tunnel_idle_timeout = Some(duration()?).filter(|d| !d.is_zero());
            }
            "max-connections" => c.max_connections = at_least(1)? as usize,
            "max-header-bytes" => c.max_header_bytes = at_least(8192)? as usize,
            "workers" => {
                let n = at_least(1)?;
                self.workers = Some(u16::try_from(n).map_err(|_| invalid("at most 65535".into()))?);
            }
            "load-balancer" => {
                c.load_balancer = match &*value {
                    "round-robin" => LoadBalancer::RoundRobin,
                    "p2c" => LoadBalancer::P2c,
                    _ => return Err(invalid("expected `round-robin` or `p2c`".into())),
                };
            }
            "log-format" => {
                self.log_format = match &*value {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid("expected `text` or `json`".into())),
                };
            }
            // Every name of FLAGS is handled above; a new flag without a case is refused
            // rather than ignored (and `every_flag_is_documented_and_parses` fails).
            _ => return Err(invalid("flag not handled".into())),
        }
        Ok(())
    }
}

fn lexopt_error(e: lexopt::Error) -> CliError {
    match e {
        lexopt::Error::UnexpectedValue { option, .. } => CliError::Unknown { flag: option },
        lexopt::Error::UnexpectedOption(o) => CliError::Unknown { flag: o },
        lexopt::Error::UnexpectedArgument(a) => CliError::Positional(a.to_string_lossy().into()),
        other => CliError::Other(other.to_string()),
    }
}

/// A whole number of at least `min` that fits in a `u32`.
fn parse_at_least(text: &str, min: u32) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err(format!("expected a whole number of at least {min}")),
    }
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
    /// `None`: a connection may stay open with no request for as long as its client likes.
    pub idle_timeout: Option<Duration>,
    pub max_header_bytes: usize,
    /// `None`: no periodic re-read.
    pub reload_interval: Option<Duration>,
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    /// `None`: a tunnel stays open until either side closes it.
    pub tunnel_idle_timeout: Option<Duration>,
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
            idle_timeout: Some(Duration::from_secs(3600)),
            max_header_bytes: 65_536,
            reload_interval: Some(Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            tunnel_idle_timeout: Some(Duration::from_secs(3600)),
            load_balancer: LoadBalancer::P2c,
            watch_debounce: Duration::from_millis(100),
        }
    }
}

/// Parse `250ms`, `10s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1u64)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (t, 1000)
    };
    let n: u64 = number.trim().parse().map_err(|_| {
        format!("`{text}` is not a duration (expected e.g. `250ms`, `10s`, `2m`, `1h`)")
    })?;
    n.checked_mul(scale_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn parse(args: &[&str]) -> Result<Invocation, CliError> {
        Cli::parse_from(args.iter().copied(), no_env)
    }

    fn run(args: &[&str]) -> Cli {
        match parse(args) {
            Ok(Invocation::Run(cli)) => *cli,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    const PATHS: [&str; 8] = [
        "--artifact",
        "a.json",
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--trust-bundle",
        "ca.pem",
    ];

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999m").is_err());
    }

    #[test]
    fn cli_parses_and_zero_interval_disables_reread() {
        let mut args = PATHS.to_vec();
        args.extend([
            "--reload-interval",
            "0s",
            "--load-balancer=round-robin",
            "--max-header-bytes",
            "9000",
            "--access-log",
            "--inbound-addr",
            "127.0.0.1:7001",
            "--workers",
            "3",
            "--log-format",
            "json",
        ]);
        let cli = run(&args);
        assert_eq!(cli.workers, Some(3));
        assert_eq!(cli.log_format, LogFormat::Json);
        let c = cli.config;
        assert_eq!(c.artifact, PathBuf::from("a.json"));
        assert_eq!(c.trust_bundle, PathBuf::from("ca.pem"));
        assert_eq!(c.reload_interval, None);
        assert_eq!(c.load_balancer, LoadBalancer::RoundRobin);
        assert_eq!(c.max_header_bytes, 9000);
        assert!(c.access_log);
        assert_eq!(c.inbound_addr, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(c.drain_timeout, Duration::from_secs(15));
    }

    #[test]
    fn paths_come_from_the_environment_when_absent() {
        let env = |k: &str| match k {
            "MESH_PROXY_ARTIFACT" => Some(OsString::from("/env/a.json")),
            "MESH_PROXY_KEY" => Some(OsString::from("/env/k.pem")),
            _ => None,
        };
        let args = [
            "--cert",
            "c.pem",
            "--trust-bundle",
            "t.pem",
            "--key",
            "flag.pem",
        ];
        let Ok(Invocation::Run(cli)) = Cli::parse_from(args, env) else {
            panic!("paths from the environment were not taken");
        };
        assert_eq!(cli.config.artifact, PathBuf::from("/env/a.json"));
        assert_eq!(
            cli.config.key,
            PathBuf::from("flag.pem"),
            "a flag wins over the environment"
        );
    }

    #[test]
    fn cli_refuses_bad_command_lines() {
        let base = &PATHS[..6];
        let err = parse(base).unwrap_err().to_string();
        assert!(err.contains("`--trust-bundle`"), "{err}");
        assert!(err.contains("MESH_PROXY_TRUST_BUNDLE"), "{err}");
        for (extra, expect) in [
            (&["--max-header-bytes", "100"][..], "at least 8192"),
            (&["--max-connections", "0"], "at least 1"),
            (&["--workers", "70000"], "at most 65535"),
            (&["--drain-timeout", "soon"], "not a duration"),
            (&["--load-balancer", "random"], "`round-robin` or `p2c`"),
            (&["--app-addr", "localhost"], "`--app-addr`"),
            (
                &["--reload-intervall", "5s"],
                "did you mean `--reload-interval`?",
            ),
            (&["--access-log=yes"], "takes no value"),
            (&["--workers"], "needs a value"),
            (&["-x"], "unknown flag `-x`"),
            (&["extra"], "unexpected argument `extra`"),
        ] {
            let mut args = PATHS.to_vec();
            args.extend(extra);
            let err = match parse(&args) {
                Err(e) => e.to_string(),
                Ok(x) => panic!("{extra:?} accepted: {x:?}"),
            };
            assert!(err.contains(expect), "{extra:?}: `{err}` lacks `{expect}`");
        }
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(&["--help"]), Ok(Invocation::Help)));
        assert!(matches!(parse(&["-h"]), Ok(Invocation::Help)));
        assert!(matches!(parse(&["-V"]), Ok(Invocation::Version)));
        let h = help();
        assert!(h.lines().all(|l| l.len() <= HELP_WIDTH), "{h}");
        assert!(h.contains("[env: MESH_PROXY_ARTIFACT]"), "{h}");
    }

    /// Every flag of the table is in the help and is accepted with a plausible value, so a flag
    /// cannot be documented without being parsed, or parsed without being documented.
    #[test]
    fn every_flag_is_documented_and_parses() {
        let h = help();
        for f in FLAGS {
            assert!(
                h.contains(&format!("--{} ", f.name)) || h.contains(&format!("--{}\n", f.name))
            );
            assert!(!f.help.is_empty());
            let value = match f.value {
                None => None,
                Some("ADDR") => Some("127.0.0.1:9"),
                Some(_) => Some(f.default.unwrap_or("2")),
            };
            let mut args = PATHS.to_vec();
            let flag = format!("--{}", f.name);
            args.push(&flag);
            args.extend(value);
            assert!(
                matches!(parse(&args), Ok(Invocation::Run(_))),
                "`{flag} {value:?}` refused: {:?}",
                parse(&args)
            );
        }
    }

    /// The defaults `--help` shows are the ones `Config::new` uses.
    #[test]
    fn help_defaults_are_the_defaults() {
        let from_help = |name: &str| {
            let f = FLAGS.iter().find(|f| f.name == name).unwrap();
            f.default.unwrap()
        };
        let c = run(&PATHS).config;
        let d = Config::new(
            c.artifact.clone(),
            c.cert.clone(),
            c.key.clone(),
            c.trust_bundle.clone(),
        );
        let dur = |n| parse_duration(from_help(n)).unwrap();
        assert_eq!(dur("drain-timeout"), d.drain_timeout);
        assert_eq!(dur("header-read-timeout"), d.header_read_timeout);
        assert_eq!(Some(dur("reload-interval")), d.reload_interval);
        assert_eq!(dur("connect-timeout"), d.connect_timeout);
        assert_eq!(dur("pool-idle-timeout"), d.pool_idle_timeout);
        assert_eq!(Some(dur("tunnel-idle-timeout")), d.tunnel_idle_timeout);
        assert_eq!(Some(dur("idle-timeout")), d.idle_timeout);
        assert_eq!(
            from_help("max-connections").parse::<usize>().unwrap(),
            d.max_connections
        );
        assert_eq!(
            from_help("max-header-bytes").parse::<usize>().unwrap(),
            d.max_header_bytes
        );
        assert_eq!(from_help("load-balancer"), "p2c");
        assert_eq!(d.load_balancer, LoadBalancer::P2c);
        // and parsing nothing gives those same defaults
        assert_eq!(c.drain_timeout, d.drain_timeout);
        assert_eq!(c.reload_interval, d.reload_interval);
        assert_eq!(c.max_connections, d.max_connections);
        assert_eq!(c.max_header_bytes, d.max_header_bytes);
        assert_eq!(c.header_read_timeout, d.header_read_timeout);
        assert_eq!(c.connect_timeout, d.connect_timeout);
        assert_eq!(c.pool_idle_timeout, d.pool_idle_timeout);
        assert_eq!(c.tunnel_idle_timeout, d.tunnel_idle_timeout);
        assert_eq!(c.idle_timeout, d.idle_timeout);
    }
}
