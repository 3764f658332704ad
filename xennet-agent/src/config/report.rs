//! Problems found in the file, and their formatting as `file:line:col: message`: in file order,
//! at most [`MAX_REPORTED`] of them, every quoted value cut to [`VALUE_CHARS`] characters.

use std::borrow::Cow;

use super::ConfigError;

/// Most problems reported for one text; the rest are counted in a last line.
pub(super) const MAX_REPORTED: usize = 100;
/// Longest value (in characters) a message quotes (a socket path, 107 bytes, fits); a longer one
/// is cut, ending in "…".
pub(super) const VALUE_CHARS: usize = 128;

/// One problem: byte offset into the text, and the message without location.
pub(super) struct Problem {
    pub(super) at: usize,
    pub(super) message: String,
}

impl Problem {
    pub(super) fn from_toml(e: &toml::de::Error) -> Self {
        Self {
            at: e.span().map_or(0, |span| span.start),
            message: cut_values(e.message().trim().to_owned()),
        }
    }

    /// A structural error (wrong type, unknown or missing key) of `text`: the message says
    /// which bridge, port or table and which key, and names TOML types rather than Rust's.
    pub(super) fn structural(text: &str, e: &toml::de::Error) -> Self {
        let mut p = Self::from_toml(e);
        let message = p
            .message
            .replace("expected i64", "expected an integer")
            .replace("expected u32", "expected an integer")
            .replace("expected u16", "expected an integer")
            .replace("expected a boolean", "expected true or false");
        // An unknown field names itself; a wrong type needs the key.
        let with_key = !message.starts_with("unknown field");
        p.message = match place(text, p.at, with_key) {
            Some(place) => format!("{place}: {message}"),
            None => message,
        };
        p
    }
}

/// Where byte `at` of `text` is, worded as the validator's messages (`bridge "b", port
/// "vif1.0"` then, `with_key`, the key in backquotes); `None` outside any table or on a table
/// header.
fn place(text: &str, at: usize, with_key: bool) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
        .map(|k| format!("`{}`", cut(k)));
    // Table headers up to the line, and the value of `name = ` / `interface = ` in a section.
    let headers: Vec<(usize, &str)> = text[..line_end]
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter_map(|i| {
            let l = text[i..].lines().next()?.trim();
            l.starts_with('[').then_some((i, l))
        })
        .collect();
    let mut headers = headers;
    headers.sort_by_key(|(i, _)| *i);
    let value_in = |start: usize, wanted: &str| -> Option<String> {
        let body = &text[start..];
        let body = body
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().starts_with('['));
        for l in body {
            if let Some((k, v)) = l.split_once('=')
                && k.trim() == wanted
            {
                return Some(cut(v.trim()).into_owned());
            }
        }
        None
    };
    let (start, header) = *headers.last()?;
    let bridge = || {
        headers
            .iter()
            .rev()
            .find(|(_, h)| *h == "[[bridge]]")
            .map(|(i, _)| format!("bridge {}", value_in(*i, "name").unwrap_or_default()))
    };
    let table = match header {
        "[[bridge]]" => bridge()?,
        "[[bridge.port]]" => format!(
            "{}, port {}",
            bridge()?,
            value_in(start, "interface").unwrap_or_default()
        ),
        "[bridge.host]" => format!("{}, host port", bridge()?),
        other => other.to_owned(),
    };
    // A header line is its own context.
    if line_start <= start {
        return None;
    }
    Some(match key {
        Some(k) if with_key => format!("{table}: {k}"),
        _ => table,
    })
}

/// Sort problems into file order and format them as `file:line:col: message`; past
/// [`MAX_REPORTED`], one last line says how many more there are.
pub(super) fn report(text: &str, origin: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| p.at);
    let more = problems.len().saturating_sub(MAX_REPORTED);
    problems.truncate(MAX_REPORTED);
    let origin = cut(origin);
    let mut lines: Vec<String> = problems
        .into_iter()
        .map(|p| {
            let (line, col) = line_col(text, p.at);
            format!("{origin}:{line}:{col}: {}", p.message)
        })
        .collect();
    if more > 0 {
        lines.push(format!(
            "{origin}: … and {more} more problems (only the first {MAX_REPORTED} are shown)"
        ));
    }
    ConfigError::Invalid(lines)
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

/// Where each line of a text starts, to find the line of many offsets in O(log lines) each.
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { starts }
    }

    /// 1-based line of byte `offset`.
    pub(super) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|start| *start <= offset)
    }
}

/// `value`, cut to its first [`VALUE_CHARS`] characters followed by "…" if it is longer.
pub(super) fn cut(value: &str) -> Cow<'_, str> {
    match value.char_indices().nth(VALUE_CHARS) {
        None => Cow::Borrowed(value),
        Some((end, _)) => Cow::Owned(format!("{}…", &value[..end])),
    }
}

/// `message` with every value quoted in it (between `"…"` or `` `…` ``) cut by [`cut`]: the
/// messages quote what the file or a request gave, which may be megabytes long.
pub(super) fn cut_values(message: String) -> String {
    if message.len() <= VALUE_CHARS {
        return message;
    }
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message.as_str();
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        let inner = &rest[open + 1..];
        // The closing quote: the next one not escaped by a backslash ({:?} escapes).
        let mut close = None;
        let mut escaped = false;
        for (i, b) in inner.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if b == b'\\' && quote == b'"' {
                escaped = true;
            } else if b == quote {
                close = Some(i);
                break;
            }
        }
        let Some(close) = close else {
            out.push_str(&cut(inner));
            return out;
        };
        out.push_str(&cut(&inner[..close]));
        out.push(char::from(quote));
        rest = &inner[close + 1..];
    }
    out.push_str(rest);
    out
}
