//! `fence_tusklab`, a fence agent following the fence-agents conventions.
//!
//! Options come as `key=value` lines on stdin (how pacemaker-fenced calls
//! agents) or, when there are arguments, from the command line (`-o ACTION`,
//! `-n PLUG`...), as an operator would test it. Exit codes are the
//! fence-agents ones: 0 success; for `status` 0 on and 2 off; 1 anything
//! failed.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::protocol::{self, Request};

pub const NAME: &str = "fence_tusklab";

/// How long one request may take: powering a node on waits for its corosync
/// to answer (a second or two) and perhaps for a lab command holding the lock.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub action: String,
    /// The node to act on: `plug`, or `port`, or Pacemaker's `nodename`.
    pub plug: Option<String>,
    pub socket: PathBuf,
}

impl Options {
    /// `key=value` lines, as pacemaker-fenced writes them. Unknown keys are
    /// ignored (fenced also passes things like `nodename` and the device's
    /// other attributes).
    pub fn from_stdin(text: &str) -> Options {
        let pairs = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()));
        Options::from_pairs(pairs)
    }

    /// `-o ACTION`, `--action=ACTION`, `-n PLUG`, `--plug=PLUG`, `--port`,
    /// `--socket=PATH`.
    pub fn from_args(args: &[String]) -> Result<Options> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let key = match key {
                "-o" | "--action" => "action",
                "-n" | "--plug" => "plug",
                "--port" => "port",
                "--socket" => "socket",
                other => bail!("unknown option {other:?} (try -o metadata)"),
            };
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .with_context(|| format!("{arg} needs a value"))?
                    .clone(),
            };
            pairs.push((key.to_string(), value));
        }
        Ok(Options::from_pairs(pairs))
    }

    fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Options {
        let mut options = Options {
            action: "reboot".to_string(),
            plug: None,
            socket: default_socket(),
        };
        let mut nodename = None;
        for (key, value) in pairs {
            match key.as_str() {
                "action" | "option" => options.action = value,
                "plug" | "port" => options.plug = Some(value),
                "nodename" => nodename = Some(value),
                "socket" => options.socket = PathBuf::from(value),
                _ => {}
            }
        }
        options.plug = options.plug.or(nodename);
        options
    }
}

/// Without a `socket` attribute: the default lab's, or TUSK_LAB_DIR's.
fn default_socket() -> PathBuf {
    protocol::socket_path(&crate::default_dir())
}

/// Runs the agent; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let options = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("{NAME}: reading options from stdin: {e}");
            return 1;
        }
        Options::from_stdin(&text)
    } else {
        match Options::from_args(args) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{NAME}: {e:#}");
                return 1;
            }
        }
    };
    match act(&options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{NAME}: {} failed: {e:#}", options.action);
            1
        }
    }
}

fn act(options: &Options) -> Result<i32> {
    let from = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let call = |request: Request| protocol::call(&options.socket, &request, &from, REQUEST_TIMEOUT);
    let plug = || -> Result<String> {
        let plug = options
            .plug
            .clone()
            .context("no node given (plug=, port= or nodename=)")?;
        anyhow::ensure!(
            protocol::is_node_name(&plug),
            "{plug:?} is not a lab node name"
        );
        Ok(plug)
    };
    let status = |node: &str| -> Result<bool> {
        match call(Request::Status(node.to_string()))?.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => bail!("unexpected status {other:?}"),
        }
    };
    match options.action.as_str() {
        "metadata" => {
            print!("{}", metadata());
            Ok(0)
        }
        "monitor" => call(Request::Ping).map(|_| 0),
        "list" => {
            for node in call(Request::List)?.split_whitespace() {
                println!("{node}");
            }
            Ok(0)
        }
        "status" => {
            let on = status(&plug()?)?;
            println!("Status: {}", if on { "ON" } else { "OFF" });
            Ok(if on { 0 } else { 2 })
        }
        "off" => {
            let node = plug()?;
            call(Request::Off(node.clone()))?;
            anyhow::ensure!(!status(&node)?, "{node} still on after off");
            Ok(0)
        }
        "on" => {
            let node = plug()?;
            call(Request::On(node.clone()))?;
            anyhow::ensure!(status(&node)?, "{node} still off after on");
            Ok(0)
        }
        // A power cycle, done by the switch (the daemon) as one request:
        // off, then on. Not off and on as two requests from here: a node
        // fencing itself (the only node of a one-node lab) would die with
        // this agent after the off and never be switched on again.
        "reboot" => {
            let node = plug()?;
            call(Request::Reboot(node.clone()))?;
            anyhow::ensure!(status(&node)?, "{node} still off after reboot");
            Ok(0)
        }
        "validate-all" => Ok(0),
        other => bail!("unknown action {other:?}"),
    }
}

/// The fence-agents metadata format, as `pcs stonith describe` and
/// pacemaker-fenced read it.
pub fn metadata() -> String {
    format!(
        r#"<?xml version="1.0" ?>
<resource-agent name="{NAME}" shortdesc="Fence agent for the nodes of a tusk-lab cluster">
<longdesc>fence_tusklab powers a node of a tusk-lab cluster (a cluster of network, mount and PID namespaces on one machine) off and on through the lab's fence daemon. Off kills every process of the node at once, like a power loss; on boots the node's cluster stack again with its disks as they were. It talks to the daemon over a unix socket, outside the cluster network, like a power switch on a management network.</longdesc>
<vendor-url>https://example.invalid/tusk</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="0">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="0" obsoletes="port">
		<getopt mixed="-n, --plug=[node]" />
		<content type="string" />
		<shortdesc lang="en">Lab node to act on (node1, node2...)</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="--port=[node]" />
		<content type="string" />
		<shortdesc lang="en">Lab node to act on</shortdesc>
	</parameter>
	<parameter name="socket" unique="0" required="0">
		<getopt mixed="--socket=[path]" />
		<content type="string" default="{socket}" />
		<shortdesc lang="en">Unix socket of the lab's fence daemon</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
"#,
        socket = default_socket().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacemaker_style_stdin_is_read() {
        let o = Options::from_stdin("action=off\nnodename=node3\nplug=node3\nsocket=/tmp/x/fence.sock\npcmk_host_list=node1 node2\n");
        assert_eq!(o.action, "off");
        assert_eq!(o.plug.as_deref(), Some("node3"));
        assert_eq!(o.socket, PathBuf::from("/tmp/x/fence.sock"));
    }

    #[test]
    fn nodename_is_the_fallback_target() {
        let o = Options::from_stdin("action=reboot\nnodename=node2\n");
        assert_eq!(o.plug.as_deref(), Some("node2"));
        let o = Options::from_stdin("port=node1\nnodename=node2\n");
        assert_eq!(o.plug.as_deref(), Some("node1"));
    }

    #[test]
    fn command_line_options_are_read() {
        let args: Vec<String> = ["-o", "status", "--plug=node2"].map(String::from).to_vec();
        let o = Options::from_args(&args).unwrap();
        assert_eq!(
            (o.action.as_str(), o.plug.as_deref()),
            ("status", Some("node2"))
        );
        assert!(Options::from_args(&["-x".to_string()]).is_err());
        assert!(Options::from_args(&["-o".to_string()]).is_err());
    }

    #[test]
    fn the_default_action_is_reboot() {
        assert_eq!(Options::from_stdin("port=node1\n").action, "reboot");
    }

    #[test]
    fn metadata_declares_every_action_and_parses() {
        let xml = metadata();
        for action in [
            "on", "off", "reboot", "status", "list", "monitor", "metadata",
        ] {
            assert!(
                xml.contains(&format!("<action name=\"{action}\"")),
                "{action}"
            );
        }
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event().expect("well-formed metadata") {
                quick_xml::events::Event::Eof => break,
                _ => continue,
            }
        }
    }
}
