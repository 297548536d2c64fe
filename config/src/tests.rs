use super::*;
use std::path::PathBuf;

fn errors(text: &str) -> Vec<String> {
    match Config::from_toml_str(text, "test.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn embedded_default_is_valid_and_has_the_default_topology() {
    let config = Config::embedded_default().expect("embedded default must be valid");
    let mock = config.origin_mock.as_ref().expect("origin_mock");
    let edge = config.edge.as_ref().expect("edge");
    assert_eq!(mock.listen, DEFAULT_ORIGIN_MOCK_LISTEN);
    assert_eq!(edge.listen, vec![DEFAULT_EDGE_LISTEN]);
    assert_eq!(edge.admin.listen, DEFAULT_ADMIN_LISTEN);
    assert_eq!(edge.origins[0].address, DEFAULT_ORIGIN_MOCK_LISTEN);
    assert_eq!(edge.cache.default_ttl.get(), std::time::Duration::ZERO);
}

#[test]
fn embedded_default_states_every_default() {
    // The commented default file and the types' defaults must agree.
    let config = Config::embedded_default().unwrap();
    assert_eq!(config.origin_mock.unwrap(), OriginMockConfig::default());
    assert_eq!(config.edge.unwrap(), EdgeConfig::default());
}

#[test]
fn example_single_edge_is_the_embedded_default() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/single-edge.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text, DEFAULT_TOML,
        "examples/single-edge.toml drifted from config/default.toml"
    );
}

#[test]
fn every_field_appears_in_the_default_file() {
    // Every field the types have must be shown (set or commented) in the default file, so the
    // file stays a complete reference.
    let value = toml::Value::try_from(config_with_every_option()).unwrap();
    for path in crate::tests::field_paths(&value, "") {
        let leaf = path.rsplit('.').next().unwrap();
        assert!(
            DEFAULT_TOML.contains(&format!("{leaf} =")),
            "field {path} is not shown in config/default.toml"
        );
    }
}

#[test]
fn readme_config_reference_lists_every_field() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let value = toml::Value::try_from(config_with_every_option()).unwrap();
    for field in field_paths(&value, "") {
        assert!(
            readme.contains(&format!("| `{field}` |")),
            "README.md's config reference lacks a row for `{field}`"
        );
    }
}

/// The embedded default with every optional field set, so that serialising it shows them all.
fn config_with_every_option() -> Config {
    let mut config = Config::embedded_default().unwrap();
    let edge = config.edge.as_mut().unwrap();
    edge.pool.host = Some("h".into());
    edge.pool.bounded_load = Some(1.25);
    edge.pool.total_timeout = Some(HumanDuration::from_secs(60));
    edge.origins[0].host = Some("h".into());
    edge.pool.health.expected_status = Some(200);
    edge.routes
        .push(crate::route::tests::route_with_every_option());
    config
}

/// Dotted paths of every leaf in a TOML value (arrays of tables use `[]`).
pub(crate) fn field_paths(value: &toml::Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.extend(field_paths(v, &p));
            }
        }
        toml::Value::Array(a) if a.iter().all(|v| v.is_table()) && !a.is_empty() => {
            for v in a {
                out.extend(field_paths(v, &format!("{prefix}[]")));
            }
        }
        _ => out.push(prefix.to_string()),
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn minimal_edge_gets_defaults() {
    let c = Config::from_toml_str(
        "[edge]\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\n",
        "t.toml",
    )
    .unwrap();
    let edge = c.edge.unwrap();
    assert_eq!(edge.cache.eviction, Eviction::Lfu);
    assert_eq!(edge.cache.max_object_size, HumanSize::from_mib(64));
    assert!(c.origin_mock.is_none());
}

#[test]
fn bad_size_names_file_line_and_field() {
    let e = errors(
        "[edge]\n[[edge.origins]]\naddress = \"127.0.0.1:1\"\n[edge.cache]\nmax_size = \"12XB\"\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("test.toml:5:"), "{}", e[0]);
    assert!(e[0].contains("edge.cache.max_size"), "{}", e[0]);
    assert!(e[0].contains("invalid size \"12XB\""), "{}", e[0]);
}

#[test]
fn unknown_field_is_named() {
    let e = errors("[edge.cache]\nmax_sise = \"1GiB\"\n");
    assert!(e[0].contains("edge.cache"), "{}", e[0]);
    assert!(e[0].contains("unknown field `max_sise`"), "{}", e[0]);
}

#[test]
fn bad_duration_and_enum_are_named() {
    let e = errors("[edge.pool]\nconnect_timeout = \"2 parsecs\"\n");
    assert!(
        e[0].contains("edge.pool.connect_timeout: invalid duration"),
        "{}",
        e[0]
    );
    let e = errors("[edge.cache]\neviction = \"fifo\"\n");
    assert!(e[0].contains("edge.cache.eviction"), "{}", e[0]);
    assert!(e[0].contains("unknown variant `fifo`"), "{}", e[0]);
}

#[test]
fn syntax_error_has_a_position() {
    let e = errors("[edge\n");
    assert!(e[0].starts_with("test.toml:1:"), "{}", e[0]);
}

#[test]
fn validation_reports_every_problem() {
    let e = errors(
        r#"
[origin_mock]
listen = "127.0.0.1:8080"
fail_rate = 1.5
[edge]
name = "bad name"
listen = ["127.0.0.1:8080"]
[edge.cache]
max_size = "2MiB"
max_object_size = "4MiB"
"#,
    );
    let all = e.join("\n");
    assert!(
        all.contains("origin_mock.fail_rate: must be between 0.0 and 1.0"),
        "{all}"
    );
    assert!(all.contains("edge.name"), "{all}");
    assert!(all.contains("edge.origins: no origins"), "{all}");
    assert!(
        all.contains("edge.listen[0]: 127.0.0.1:8080 is already used by origin_mock.listen"),
        "{all}"
    );
    assert!(
        all.contains("edge.cache.max_object_size: 4MiB is larger than edge.cache.max_size"),
        "{all}"
    );
    assert_eq!(e.len(), 5, "{all}");
}

#[test]
fn empty_file_has_nothing_to_run() {
    let e = errors("");
    assert!(e[0].contains("nothing to run"), "{}", e[0]);
}

#[test]
fn config_round_trips_through_toml() {
    let c = Config::embedded_default().unwrap();
    let again = Config::from_toml_str(&c.to_toml(), "again.toml").unwrap();
    assert_eq!(c, again);
}

#[test]
fn example_origin_pool_parses() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/origin-pool.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let edge = config.edge.expect("edge");
    assert!(config.origin_mock.is_none());
    assert_eq!(edge.pool.policy, PoolPolicy::ConsistentHash);
    assert_eq!(edge.origins.len(), 3);
    let ports: Vec<u16> = edge.origins.iter().map(|o| o.address.port()).collect();
    assert_eq!(ports, vec![8091, 8092, 8093]);
    assert_eq!(edge.listen, vec![DEFAULT_EDGE_LISTEN]);
    assert_eq!(edge.admin.listen, DEFAULT_ADMIN_LISTEN);
    assert!(edge.pool.health.enabled);
    assert_eq!(edge.pool.health.interval, HumanDuration::from_secs(1));
}

#[test]
fn pool_policies_and_options_parse() {
    let c = Config::from_toml_str(
        r#"
[edge.pool]
policy = "consistent_hash"
hash_key = "client"
vnodes = 40
bounded_load = 1.25
total_timeout = "10s"
idle_timeout = "5s"
max_tries = 1
retry_budget = 0.0
[[edge.origins]]
address = "10.0.0.1:80"
weight = 3
[[edge.origins]]
address = "10.0.0.2:80"
weight = 0
"#,
        "t.toml",
    )
    .unwrap();
    let pool = c.edge.as_ref().unwrap().pool.clone();
    assert_eq!(pool.policy, PoolPolicy::ConsistentHash);
    assert_eq!(pool.hash_key, HashKey::Client);
    assert_eq!(pool.vnodes, 40);
    assert_eq!(pool.bounded_load, Some(1.25));
    assert_eq!(pool.total_timeout, Some(HumanDuration::from_secs(10)));
    assert_eq!(pool.max_tries, 1);
    assert_eq!(c.edge.unwrap().origins[0].weight, 3);
    for (name, policy) in [
        ("round_robin", PoolPolicy::RoundRobin),
        ("random", PoolPolicy::Random),
        ("least_conn", PoolPolicy::LeastConn),
        ("p2c", PoolPolicy::P2c),
    ] {
        let c = Config::from_toml_str(
            &format!(
                "[edge.pool]\npolicy = \"{name}\"\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\n"
            ),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.edge.unwrap().pool.policy, policy);
    }
    let e = errors("[edge.pool]\npolicy = \"fastest\"\n");
    assert!(e[0].contains("edge.pool.policy"), "{}", e[0]);
    assert!(e[0].contains("unknown variant `fastest`"), "{}", e[0]);
}

#[test]
fn pool_validation_names_each_field() {
    let e = errors(
        r#"
[edge.pool]
policy = "round_robin"
vnodes = 0
bounded_load = 1.5
total_timeout = "0s"
idle_timeout = "0s"
max_tries = 11
retry_budget = 1.5
[[edge.origins]]
address = "10.0.0.1:80"
weight = 1001
[[edge.origins]]
address = "10.0.0.1:80"
"#,
    );
    let all = e.join("\n");
    for needle in [
        "edge.pool.vnodes: must be between 1 and 1000, got 0",
        "edge.pool.bounded_load: only applies to policy = \"consistent_hash\"",
        "edge.pool.total_timeout: must be more than 0s",
        "edge.pool.idle_timeout: must be more than 0s",
        "edge.pool.max_tries: must be between 1 (no retries) and 10, got 11",
        "edge.pool.retry_budget: must be between 0.0 and 1.0, got 1.5",
        "edge.origins[0].weight: must be between 0 and 1000, got 1001",
        "edge.origins[1].address: 10.0.0.1:80 is already edge.origins[0]",
    ] {
        assert!(all.contains(needle), "missing {needle} in\n{all}");
    }
    assert_eq!(e.len(), 8, "{all}");

    let e = errors(
        "[edge.pool]\npolicy = \"consistent_hash\"\nbounded_load = 0.9\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\nweight = 0\n",
    );
    let all = e.join("\n");
    assert!(
        all.contains("edge.pool.bounded_load: must be at least 1.0"),
        "{all}"
    );
    assert!(
        all.contains("edge.origins: every origin has weight 0"),
        "{all}"
    );

    let e = errors(
        "[edge.pool]\npolicy = \"consistent_hash\"\nvnodes = 1000\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\nweight = 1000\n[[edge.origins]]\naddress = \"10.0.0.2:80\"\nweight = 1000\n",
    );
    assert!(e[0].contains("ring points"), "{}", e[0]);
}

#[test]
fn health_checks_default_off_and_parse() {
    let h = HealthConfig::default();
    assert!(!h.enabled);
    assert_eq!(h.kind, HealthCheckKind::Http);
    assert_eq!(h.path, "/");
    assert_eq!(h.interval, HumanDuration::from_secs(1));
    assert_eq!(h.timeout, HumanDuration::from_millis(500));
    assert_eq!((h.rise, h.fall), (2, 2));
    assert_eq!(h.expected_status, None);
    let c = Config::from_toml_str(
        r#"
[edge.pool.health]
enabled = true
kind = "tcp"
path = "/health"
interval = "200ms"
timeout = "100ms"
rise = 3
fall = 1
expected_status = 204
[[edge.origins]]
address = "10.0.0.1:80"
"#,
        "t.toml",
    )
    .unwrap();
    let h = c.edge.unwrap().pool.health;
    assert!(h.enabled);
    assert_eq!(h.kind, HealthCheckKind::Tcp);
    assert_eq!(h.path, "/health");
    assert_eq!(h.interval, HumanDuration::from_millis(200));
    assert_eq!(h.timeout, HumanDuration::from_millis(100));
    assert_eq!((h.rise, h.fall), (3, 1));
    assert_eq!(h.expected_status, Some(204));
}

#[test]
fn health_validation_names_each_field() {
    let e = errors(
        r#"
[edge.pool.health]
kind = "udp"
[[edge.origins]]
address = "10.0.0.1:80"
"#,
    );
    assert!(e[0].contains("edge.pool.health.kind"), "{}", e[0]);
    let e = errors(
        r#"
[edge.pool.health]
path = "health"
interval = "1ms"
timeout = "0s"
rise = 0
fall = 101
expected_status = 42
[[edge.origins]]
address = "10.0.0.1:80"
"#,
    );
    let all = e.join("\n");
    for needle in [
        "edge.pool.health.path: \"health\" is not a request path",
        "edge.pool.health.interval: must be at least 10ms",
        "edge.pool.health.timeout: must be more than 0s",
        "edge.pool.health.rise: must be between 1 and 100, got 0",
        "edge.pool.health.fall: must be between 1 and 100, got 101",
        "edge.pool.health.expected_status: 42 is not an HTTP status",
    ] {
        assert!(all.contains(needle), "missing {needle} in\n{all}");
    }
    assert_eq!(e.len(), 6, "{all}");
    let e = errors(
        "[edge.pool.health]\ninterval = \"1s\"\ntimeout = \"2s\"\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\n",
    );
    assert!(
        e[0].contains("edge.pool.health.timeout: 2s is longer than edge.pool.health.interval"),
        "{}",
        e[0]
    );
}

#[test]
fn breaker_and_outlier_default_on_and_validation_names_each_field() {
    let c =
        Config::from_toml_str("[[edge.origins]]\naddress = \"10.0.0.1:80\"\n", "t.toml").unwrap();
    let pool = c.edge.unwrap().pool;
    assert!(pool.breaker.enabled && pool.outlier.enabled);
    assert_eq!(pool.breaker.cool_down, HumanDuration::from_secs(10));
    assert_eq!(pool.outlier.max_ejected_share, 0.5);
    let e = errors(
        r#"
[edge.pool.breaker]
window = 0
failure_rate = 1.5
cool_down = "0s"
half_open_probes = 0
[edge.pool.outlier]
consecutive_failures = 0
base_ejection = "10s"
max_ejection = "5s"
max_ejected_share = -0.1
[[edge.origins]]
address = "10.0.0.1:80"
"#,
    );
    let all = e.join("\n");
    for needle in [
        "edge.pool.breaker.window: must be between 1 and 10000, got 0",
        "edge.pool.breaker.failure_rate: must be above 0.0 and at most 1.0, got 1.5",
        "edge.pool.breaker.cool_down: must be more than 0s",
        "edge.pool.breaker.half_open_probes: must be between 1 and 100, got 0",
        "edge.pool.outlier.consecutive_failures: must be between 1 and 1000, got 0",
        "edge.pool.outlier.max_ejection: must be at least base_ejection (10s), got 5s",
        "edge.pool.outlier.max_ejected_share: must be between 0.0 and 1.0, got -0.1",
    ] {
        assert!(all.contains(needle), "missing {needle} in\n{all}");
    }
    assert_eq!(e.len(), 7, "{all}");
    let e = errors(
        "[edge.pool.breaker]\nwindow = 5\nmin_calls = 6\n[[edge.origins]]\naddress = \"10.0.0.1:80\"\n",
    );
    assert!(
        e[0].contains("edge.pool.breaker.min_calls: must be between 1 and window (5), got 6"),
        "{}",
        e[0]
    );
}
