//! A staging's pull credentials in the shapes platforms store them: a `config.json` `auths`
//! entry (docker, podman, containerd's CRI) and a Kubernetes `kubernetes.io/dockerconfigjson`
//! Secret, so a pipeline does not hand-build base64 JSON.

use base64::Engine as _;
use server::mgmt::types::PullCredentials;

use crate::CliError;

/// `{"auths": {"<registry host>": {"username", "password", "auth"}}}`.
pub(crate) fn docker_config(host: &str, c: &PullCredentials) -> serde_json::Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    serde_json::json!({ "auths": { host: { "username": c.username, "password": c.password, "auth": auth } } })
}

/// Checks a Secret name: a DNS-1123 subdomain, as Kubernetes requires.
fn secret_name(name: &str) -> Result<&str, CliError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(name)
    } else {
        Err(CliError::Remote(format!("--k8s-secret {name:?}: a Secret name is lowercase letters, digits, '-' and '.'")))
    }
}

/// A `kubernetes.io/dockerconfigjson` Secret manifest (YAML) for `image`'s registry, with the
/// pinned reference as a comment to put in the Pod spec.
pub(crate) fn k8s_secret(name: &str, image: &str, host: &str, c: &PullCredentials) -> Result<String, CliError> {
    let name = secret_name(name)?;
    let config = base64::engine::general_purpose::STANDARD.encode(docker_config(host, c).to_string());
    Ok(format!(
        "# image: {image}\n# imagePullSecrets: [{{name: {name}}}]\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {config}\n"
    ))
}

/// The registry host of a pinned reference (`host[:port]/apps/<app>@<digest>`).
pub(crate) fn registry_host(image: &str) -> &str {
    image.split('/').next().unwrap_or(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_decode_to_the_credentials() {
        let c = PullCredentials { username: "shop+0123456789abcdef".into(), password: "s3cret".into() };
        let v = docker_config("registry.example.com:5000", &c);
        let entry = &v["auths"]["registry.example.com:5000"];
        let auth = base64::engine::general_purpose::STANDARD.decode(entry["auth"].as_str().unwrap()).unwrap();
        assert_eq!(auth, b"shop+0123456789abcdef:s3cret");
        let yaml = k8s_secret("shop-pull", "registry.example.com:5000/apps/shop@sha256:ab", "registry.example.com:5000", &c).unwrap();
        assert!(yaml.contains("type: kubernetes.io/dockerconfigjson") && yaml.contains("name: shop-pull"));
        assert!(k8s_secret("Shop_Pull", "i", "h", &c).is_err());
        assert_eq!(registry_host("r.io:5000/apps/a@sha256:x"), "r.io:5000");
    }
}
