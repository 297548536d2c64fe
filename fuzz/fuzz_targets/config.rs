//! Any text given as a config file: parsing and validation answer Ok or errors, never panic,
//! and a config that loads prints back to TOML that loads to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = cdn_config::Config::from_toml_str(text, "fuzz.toml") {
        let again = cdn_config::Config::from_toml_str(&config.to_toml(), "again.toml")
            .expect("a printed config loads");
        assert_eq!(config, again);
    }
});
