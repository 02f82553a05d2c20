//! TLS for wharfage's HTTP clients (stagings, mirrors, the CLI), and what a failed
//! connection says about its cause.
//!
//! Trust is the platform's roots plus configured extra certificates. An extra certificate
//! made by the common `openssl req -x509 ... -subj /CN=localhost -addext subjectAltName=...`
//! recipe is self-signed *and* marked as a CA (basicConstraints CA:TRUE), which webpki refuses
//! as a server certificate (`CaUsedAsEndEntity`) even when it is the configured trust anchor;
//! curl, docker, podman and skopeo accept it. [`SelfSignedAnchors`] accepts exactly that case:
//! the presented certificate is byte for byte a configured one, and its name still matches.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Why a request got no HTTP answer, read from its error's causes (reqwest, hyper, rustls,
/// io): what a message needs to name the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens there (connection refused).
    Refused,
    /// The server's certificate is not trusted: unknown issuer, wrong name, expired... (the
    /// rustls reason).
    Untrusted(String),
    /// HTTPS was spoken and the server answered in plain HTTP.
    PlainHttp,
    /// Plain HTTP was spoken and the answer was not HTTP (a TLS server's alert, most likely).
    NotHttp,
    /// A timeout.
    Timeout,
    /// Anything else (DNS, reset, ...): the causes say.
    Other,
}

impl Failure {
    /// Classifies a transport error by walking its source chain. `io::Error` hides the error
    /// it wraps from `source()` (it returns the inner error's source), so it is opened with
    /// `get_ref` too.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Failure {
        let mut found = Failure::Other;
        let mut timeout = false;
        visit(e, &mut |err| {
            if let Some(r) = err.downcast_ref::<reqwest::Error>() {
                timeout |= r.is_timeout();
            }
            if let Some(tls) = err.downcast_ref::<rustls::Error>() {
                match tls {
                    rustls::Error::InvalidCertificate(c) => found = Failure::Untrusted(certificate_reason(c)),
                    // The first byte of the answer is not a TLS record type: `H` of `HTTP/1.1 400`.
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => found = Failure::PlainHttp,
                    _ => {}
                }
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused if found == Failure::Other => found = Failure::Refused,
                    std::io::ErrorKind::TimedOut => timeout = true,
                    _ => {}
                }
            }
            if let Some(h) = err.downcast_ref::<hyper::Error>() {
                if h.is_parse() && found == Failure::Other {
                    found = Failure::NotHttp;
                }
                timeout |= h.is_timeout();
            }
        });
        match found {
            Failure::Other if timeout => Failure::Timeout,
            f => f,
        }
    }
}

/// Calls `f` on `e` and each of its causes, looking inside `io::Error`s.
fn visit<'a>(e: &'a (dyn std::error::Error + 'static), f: &mut dyn FnMut(&'a (dyn std::error::Error + 'static))) {
    let mut next = Some(e);
    // Chains are a handful deep; the bound only guards against a cycle.
    for _ in 0..32 {
        let Some(err) = next else { return };
        f(err);
        if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn std::error::Error + 'static) = inner;
            visit(inner, f);
        }
        next = err.source();
    }
}

/// A certificate error as people read it.
fn certificate_reason(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "signed by an unknown authority".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "issued for another name than the one connected to".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => "not valid yet".into(),
        CertificateError::Other(o) if matches!(o.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity)) => {
            "self-signed, and not one wharfage was given".into()
        }
        other => format!("{other:?}"),
    }
}

/// The rustls client configuration of every wharfage HTTP client: the platform's roots plus
/// `extra` (DER), self-signed extras accepted as their own anchors; ALPN for HTTP/1.1 and,
/// unless `http1_only`, HTTP/2 (reqwest sets no ALPN on a configuration it is handed).
pub fn client_config(extra: Vec<CertificateDer<'static>>, http1_only: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider =
        rustls::crypto::CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let inner = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())?
    };
    let verifier = SelfSignedAnchors { inner, anchors: extra };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = if http1_only { vec![b"http/1.1".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
    Ok(config)
}

/// The certificates of a PEM bundle, in DER.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The platform verifier, except that a configured certificate presented as the server's own
/// is accepted although it is marked as a CA (see the module docs).
#[derive(Debug)]
struct SelfSignedAnchors {
    inner: rustls_platform_verifier::Verifier,
    anchors: Vec<CertificateDer<'static>>,
}

fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
        }
        _ => false,
    }
}

impl ServerCertVerifier for SelfSignedAnchors {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e) if is_ca_used_as_end_entity(&e) && self.anchors.iter().any(|a| a.as_ref() == end_entity.as_ref()) => {
                // webpki checks a certificate's validity period before its basic constraints
                // (`check_issuer_independent_properties`), so an expired or not-yet-valid one
                // failed with that error instead; what it had not reached yet is the name.
                let cert = webpki::EndEntityCert::try_from(end_entity)
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed_ca(name: &str, expired: bool) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verify(anchors: Vec<CertificateDer<'static>>, presented: &CertificateDer<'static>, name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(anchors.clone(), provider).unwrap();
        let v = SelfSignedAnchors { inner, anchors };
        let name = ServerName::try_from(name.to_string()).unwrap();
        v.verify_server_cert(presented, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn a_configured_self_signed_ca_certificate_is_its_own_anchor() {
        let cert = self_signed_ca("localhost", false);
        verify(vec![cert.clone()], &cert, "localhost").unwrap();
    }

    #[test]
    fn the_name_and_validity_are_still_checked_and_only_the_configured_certificate_passes() {
        let cert = self_signed_ca("localhost", false);
        let e = verify(vec![cert.clone()], &cert, "registry.example.com").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(CertificateError::NotValidForName)), "{e:?}");

        let expired = self_signed_ca("localhost", true);
        let e = verify(vec![expired.clone()], &expired, "localhost").unwrap_err();
        assert!(matches!(e, rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })), "{e:?}");

        // Another self-signed certificate for the same name is not trusted by this anchor.
        let other = self_signed_ca("localhost", false);
        let e = verify(vec![cert], &other, "localhost").unwrap_err();
        assert!(is_ca_used_as_end_entity(&e), "{e:?}");
    }
}
