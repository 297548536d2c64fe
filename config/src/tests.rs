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
    let mut config = Config::embedded_default().unwrap();
    let edge = config.edge.as_mut().unwrap();
    edge.pool.host = Some("h".into());
    edge.origins[0].host = Some("h".into());
    let value = toml::Value::try_from(&config).unwrap();
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
    let mut config = Config::embedded_default().unwrap();
    let edge = config.edge.as_mut().unwrap();
    edge.pool.host = Some("h".into());
    edge.origins[0].host = Some("h".into());
    let value = toml::Value::try_from(&config).unwrap();
    for field in field_paths(&value, "") {
        assert!(
            readme.contains(&format!("| `{field}` |")),
            "README.md's config reference lacks a row for `{field}`"
        );
    }
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
