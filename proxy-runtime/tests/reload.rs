//! Live configuration: artifacts swapped through a ConfigMap-style `..data` symlink, refused
//! artifacts, a first load that fails, and certificate rotation.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mesh_artifact::{Body, PathMatch, RouteTable};

/// v1: `a` calls nothing. v2: `a` may call `b`, whose only rule answers 500.
fn v1(app: &App) -> Body {
    sidecar("a", app.addr, &[PERMIT_ALL])
}

fn v2(app: &App) -> Body {
    let mut body = v1(app);
    body.clusters
        .insert("default/b:80".into(), cluster("b", None, &[]));
    let mut broken = action(vec![]);
    broken.fixed_status = Some(500);
    let table = RouteTable {
        entries: vec![entry(PathMatch::PathPrefix("/".into()), 0)],
        actions: vec![broken],
    };
    add_destination(&mut body, "b", Some(table), "default/b:80");
    body
}

fn body_hash(text: &str) -> String {
    mesh_artifact::codec::decode_header(text.as_bytes())
        .unwrap()
        .body_hash
}

async fn config_hash(p: &Proxy) -> Option<String> {
    admin(p, "/config").await.json()["artifact"]["body_hash"]
        .as_str()
        .map(str::to_string)
}

/// Lay out a folder the way the kubelet mounts a ConfigMap.
fn configmap(dir: &Path, version: &str, text: &str) {
    let data = dir.join(format!("..{version}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("artifact.json"), text).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    if !dir.join("artifact.json").exists() {
        std::os::unix::fs::symlink("..data/artifact.json", dir.join("artifact.json")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swap_takes_effect_within_a_second() {
    init_tracing();
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    std::fs::create_dir(&mount).unwrap();
    let (t1, t2) = (encode(&v1(&app)), encode(&v2(&app)));
    configmap(&mount, "2026_01_01_00_00_01.1", &t1);
    let config = config_for(
        dir.path(),
        &mount.join("artifact.json"),
        &ca,
        &ca.workload("a"),
    );
    assert!(
        config.reload_interval.is_none(),
        "only the watcher may notice the change"
    );
    let handle = mesh_proxy::start(config).await.unwrap();
    let p = Proxy {
        handle,
        dir,
        artifact: mount.join("artifact.json"),
    };
    assert_eq!(config_hash(&p).await, Some(body_hash(&t1)));
    assert_eq!(get(p.outbound(), "b", "/").await.status, 404);

    configmap(&mount, "2026_01_01_00_00_02.2", &t2);
    std::fs::remove_dir_all(mount.join("..2026_01_01_00_00_01.1")).unwrap();
    let took = eventually(Duration::from_secs(3), || async {
        get(p.outbound(), "b", "/").await.status == 500
    })
    .await
    .expect("the new artifact was never applied");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(config_hash(&p).await, Some(body_hash(&t2)));
    let m = metrics(&p).await;
    assert_eq!(
        metric(&m, r#"mesh_proxy_artifact_reloads_total{result="success"}"#),
        Some(2.0),
        "{m}"
    );
    assert!(
        m.contains(&format!(r#"body_hash="{}""#, body_hash(&t2))),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_artifact_leaves_the_last_good_one_serving() {
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let t1 = encode(&v1(&app));
    let p = start_proxy(&ca, "a", &v1(&app)).await;
    let failures = |p: &Proxy| {
        let admin = p.admin();
        async move {
            let m = get(admin, "admin", "/metrics").await.body;
            metric(&m, r#"mesh_proxy_artifact_reloads_total{result="failure"}"#).unwrap_or(-1.0)
        }
    };
    assert_eq!(failures(&p).await, 0.0);

    // A body edited after the hash was taken.
    // (Whatever the spacing of the encoding.)
    let tampered = encode(&v2(&app))
        .replacen("\"fixed_status\": 500", "\"fixed_status\": 200", 1)
        .replacen("\"fixed_status\":500", "\"fixed_status\":200", 1);
    assert_ne!(tampered, encode(&v2(&app)));
    write_atomic(&p.artifact, tampered.as_bytes());
    eventually(Duration::from_secs(3), || async {
        failures(&p).await == 1.0
    })
    .await
    .expect("the tampered artifact was not counted as a failure");
    assert_eq!(config_hash(&p).await, Some(body_hash(&t1)));
    assert_eq!(
        get(p.outbound(), "b", "/").await.status,
        404,
        "still serving v1"
    );
    assert_eq!(admin(&p, "/ready").await.status, 200);
    let cfg = admin(&p, "/config").await.json();
    assert!(
        cfg["last_error"]
            .as_str()
            .unwrap()
            .contains("hash mismatch"),
        "{cfg}"
    );

    // A truncated file.
    let t2 = encode(&v2(&app));
    write_atomic(&p.artifact, &t2.as_bytes()[..t2.len() / 2]);
    eventually(Duration::from_secs(3), || async {
        failures(&p).await == 2.0
    })
    .await
    .expect("the truncated artifact was not counted as a failure");
    assert_eq!(
        get(p.outbound(), "b", "/").await.status,
        404,
        "still serving v1"
    );

    // Then a good one is taken.
    write_atomic(&p.artifact, t2.as_bytes());
    eventually(Duration::from_secs(3), || async {
        get(p.outbound(), "b", "/").await.status == 500
    })
    .await
    .expect("the valid artifact was not applied");
    assert_eq!(failures(&p).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_a_first_valid_artifact_arrives() {
    init_tracing();
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("artifact.json");
    write_atomic(&artifact, b"{\"header\": {\"format\": \"something else\"}}");
    let config = config_for(dir.path(), &artifact, &ca, &ca.workload("a"));
    let handle = mesh_proxy::start(config).await.unwrap();
    let p = Proxy {
        handle,
        dir,
        artifact,
    };
    let r = admin(&p, "/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no valid artifact"), "{}", r.body);
    assert_eq!(get(p.outbound(), "b", "/").await.status, 503);
    assert_eq!(admin(&p, "/config").await.json()["loaded"], false);

    write_atomic(&p.artifact, encode(&v2(&app)).as_bytes());
    eventually(Duration::from_secs(3), || async {
        admin(&p, "/ready").await.status == 200
    })
    .await
    .expect("never became ready");
    assert_eq!(get(p.outbound(), "b", "/").await.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_apply_to_new_handshakes() {
    use rustls::pki_types::ServerName;

    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let app = App::start("b").await;
    let p = start_proxy(&old_ca, "b", &sidecar("b", app.addr, &[PERMIT_ALL])).await;
    let handshake = |ca: &Ca, leaf: &Leaf| {
        let cfg = mtls_client_config(ca, leaf);
        let addr = p.inbound();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("b.default.svc.cluster.local").unwrap();
            let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(name, tcp)
                .await
            else {
                return false;
            };
            if tls
                .write_all(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                .await
                .is_err()
            {
                return false;
            }
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await.is_ok() && out.starts_with(b"HTTP/1.1 200")
        }
    };
    let (old_client, new_client) = (old_ca.workload("a"), new_ca.workload("a"));
    assert!(handshake(&old_ca, &old_client).await);
    assert!(!handshake(&new_ca, &new_client).await);

    write_certs(p.dir.path(), &new_ca, &new_ca.workload("b"));
    eventually(Duration::from_secs(3), || handshake(&new_ca, &new_client))
        .await
        .expect("rotated certificates were not applied");
    assert!(
        !handshake(&old_ca, &old_client).await,
        "the old trust bundle must be gone"
    );
    let m = metrics(&p).await;
    assert!(
        metric(&m, r#"mesh_proxy_cert_reloads_total{result="success"}"#).unwrap() >= 1.0,
        "{m}"
    );
    let cfg = admin(&p, "/config").await.json();
    assert_eq!(cfg["certificate"]["identity"], spiffe("b").as_str());
}

/// Reading the watched files (the proxy's own re-reads, or another sidecar reading a shared
/// trust bundle) is not a change: it used to wake the watcher, which re-read everything, which
/// woke the watcher again, ten times a second for as long as the proxy ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_watched_files_does_not_trigger_re_reads() {
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let p = start_proxy(&ca, "a", &v1(&app)).await;
    let reads = || p.handle.shared().loader.lock().reads;
    // Settle: the files were just written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = reads();
    for _ in 0..5 {
        for f in ["artifact.json", "cert.pem", "key.pem", "ca.pem"] {
            std::fs::read(p.dir.path().join(f)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reads(), before, "reads were taken for changes");

    // A write still is one.
    write_atomic(&p.artifact, encode(&v2(&app)).as_bytes());
    eventually(Duration::from_secs(3), || async {
        get(p.outbound(), "b", "/").await.status == 500
    })
    .await
    .expect("the new artifact was never applied");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = reads();
    assert!(after > before, "{after} re-reads after a write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reads(), after, "re-reads continue without changes");
}

/// Connection pools outlive a reload that keeps their endpoint (connections are reused) and are
/// dropped once no artifact refers to their endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_follow_the_endpoints_of_the_artifact() {
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let with_b = |ep: &str| {
        let mut body = v1(&app);
        let addr: std::net::SocketAddr = ep.parse().unwrap();
        body.clusters
            .insert("default/b:80".into(), cluster("b", None, &[addr]));
        add_destination(&mut body, "b", None, "default/b:80");
        body
    };
    let p = start_proxy(&ca, "a", &with_b("127.0.0.1:1")).await;
    let upstreams = &p.handle.shared().upstreams;
    // The application's pool and the endpoint's.
    assert_eq!(upstreams.pool_count(), 2);
    let pool_of = |p: &Proxy| {
        let snap = p.handle.shared().live.load_full().unwrap();
        snap.dests[0].ports[0].direct.as_ref().unwrap().endpoints[0]
            .pool
            .clone()
    };
    let first = pool_of(&p);

    // Same endpoint, another artifact: the same pool.
    let mut changed = with_b("127.0.0.1:1");
    changed.clusters.get_mut("default/b:80").unwrap().version = Some("v9".into());
    write_atomic(&p.artifact, encode(&changed).as_bytes());
    eventually(Duration::from_secs(3), || async {
        admin(&p, "/metrics")
            .await
            .body
            .contains(r#"mesh_proxy_artifact_reloads_total{result="success"} 2"#)
    })
    .await
    .expect("the second artifact was not loaded");
    assert!(Arc::ptr_eq(&first, &pool_of(&p)));
    drop(first);

    // Another endpoint: a new pool, and the old one is gone.
    write_atomic(&p.artifact, encode(&with_b("127.0.0.1:2")).as_bytes());
    eventually(Duration::from_secs(3), || async {
        pool_of(&p).authority().as_str() == "127.0.0.1:2"
    })
    .await
    .expect("the third artifact was not loaded");
    assert_eq!(upstreams.pool_count(), 2);
}

async fn counter(p: &Proxy, series: &str) -> f64 {
    metric(&metrics(p).await, series).unwrap_or(-1.0)
}

const ARTIFACT_FAILURES: &str = r#"mesh_proxy_artifact_reloads_total{result="failure"}"#;
const CERT_FAILURES: &str = r#"mesh_proxy_cert_reloads_total{result="failure"}"#;
const CERT_SUCCESSES: &str = r#"mesh_proxy_cert_reloads_total{result="success"}"#;

/// An artifact compiled for another workload (its `sidecar.identity` is not the certificate's
/// SPIFFE ID: a wrong ConfigMap mounted) is refused like a corrupt one: the last good artifact
/// keeps serving, and its policies, never the other workload's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_for_another_identity_is_refused() {
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let p = start_proxy(&ca, "a", &v1(&app)).await;
    let good = encode(&v1(&app));
    assert_eq!(counter(&p, ARTIFACT_FAILURES).await, 0.0);

    // `b`'s artifact, which would route `b` (v2 for `a` answers 500 there; v1 404).
    let mut other = v2(&app);
    other.sidecar.identity = spiffe("b");
    other.sidecar.service = "default/b".into();
    write_atomic(&p.artifact, encode(&other).as_bytes());
    eventually(Duration::from_secs(3), || async {
        counter(&p, ARTIFACT_FAILURES).await == 1.0
    })
    .await
    .expect("the artifact for another identity was not counted as a failure");
    assert_eq!(config_hash(&p).await, Some(body_hash(&good)));
    assert_eq!(get(p.outbound(), "b", "/").await.status, 404, "still v1");
    assert_eq!(admin(&p, "/ready").await.status, 200);
    let cfg = admin(&p, "/config").await.json();
    let error = cfg["last_error"].as_str().unwrap();
    assert!(
        error.contains(&spiffe("b")) && error.contains(&spiffe("a")),
        "{cfg}"
    );
    assert_eq!(cfg["artifact"]["identity"], spiffe("a").as_str());

    // The same content for the right identity is taken.
    write_atomic(&p.artifact, encode(&v2(&app)).as_bytes());
    eventually(Duration::from_secs(3), || async {
        get(p.outbound(), "b", "/").await.status == 500
    })
    .await
    .expect("the artifact for the certificate's identity was not applied");
    assert_eq!(
        admin(&p, "/config").await.json()["last_error"],
        serde_json::Value::Null
    );

    // Without any good artifact before it: not ready, and nothing is served.
    let mut wrong = v1(&app);
    wrong.sidecar.identity = spiffe("b");
    let q = start_proxy(&ca, "a", &wrong).await;
    let r = admin(&q, "/ready").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(get(q.outbound(), "b", "/").await.status, 503);
    let cfg = admin(&q, "/config").await.json();
    assert_eq!(cfg["loaded"], false, "{cfg}");
    assert!(
        cfg["last_error"].as_str().unwrap().contains(&spiffe("b")),
        "{cfg}"
    );
    assert_eq!(counter(&q, ARTIFACT_FAILURES).await, 1.0);
}

/// A certificate rotation that changes the sidecar's identity away from the served artifact's
/// is refused (counted once) and the current certificates stay; it goes in together with an
/// artifact for its identity, whichever of the two arrives first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_identity_waits_for_its_artifact() {
    let ca = Ca::new("mesh CA");
    let app = App::start("a").await;
    let p = start_proxy(&ca, "a", &v1(&app)).await;
    let identity = |p: &Proxy| {
        let admin = p.admin();
        async move {
            let cfg = get(admin, "admin", "/config").await.json();
            (
                cfg["certificate"]["identity"].as_str().unwrap().to_string(),
                cfg["artifact"]["identity"].as_str().unwrap().to_string(),
            )
        }
    };

    // Certificate first: refused and held back. (The three files are replaced one by one, so
    // a re-read in between may count a key that does not fit too.)
    write_certs(p.dir.path(), &ca, &ca.workload("c"));
    let cert_error = |p: &Proxy| {
        let admin = p.admin();
        async move {
            get(admin, "admin", "/config").await.json()["certificate"]["last_error"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    eventually(Duration::from_secs(3), || async {
        cert_error(&p).await.contains(&spiffe("c"))
    })
    .await
    .expect("the certificate for another identity was not refused");
    assert!(cert_error(&p).await.contains(&spiffe("a")));
    assert_eq!(identity(&p).await, (spiffe("a"), spiffe("a")));
    assert_eq!(admin(&p, "/ready").await.status, 200);
    let failures = counter(&p, CERT_FAILURES).await;
    assert!(failures >= 1.0);
    // Looked at again on every re-read, but counted once.
    let reads = p.handle.shared().loader.lock().reads;
    write_atomic(&p.artifact, encode(&v1(&app)).as_bytes());
    eventually(Duration::from_secs(3), || async {
        p.handle.shared().loader.lock().reads > reads
    })
    .await
    .unwrap();
    assert_eq!(counter(&p, CERT_FAILURES).await, failures);
    assert_eq!(identity(&p).await.0, spiffe("a"));

    // Then the artifact for `c`: both go in.
    let successes = counter(&p, CERT_SUCCESSES).await;
    let mut for_c = v1(&app);
    for_c.sidecar.identity = spiffe("c");
    for_c.sidecar.service = "default/c".into();
    write_atomic(&p.artifact, encode(&for_c).as_bytes());
    eventually(Duration::from_secs(3), || async {
        identity(&p).await == (spiffe("c"), spiffe("c"))
    })
    .await
    .expect("the held-back certificate and its artifact were not applied together");
    assert_eq!(counter(&p, CERT_SUCCESSES).await, successes + 1.0);
    assert_eq!(counter(&p, ARTIFACT_FAILURES).await, 0.0);
    let cfg = admin(&p, "/config").await.json();
    assert_eq!(cfg["certificate"]["last_error"], serde_json::Value::Null);
    assert_eq!(cfg["last_error"], serde_json::Value::Null);

    // The other order: the artifact for `d` is refused, then `d`'s certificate brings it in.
    let mut for_d = v1(&app);
    for_d.sidecar.identity = spiffe("d");
    for_d.sidecar.service = "default/d".into();
    write_atomic(&p.artifact, encode(&for_d).as_bytes());
    eventually(Duration::from_secs(3), || async {
        counter(&p, ARTIFACT_FAILURES).await == 1.0
    })
    .await
    .expect("the artifact for `d` was not refused");
    assert_eq!(identity(&p).await, (spiffe("c"), spiffe("c")));
    write_certs(p.dir.path(), &ca, &ca.workload("d"));
    eventually(Duration::from_secs(3), || async {
        identity(&p).await == (spiffe("d"), spiffe("d"))
    })
    .await
    .expect("the artifact refused for want of `d`'s certificate was not taken with it");
    assert_eq!(admin(&p, "/ready").await.status, 200);
    assert_eq!(
        admin(&p, "/config").await.json()["last_error"],
        serde_json::Value::Null
    );
}
