//! Development certificates for `meshc certs`: a trust bundle (a CA) and, per service, a
//! certificate whose URI SAN is the service's SPIFFE ID, for local runs, demos and tests.
//! Production certificates come from cert-manager (or any SPIFFE issuer).
//!
//! Layout of `out_dir`:
//!
//! ```text
//! ca.pem                         trust bundle (give it to every proxy as --trust-bundle)
//! ca-key.pem                     CA private key (mode 0600)
//! <namespace>/<name>/cert.pem    leaf: URI SAN spiffe://<td>/ns/<namespace>/sa/<name>,
//!                                DNS SAN <name>.<namespace>.svc.cluster.local
//! <namespace>/<name>/key.pem     its private key (mode 0600)
//! ```
//!
//! An existing `ca.pem` + `ca-key.pem` pair is reused, so running the command again (say after
//! adding a service) keeps earlier certificates valid; leaves are always issued anew. Keys are
//! ECDSA P-256, certificates valid from yesterday for a year (the CA for ten). Every file is
//! written to a temporary name, synced and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why certificates could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid trust domain `{0}`: use lower-case letters, digits, `.`, `-` and `_`")]
    TrustDomain(String),
    #[error("invalid {what} `{value}`: expected a DNS label (lower-case letters, digits and `-`)")]
    Name { what: &'static str, value: String },
    #[error("cannot generate the certificate of `{what}`: {message}")]
    Generate { what: String, message: String },
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{present}` exists but `{missing}` does not; remove it to create a new CA")]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error(
        "existing CA in `{path}` is unusable: {message}; remove `ca.pem` and `ca-key.pem` to create a new one"
    )]
    BadCa { path: PathBuf, message: String },
}

/// Midnight UTC of a day counted from 1970-01-01 (a macro: the date type belongs to a crate
/// this one does not name).
macro_rules! date {
    ($days:expr) => {{
        let (y, m, d) = civil_from_days($days);
        rcgen::date_time_ymd(y, m, d)
    }};
}

/// Days of validity.
const LEAF_DAYS: i64 = 365;
const CA_DAYS: i64 = 3650;

/// Write the CA (unless one is already there) and one certificate per `(namespace, name)`.
/// Returns the paths written, CA files first.
pub fn generate_dev_certs(
    out_dir: &Path,
    trust_domain: &str,
    services: &[(String, String)],
) -> Result<Vec<PathBuf>, CertError> {
    check_trust_domain(trust_domain)?;
    for (ns, name) in services {
        check_label("namespace", ns)?;
        check_label("service name", name)?;
    }
    let today = days_since_epoch();
    let mut written = Vec::new();
    let issuer = ca(out_dir, trust_domain, today, &mut written)?;
    let mut seen = std::collections::BTreeSet::new();
    for (ns, name) in services {
        if !seen.insert((ns, name)) {
            continue;
        }
        let what = format!("{ns}/{name}");
        let gen_err = |e: rcgen::Error| CertError::Generate {
            what: what.clone(),
            message: e.to_string(),
        };
        let key = KeyPair::generate().map_err(gen_err)?;
        let mut params = CertificateParams::new(vec![format!("{name}.{ns}.svc.cluster.local")])
            .map_err(gen_err)?;
        let spiffe = format!("spiffe://{trust_domain}/ns/{ns}/sa/{name}");
        params
            .subject_alt_names
            .push(SanType::URI(spiffe.try_into().map_err(gen_err)?));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "meshc development");
        dn.push(DnType::CommonName, what.clone());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date!(today - 1);
        params.not_after = date!(today + LEAF_DAYS);
        let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
        let dir = out_dir.join(ns).join(name);
        let cert_path = dir.join("cert.pem");
        write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
        written.push(cert_path);
        let key_path = dir.join("key.pem");
        write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
        written.push(key_path);
    }
    Ok(written)
}

/// Load the CA from `out_dir`, or create and write one.
fn ca(
    out_dir: &Path,
    trust_domain: &str,
    today: i64,
    written: &mut Vec<PathBuf>,
) -> Result<Issuer<'static, KeyPair>, CertError> {
    let cert_path = out_dir.join("ca.pem");
    let key_path = out_dir.join("ca-key.pem");
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => return load_ca(&cert_path, &key_path),
        (true, false) => {
            return Err(CertError::IncompleteCa {
                present: cert_path,
                missing: key_path,
            });
        }
        (false, true) => {
            return Err(CertError::IncompleteCa {
                present: key_path,
                missing: cert_path,
            });
        }
        (false, false) => {}
    }
    let gen_err = |e: rcgen::Error| CertError::Generate {
        what: "the CA".into(),
        message: e.to_string(),
    };
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "meshc development");
    dn.push(
        DnType::CommonName,
        format!("meshc development CA ({trust_domain})"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date!(today - 1);
    params.not_after = date!(today + CA_DAYS);
    let cert = params.self_signed(&key).map_err(gen_err)?;
    // Key first: a crash in between leaves an incomplete pair, which is reported, rather than a
    // CA certificate whose key is lost.
    write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
    written.push(cert_path);
    written.push(key_path);
    Ok(Issuer::new(params, key))
}

fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| CertError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let bad = |path: &Path, message: String| CertError::BadCa {
        path: path.to_path_buf(),
        message,
    };
    let cert_pem = read(cert_path)?;
    let key = KeyPair::from_pem(&read(key_path)?).map_err(|e| bad(key_path, e.to_string()))?;
    // The key must belong to the certificate: its public key is inside the certificate's DER.
    let der = pem_body(&cert_pem).ok_or_else(|| bad(cert_path, "no PEM certificate".into()))?;
    let public = key.public_key_raw();
    if public.is_empty() || !der.windows(public.len()).any(|w| w == public) {
        return Err(bad(key_path, "the key does not belong to `ca.pem`".into()));
    }
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| bad(cert_path, e.to_string()))
}

/// The DER bytes of the first PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    base64_decode(&pem[start..end])
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' | b' ' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Write to a temporary file in the same folder, sync, rename into place. Private files are
/// created with mode 0600 (never readable by others, not even briefly).
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

fn check_trust_domain(td: &str) -> Result<(), CertError> {
    let ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CertError::TrustDomain(td.to_string()))
    }
}

fn check_label(what: &'static str, v: &str) -> Result<(), CertError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CertError::Name {
            what,
            value: v.to_string(),
        })
    }
}

fn days_since_epoch() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

/// Proleptic Gregorian date of a day number (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (i32::try_from(y).unwrap_or(1970), m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(31 + 28), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn writes_ca_and_one_leaf_per_service_with_its_spiffe_id() {
        let dir = tempfile::tempdir().unwrap();
        let services = vec![
            ("default".to_string(), "reviews".to_string()),
            ("shop".to_string(), "cart".to_string()),
            ("shop".to_string(), "cart".to_string()),
        ];
        let files = generate_dev_certs(dir.path(), "cluster.local", &services).unwrap();
        let rel: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "ca.pem",
                "ca-key.pem",
                "default/reviews/cert.pem",
                "default/reviews/key.pem",
                "shop/cart/cert.pem",
                "shop/cart/key.pem"
            ]
        );
        let cert = std::fs::read_to_string(dir.path().join("shop/cart/cert.pem")).unwrap();
        let der = pem_body(&cert).unwrap();
        assert!(contains(&der, b"spiffe://cluster.local/ns/shop/sa/cart"));
        assert!(contains(&der, b"cart.shop.svc.cluster.local"));
        assert!(!contains(
            &der,
            b"spiffe://cluster.local/ns/default/sa/reviews"
        ));
        // The leaf key matches the leaf certificate.
        let key = KeyPair::from_pem(
            &std::fs::read_to_string(dir.path().join("shop/cart/key.pem")).unwrap(),
        )
        .unwrap();
        assert!(contains(&der, key.public_key_raw()));
        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("shop/cart"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| {
                std::fs::metadata(dir.path().join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(mode("ca-key.pem"), 0o600);
            assert_eq!(mode("shop/cart/key.pem"), 0o600);
            assert_eq!(mode("ca.pem"), 0o644);
        }
    }

    #[test]
    fn an_existing_ca_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![("default".to_string(), "a".to_string())];
        generate_dev_certs(dir.path(), "cluster.local", &one).unwrap();
        let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
        let two = vec![("default".to_string(), "b".to_string())];
        let files = generate_dev_certs(dir.path(), "cluster.local", &two).unwrap();
        assert_eq!(files.len(), 2, "only the new leaf is written: {files:?}");
        assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
        // The new leaf names the same issuer as the old one.
        let leaf = |n: &str| {
            pem_body(
                &std::fs::read_to_string(dir.path().join(format!("default/{n}/cert.pem"))).unwrap(),
            )
            .unwrap()
        };
        assert!(contains(
            &leaf("b"),
            b"meshc development CA (cluster.local)"
        ));
        assert!(contains(
            &leaf("a"),
            b"meshc development CA (cluster.local)"
        ));

        // A key that does not belong to the CA certificate is refused.
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("ca-key.pem"), other.serialize_pem()).unwrap();
        let err = generate_dev_certs(dir.path(), "cluster.local", &two).unwrap_err();
        assert!(matches!(err, CertError::BadCa { .. }), "{err}");

        std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
        let err = generate_dev_certs(dir.path(), "cluster.local", &two).unwrap_err();
        assert!(matches!(err, CertError::IncompleteCa { .. }), "{err}");
    }

    #[test]
    fn invalid_names_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bad = vec![("default".to_string(), "../etc".to_string())];
        assert!(matches!(
            generate_dev_certs(dir.path(), "cluster.local", &bad),
            Err(CertError::Name { .. })
        ));
        assert!(matches!(
            generate_dev_certs(dir.path(), "Cluster Local", &[]),
            Err(CertError::TrustDomain(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
