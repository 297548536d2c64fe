//! The mock responses: every request that is not a control endpoint.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, DATE, ETAG, EXPIRES, LAST_MODIFIED, RANGE, SERVER, VARY,
};
use http::{HeaderMap, Method, StatusCode};
use rand::Rng;

use crate::behaviour::{BadRequest, Behaviour};
use crate::body::{GeneratedBody, ShapedBody};
use crate::range::RangeOutcome;
use crate::{conditional, range, Shared};

/// Largest accepted `n` in `/bytes/{n}` (16 GiB).
pub(crate) const MAX_GENERATED_LEN: u64 = 16 << 30;

/// Most request body bytes read (and discarded) so the connection stays usable.
const MAX_DRAINED_BODY: usize = 8 << 20;

/// Headers a 304 repeats from the full response.
const NOT_MODIFIED_HEADERS: [HeaderName; 8] = [
    SERVER,
    ETAG,
    CACHE_CONTROL,
    LAST_MODIFIED,
    EXPIRES,
    VARY,
    DATE,
    AGE,
];

const TEXT_PLAIN: &str = "text/plain";

/// The representation a path serves.
#[derive(Debug)]
enum Content {
    /// `/bytes/{n}`: `len` deterministic bytes for `path`.
    Generated { path: String, len: u64 },
    /// Any other path, or a `body=` override.
    Text(Bytes),
}

impl Content {
    /// What `path` serves, with `body=` taking precedence.
    fn resolve(path: &str, body: Option<Bytes>) -> Result<Self, BadRequest> {
        let generated = match path.strip_prefix("/bytes/") {
            Some(n) => Some(generated_len(n)?),
            None => None,
        };
        Ok(match (body, generated) {
            (Some(body), _) => Self::Text(body),
            (None, Some(len)) => Self::Generated {
                path: path.to_owned(),
                len,
            },
            (None, None) => Self::Text(Bytes::from(format!("origin-mock: {path}\n"))),
        })
    }

    fn len(&self) -> u64 {
        match self {
            Self::Generated { len, .. } => *len,
            Self::Text(text) => text.len() as u64,
        }
    }

    fn content_type(&self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Generated { .. } => "application/octet-stream",
            Self::Text(_) => TEXT_PLAIN,
        })
    }

    /// Bytes `start..end` (end exclusive) as a response body.
    fn body(&self, start: u64, end: u64) -> Body {
        match self {
            Self::Generated { path, .. } => Body::new(GeneratedBody::new(path, start, end)),
            Self::Text(text) => Body::from(text.slice(start as usize..end as usize)),
        }
    }
}

/// Parses the `{n}` of `/bytes/{n}`.
fn generated_len(n: &str) -> Result<u64, BadRequest> {
    let len = if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
        n.parse::<u64>().ok()
    } else {
        None
    };
    match len {
        Some(len) if len <= MAX_GENERATED_LEN => Ok(len),
        Some(_) => Err(BadRequest(format!(
            "/bytes/{{n}}: n must be at most {MAX_GENERATED_LEN}"
        ))),
        None => Err(BadRequest("/bytes/{n}: n must be a number".into())),
    }
}

/// A response with the given parts.
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A short `text/plain` response.
pub(crate) fn text(status: StatusCode, text: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(SERVER, HeaderValue::from_static("origin-mock"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    response(status, headers, Body::from(text))
}

/// Whether `status` responses carry no body and no `Content-Length`.
fn is_bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// Whether this request gets an injected failure.
fn inject_failure(fail_rate: f64) -> bool {
    if fail_rate.is_nan() || fail_rate <= 0.0 {
        false
    } else if fail_rate >= 1.0 {
        true
    } else {
        rand::thread_rng().gen_bool(fail_rate)
    }
}

/// Handles every request that is not a control endpoint: counts it, applies
/// the delays and failure injection, then answers as the query asks.
pub(crate) async fn mock(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let path_and_query = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    shared.stats.record(path, path_and_query, host);
    tracing::debug!(method = %parts.method, uri = %parts.uri, "origin-mock request");

    // Read the request body (bounded) so the connection can be reused.
    let _ = axum::body::to_bytes(body, MAX_DRAINED_BODY).await;

    let prepared = Behaviour::from_query(parts.uri.query(), SystemTime::now()).and_then(|mut b| {
        let content = Content::resolve(path, b.body.take())?;
        Ok((b, content))
    });
    let (behaviour, content) = match prepared {
        Ok(prepared) => prepared,
        Err(BadRequest(reason)) => {
            sleep(shared.options.delay).await;
            return text(
                StatusCode::BAD_REQUEST,
                format!("origin-mock: bad request: {reason}\n"),
            );
        }
    };
    sleep(shared.options.delay.saturating_add(behaviour.delay)).await;
    if inject_failure(shared.options.fail_rate) {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "origin-mock: injected failure\n".into(),
        );
    }
    answer(&parts.method, &parts.headers, behaviour, content)
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Applies `extra` (`header=`) to `headers`: the first value of a name
/// replaces what is there, later values of that name are added.
fn apply_extra(headers: &mut HeaderMap, extra: Vec<(HeaderName, HeaderValue)>) {
    let mut seen = HashSet::new();
    for (name, value) in extra {
        if seen.insert(name.clone()) {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
}

/// Builds the response for a request with `method` and `request_headers`.
fn answer(
    method: &Method,
    request_headers: &HeaderMap,
    behaviour: Behaviour,
    content: Content,
) -> Response {
    let status = behaviour.status.unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    headers.insert(SERVER, HeaderValue::from_static("origin-mock"));
    headers.insert(CONTENT_TYPE, content.content_type());
    headers.extend(behaviour.headers);
    apply_extra(&mut headers, behaviour.extra);

    let len = content.len();
    let head = method == Method::HEAD;
    if status == StatusCode::OK && (method == Method::GET || head) {
        let etag = headers.get(ETAG).and_then(|v| v.to_str().ok());
        let last_modified = headers
            .get(LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if conditional::not_modified(request_headers, etag, last_modified) {
            let mut kept = HeaderMap::new();
            for name in NOT_MODIFIED_HEADERS {
                for value in headers.get_all(&name) {
                    kept.append(name.clone(), value.clone());
                }
            }
            return response(StatusCode::NOT_MODIFIED, kept, Body::empty());
        }

        let range = request_headers
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| {
                conditional::if_range(request_headers).is_none_or(|if_range| {
                    conditional::if_range_allows(if_range, etag, last_modified)
                })
            })
            .map_or(RangeOutcome::Full, |range| range::evaluate(range, len));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match range {
            RangeOutcome::Full => {}
            RangeOutcome::Partial { start, end } => {
                let content_range = format!("bytes {start}-{end}/{len}");
                if let Ok(value) = HeaderValue::from_str(&content_range) {
                    headers.insert(CONTENT_RANGE, value);
                }
                headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                let body = if head {
                    Body::empty()
                } else {
                    content.body(start, end + 1)
                };
                return response(StatusCode::PARTIAL_CONTENT, headers, body);
            }
            RangeOutcome::Unsatisfiable => {
                let message = "origin-mock: range not satisfiable\n";
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    headers.insert(CONTENT_RANGE, value);
                }
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(message.len()));
                let body = if head {
                    Body::empty()
                } else {
                    Body::from(message)
                };
                return response(StatusCode::RANGE_NOT_SATISFIABLE, headers, body);
            }
        }
    }

    if is_bodiless(status) {
        headers.remove(CONTENT_TYPE);
        return response(status, headers, Body::empty());
    }
    if !behaviour.chunked {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    let body = if head {
        Body::empty()
    } else if behaviour.chunked || behaviour.abort_after.is_some() {
        Body::new(ShapedBody::new(
            content.body(0, len),
            behaviour.chunked,
            behaviour.abort_after,
        ))
    } else {
        content.body(0, len)
    };
    response(status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_path_lengths() {
        assert_eq!(generated_len("0"), Ok(0));
        assert_eq!(generated_len("1024"), Ok(1024));
        assert_eq!(generated_len("17179869184"), Ok(MAX_GENERATED_LEN));
        for bad in [
            "",
            "abc",
            "-1",
            "+1",
            "1.5",
            "10/x",
            "17179869185",
            "99999999999999999999999",
        ] {
            assert!(generated_len(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_resolution() {
        let c = Content::resolve("/x/y", None).unwrap();
        assert_eq!(c.len(), "origin-mock: /x/y\n".len() as u64);
        let c = Content::resolve("/bytes/5", None).unwrap();
        assert_eq!(c.len(), 5);
        let c = Content::resolve("/bytes/5", Some(Bytes::from_static(b"hi"))).unwrap();
        assert_eq!(c.len(), 2);
        assert!(Content::resolve("/bytes/x", Some(Bytes::from_static(b"hi"))).is_err());
    }

    #[test]
    fn failure_rates() {
        assert!(!inject_failure(0.0));
        assert!(!inject_failure(-1.0));
        assert!(!inject_failure(f64::NAN));
        assert!(inject_failure(1.0));
        assert!(inject_failure(7.0));
    }
}
