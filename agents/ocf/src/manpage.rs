//! The `ocf_<provider>_<agent>.7` man page, from the same declarations as the meta-data.

use crate::AgentInfo;
use std::fmt::Write;

/// Renders the man page in roff, named the way resource-agents names its
/// pages (`ocf_heartbeat_pgsql.7`), so `man ocf_tusk_postgresql` works.
pub fn manpage(agent: &AgentInfo, provider: &str, example: &str) -> String {
    let mut m = String::new();
    let title = format!(
        "OCF_{}_{}",
        provider.to_uppercase(),
        agent.name.to_uppercase()
    );
    let _ = writeln!(
        m,
        ".TH {title} 7 \"\" \"tusk {}\" \"OCF resource agents\"",
        agent.version
    );
    let _ = writeln!(m, ".SH NAME");
    let _ = writeln!(
        m,
        "ocf_{provider}_{} \\- {}",
        agent.name,
        roff(agent.shortdesc)
    );
    let _ = writeln!(m, ".SH SYNOPSIS");
    let _ = writeln!(
        m,
        "\\fB{}\\fR [start | stop | monitor | {} ]",
        agent.name,
        agent
            .actions
            .iter()
            .map(|a| a.name)
            .filter(|n| !matches!(*n, "start" | "stop" | "monitor"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(m, ".SH DESCRIPTION");
    paragraphs(&mut m, agent.longdesc);
    let _ = writeln!(m, ".SH SUPPORTED PARAMETERS");
    for p in agent.params {
        let mut facts = vec![p.kind.as_str().to_string()];
        if let Some(d) = p.default {
            facts.push(format!(
                "default: {}",
                if d.is_empty() { "empty" } else { d }
            ));
        }
        if p.required {
            facts.push("required".into());
        }
        if p.unique {
            facts.push("unique".into());
        }
        let _ = writeln!(m, ".TP");
        let _ = writeln!(m, "\\fB{}\\fR ({})", roff(p.name), roff(&facts.join(", ")));
        let _ = writeln!(m, "{}", roff(p.shortdesc));
        let _ = writeln!(m, ".br");
        let _ = writeln!(m, "{}", roff(&p.description()));
    }
    let _ = writeln!(m, ".SH SUPPORTED ACTIONS");
    let _ = writeln!(m, "The recommended timeouts and intervals:");
    for a in agent.actions {
        let _ = writeln!(m, ".IP \\(bu 2");
        let mut line = format!("\\fB{}\\fR timeout={}s", a.name, a.timeout_s);
        if let Some(i) = a.interval_s {
            let _ = write!(line, " interval={i}s");
        }
        if let Some(r) = a.role {
            let _ = write!(line, " role={}", r.as_str());
        }
        let _ = writeln!(m, "{line}");
    }
    let _ = writeln!(m, ".SH EXAMPLE");
    let _ = writeln!(m, ".nf");
    let _ = writeln!(m, "{}", roff(example));
    let _ = writeln!(m, ".fi");
    let _ = writeln!(m, ".SH SEE ALSO");
    let _ = writeln!(m, "\\fBpcs\\fR(8), \\fBcrm\\fR(8), \\fBocf-tester\\fR(8)");
    m
}

fn paragraphs(m: &mut String, text: &str) {
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            m.push_str(".PP\n");
        }
        m.push_str(&roff(para.trim()));
        m.push('\n');
    }
}

/// Escapes text for roff: backslashes, and lines that would read as requests.
fn roff(text: &str) -> String {
    text.replace('\\', "\\e")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActionSpec, Param};

    const AGENT: AgentInfo = AgentInfo {
        name: "demo",
        version: "0.1.0",
        shortdesc: "A demo",
        longdesc: "First.\n\n.Second starts with a dot",
        params: &[Param::integer("port")
            .short("Port")
            .long("C:\\x")
            .default("5432")
            .required()],
        actions: &[
            ActionSpec::new("start", 60),
            ActionSpec::new("monitor", 20).interval(10),
        ],
    };

    #[test]
    fn man_page_lists_parameters_and_actions_escaped_for_roff() {
        let m = manpage(&AGENT, "tusk", "pcs resource create d ocf:tusk:demo");
        assert!(m.starts_with(".TH OCF_TUSK_DEMO 7"), "{m}");
        assert!(m.contains("ocf_tusk_demo \\- A demo"), "{m}");
        assert!(
            m.contains("\\fBport\\fR (integer, default: 5432, required)"),
            "{m}"
        );
        assert!(m.contains("C:\\ex"), "{m}");
        assert!(m.contains("\\&.Second"), "{m}");
        assert!(
            m.contains("\\fBmonitor\\fR timeout=20s interval=10s"),
            "{m}"
        );
    }
}
