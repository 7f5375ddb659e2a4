//! The `meshc` binary: argument parsing, file output and exit codes. The work is in the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use meshc::render::{self, Format, HumanOptions};
use meshc::{LoadOptions, Severity};

/// mimalloc rather than the system allocator: parsing a large mesh allocates millions of small
/// nodes on several threads, where glibc's allocator costs a fifth of the run (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "meshc",
    version,
    about = "Validate a service-mesh definition and compile it into per-sidecar artifacts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct InputArgs {
    /// Mesh definition directory (or a single file)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Namespace of documents without `metadata.namespace`
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Largest input file read, in bytes
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_file_size: u64,
}

impl InputArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            default_namespace: self.namespace.clone(),
            max_file_bytes: self.max_file_size,
            ..LoadOptions::default()
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum FailOn {
    Error,
    Warning,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a mesh definition and report every problem
    Check {
        #[command(flatten)]
        input: InputArgs,
        /// Output format
        #[arg(long, value_enum, env = "MESHC_FORMAT", default_value = "human")]
        format: Format,
        /// Lowest severity that makes the exit code 1
        #[arg(long, value_enum, default_value = "error")]
        fail_on: FailOn,
    },
    /// Compile a mesh definition into one artifact per sidecar plus an index
    Build {
        #[command(flatten)]
        input: InputArgs,
        /// Output directory
        #[arg(long)]
        out: PathBuf,
        /// Format of diagnostics printed when the build is refused
        #[arg(long, value_enum, env = "MESHC_FORMAT", default_value = "human")]
        format: Format,
        /// Also write `configmap.yaml`: a Kubernetes ConfigMap of this name holding every artifact
        #[arg(long, value_name = "NAME")]
        configmap: Option<String>,
        /// Namespace of the emitted ConfigMap
        #[arg(long, default_value = "default", requires = "configmap")]
        configmap_namespace: String,
    },
    /// Answer, offline, what the mesh does with one request
    Explain {
        /// Namespace of documents without `metadata.namespace`
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Calling service: `namespace/name`, or `name` where unambiguous
        #[arg(long)]
        from: String,
        /// Request header, `Name: value` (repeatable; a name given twice is one value, `a, b`)
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Output format
        #[arg(long, value_enum, default_value = "human")]
        format: meshc::explain::ExplainFormat,
        /// `[DIR] METHOD URL`: the mesh definition directory (default `.`), the HTTP method
        /// (case-sensitive, as sent), and `http://HOST[:PORT]/PATH[?QUERY]`
        #[arg(required = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Show what changes between two mesh definitions (or build outputs), access changes first
    Diff {
        /// Old mesh definition directory, or a `meshc build` output
        old: PathBuf,
        /// New mesh definition directory, or a `meshc build` output
        new: PathBuf,
        #[arg(long, value_enum, env = "MESHC_DIFF_FORMAT", default_value = "human")]
        format: meshc::diff::DiffFormat,
        /// Exit 1 when anything changed
        #[arg(long)]
        exit_code: bool,
        /// Namespace of documents without `metadata.namespace`
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Print the service call graph with the methods each edge allows
    Graph {
        #[command(flatten)]
        input: InputArgs,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: meshc::graph::GraphFormat,
    },
    /// Print the JSON Schema (draft-07) of the native resources
    Schema {
        /// Print the Cedar schema generated from this mesh definition instead
        #[arg(long, value_name = "DIR")]
        cedar: Option<PathBuf>,
    },
    /// Write a development trust bundle and one certificate per service
    Certs {
        #[command(flatten)]
        input: InputArgs,
        /// Output directory
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the documented entry of a diagnostic code (or all of them)
    Codes {
        /// A code such as `MC0101`
        code: Option<String>,
    },
}

fn human_opts() -> HumanOptions {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    HumanOptions { color, width: 100 }
}

fn print(s: &str) -> ExitCode {
    if meshc::write_stdout(s) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check {
            input,
            format,
            fail_on,
        } => {
            let opts = LoadOptions {
                hash_documents: false,
                ..input.options()
            };
            let checked = meshc::check_dir(&input.dir, &opts);
            let text = render::render(format, &checked.sources, &checked.diagnostics, human_opts());
            if print(&text) != ExitCode::SUCCESS {
                return ExitCode::from(2);
            }
            if checked.io_error {
                return ExitCode::from(2);
            }
            let threshold = match fail_on {
                FailOn::Error => Severity::Error,
                FailOn::Warning => Severity::Warning,
            };
            let failed = checked.diagnostics.iter().any(|d| d.severity >= threshold);
            meshc::drop_at_exit(checked);
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Build {
            input,
            out,
            format,
            configmap,
            configmap_namespace,
        } => {
            let cm = configmap.map(|name| meshc::build::ConfigMapOptions {
                name,
                namespace: configmap_namespace,
            });
            meshc::build::run_with(
                &input.dir,
                &input.options(),
                &out,
                format,
                human_opts(),
                cm.as_ref(),
            )
        }
        Command::Explain {
            namespace,
            from,
            headers,
            format,
            args,
        } => {
            let (dir, method, url) = match args.as_slice() {
                [m, u] => (PathBuf::from("."), m.clone(), u.clone()),
                [d, m, u] => (PathBuf::from(d), m.clone(), u.clone()),
                _ => {
                    eprintln!("error: expected `[DIR] METHOD URL`");
                    return ExitCode::from(2);
                }
            };
            let opts = LoadOptions {
                default_namespace: namespace,
                ..LoadOptions::default()
            };
            meshc::explain::run(
                &dir,
                &opts,
                &from,
                &headers,
                &method,
                &url,
                format,
                human_opts(),
            )
        }
        Command::Diff {
            old,
            new,
            format,
            exit_code,
            namespace,
        } => {
            let opts = LoadOptions {
                default_namespace: namespace,
                ..LoadOptions::default()
            };
            meshc::diff::run(&old, &new, &opts, format, exit_code)
        }
        Command::Graph { input, format } => meshc::graph::run(&input.dir, &input.options(), format),
        Command::Schema { cedar } => match cedar {
            None => print(&meshc::schema::json_schema_text()),
            Some(dir) => {
                meshc::policy::print_cedar_schema(&dir, &LoadOptions::default(), human_opts())
            }
        },
        Command::Certs { input, out } => {
            meshc::certs_cmd::run(&input.dir, &input.options(), &out, human_opts())
        }
        Command::Codes { code } => match code {
            None => print(&meshc::docs::diagnostics_markdown()),
            Some(c) => match meshc::Code::parse(&c) {
                Some(code) => print(&meshc::docs::code_markdown(code)),
                None => {
                    eprintln!("error: `{c}` is not a meshc diagnostic code");
                    ExitCode::from(2)
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
