//! Conditional request evaluation: `If-None-Match`, `If-Modified-Since` and
//! `If-Range`.

use std::time::SystemTime;

use http::header::{HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE};

/// One entity tag from a list: whether it is weak, and its opaque part
/// (including the quotes when well formed).
#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// Parses a single tag such as `"abc"` or `W/"abc"` (leniently: anything
    /// else is taken verbatim as a strong opaque tag).
    fn parse(text: &'a str) -> Self {
        let text = text.trim();
        match text.strip_prefix("W/") {
            Some(rest) => Self {
                weak: true,
                opaque: rest,
            },
            None => Self {
                weak: false,
                opaque: text,
            },
        }
    }
}

/// Splits a comma-separated entity-tag list, keeping commas inside quoted
/// tags. Returns `None` when the list is `*`.
fn tag_list(list: &str) -> Option<Vec<EntityTag<'_>>> {
    if list.trim() == "*" {
        return None;
    }
    let mut tags = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in list.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                tags.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    tags.push(&list[start..]);
    Some(
        tags.into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(EntityTag::parse)
            .collect(),
    )
}

/// Whether the `If-None-Match` value `list` matches the response `etag`
/// using the weak comparison (`*` matches any tag).
pub(crate) fn if_none_match_matches(list: &str, etag: &str) -> bool {
    let etag = EntityTag::parse(etag);
    match tag_list(list) {
        None => true,
        Some(tags) => tags.iter().any(|t| t.opaque == etag.opaque),
    }
}

/// Whether an `If-Range` value lets a Range apply to a response with the
/// given validators: an entity tag must match strongly, a date must equal
/// `Last-Modified`.
pub(crate) fn if_range_allows(
    if_range: &str,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> bool {
    let if_range = if_range.trim();
    if if_range.starts_with('"') || if_range.starts_with("W/") {
        let wanted = EntityTag::parse(if_range);
        return etag.is_some_and(|etag| {
            let have = EntityTag::parse(etag);
            !wanted.weak && !have.weak && wanted.opaque == have.opaque
        });
    }
    match (httpdate::parse_http_date(if_range), last_modified) {
        (Ok(date), Some(last_modified)) => date == last_modified,
        _ => false,
    }
}

/// All values of header `name` joined by commas (a list split across lines).
fn joined(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Whether a request with `headers` gets a 304 for a response with the given
/// `etag` and `last_modified`: `If-None-Match` decides when present,
/// otherwise `If-Modified-Since` at or after `Last-Modified` does.
pub(crate) fn not_modified(
    headers: &HeaderMap,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> bool {
    if let Some(list) = joined(headers, &IF_NONE_MATCH) {
        return etag.is_some_and(|etag| if_none_match_matches(&list, etag));
    }
    let since = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    match (since, last_modified) {
        (Some(since), Some(last_modified)) => since >= last_modified,
        _ => false,
    }
}

/// The request's `If-Range` value, if any.
pub(crate) fn if_range(headers: &HeaderMap) -> Option<&str> {
    headers.get(IF_RANGE).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn weak_comparison() {
        assert!(if_none_match_matches("\"abc\"", "\"abc\""));
        assert!(if_none_match_matches("W/\"abc\"", "\"abc\""));
        assert!(if_none_match_matches("\"abc\"", "W/\"abc\""));
        assert!(if_none_match_matches("W/\"abc\"", "W/\"abc\""));
        assert!(!if_none_match_matches("\"abd\"", "\"abc\""));
        assert!(!if_none_match_matches("\"ABC\"", "\"abc\""));
    }

    #[test]
    fn star_matches_anything() {
        assert!(if_none_match_matches("*", "\"abc\""));
        assert!(if_none_match_matches(" * ", "W/\"x\""));
    }

    #[test]
    fn lists() {
        assert!(if_none_match_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(if_none_match_matches("\"x\",W/\"abc\",\"y\"", "\"abc\""));
        assert!(!if_none_match_matches("\"x\", \"y\"", "\"abc\""));
        // A comma inside a quoted tag does not split it.
        assert!(if_none_match_matches("\"a,b\", \"c\"", "\"a,b\""));
        assert!(!if_none_match_matches("\"a,b\"", "\"a\""));
        assert!(!if_none_match_matches("", "\"a\""));
    }

    #[test]
    fn if_range_strong_only() {
        assert!(if_range_allows("\"abc\"", Some("\"abc\""), None));
        assert!(!if_range_allows("W/\"abc\"", Some("\"abc\""), None));
        assert!(!if_range_allows("\"abc\"", Some("W/\"abc\""), None));
        assert!(!if_range_allows("\"abc\"", Some("\"abd\""), None));
        assert!(!if_range_allows("\"abc\"", None, None));
        let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(lm);
        assert!(if_range_allows(&date, None, Some(lm)));
        assert!(!if_range_allows(
            &date,
            None,
            Some(lm + Duration::from_secs(1))
        ));
        assert!(!if_range_allows("garbage", None, Some(lm)));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn not_modified_rules() {
        let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = httpdate::fmt_http_date(lm);
        let before = httpdate::fmt_http_date(lm - Duration::from_secs(1));
        let after = httpdate::fmt_http_date(lm + Duration::from_secs(1));

        assert!(not_modified(
            &headers(&[("if-none-match", "\"a\"")]),
            Some("\"a\""),
            None
        ));
        // Split over two header lines.
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\""), ("if-none-match", "\"a\"")]),
            Some("\"a\""),
            None
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"b\"")]),
            Some("\"a\""),
            Some(lm)
        ));
        // If-None-Match present: If-Modified-Since is ignored.
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"b\""), ("if-modified-since", &at)]),
            Some("\"a\""),
            Some(lm)
        ));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"b\"")]),
            None,
            None
        ));
        assert!(not_modified(
            &headers(&[("if-modified-since", &at)]),
            None,
            Some(lm)
        ));
        assert!(not_modified(
            &headers(&[("if-modified-since", &after)]),
            None,
            Some(lm)
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &before)]),
            None,
            Some(lm)
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", "nonsense")]),
            None,
            Some(lm)
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &at)]),
            Some("\"a\""),
            None
        ));
        assert!(!not_modified(&headers(&[]), Some("\"a\""), Some(lm)));
    }
}
