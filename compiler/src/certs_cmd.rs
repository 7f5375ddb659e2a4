//! `meshc certs`: a development trust bundle and one certificate per service of a mesh.

use std::path::Path;
use std::process::ExitCode;

use crate::LoadOptions;
use crate::render::HumanOptions;

pub fn run(dir: &Path, opts: &LoadOptions, out: &Path, human: HumanOptions) -> ExitCode {
    let loaded = match crate::load_or_report(dir, opts, human) {
        Ok(l) => l,
        Err(code) => return code,
    };
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
