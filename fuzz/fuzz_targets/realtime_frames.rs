//! The viewer protocol's frames (JSON commands, one per line) and the
//! realtime bus's messages, as they arrive from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = gateway::realtime::protocol::parse_frame(text);
    }
    if let Some((channel, _offset, body)) = gateway::realtime::bus::parse_bus_message(data) {
        // What it read is a part of what it was given.
        assert!(channel.len() + body.len() < data.len());
    }
});
