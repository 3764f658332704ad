//! The two exposition formats `/metrics` answers in. prometheus-client encodes OpenMetrics only,
//! which Prometheus asks for; curl, `promtool check metrics` and other clients of the classic
//! text format (0.0.4) get prometheus-client's encoding with the two differences of that format
//! applied: a counter's `# HELP`/`# TYPE` lines name its sample (`x_total`, not `x`), and there
//! is no `# UNIT` or `# EOF` line. Sample lines — names, labels, escaping, values — are
//! prometheus-client's, unchanged.
#![expect(
    clippy::doc_markdown,
    reason = "OpenMetrics is the name of a format, not code"
)]

/// The content type of OpenMetrics text.
pub(super) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic text format.
pub(super) const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request with these headers takes OpenMetrics (its `Accept` names it).
pub(super) fn wants_openmetrics(head: &str) -> bool {
    head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    })
}

/// prometheus-client's OpenMetrics text as the classic text format.
pub(super) fn classic(openmetrics: &str) -> String {
    // Families whose TYPE is counter: their HELP and TYPE lines take the `_total` suffix.
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = meta {
            let name = rest.split(' ').next().unwrap_or("");
            if counters.contains(&name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total");
                out.push_str(&rest[name.len()..]);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_meta_lines_name_their_samples_and_openmetrics_only_lines_go() {
        let om = "# HELP a_info Info.\n# TYPE a_info gauge\na_info{v=\"1\"} 1\n\
                  # HELP x_rx_bytes Bytes.\n# TYPE x_rx_bytes counter\n# UNIT x_rx_bytes bytes\n\
                  x_rx_bytes_total{p=\"a b\"} 3\n# HELP y Frames.\n# TYPE y counter\ny_total 4\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP a_info Info.\n# TYPE a_info gauge\na_info{v=\"1\"} 1\n\
             # HELP x_rx_bytes_total Bytes.\n# TYPE x_rx_bytes_total counter\n\
             x_rx_bytes_total{p=\"a b\"} 3\n# HELP y_total Frames.\n# TYPE y_total counter\ny_total 4\n"
        );
    }

    #[test]
    fn openmetrics_only_when_accepted() {
        assert!(wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n"
        ));
        assert!(!wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n"
        ));
        assert!(!wants_openmetrics("GET /metrics HTTP/1.1\r\n\r\n"));
    }
}
