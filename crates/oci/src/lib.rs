//! Pure OCI types with no I/O: everything the other crates need to agree on what a digest,
//! a repository name, a tag, a manifest and an OCI error code are. Types are built only by
//! parsing ("parse, don't validate"), so holding a `Digest` or a `RepoName` means it is valid.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod digest;
pub mod error;
pub mod image_ref;
pub mod manifest;
pub mod media;
pub mod name;

pub use config::{Port, RunMetadata};
pub use digest::{Algorithm, CompactDigest, Digest, DigestHasher};
pub use error::{ErrorCode, ParseError};
pub use image_ref::{is_registry_host, AppId, ImageRef};
pub use manifest::{Descriptor, Manifest, MAX_MANIFEST_BYTES};
pub use name::{Reference, RepoName, Tag};

/// A stream of body bytes (a blob on its way in or out): one type for the store, the upstream
/// client and the server, so a download streams into the store without adapters.
pub type ByteStream = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;
