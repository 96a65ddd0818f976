//! Configuration values: `NAME=value` lines read as the process's `HAUL_*`
//! environment.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("HAUL_{k}"), v.to_owned()))
        .collect();
    let _ = gateway::config::Config::from_vars(vars);
});
