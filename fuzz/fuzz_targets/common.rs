//! What the targets share.

/// The first line (a header, say) and the rest (a body).
pub fn head_and_body(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    }
}
