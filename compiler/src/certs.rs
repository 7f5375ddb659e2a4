//! Development certificates: a trust bundle (CA) and one leaf per service whose URI SAN is the
//! service's SPIFFE ID, for local runs and tests. Production certificates come from cert-manager.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate certificate for `{what}`: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("`{0}` is not a valid SPIFFE ID")]
    Spiffe(String),
}

fn write_file(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write { path: path.display().to_string(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Write `ca.pem`, `ca-key.pem` and `<namespace>/<name>/{cert,key}.pem` for every service.
pub fn generate_dev_certs(
    out_dir: &Path,
    trust_domain: &str,
    services: &[(String, String)],
) -> Result<Vec<PathBuf>, CertError> {
    let gen_err = |what: &str| {
        let what = what.to_string();
        move |source| CertError::Generate { what: what.clone(), source }
    };
    let ca_key = KeyPair::generate().map_err(gen_err("ca"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("ca"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("meshc development CA ({trust_domain})"));
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err("ca"))?;
    let mut written = Vec::new();
    let ca_path = out_dir.join("ca.pem");
    write_file(&ca_path, &ca_cert.pem(), false)?;
    written.push(ca_path);
    let ca_key_path = out_dir.join("ca-key.pem");
    write_file(&ca_key_path, &ca_key.serialize_pem(), true)?;
    written.push(ca_key_path);
    let issuer = Issuer::new(ca_params, ca_key);
    for (ns, name) in services {
        let spiffe = format!("spiffe://{trust_domain}/ns/{ns}/sa/{name}");
        let what = format!("{ns}/{name}");
        let key = KeyPair::generate().map_err(gen_err(&what))?;
        let mut params = CertificateParams::new(vec![format!("{name}.{ns}.svc.cluster.local")]).map_err(gen_err(&what))?;
        let uri = spiffe.clone().try_into().map_err(|_| CertError::Spiffe(spiffe.clone()))?;
        params.subject_alt_names.push(SanType::URI(uri));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, what.clone());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(gen_err(&what))?;
        let dir = out_dir.join(ns).join(name);
        let cert_path = dir.join("cert.pem");
        write_file(&cert_path, &cert.pem(), false)?;
        let key_path = dir.join("key.pem");
        write_file(&key_path, &key.serialize_pem(), true)?;
        written.push(cert_path);
        written.push(key_path);
    }
    Ok(written)
}
