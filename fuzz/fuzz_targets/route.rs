//! Any host and path against a route table: matching never panics, path normalisation is
//! idempotent, and the route found covers the normalised path with the longest prefix.
#![no_main]

use cdn_config::RouteConfig;
use cdn_edge::route::{normalised_path, RouteTable};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const PREFIXES: [&str; 6] = ["/", "/a/", "/a/b/", "/private/", "/x", "/%41/"];

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut routes: Vec<RouteConfig> = PREFIXES
            .iter()
            .map(|p| RouteConfig {
                prefix: p.to_string(),
                ..RouteConfig::default()
            })
            .collect();
        routes.push(RouteConfig {
            host: Some("h.example".into()),
            prefix: "/a/".into(),
            ..RouteConfig::default()
        });
        RouteTable::new(&routes, &[])
    })
}

fuzz_target!(|input: (&str, &str)| {
    let (host, path) = input;
    let once = normalised_path(path).into_owned();
    assert!(once.starts_with('/'), "{once:?}");
    assert_eq!(
        normalised_path(&once),
        once.as_str(),
        "not idempotent for {path:?}"
    );
    let t = table();
    let found = t.find(Some(host), path);
    let longest = PREFIXES
        .iter()
        .filter(|p| once.starts_with(**p))
        .map(|p| p.len())
        .max();
    // The catch-all "/" route means every path has one.
    let route = found.expect("the / route covers everything");
    assert!(once.starts_with(route.prefix.as_str()));
    assert!(Some(route.prefix.len()) >= longest);
});
