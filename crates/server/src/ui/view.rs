//! What the templates show, prepared in Rust: sizes in human units with the exact bytes,
//! shortened digests with the full one, times as UTC dates and ages. The templates only lay
//! these out (and askama escapes whatever they print).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::session::Viewer;

/// What every page's frame shows: title, navigation (the current section marked; garbage
/// collection only for admins), who is logged in, and the CSRF token of its forms.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub title: String,
    /// The navigation entry to mark: `overview`, `apps`, `stage`, `repositories`, `gc`.
    pub section: &'static str,
    pub user: Option<String>,
    pub role: &'static str,
    pub can_gc: bool,
    pub csrf: String,
    pub asset_v: &'static str,
}

impl Chrome {
    pub(crate) fn new(viewer: &Viewer, title: impl Into<String>, section: &'static str) -> Self {
        Chrome {
            title: title.into(),
            section,
            user: viewer.user.clone(),
            role: match viewer.role {
                auth::Role::Admin => "admin",
                auth::Role::Stager => "stager",
                auth::Role::None => "",
            },
            can_gc: crate::service::GC_NEED.admits(viewer.role),
            csrf: viewer.csrf.clone(),
            asset_v: super::assets::version(),
        }
    }

    /// `aria-current="page"` for the current section's link.
    pub(crate) fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "page"
        } else {
            "false"
        }
    }
}

/// A byte count: shown in human units, the exact number on hover.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Size(pub u64);

impl Size {
    /// `1 234 567`, for the `title`.
    pub(crate) fn exact(&self) -> String {
        let digits = self.0.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push('\u{202f}');
            }
            out.push(c);
        }
        out
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1000.0 && unit < UNITS.len() - 1 {
            v /= 1000.0;
            unit += 1;
        }
        match unit {
            0 => write!(f, "{} B", self.0),
            _ if v < 10.0 => write!(f, "{v:.2} {}", UNITS[unit]),
            _ if v < 100.0 => write!(f, "{v:.1} {}", UNITS[unit]),
            _ => write!(f, "{v:.0} {}", UNITS[unit]),
        }
    }
}

/// A digest shortened for reading (`sha256:4413…aff8a` keeps 12 hex digits), the full one
/// for copying.
#[derive(Debug, Clone)]
pub(crate) struct ShortDigest {
    pub full: String,
    pub short: String,
}

impl ShortDigest {
    pub(crate) fn new(d: &impl fmt::Display) -> Self {
        let full = d.to_string();
        let short = match full.split_once(':') {
            Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
            _ => full.clone(),
        };
        ShortDigest { full, short }
    }
}

/// A moment: the UTC date and time, and how long ago.
#[derive(Debug, Clone)]
pub(crate) struct When {
    pub utc: String,
    pub ago: String,
}

impl When {
    pub(crate) fn from_ms(ms: u64) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        When { utc: utc(ms / 1000), ago: ago(now.saturating_sub(ms / 1000)) }
    }

    pub(crate) fn from_system(t: SystemTime) -> Self {
        When::from_ms(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
    }
}

fn ago(secs: u64) -> String {
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// `2026-11-30 16:04 UTC` from unix seconds.
fn utc(secs: u64) -> String {
    store::utc_text(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_human_units_with_exact_bytes() {
        assert_eq!(Size(999).to_string(), "999 B");
        assert_eq!(Size(3_500_000).to_string(), "3.50 MB");
        assert_eq!(Size(52_400_000_000).to_string(), "52.4 GB");
        assert_eq!(Size(1_234_567).exact(), "1\u{202f}234\u{202f}567");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_996_800 + 3_723), "2026-11-30 01:02 UTC");
        let d = ShortDigest::new(&"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(d.short, "sha256:44136fa355b3");
    }
}
