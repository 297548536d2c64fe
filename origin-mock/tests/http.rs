//! Integration tests: a real origin-mock on 127.0.0.1, spoken to over HTTP
//! with ureq.

use std::io::Read;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use origin_mock::{body_bytes, MockOptions};

/// An origin-mock running on its own runtime thread; stopped on drop.
struct Server {
    addr: SocketAddr,
    agent: ureq::Agent,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(options: MockOptions) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                origin_mock::serve(listener, options, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(Duration::from_secs(10))
            .build();
        Self {
            addr,
            agent,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn default() -> Self {
        Self::start(MockOptions::default())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent.request(method, &self.url(path))
    }

    fn get(&self, path: &str) -> Reply {
        send(self.request("GET", path))
    }

    fn stats(&self) -> serde_json::Value {
        let reply = self.get("/__stats");
        assert_eq!(reply.status, 200);
        serde_json::from_slice(&reply.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// A fully read response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends `request`, treating 4xx/5xx as ordinary replies.
fn send(request: ureq::Request) -> Reply {
    let response = match request.call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("transport error: {err}"),
    };
    let status = response.status();
    let mut headers = Vec::new();
    let mut names = response.headers_names();
    names.sort();
    names.dedup();
    for name in names {
        for value in response.all(&name) {
            headers.push((name.clone(), value.to_owned()));
        }
    }
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

fn http_date_secs(value: &str) -> i64 {
    let time = httpdate::parse_http_date(value).unwrap();
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn bytes_are_sized_and_deterministic() {
    let server = Server::default();
    let a = server.get("/bytes/1000");
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), 1000);
    assert_eq!(a.header("content-length"), Some("1000"));
    assert_eq!(a.header("content-type"), Some("application/octet-stream"));
    assert_eq!(a.header("accept-ranges"), Some("bytes"));
    assert_eq!(a.header("server"), Some("origin-mock"));
    assert!(a.header("date").is_some());
    assert_eq!(a.body, body_bytes("/bytes/1000", 1000));

    let again = server.get("/bytes/1000");
    assert_eq!(again.body, a.body);
    // Query parameters do not change the bytes.
    assert_eq!(server.get("/bytes/1000?cc=max-age=5").body, a.body);

    let other = server.get("/bytes/1001");
    assert_eq!(other.body.len(), 1001);
    assert_ne!(&other.body[..1000], &a.body[..]);

    // Several 64 KiB chunks.
    let big = server.get("/bytes/200003");
    assert_eq!(big.body.len(), 200_003);
    assert_eq!(big.body, body_bytes("/bytes/200003", 200_003));

    let empty = server.get("/bytes/0");
    assert_eq!(empty.status, 200);
    assert_eq!(empty.header("content-length"), Some("0"));
    assert!(empty.body.is_empty());
}

#[test]
fn head_has_headers_but_no_body() {
    let server = Server::default();
    let head = send(server.request("HEAD", "/bytes/12345?cc=max-age=60"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("12345"));
    assert_eq!(head.header("cache-control"), Some("max-age=60"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert!(head.body.is_empty());

    let get = server.get("/some/page");
    let head = send(server.request("HEAD", "/some/page"));
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        get.body.len().to_string()
    );
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert!(head.body.is_empty());
}

#[test]
fn other_paths_and_methods_answer_small_text() {
    let server = Server::default();
    let reply = server.get("/hello/world?x=1");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "origin-mock: /hello/world\n");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("server"), Some("origin-mock"));
    for method in ["POST", "PUT", "DELETE"] {
        let reply = send(server.request(method, "/hello/world"));
        assert_eq!(reply.status, 200, "{method}");
        assert_eq!(reply.text(), "origin-mock: /hello/world\n");
    }
    let posted = server
        .request("POST", "/upload")
        .send_string("some request body");
    let posted = match posted {
        Ok(response) => response.into_string().unwrap(),
        Err(err) => panic!("{err}"),
    };
    assert_eq!(posted, "origin-mock: /upload\n");
    let stats = server.stats();
    assert_eq!(stats["paths"]["/hello/world"], 4);
    assert_eq!(stats["paths"]["/upload"], 1);
}

#[test]
fn header_query_parameters() {
    let server = Server::default();
    let reply = server.get(
        "/p?cc=max-age=60&etag=abc&last_modified=1700000000&vary=Accept-Encoding\
         &set_cookie=a%3D1&age=30&header=Surrogate-Key:%20k1%20k2&header=X-Extra:1\
         &header=X-Extra:2",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("max-age=60"));
    assert_eq!(reply.header("etag"), Some("\"abc\""));
    assert_eq!(
        reply.header("last-modified"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
    assert_eq!(reply.header("vary"), Some("Accept-Encoding"));
    assert_eq!(reply.header("set-cookie"), Some("a=1"));
    assert_eq!(reply.header("age"), Some("30"));
    assert_eq!(reply.header("surrogate-key"), Some("k1 k2"));
    assert_eq!(reply.header_all("x-extra"), ["1", "2"]);

    let quoted = server.get("/p?etag=W/%22v1%22");
    assert_eq!(quoted.header("etag"), Some("W/\"v1\""));
    let quoted = server.get("/p?etag=%22v2%22");
    assert_eq!(quoted.header("etag"), Some("\"v2\""));
    let dated = server.get("/p?last_modified=Sun,%2006%20Nov%201994%2008:49:37%20GMT");
    assert_eq!(
        dated.header("last-modified"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    // header= may override the default Content-Type.
    let typed = server.get("/p?header=Content-Type:application/json");
    assert_eq!(typed.header_all("content-type"), ["application/json"]);
}

#[test]
fn expires_and_date_parameters() {
    let server = Server::default();
    let now = now_secs();
    let reply = server.get("/p?expires=60");
    let expires = http_date_secs(reply.header("expires").unwrap());
    assert!((expires - (now + 60)).abs() <= 2, "{expires} vs {now}");

    let reply = server.get("/p?expires=-10");
    let expires = http_date_secs(reply.header("expires").unwrap());
    assert!((expires - (now - 10)).abs() <= 2);

    let reply = server.get("/p?expires=0");
    assert!(reply.header("expires").is_some());

    let verbatim = "Wed, 21 Oct 2015 07:28:00 GMT";
    let reply = server.get("/p?expires=Wed,%2021%20Oct%202015%2007:28:00%20GMT");
    assert_eq!(reply.header("expires"), Some(verbatim));

    let reply = server.get("/p?date=-3600");
    let dates = reply.header_all("date");
    assert_eq!(dates.len(), 1, "exactly one Date header: {dates:?}");
    assert!((http_date_secs(dates[0]) - (now - 3600)).abs() <= 2);

    let reply = server.get("/p?date=Wed,%2021%20Oct%202015%2007:28:00%20GMT");
    assert_eq!(reply.header_all("date"), [verbatim]);
}

#[test]
fn status_body_and_delay_parameters() {
    let server = Server::default();
    let reply = server.get("/p?status=404&cc=max-age=5");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "origin-mock: /p\n");
    assert_eq!(reply.header("cache-control"), Some("max-age=5"));

    assert_eq!(server.get("/p?status=201").status, 201);
    assert_eq!(server.get("/p?status=503").status, 503);
    let moved = server.get("/p?status=301&header=Location:/elsewhere");
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("/elsewhere"));

    let no_content = server.get("/p?status=204");
    assert_eq!(no_content.status, 204);
    assert!(no_content.body.is_empty());
    assert_eq!(no_content.header("content-length"), None);

    let body = server.get("/p?body=hello%20there");
    assert_eq!(body.text(), "hello there");
    assert_eq!(body.header("content-length"), Some("11"));

    let start = Instant::now();
    let delayed = server.get("/p?delay_ms=150");
    assert_eq!(delayed.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn if_none_match_gives_304() {
    let server = Server::default();
    let path = "/doc?etag=abc&cc=max-age=60&vary=Accept&expires=60&last_modified=1700000000";
    let full = server.get(path);
    assert_eq!(full.status, 200);

    for inm in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
        let reply = send(server.request("GET", path).set("If-None-Match", inm));
        assert_eq!(reply.status, 304, "{inm}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some("\"abc\""));
        assert_eq!(reply.header("cache-control"), Some("max-age=60"));
        assert_eq!(reply.header("vary"), Some("Accept"));
        assert_eq!(reply.header("expires"), full.header("expires"));
        assert_eq!(reply.header("last-modified"), full.header("last-modified"));
        assert_eq!(reply.header("content-type"), None);
    }
    let head = send(server.request("HEAD", path).set("If-None-Match", "\"abc\""));
    assert_eq!(head.status, 304);

    let other = send(server.request("GET", path).set("If-None-Match", "\"nope\""));
    assert_eq!(other.status, 200);
    assert_eq!(other.body, full.body);

    // Only when the status would be 200.
    let not_found = send(
        server
            .request("GET", "/doc?etag=abc&status=404")
            .set("If-None-Match", "\"abc\""),
    );
    assert_eq!(not_found.status, 404);
    // Only for GET/HEAD.
    let post = send(
        server
            .request("POST", "/doc?etag=abc")
            .set("If-None-Match", "\"abc\""),
    );
    assert_eq!(post.status, 200);
}

#[test]
fn if_modified_since_gives_304() {
    let server = Server::default();
    let path = "/doc?last_modified=1700000000&cc=max-age=60";
    let at = "Tue, 14 Nov 2023 22:13:20 GMT";
    let later = "Wed, 15 Nov 2023 00:00:00 GMT";
    let earlier = "Tue, 14 Nov 2023 22:13:19 GMT";
    for (since, status) in [(at, 304), (later, 304), (earlier, 200), ("junk", 200)] {
        let reply = send(server.request("GET", path).set("If-Modified-Since", since));
        assert_eq!(reply.status, status, "{since}");
        if status == 304 {
            assert!(reply.body.is_empty());
            assert_eq!(reply.header("last-modified"), Some(at));
            assert_eq!(reply.header("cache-control"), Some("max-age=60"));
        }
    }
    // If-None-Match takes precedence over If-Modified-Since.
    let reply = send(
        server
            .request("GET", "/doc?last_modified=1700000000&etag=v")
            .set("If-None-Match", "\"other\"")
            .set("If-Modified-Since", later),
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn ranges_give_206_and_416() {
    let server = Server::default();
    let whole = body_bytes("/bytes/1000", 1000);
    let range = |spec: &str| send(server.request("GET", "/bytes/1000").set("Range", spec));

    let reply = range("bytes=10-19");
    assert_eq!(reply.status, 206);
    assert_eq!(reply.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(reply.header("content-length"), Some("10"));
    assert_eq!(reply.body, &whole[10..20]);

    let reply = range("bytes=990-");
    assert_eq!(reply.status, 206);
    assert_eq!(reply.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(reply.body, &whole[990..]);

    let reply = range("bytes=-10");
    assert_eq!(reply.status, 206);
    assert_eq!(reply.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(reply.body, &whole[990..]);

    let reply = range("bytes=1000-");
    assert_eq!(reply.status, 416);
    assert_eq!(reply.header("content-range"), Some("bytes */1000"));

    for ignored in ["bytes=0-1,5-6", "bytes=oops", "lines=1-2"] {
        let reply = range(ignored);
        assert_eq!(reply.status, 200, "{ignored}");
        assert_eq!(reply.body, whole);
    }

    // A slice in the middle of a multi-chunk body.
    let big = body_bytes("/bytes/300000", 300_000);
    let reply = send(
        server
            .request("GET", "/bytes/300000")
            .set("Range", "bytes=100000-200099"),
    );
    assert_eq!(reply.status, 206);
    assert_eq!(reply.body, &big[100_000..200_100]);

    // Text bodies are ranged too.
    let reply = send(server.request("GET", "/abc").set("Range", "bytes=0-10"));
    assert_eq!(reply.status, 206);
    assert_eq!(reply.text(), "origin-mock");

    // Not when the status is not 200.
    let reply = send(
        server
            .request("GET", "/bytes/1000?status=404")
            .set("Range", "bytes=0-9"),
    );
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body.len(), 1000);

    // If-Range: a matching strong ETag keeps the range, anything else drops it.
    let path = "/bytes/1000?etag=v1";
    let reply = send(
        server
            .request("GET", path)
            .set("Range", "bytes=0-9")
            .set("If-Range", "\"v1\""),
    );
    assert_eq!(reply.status, 206);
    let reply = send(
        server
            .request("GET", path)
            .set("Range", "bytes=0-9")
            .set("If-Range", "\"v2\""),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 1000);
}

#[test]
fn stats_count_and_reset() {
    let server = Server::default();
    assert_eq!(server.stats()["total"], 0);
    server.get("/a");
    server.get("/a?x=1");
    server.get("/bytes/10");
    send(server.request("HEAD", "/a"));
    send(server.request("POST", "/a"));
    server.get("/bytes/nope");

    let stats = server.stats();
    assert_eq!(stats["total"], 6);
    assert_eq!(stats["paths"]["/a"], 4);
    assert_eq!(stats["paths"]["/bytes/10"], 1);
    assert_eq!(stats["paths"]["/bytes/nope"], 1);
    assert_eq!(stats["requests"]["/a"], 3);
    assert_eq!(stats["requests"]["/a?x=1"], 1);
    assert!(stats["paths"].get("/__stats").is_none());

    let reset = send(server.request("POST", "/__reset"));
    assert_eq!(reset.status, 200);
    let reset: serde_json::Value = serde_json::from_slice(&reset.body).unwrap();
    assert_eq!(reset, serde_json::json!({"reset": true}));
    let stats = server.stats();
    assert_eq!(stats["total"], 0);
    assert_eq!(stats["paths"], serde_json::json!({}));
    assert_eq!(stats["requests"], serde_json::json!({}));

    // Counted at arrival, before the delay.
    let url = server.url("/slow?delay_ms=300");
    let agent = server.agent.clone();
    let slow = std::thread::spawn(move || agent.get(&url).call().map_or(0, |r| r.status()));
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.stats()["paths"]["/slow"] != 1 {
        assert!(Instant::now() < deadline, "slow request never counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(slow.join().unwrap(), 200);

    assert_eq!(send(server.request("GET", "/__reset")).status, 405);
}

#[test]
fn fail_rate_one_always_fails() {
    let server = Server::start(MockOptions {
        fail_rate: 1.0,
        ..MockOptions::default()
    });
    for path in ["/a", "/bytes/10", "/a?cc=max-age=60"] {
        let reply = server.get(path);
        assert_eq!(reply.status, 500, "{path}");
        assert_eq!(reply.text(), "origin-mock: injected failure\n");
    }
    let stats = server.stats();
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["paths"]["/a"], 2);
    assert_eq!(send(server.request("POST", "/__reset")).status, 200);
}

#[test]
fn server_delay_applies_to_every_response() {
    let server = Server::start(MockOptions {
        delay: Duration::from_millis(100),
        ..MockOptions::default()
    });
    let start = Instant::now();
    assert_eq!(server.get("/a?delay_ms=50").status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[test]
fn bad_input_gives_400() {
    let server = Server::default();
    for path in [
        "/bytes/abc",
        "/bytes/",
        "/bytes/-5",
        "/bytes/17179869185",
        "/p?status=99",
        "/p?status=600",
        "/p?status=ok",
        "/p?delay_ms=soon",
        "/p?delay_ms=600001",
        "/p?last_modified=yesterday",
        "/p?expires=-999999999999",
        "/p?header=NoColon",
        "/p?header=Bad%20Name:1",
        "/p?header=Content-Length:3",
        "/p?cc=a%0Ab",
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 400, "{path}");
        assert!(
            reply.text().starts_with("origin-mock: bad request: "),
            "{path}: {}",
            reply.text()
        );
    }
    // The server is still healthy.
    assert_eq!(server.get("/bytes/3").body.len(), 3);
}

#[test]
fn chunked_hides_the_length() {
    let server = Server::default();
    let reply = server.get("/bytes/100000?chunked=1");
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-length").is_none());
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.body, origin_mock::body_bytes("/bytes/100000", 100000));
}

#[test]
fn abort_after_drops_the_connection_mid_body() {
    let server = Server::default();
    let resp = server
        .request("GET", "/bytes/100000?abort_after=30000")
        .call()
        .expect("the header arrives");
    assert_eq!(resp.header("content-length"), Some("100000"));
    let mut body = Vec::new();
    let read = std::io::Read::read_to_end(&mut resp.into_reader(), &mut body);
    assert!(
        read.is_err() || body.len() < 100000,
        "the body must be cut short"
    );
    assert!(body.len() <= 30000, "{}", body.len());
}
