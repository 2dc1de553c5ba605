//! Pacemaker's record of fencing, from `stonith_admin --history NODE
//! --output-as=xml`: what the cluster believes it did to a node.

use anyhow::{bail, Context, Result};
use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceEvent {
    /// `reboot`, `off`, `on`.
    pub action: String,
    pub target: String,
    /// `success`, `failed`, `pending`.
    pub status: String,
    /// The node that ran the fence agent.
    pub delegate: String,
    /// The node that asked for it.
    pub origin: String,
}

impl FenceEvent {
    pub fn succeeded(&self) -> bool {
        self.status == "success"
    }
}

pub fn parse(xml: &str) -> Result<Vec<FenceEvent>> {
    let mut reader = Reader::from_str(xml);
    let mut events = Vec::new();
    let mut saw_result = false;
    loop {
        match reader.read_event().context("parsing stonith_admin XML")? {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"pacemaker-result" => saw_result = true,
                b"fence_event" => {
                    let mut event = FenceEvent {
                        action: String::new(),
                        target: String::new(),
                        status: String::new(),
                        delegate: String::new(),
                        origin: String::new(),
                    };
                    for a in e.attributes() {
                        let a = a.context("malformed attribute")?;
                        let value = a.unescape_value()?.into_owned();
                        match a.key.as_ref() {
                            b"action" => event.action = value,
                            b"target" => event.target = value,
                            b"status" => event.status = value,
                            b"delegate" => event.delegate = value,
                            b"origin" => event.origin = value,
                            _ => {}
                        }
                    }
                    events.push(event);
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_result {
        bail!("not stonith_admin XML output (no <pacemaker-result>)");
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reboot_is_read() {
        // Pacemaker 2.1.5.
        let xml = r#"<pacemaker-result api-version="2.25" request="stonith_admin --history node3 --output-as=xml">
  <list name="fencing history" count="1">
    <fence_event action="reboot" target="node3" client="stonith_admin.29" origin="node2" status="success" delegate="node1" completed="2026-11-22 07:32:22Z"/>
  </list>
  <status code="0" message="OK"/>
</pacemaker-result>"#;
        let events = parse(xml).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (
                e.action.as_str(),
                e.target.as_str(),
                e.delegate.as_str(),
                e.origin.as_str()
            ),
            ("reboot", "node3", "node1", "node2")
        );
        assert!(e.succeeded());
    }

    #[test]
    fn no_history_is_an_empty_list() {
        let xml = r#"<pacemaker-result><list name="fencing history" count="0"/><status code="0" message="OK"/></pacemaker-result>"#;
        assert!(parse(xml).unwrap().is_empty());
    }
}
