//! The description of an agent, written once, rendered as OCF meta-data XML.

use crate::Param;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// The OCF 1.1 role names. Pacemaker 1.x's `Master`/`Slave` are accepted on
/// input (see `OcfEnv`), but meta-data uses the names both schemas allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Promoted,
    Unpromoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Promoted => "Promoted",
            Role::Unpromoted => "Unpromoted",
        }
    }

    /// Understands both the OCF 1.1 names and Pacemaker 1.x's spellings.
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "Promoted" | "Master" => Some(Role::Promoted),
            "Unpromoted" | "Slave" => Some(Role::Unpromoted),
            _ => None,
        }
    }
}

/// An action as advertised in meta-data: its recommended timeout, and for
/// monitors the interval (and role) an operator should configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
    pub name: &'static str,
    pub timeout_s: u32,
    pub interval_s: Option<u32>,
    pub depth: Option<u32>,
    pub role: Option<Role>,
}

impl ActionSpec {
    pub const fn new(name: &'static str, timeout_s: u32) -> Self {
        ActionSpec {
            name,
            timeout_s,
            interval_s: None,
            depth: None,
            role: None,
        }
    }

    pub const fn interval(mut self, seconds: u32) -> Self {
        self.interval_s = Some(seconds);
        self
    }

    pub const fn depth(mut self, depth: u32) -> Self {
        self.depth = Some(depth);
        self
    }

    pub const fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }
}

/// Everything Pacemaker, pcs, crmsh and the man page learn about an agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub params: &'static [Param],
    pub actions: &'static [ActionSpec],
}

impl AgentInfo {
    pub fn implements(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a.name == action)
    }

    /// The timeout the meta-data recommends for `action`: the budget of a
    /// call Pacemaker gave no timeout (a run by hand). 20 s for an action
    /// the meta-data does not list.
    pub fn timeout_of(&self, action: &str) -> std::time::Duration {
        let secs = self
            .actions
            .iter()
            .find(|a| a.name == action)
            .map_or(20, |a| a.timeout_s);
        std::time::Duration::from_secs(u64::from(secs))
    }

    /// The meta-data document, valid against ra-api-1.dtd (DOCTYPE included,
    /// as ocf-tester validates it) and the OCF 1.1 RelaxNG schema.
    pub fn metadata_xml(&self) -> String {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let ok = "writing XML to memory cannot fail";
        w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))
            .expect(ok);
        w.write_event(Event::DocType(BytesText::from_escaped(
            "resource-agent SYSTEM \"ra-api-1.dtd\"",
        )))
        .expect(ok);
        let root = BytesStart::new("resource-agent")
            .with_attributes([("name", self.name), ("version", self.version)]);
        w.write_event(Event::Start(root)).expect(ok);
        text_element(&mut w, "version", &[], "1.1");
        text_element(&mut w, "longdesc", &[("lang", "en")], self.longdesc);
        text_element(&mut w, "shortdesc", &[("lang", "en")], self.shortdesc);

        w.write_event(Event::Start(BytesStart::new("parameters")))
            .expect(ok);
        for p in self.params {
            let flag = |b: bool| if b { "1" } else { "0" };
            let start = BytesStart::new("parameter").with_attributes([
                ("name", p.name),
                ("unique", flag(p.unique)),
                ("required", flag(p.required)),
            ]);
            w.write_event(Event::Start(start)).expect(ok);
            text_element(&mut w, "longdesc", &[("lang", "en")], &p.description());
            text_element(&mut w, "shortdesc", &[("lang", "en")], p.shortdesc);
            let mut content = BytesStart::new("content");
            content.push_attribute(("type", p.kind.as_str()));
            if let Some(d) = p.default {
                content.push_attribute(("default", d));
            }
            w.write_event(Event::Empty(content)).expect(ok);
            w.write_event(Event::End(BytesEnd::new("parameter")))
                .expect(ok);
        }
        w.write_event(Event::End(BytesEnd::new("parameters")))
            .expect(ok);

        w.write_event(Event::Start(BytesStart::new("actions")))
            .expect(ok);
        for a in self.actions {
            let mut e = BytesStart::new("action");
            e.push_attribute(("name", a.name));
            e.push_attribute(("timeout", format!("{}s", a.timeout_s).as_str()));
            if let Some(i) = a.interval_s {
                e.push_attribute(("interval", format!("{i}s").as_str()));
            }
            if let Some(d) = a.depth {
                e.push_attribute(("depth", d.to_string().as_str()));
            }
            if let Some(r) = a.role {
                e.push_attribute(("role", r.as_str()));
            }
            w.write_event(Event::Empty(e)).expect(ok);
        }
        w.write_event(Event::End(BytesEnd::new("actions")))
            .expect(ok);
        w.write_event(Event::End(BytesEnd::new("resource-agent")))
            .expect(ok);
        let mut xml = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
        xml.push('\n');
        xml
    }
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, attrs: &[(&str, &str)], text: &str) {
    let ok = "writing XML to memory cannot fail";
    let start = BytesStart::new(name).with_attributes(attrs.iter().copied());
    w.write_event(Event::Start(start)).expect(ok);
    w.write_event(Event::Text(BytesText::new(text))).expect(ok);
    w.write_event(Event::End(BytesEnd::new(name))).expect(ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: AgentInfo = AgentInfo {
        name: "demo",
        version: "0.1.0",
        shortdesc: "A demo",
        longdesc: "Keeps <things> & stuff running",
        params: &[
            Param::string("path")
                .short("Path")
                .long("Where")
                .required()
                .unique(),
            Param::integer("port")
                .short("Port")
                .long("Which")
                .default("5432"),
        ],
        actions: &[
            ActionSpec::new("start", 60),
            ActionSpec::new("monitor", 20)
                .interval(10)
                .role(Role::Promoted),
        ],
    };

    #[test]
    fn metadata_carries_doctype_parameters_and_actions() {
        let xml = AGENT.metadata_xml();
        assert!(
            xml.starts_with(
                "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"
            ),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<longdesc lang=\"en\">Keeps &lt;things&gt; &amp; stuff running</longdesc>"
            ),
            "{xml}"
        );
        assert!(
            xml.contains("<parameter name=\"path\" unique=\"1\" required=\"1\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<content type=\"integer\" default=\"5432\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains(
                "<action name=\"monitor\" timeout=\"20s\" interval=\"10s\" role=\"Promoted\"/>"
            ),
            "{xml}"
        );
    }

    #[test]
    fn roles_accept_pacemaker_1_spellings() {
        assert_eq!(Role::parse("Master"), Some(Role::Promoted));
        assert_eq!(Role::parse("Slave"), Some(Role::Unpromoted));
        assert_eq!(Role::parse("Unpromoted"), Some(Role::Unpromoted));
        assert_eq!(Role::parse("master"), None);
    }
}
