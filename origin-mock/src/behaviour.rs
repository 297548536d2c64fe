//! Per-request behaviour chosen by query parameters (`cc=`, `status=`,
//! `delay_ms=`, `etag=`, `last_modified=`, `vary=`, `set_cookie=`,
//! `expires=`, `age=`, `date=`, `header=`, `body=`, and the failure shapes `chunked=`,
//! `abort_after=`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, AGE, CACHE_CONTROL, CONTENT_LENGTH, DATE, ETAG, EXPIRES,
    LAST_MODIFIED, SET_COOKIE, TRANSFER_ENCODING, VARY,
};
use http::{HeaderMap, StatusCode};

/// Longest accepted `delay_ms=`.
pub(crate) const MAX_DELAY_MS: u64 = 600_000;

/// Last second httpdate can format (9999-12-31T23:59:59Z).
const MAX_HTTP_DATE_SECS: i128 = 253_402_300_799;

/// Why a request was answered 400; the text goes into the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// What the query parameters of one request ask for.
#[derive(Debug, Default)]
pub(crate) struct Behaviour {
    /// `status=`: the status to answer with instead of 200.
    pub(crate) status: Option<StatusCode>,
    /// `delay_ms=`: how long to wait before answering.
    pub(crate) delay: Duration,
    /// Headers set by the named parameters (`cc=`, `etag=`, ...).
    pub(crate) headers: HeaderMap,
    /// `header=Name:Value` pairs, in order.
    pub(crate) extra: Vec<(HeaderName, HeaderValue)>,
    /// `body=`: the body to send instead of the default.
    pub(crate) body: Option<Bytes>,
    /// `chunked=1`: send the body without `Content-Length` (chunked), as a streaming origin
    /// whose size is unknown would.
    pub(crate) chunked: bool,
    /// `abort_after=N`: announce the whole body, send its first `N` bytes, then drop the
    /// connection, as an origin that dies mid-body would.
    pub(crate) abort_after: Option<u64>,
}

fn value(param: &str, text: &str) -> Result<HeaderValue, BadRequest> {
    HeaderValue::from_str(text)
        .map_err(|_| BadRequest(format!("{param}: not a valid header value")))
}

/// An HTTP date for `secs` seconds after the Unix epoch, if formattable.
fn http_date(secs: i128) -> Option<HeaderValue> {
    if !(0..=MAX_HTTP_DATE_SECS).contains(&secs) {
        return None;
    }
    let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).ok()
}

/// `expires=` / `date=`: an integer is seconds relative to `now`, anything
/// else is used verbatim.
fn relative_date(param: &str, text: &str, now: SystemTime) -> Result<HeaderValue, BadRequest> {
    match text.trim().parse::<i64>() {
        Ok(offset) => {
            let now = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i128::from(d.as_secs()));
            http_date(now + i128::from(offset))
                .ok_or_else(|| BadRequest(format!("{param}: offset out of range")))
        }
        Err(_) => value(param, text),
    }
}

/// `last_modified=`: a Unix timestamp in seconds or an HTTP date, output as
/// an HTTP date.
fn last_modified(text: &str) -> Result<HeaderValue, BadRequest> {
    let text = text.trim();
    let secs = match text.parse::<u64>() {
        Ok(secs) => i128::from(secs),
        Err(_) => match httpdate::parse_http_date(text) {
            Ok(time) => time
                .duration_since(UNIX_EPOCH)
                .map_or(-1, |d| i128::from(d.as_secs())),
            Err(_) => {
                return Err(BadRequest(
                    "last_modified: not a Unix timestamp or HTTP date".into(),
                ))
            }
        },
    };
    http_date(secs).ok_or_else(|| BadRequest("last_modified: out of range".into()))
}

/// `etag=`: used as is when already quoted (`"x"` or `W/"x"`), else quoted.
fn etag(text: &str) -> Result<HeaderValue, BadRequest> {
    if text.starts_with('"') || text.starts_with("W/\"") {
        value("etag", text)
    } else {
        value("etag", &format!("\"{text}\""))
    }
}

fn status(text: &str) -> Result<StatusCode, BadRequest> {
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| BadRequest("status: must be a number in 100..=599".into()))
}

fn delay(text: &str) -> Result<Duration, BadRequest> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms <= MAX_DELAY_MS)
        .map(Duration::from_millis)
        .ok_or_else(|| BadRequest(format!("delay_ms: must be a number in 0..={MAX_DELAY_MS}")))
}

/// `header=Name:Value`.
fn extra_header(text: &str) -> Result<(HeaderName, HeaderValue), BadRequest> {
    let (name, val) = text
        .split_once(':')
        .ok_or_else(|| BadRequest("header: expected Name:Value".into()))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| BadRequest("header: not a valid header name".into()))?;
    if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
        return Err(BadRequest(format!("header: {name} cannot be set")));
    }
    Ok((name, value("header", val.trim())?))
}

/// `1`/`true` or `0`/`false`.
fn flag(param: &str, text: &str) -> Result<bool, BadRequest> {
    match text.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(BadRequest(format!("{param}: must be 1 or 0"))),
    }
}

impl Behaviour {
    /// Reads the behaviour from a raw (still URL-encoded) query string;
    /// relative dates are computed from `now`. Unknown parameters are ignored.
    pub(crate) fn from_query(query: Option<&str>, now: SystemTime) -> Result<Self, BadRequest> {
        let mut behaviour = Self::default();
        let Some(query) = query else {
            return Ok(behaviour);
        };
        for (key, text) in form_urlencoded::parse(query.as_bytes()) {
            let headers = &mut behaviour.headers;
            match key.as_ref() {
                "cc" => {
                    headers.insert(CACHE_CONTROL, value("cc", &text)?);
                }
                "status" => behaviour.status = Some(status(&text)?),
                "delay_ms" => behaviour.delay = delay(&text)?,
                "etag" => {
                    headers.insert(ETAG, etag(&text)?);
                }
                "last_modified" => {
                    headers.insert(LAST_MODIFIED, last_modified(&text)?);
                }
                "vary" => {
                    headers.insert(VARY, value("vary", &text)?);
                }
                "set_cookie" => {
                    headers.append(SET_COOKIE, value("set_cookie", &text)?);
                }
                "expires" => {
                    headers.insert(EXPIRES, relative_date("expires", &text, now)?);
                }
                "age" => {
                    headers.insert(AGE, value("age", &text)?);
                }
                "date" => {
                    headers.insert(DATE, relative_date("date", &text, now)?);
                }
                "header" => behaviour.extra.push(extra_header(&text)?),
                "body" => behaviour.body = Some(Bytes::from(text.into_owned())),
                "chunked" => behaviour.chunked = flag("chunked", &text)?,
                "abort_after" => {
                    behaviour.abort_after =
                        Some(text.trim().parse::<u64>().map_err(|_| {
                            BadRequest("abort_after: must be a number of bytes".into())
                        })?)
                }
                _ => {}
            }
        }
        Ok(behaviour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn parse(query: &str) -> Result<Behaviour, BadRequest> {
        Behaviour::from_query(Some(query), now())
    }

    fn header(query: &str, name: HeaderName) -> String {
        let b = parse(query).unwrap();
        b.headers.get(name).unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn failure_shapes() {
        let b = parse("chunked=1&abort_after=100").unwrap();
        assert!(b.chunked);
        assert_eq!(b.abort_after, Some(100));
        assert!(parse("chunked=maybe").is_err());
        assert!(parse("abort_after=-1").is_err());
    }

    #[test]
    fn empty_query() {
        let b = Behaviour::from_query(None, now()).unwrap();
        assert!(b.status.is_none() && b.headers.is_empty() && b.body.is_none());
        let b = parse("").unwrap();
        assert!(b.headers.is_empty());
        assert!(parse("unknown=1&x").is_ok());
    }

    #[test]
    fn cache_control_keeps_equals_and_decodes() {
        assert_eq!(header("cc=max-age=60", CACHE_CONTROL), "max-age=60");
        assert_eq!(
            header("cc=public%2C%20s-maxage%3D10", CACHE_CONTROL),
            "public, s-maxage=10"
        );
        assert_eq!(
            header("cc=no-store+private", CACHE_CONTROL),
            "no-store private"
        );
    }

    #[test]
    fn etag_quoting() {
        assert_eq!(header("etag=abc", ETAG), "\"abc\"");
        assert_eq!(header("etag=%22abc%22", ETAG), "\"abc\"");
        assert_eq!(header("etag=W/%22abc%22", ETAG), "W/\"abc\"");
    }

    #[test]
    fn last_modified_forms() {
        let expect = "Tue, 14 Nov 2023 22:13:20 GMT";
        assert_eq!(header("last_modified=1700000000", LAST_MODIFIED), expect);
        assert_eq!(
            header(
                "last_modified=Tue%2C%2014%20Nov%202023%2022%3A13%3A20%20GMT",
                LAST_MODIFIED
            ),
            expect
        );
        assert!(parse("last_modified=yesterday").is_err());
        assert!(parse("last_modified=99999999999999").is_err());
    }

    #[test]
    fn relative_dates() {
        assert_eq!(
            header("expires=60", EXPIRES),
            "Tue, 14 Nov 2023 22:14:20 GMT"
        );
        assert_eq!(
            header("expires=-10", EXPIRES),
            "Tue, 14 Nov 2023 22:13:10 GMT"
        );
        assert_eq!(
            header("expires=0", EXPIRES),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(header("date=-3600", DATE), "Tue, 14 Nov 2023 21:13:20 GMT");
        assert_eq!(
            header("expires=Thu,%2001%20Jan%201970%2000:00:00%20GMT", EXPIRES),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(header("expires=garbage", EXPIRES), "garbage");
        assert!(parse("expires=-99999999999").is_err());
        assert!(parse("date=99999999999999").is_err());
    }

    #[test]
    fn status_range() {
        assert_eq!(
            parse("status=404").unwrap().status,
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            parse("status=599").unwrap().status.map(|s| s.as_u16()),
            Some(599)
        );
        for bad in [
            "status=99",
            "status=600",
            "status=abc",
            "status=",
            "status=-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delay_bounds() {
        assert_eq!(
            parse("delay_ms=250").unwrap().delay,
            Duration::from_millis(250)
        );
        assert!(parse("delay_ms=600001").is_err());
        assert!(parse("delay_ms=soon").is_err());
    }

    #[test]
    fn simple_headers() {
        assert_eq!(header("vary=Accept-Encoding", VARY), "Accept-Encoding");
        assert_eq!(header("age=30", AGE), "30");
        assert_eq!(header("set_cookie=a%3D1", SET_COOKIE), "a=1");
        let b = parse("set_cookie=a%3D1&set_cookie=b%3D2").unwrap();
        assert_eq!(b.headers.get_all(SET_COOKIE).iter().count(), 2);
        assert!(parse("vary=a%0Ab").is_err());
    }

    #[test]
    fn extra_headers() {
        let b = parse("header=Surrogate-Key:%20a%20b&header=X-Thing:1&header=X-Thing:2").unwrap();
        let names: Vec<_> = b
            .extra
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [("surrogate-key", "a b"), ("x-thing", "1"), ("x-thing", "2")]
        );
        assert!(parse("header=novalue").is_err());
        assert!(parse("header=bad%20name:1").is_err());
        assert!(parse("header=Content-Length:5").is_err());
        assert!(parse("header=Transfer-Encoding:chunked").is_err());
    }

    #[test]
    fn body_text() {
        let b = parse("body=hello%20world").unwrap();
        assert_eq!(b.body.as_deref(), Some(&b"hello world"[..]));
    }
}
