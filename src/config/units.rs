//! Human-readable sizes ("25MiB") and durations ("5m") in the config.
//!
//! Operators think in "25 megabytes" and "five minutes", not in bytes and
//! milliseconds; accepting both forms removes a whole class of typos.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// A byte count written as `"25MiB"`, `"10 MB"`, `"512KiB"` or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// A duration written as humantime text: `"30s"`, `"5m"`, `"1h 30m"`, `"500ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid size {text:?}: expected a number with a unit such as \"25MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}: use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (examples: \"30s\", \"5m\", \"1h 30m\")")
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrText {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrText::deserialize(d)? {
            IntOrText::Int(n) => Ok(Size(n)),
            IntOrText::Text(t) => parse_size(&t).map(Size).map_err(de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        parse_duration(&t).map(Dur).map_err(de::Error::custom)
    }
}

/// A TOML datetime as an instant. A date alone means 00:00 UTC; a local
/// date-time without offset is refused because the key would switch at a
/// different moment depending on the server's time zone.
pub fn to_system_time(dt: &toml::value::Datetime) -> Result<std::time::SystemTime, String> {
    let Some(date) = dt.date else {
        return Err(
            "a time without a date is not an instant; write e.g. 2026-07-01T00:00:00Z".into(),
        );
    };
    let offset_minutes: i64 = match (dt.time, dt.offset) {
        (None, _) => 0,
        (Some(_), Some(toml::value::Offset::Z)) => 0,
        (Some(_), Some(toml::value::Offset::Custom { minutes })) => i64::from(minutes),
        (Some(_), None) => {
            return Err(
                "add a UTC offset (e.g. 2026-07-01T00:00:00Z or ...T02:00:00+02:00) so it takes effect at the same instant on every server"
                    .into(),
            );
        }
    };
    let days = days_from_civil(i64::from(date.year), date.month.into(), date.day.into());
    let secs_of_day = dt.time.map_or(0, |t| {
        i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
    });
    let unix = days * 86400 + secs_of_day - offset_minutes * 60;
    let unix =
        u64::try_from(unix).map_err(|_| "dates before 1970 are not supported".to_string())?;
    Ok(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm); toml has already checked the date is valid.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
