//! Parsing of setting values (durations, sizes, bounds); every error names the key.

use crate::CliError;

pub(crate) fn positive(key: &str, d: std::time::Duration) -> Result<std::time::Duration, CliError> {
    if d.is_zero() {
        return Err(CliError::Config(format!("{key} must be at least 1s")));
    }
    Ok(d)
}

pub(crate) fn at_least_one(key: &str, v: Option<usize>, default: usize) -> Result<usize, CliError> {
    match v {
        Some(0) => Err(CliError::Config(format!("{key} must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Parses `90`, `90s`, `500ms`, `30m`, `6h`, `2d` into a duration; the error names the key.
pub(crate) fn parse_duration(key: &str, v: &str) -> Result<std::time::Duration, CliError> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().map_err(|_| CliError::Config(format!("{key} {v:?}: expected a number with ms, s, m, h or d")))?;
    let secs = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(CliError::Config(format!("{key} {v:?}: unknown unit {unit:?} (use ms, s, m, h or d)"))),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Parses `1048576`, `512MiB`, `20GiB`, `1TiB` (also `K`/`M`/`G`/`T` and `KB`..., all
/// powers of 1024) into bytes; the error names the key.
pub(crate) fn parse_size(key: &str, v: &str) -> Result<u64, CliError> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let bad = || CliError::Config(format!("{key} {v:?}: expected a size such as 512MiB or 20GiB"));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}
