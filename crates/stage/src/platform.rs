//! Platform selection in an index (`linux/amd64`, `linux/arm64/v8`, or `all`).

use oci::Descriptor;

/// Which manifests of an index to stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    One {
        os: String,
        arch: String,
        variant: Option<String>,
    },
    /// Keep the whole index.
    All,
}

impl Default for Platform {
    fn default() -> Self {
        Platform::One { os: "linux".into(), arch: "amd64".into(), variant: None }
    }
}

impl Platform {
    /// Parses `os/arch[/variant]` or `all`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(Platform::All);
        }
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::One { os: os.to_string(), arch: arch.to_string(), variant: None }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => {
                Ok(Platform::One { os: os.to_string(), arch: arch.to_string(), variant: Some(v.to_string()) })
            }
            _ => Err(format!("invalid platform {s:?}: expected os/arch[/variant] (e.g. linux/amd64) or \"all\"")),
        }
    }

    /// Whether an index entry matches. Without a requested variant, any variant matches.
    pub fn matches(&self, d: &Descriptor) -> bool {
        match &d.platform {
            Some(p) => self.matches_platform(p),
            None => matches!(self, Platform::All),
        }
    }

    /// Whether a platform object (an index entry's `platform`, or an image config, which
    /// states `os`, `architecture` and `variant` the same way) is this one.
    pub fn matches_platform(&self, p: &serde_json::Value) -> bool {
        let Platform::One { os, arch, variant } = self else { return true };
        let field = |k: &str| p.get(k).and_then(|v| v.as_str());
        field("os") == Some(os.as_str())
            && field("architecture") == Some(arch.as_str())
            && variant.as_deref().is_none_or(|v| field("variant") == Some(v))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Platform::All => f.write_str("all"),
            Platform::One { os, arch, variant: None } => write!(f, "{os}/{arch}"),
            Platform::One { os, arch, variant: Some(v) } => write!(f, "{os}/{arch}/{v}"),
        }
    }
}

/// `os/arch[/variant]` of an index entry, for messages.
pub(crate) fn describe(d: &Descriptor) -> String {
    match &d.platform {
        Some(p) => describe_value(p),
        None => "unknown".into(),
    }
}

/// `os/arch[/variant]` of a platform object (an index entry's, or an image config).
pub(crate) fn describe_value(p: &serde_json::Value) -> String {
    let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match field("variant") {
        "" => format!("{}/{}", field("os"), field("architecture")),
        v => format!("{}/{}/{v}", field("os"), field("architecture")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        assert_eq!(Platform::parse("all").unwrap(), Platform::All);
        let p = Platform::parse("linux/arm64").unwrap();
        let d: Descriptor = serde_json::from_str(r#"{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}"#).unwrap();
        assert!(p.matches(&d));
        assert!(Platform::parse("linux/arm64/v8").unwrap().matches(&d));
        assert!(!Platform::parse("linux/arm64/v7").unwrap().matches(&d));
        assert!(!Platform::default().matches(&d));
        assert_eq!(describe(&d), "linux/arm64/v8");
        for bad in ["", "linux", "linux/", "a/b/c/d", "linux/amd 64"] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }
}
