//! Write a synthetic mesh: `cargo run --release -p meshc --example genmesh -- 5000 /tmp/mesh-5000`
//! (services, output directory; optional: routes per service, policies per service).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(out)) = (
        args.first().and_then(|a| a.parse::<usize>().ok()),
        args.get(1),
    ) else {
        eprintln!("usage: genmesh SERVICES OUT_DIR [ROUTES_PER_SERVICE] [POLICIES_PER_SERVICE]");
        return ExitCode::from(2);
    };
    let mut spec = meshc::synth::SynthSpec::new(n);
    if let Some(r) = args.get(2).and_then(|a| a.parse().ok()) {
        spec.routes_per_service = r;
    }
    if let Some(p) = args.get(3).and_then(|a| a.parse().ok()) {
        spec.policies_per_service = p;
    }
    match meshc::synth::write(std::path::Path::new(out), spec) {
        Ok(files) => {
            eprintln!("wrote {files} files for {n} services into `{out}`");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
