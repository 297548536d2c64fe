//! `Range` request header evaluation (single byte ranges only).

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// Serve the whole representation (no usable range: malformed, multiple
    /// ranges, or a unit other than `bytes`).
    Full,
    /// Serve bytes `start..=end` as 206.
    Partial { start: u64, end: u64 },
    /// Answer 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a decimal number made only of ASCII digits.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Evaluates the `Range` header value `header` against a representation of
/// `len` bytes.
pub(crate) fn evaluate(header: &str, len: u64) -> RangeOutcome {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = number(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Some(start) = number(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return RangeOutcome::Full,
        }
    };
    if start >= len {
        return RangeOutcome::Unsatisfiable;
    }
    let end = end.map_or(len - 1, |end| end.min(len - 1));
    RangeOutcome::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::{Full, Partial, Unsatisfiable};
    use super::*;

    #[test]
    fn closed_range() {
        assert_eq!(evaluate("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(evaluate("bytes=5-5", 100), Partial { start: 5, end: 5 });
        assert_eq!(
            evaluate(" bytes = 2 - 3 ", 10),
            Partial { start: 2, end: 3 }
        );
        assert_eq!(evaluate("BYTES=2-3", 10), Partial { start: 2, end: 3 });
    }

    #[test]
    fn end_is_clamped() {
        assert_eq!(
            evaluate("bytes=90-200", 100),
            Partial { start: 90, end: 99 }
        );
    }

    #[test]
    fn open_range() {
        assert_eq!(evaluate("bytes=10-", 100), Partial { start: 10, end: 99 });
        assert_eq!(evaluate("bytes=0-", 1), Partial { start: 0, end: 0 });
    }

    #[test]
    fn suffix_range() {
        assert_eq!(evaluate("bytes=-10", 100), Partial { start: 90, end: 99 });
        assert_eq!(evaluate("bytes=-1000", 100), Partial { start: 0, end: 99 });
        assert_eq!(evaluate("bytes=-0", 100), Unsatisfiable);
        assert_eq!(evaluate("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(evaluate("bytes=100-", 100), Unsatisfiable);
        assert_eq!(evaluate("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn multiple_ranges_are_ignored() {
        assert_eq!(evaluate("bytes=0-1,5-6", 100), Full);
        assert_eq!(evaluate("bytes=0-1, -5", 100), Full);
    }

    #[test]
    fn malformed_is_ignored() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=5-2",
            "bytes=a-5",
            "bytes=1-b",
            "bytes=+1-2",
            "bytes=--3",
            "items=0-5",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(evaluate(header, 100), Full, "{header:?}");
        }
    }
}
