//! The HTTP client of these tests is testkit's ([`testkit::http`]); what it cannot know about
//! without depending on the server crate is added here: the error bodies of wharfage's APIs,
//! and manifests of every type the tests push.

use server::mgmt::types::{ErrorBody, ErrorEntry};
pub(crate) use testkit::http::{parse_response, read_head, request_head, with_query, Http, Resp};

/// Reading wharfage's error bodies (`{"errors": [{"code", "message"}]}`, both APIs).
pub(crate) trait ErrorBodyExt {
    /// The first error of an error body.
    fn error(&self) -> ErrorEntry;
    /// The error codes in the body (empty when it is not an error body).
    fn error_codes(&self) -> Vec<String>;
}

impl ErrorBodyExt for Resp {
    #[track_caller]
    fn error(&self) -> ErrorEntry {
        let body: ErrorBody = self.json();
        body.errors.into_iter().next().unwrap_or_else(|| panic!("an error body without errors: {}", self.text()))
    }

    fn error_codes(&self) -> Vec<String> {
        let body: Option<ErrorBody> = serde_json::from_slice(&self.body).ok();
        body.map(|b| b.errors.into_iter().map(|e| e.code).collect()).unwrap_or_default()
    }
}

/// Requests of the registry API.
pub(crate) trait RegistryExt {
    /// GET a manifest accepting every manifest type the tests push.
    fn get_manifest(&self, repo: &str, reference: &str) -> Resp;
}

impl RegistryExt for Http {
    fn get_manifest(&self, repo: &str, reference: &str) -> Resp {
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";
        self.send("GET", &format!("/v2/{repo}/manifests/{reference}"), &[("accept", accept)], Vec::new())
    }
}
