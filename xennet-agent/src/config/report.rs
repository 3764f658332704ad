//! Problems found in the file, and their formatting as `file:line:col: message`.

use super::ConfigError;

/// One problem: byte offset into the text, and the message without location.
pub(super) struct Problem {
    pub(super) at: usize,
    pub(super) message: String,
}

impl Problem {
    pub(super) fn from_toml(e: &toml::de::Error) -> Self {
        Self {
            at: e.span().map_or(0, |span| span.start),
            message: e.message().trim().to_owned(),
        }
    }
}

/// Sort problems into file order and format them as `file:line:col: message`.
pub(super) fn report(text: &str, origin: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| p.at);
    ConfigError::Invalid(
        problems
            .into_iter()
            .map(|p| {
                let (line, col) = line_col(text, p.at);
                format!("{origin}:{line}:{col}: {}", p.message)
            })
            .collect(),
    )
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = before.split(|&b| b == b'\n').count();
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let col = before[line_start..]
        .iter()
        .filter(|&&b| b & 0xc0 != 0x80)
        .count()
        + 1;
    (line, col)
}
