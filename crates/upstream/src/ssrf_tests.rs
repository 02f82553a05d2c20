//! The host policy on the wire: a real client against loopback servers that send it to
//! refused places (a token realm, a redirect, a name resolving to link-local). Each is
//! refused before a connection opens, and the place named never sees one.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oci::{ImageRef, Reference};

use crate::{Client, HostPolicy, UpstreamConfig, UpstreamError};

/// A loopback HTTP server answering every request with `answer(port)`; counts connections.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(answer: impl Fn(u16) -> String + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                // The request head; every request here has no body.
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = conn.write_all(answer(port).as_bytes());
            }
        });
        Server { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The process's TLS provider, as `wharfage serve` installs it.
fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn unauthorized(realm: &str) -> String {
    format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

fn client(registry_port: u16, policy: HostPolicy) -> Client {
    provider();
    Client::new(UpstreamConfig {
        insecure: vec![format!("127.0.0.1:{registry_port}"), "metadata.test".into(), "denied.test".into()],
        hosts: policy,
        attempts: 1,
        ..UpstreamConfig::default()
    })
    .unwrap()
}

fn policy(deny: &[&str], fixed: &[(&str, &str)]) -> HostPolicy {
    let mut p = HostPolicy::new(&[], &deny.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.fixed = fixed.iter().map(|(n, ip)| (n.to_string(), ip.parse::<IpAddr>().unwrap())).collect();
    p
}

async fn manifest(c: &Client, port: u16) -> Result<(), UpstreamError> {
    let image = ImageRef::parse(&format!("127.0.0.1:{port}/app:v1")).unwrap();
    let s = c.session(&image, None)?;
    s.manifest(&Reference::Tag(oci::Tag::parse("v1").unwrap())).await.map(|_| ())
}

fn refused(r: Result<(), UpstreamError>, says: &str) {
    match r {
        Err(UpstreamError::Refused { reason, .. }) => assert!(reason.contains(says), "{reason}"),
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_realm_at_the_metadata_address_is_refused() {
    let registry = Server::start(|_| unauthorized("http://169.254.169.254/latest/meta-data/iam"));
    refused(manifest(&client(registry.port, policy(&[], &[])), registry.port).await, "metadata");
    assert_eq!(registry.connections(), 1, "one request to the registry, none retried");
}

#[tokio::test]
async fn a_token_realm_whose_name_resolves_to_link_local_is_refused() {
    let registry = Server::start(|_| unauthorized("http://metadata.test/token"));
    let c = client(registry.port, policy(&[], &[("metadata.test", "169.254.169.254")]));
    refused(manifest(&c, registry.port).await, "resolves only to link-local");
    let v6 = Server::start(|_| unauthorized("http://metadata.test/token"));
    let c = client(v6.port, policy(&[], &[("metadata.test", "fe80::1")]));
    refused(manifest(&c, v6.port).await, "resolves only to link-local");
}

#[tokio::test]
async fn a_token_realm_on_the_deny_list_is_not_contacted() {
    let denied = Server::start(|_| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".into());
    let realm = format!("http://denied.test:{}/token", denied.port);
    let registry = Server::start(move |_| unauthorized(&realm));
    let c = client(registry.port, policy(&["denied.test"], &[("denied.test", "127.0.0.1")]));
    refused(manifest(&c, registry.port).await, "--upstream-deny");
    assert_eq!(denied.connections(), 0, "the denied host saw no connection");
}

#[tokio::test]
async fn a_redirect_to_a_name_resolving_to_link_local_is_refused() {
    let registry = Server::start(|_| {
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://metadata.test/latest\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    });
    let c = client(registry.port, policy(&[], &[("metadata.test", "169.254.169.254")]));
    refused(manifest(&c, registry.port).await, "link-local");
    let literal = Server::start(|_| {
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    });
    let c = client(literal.port, policy(&[], &[]));
    refused(manifest(&c, literal.port).await, "metadata");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_reached() {
    // The control case: the fixed table and the client work, so the refusals above are the
    // policy's doing.
    let target = Server::start(|_| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into());
    let location = format!("http://fine.test:{}/elsewhere", target.port);
    let registry = Server::start(move |_| {
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    });
    let c = policy(&[], &[("fine.test", "127.0.0.1")]);
    provider();
    let client = Client::new(UpstreamConfig {
        insecure: vec![format!("127.0.0.1:{}", registry.port), format!("fine.test:{}", target.port)],
        hosts: c,
        attempts: 1,
        ..UpstreamConfig::default()
    })
    .unwrap();
    assert!(matches!(manifest(&client, registry.port).await, Err(UpstreamError::NotFound { .. })));
    assert_eq!(target.connections(), 1);
}
