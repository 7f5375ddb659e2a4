//! The `mesh-proxy` binary: command line, logging, runtime, signals. Everything else is in the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use mesh_proxy::config::{Cli, Invocation, LogFormat, help};
use tracing_subscriber::EnvFilter;

/// Print to stdout; a reader that went away (`mesh-proxy --help | head`) is no failure.
fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    }
}

fn main() -> ExitCode {
    let Cli {
        config,
        workers,
        log_format,
    } = match Cli::parse_env() {
        Ok(Invocation::Run(cli)) => *cli,
        Ok(Invocation::Help) => return print_out(&help()),
        Ok(Invocation::Version) => {
            return print_out(&format!("mesh-proxy {}\n", env!("CARGO_PKG_VERSION")));
        }
        Err(e) => {
            eprintln!("error: {e}\n\nFor more information, try `--help`.");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(n))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let handle = match mesh_proxy::start(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        mesh_proxy::wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        handle.shutdown();
        tokio::select! {
            _ = handle.drained() => {}
            _ = mesh_proxy::wait_for_signal() => {
                tracing::warn!("second signal; exiting without waiting");
            }
        }
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}
