//! Certificate rotation without a restart: new files are picked up for the next handshake,
//! while a pull already under way on the old certificate finishes intact.

use std::time::{Duration, Instant};

use sha2::Digest as _;

use super::{pw, Secured};
use crate::certs::Ca;

#[test]
fn rotated_certificates_serve_new_handshakes_and_in_flight_pulls_finish() {
    let s = Secured::start(&[]);
    let h = s.https();
    // A 32 MiB blob to pull slowly across the rotation.
    let blob: Vec<u8> = (0..32u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&blob)));
    let a = h.send(
        "POST",
        &format!("/v2/team/big/blobs/uploads/?digest={digest}"),
        super::Cred::Basic("root", pw("root")),
        Some(("application/octet-stream", blob.clone())),
    );
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client_for = |ca: &str| {
        let mut b = reqwest::Client::builder();
        for c in reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap() {
            b = b.add_root_certificate(c);
        }
        b.build().unwrap()
    };
    let url = format!("{}/v2/team/big/blobs/{digest}", s.url());
    let old_client = client_for(s.ca.pem());
    rt.block_on(async {
        let mut resp = old_client.get(&url).basic_auth("root", Some(pw("root"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut got = resp.chunk().await.unwrap().unwrap().to_vec();

        // Rotate to a certificate from another CA while the pull is under way.
        let ca2 = Ca::new("wharfage rotated CA");
        let (cert, key) = ca2.server_cert("wharfage rotated");
        std::fs::write(s.dir.path().join("tls.key.new"), key).unwrap();
        std::fs::write(s.dir.path().join("tls.crt.new"), cert).unwrap();
        std::fs::rename(s.dir.path().join("tls.key.new"), s.dir.path().join("tls.key")).unwrap();
        std::fs::rename(s.dir.path().join("tls.crt.new"), s.dir.path().join("tls.crt")).unwrap();
        let new_client = client_for(ca2.pem());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match new_client.get(format!("{}/healthz", s.url())).send().await {
                Ok(r) if r.status() == 200 => break,
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("the new certificate was not served within 20 s: {other:?}"),
            }
        }
        // New handshakes use the new certificate only.
        let fresh_old = client_for(s.ca.pem());
        assert!(fresh_old.get(format!("{}/healthz", s.url())).send().await.is_err(), "a new handshake still got the old certificate");

        // The pull started before the rotation finishes, byte for byte.
        while let Some(chunk) = resp.chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got.len(), blob.len());
        assert!(got == blob, "the in-flight pull finished with other bytes");
    });
    assert!(s.server.log().iter().any(|l| l.contains("TLS certificate reloaded")));
}
