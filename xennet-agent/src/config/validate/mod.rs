//! Semantic validation: the raw file (or a `port add` request) into the validated types, with
//! every problem recorded at the span it concerns. One file per topic; this one holds the
//! [`Validator`] and the whole-file checks (at least one bridge, bridge and port counts).

mod agent;
mod bridge;
mod host;
mod interfaces;
mod macs;
mod mode;
mod port;
pub(super) mod port_add;
mod rate;
mod security;

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::raw::RawConfig;
use super::report::{LineIndex, Problem, cut_values};
use super::types::{Config, MAX_BRIDGES, MAX_PORTS, MacAddr};

/// Bridge names already seen: name → offset of its first definition.
type SeenBridges = HashMap<String, usize>;

/// Where a static MAC entry of a bridge was given, for the message that refuses a second one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// At this byte offset of the text being validated.
    At(usize),
    /// In the loaded configuration file (checking a `port add` request).
    File,
    /// By an earlier `port add`.
    PortAdd,
    /// Earlier in the `port add` request being checked.
    Request,
}

/// Static MAC entries of one bridge: (MAC, VLAN) → (where, its owner as messages name it:
/// `port "vif1.0"`).
type BridgeMacs = HashMap<(MacAddr, u16), (Origin, String)>;

/// Records the problems of one text (a file, or a `port add` request).
pub(super) struct Validator<'a> {
    text: &'a str,
    /// Line starts of `text`, built at the first use.
    lines: std::cell::OnceCell<LineIndex>,
    /// Checking a `port add` request: spans mean nothing.
    request: bool,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    /// A validator of the file `text`.
    pub(super) const fn new(text: &'a str) -> Self {
        Self {
            text,
            lines: std::cell::OnceCell::new(),
            request: false,
            problems: Vec::new(),
        }
    }

    /// A validator of a `port add` request (no text: its spans are all empty).
    const fn request() -> Self {
        Self {
            text: "",
            lines: std::cell::OnceCell::new(),
            request: true,
            problems: Vec::new(),
        }
    }

    /// The problems recorded so far, in the order they were found.
    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Record a problem at `span`; every value the message quotes is cut to a readable length.
    /// How many problems are recorded so far.
    fn problem_count(&self) -> usize {
        self.problems.len()
    }

    fn error(&mut self, span: &Range<usize>, message: String) {
        self.problems.push(Problem {
            at: span.start,
            message: cut_values(message),
        });
    }

    fn line(&self, offset: usize) -> usize {
        self.lines
            .get_or_init(|| LineIndex::new(self.text))
            .line(offset)
    }

    /// Where a value at `span` of the text being validated was given.
    const fn here(&self, span: &Range<usize>) -> Origin {
        if self.request {
            Origin::Request
        } else {
            Origin::At(span.start)
        }
    }

    /// How a message names where a static MAC was given: "at line 8", "in the configuration
    /// file", "by `port add`".
    fn given(&self, origin: Origin) -> String {
        match origin {
            Origin::At(at) => format!("at line {}", self.line(at)),
            Origin::File => "in the configuration file".to_owned(),
            Origin::PortAdd => "by `port add`".to_owned(),
            Origin::Request => "earlier in this request".to_owned(),
        }
    }

    /// Validate everything; the result is meaningful only if no problem was recorded.
    pub(super) fn config(&mut self, raw: &RawConfig) -> Config {
        let pin_dir = self.pin_dir(raw.agent.as_ref());
        let socket = self.socket(raw.agent.as_ref(), &pin_dir);
        let fdb_max_entries = self.fdb_max_entries(raw.agent.as_ref());
        let metrics = self.metrics(raw.agent.as_ref());
        self.counts(raw);
        let mut seen = SeenBridges::new();
        let mut bridges = Vec::with_capacity(raw.bridge.len());
        for (index, bridge) in raw.bridge.iter().enumerate() {
            let id = u32::try_from(index + 1).unwrap_or(u32::MAX);
            bridges.push(self.bridge(id, bridge.get_ref(), &mut seen));
        }
        self.unique_interfaces(raw);
        Config {
            pin_dir,
            socket,
            fdb_max_entries,
            metrics,
            bridges,
        }
    }

    /// At least one bridge, at most [`MAX_BRIDGES`], and at most [`MAX_PORTS`] ports and host
    /// ports over all bridges.
    fn counts(&mut self, raw: &RawConfig) {
        if raw.bridge.is_empty() {
            self.error(
                &(0..0),
                "no bridge defined: the file needs at least one [[bridge]] table".to_owned(),
            );
        }
        if let Some(extra) = raw.bridge.get(MAX_BRIDGES) {
            self.error(
                &extra.span(),
                format!(
                    "too many bridges: {} defined, at most {MAX_BRIDGES} are supported",
                    raw.bridge.len()
                ),
            );
        }
        // Ports and host ports all take a slot of the datapath, in file order.
        let mut slots = Vec::new();
        for bridge in &raw.bridge {
            let bridge = bridge.get_ref();
            let first = slots.len();
            slots.extend(bridge.port.iter().map(Spanned::span));
            slots.extend(bridge.host.as_ref().map(Spanned::span));
            slots[first..].sort_by_key(|span| span.start);
        }
        if let Some(extra) = slots.get(MAX_PORTS) {
            self.error(
                extra,
                format!(
                    "too many ports: {} defined over all bridges (each [bridge.host] counts as \
                     one), at most {MAX_PORTS} are supported",
                    slots.len()
                ),
            );
        }
    }
}
