//! Human units in config files: durations such as `"30s"` or `"1h 30m"` (parsed by
//! `humantime`) and sizes such as `"512MiB"` or `"64 KB"` (parsed by `bytesize`).
//!
//! Each is a small newtype so that serde reports a bad value with its field path, and so that the
//! value serialises back to the same human form for `cdn config default`.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A span of time written for humans: `"250ms"`, `"30s"`, `"5m"`, `"1h 30m"`, `"0s"`.
///
/// ```
/// use cdn_config::HumanDuration;
/// let d: HumanDuration = "1m 30s".parse().unwrap();
/// assert_eq!(d.get().as_secs(), 90);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// The duration itself.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        // A bare "0" is unambiguous and common enough to accept without a unit.
        if trimmed == "0" {
            return Ok(Self(Duration::ZERO));
        }
        humantime::parse_duration(trimmed).map(Self).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"30s\", \"5m\"")
        })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A size in bytes written for humans: `"512MiB"`, `"64 KiB"`, `"1GB"`, `"1048576"`.
///
/// Binary units (`KiB`, `MiB`, `GiB`) are powers of 1024; decimal units (`KB`, `MB`, `GB`) are
/// powers of 1000.
///
/// ```
/// use cdn_config::HumanSize;
/// let s: HumanSize = "512MiB".parse().unwrap();
/// assert_eq!(s.bytes(), 512 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanSize(u64);

impl HumanSize {
    /// A size of `n` bytes.
    pub const fn from_bytes(n: u64) -> Self {
        Self(n)
    }

    /// A size of `n` mebibytes.
    pub const fn from_mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for HumanSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if let Ok(n) = trimmed.parse::<u64>() {
            return Ok(Self(n));
        }
        trimmed
            .parse::<bytesize::ByteSize>()
            .map(|b| Self(b.as_u64()))
            .map_err(|e| {
                format!("invalid size {s:?} ({e}); write e.g. \"64KiB\", \"512MiB\", \"2GB\"")
            })
    }
}

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (unit, name) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{}{}", self.0 / unit, name);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for HumanSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept a bare TOML integer as a byte count too.
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"512MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanSize, E> {
                u64::try_from(v)
                    .map(HumanSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanSize, E> {
                Ok(HumanSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!("512MiB".parse::<HumanSize>().unwrap().bytes(), 512 << 20);
        assert_eq!("64 KiB".parse::<HumanSize>().unwrap().bytes(), 64 << 10);
        assert_eq!("2GB".parse::<HumanSize>().unwrap().bytes(), 2_000_000_000);
        assert_eq!("1048576".parse::<HumanSize>().unwrap().bytes(), 1 << 20);
        assert!("12XB".parse::<HumanSize>().is_err());
        assert!("-1".parse::<HumanSize>().is_err());
    }

    #[test]
    fn sizes_print_back_in_the_largest_exact_unit() {
        assert_eq!(HumanSize::from_mib(512).to_string(), "512MiB");
        assert_eq!(HumanSize::from_bytes(1000).to_string(), "1000B");
        assert_eq!(HumanSize::from_bytes(3 << 30).to_string(), "3GiB");
        for s in ["512MiB", "1000B", "3GiB", "7KiB"] {
            let size: HumanSize = s.parse().unwrap();
            assert_eq!(size.to_string(), s);
        }
    }

    #[test]
    fn durations_parse_and_print_back() {
        assert_eq!(
            "30s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(30)
        );
        assert_eq!(
            "250ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!("0".parse::<HumanDuration>().unwrap().get(), Duration::ZERO);
        assert!("30 parsecs".parse::<HumanDuration>().is_err());
        assert_eq!(HumanDuration::from_secs(90).to_string(), "1m 30s");
        assert_eq!(HumanDuration::from_secs(0).to_string(), "0s");
    }
}
