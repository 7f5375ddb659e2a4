//! `meshc certs`: a development trust bundle and one certificate per service of a mesh.

use std::path::Path;
use std::process::ExitCode;

use crate::render::{self, Format, HumanOptions};
use crate::{LoadOptions, Severity};

pub fn run(dir: &Path, opts: &LoadOptions, out: &Path, human: HumanOptions) -> ExitCode {
    let loaded = crate::load::load_dir(dir, opts);
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .cloned()
        .collect();
    if !errors.is_empty() {
        eprint!(
            "{}",
            render::render(Format::Human, &loaded.sources, &errors, human)
        );
        return ExitCode::from(if loaded.io_error { 2 } else { 1 });
    }
    let services: Vec<(String, String)> = loaded
        .model
        .services
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    match crate::certs::generate_dev_certs(out, &loaded.model.mesh.trust_domain, &services) {
        Ok(files) => {
            eprintln!("wrote {} files into `{}`", files.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
