//! `tusk-lab`: the lab's command line. Also `fence_tusklab` when called by
//! that name (Pacemaker runs it from the nodes' /usr/sbin), and the lab's
//! own processes (`init`, `fence-daemon`), which are not for people.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use tusk_lab::demo::{self, Fault, Layout};
use tusk_lab::fence::{agent, daemon};
use tusk_lab::harness::workload::Mark;
use tusk_lab::init::{self, Role};
use tusk_lab::node::NodeDir;
use tusk_lab::{default_dir, Lab, LabConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let called_as = args.first().map(|a| {
        Path::new(a)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    if called_as.as_deref() == Some(agent::NAME) {
        return exit_code(agent::main(&args[1..]));
    }
    let matches = cli().get_matches();
    match run(&matches) {
        Ok(code) => exit_code(code),
        Err(e) => {
            eprintln!("tusk-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn node_arg() -> Arg {
    Arg::new("node").required(true).help("node1, node2...")
}

fn cli() -> Command {
    Command::new("tusk-lab")
        .about("A real multi-node Pacemaker cluster on one machine, built from namespaces")
        .after_help(
            "The lab lives in --dir (default: $TUSK_LAB_DIR or /tmp/tusk-lab); two labs need two directories.\n\
             Needs root and the packages corosync, pacemaker, pcs, util-linux and iproute2.",
        )
        .subcommand_required(true)
        .arg(
            Arg::new("dir")
                .long("dir")
                .global(true)
                .value_parser(value_parser!(PathBuf))
                .help("state directory of the lab [default: $TUSK_LAB_DIR or /tmp/tusk-lab]"),
        )
        .subcommand(
            Command::new("up").about("bring up a lab and wait until all nodes are online with quorum").arg(
                Arg::new("nodes")
                    .long("nodes")
                    .value_parser(value_parser!(usize))
                    .default_value("3")
                    .help("number of nodes"),
            ),
        )
        .subcommand(
            Command::new("demo")
                .about("the README's demo: PostgreSQL as a promotable clone on a 3-node lab, pgpool on every node in front of it, a client writing through pgpool; then faults, told as they happen")
                .long_about(
                    "Without a subcommand: bring up a lab with fencing, PostgreSQL as a promotable clone (one primary, \
                     streaming standbys, the floating address), pgpool on every node in front of it, and a client \
                     writing through pgpool inside the lab (it runs until `down`), and print what runs where.",
                )
                .arg(
                    Arg::new("nodes")
                        .long("nodes")
                        .value_parser(value_parser!(usize))
                        .default_value("3")
                        .help("number of nodes"),
                )
                .subcommand(Command::new("status").about("what runs where, and what the client sees"))
                .subcommand(Command::new("failover").about("the primary's node loses power"))
                .subcommand(
                    Command::new("switchover")
                        .about("planned: pcs resource move pg-clone NODE --promoted")
                        .arg(Arg::new("to").long("to").help("the standby to promote [default: the synchronous one, under ANY 1 the one that flushed the most WAL]")),
                )
                .subcommand(Command::new("partition").about("the primary's cable is pulled, and plugged back in later"))
                .subcommand(
                    Command::new("slony")
                        .about("the Slony layout instead: slon as a promotable clone whose Promoted instance is the set's origin, a client writing through the origin's address")
                        .long_about(
                            "Without a subcommand: bring up a lab with fencing, PostgreSQL on every node (a plain clone), \
                             a Slony set replicated from the origin to the other nodes, ocf:tusk:slon as a promotable clone \
                             (Promoted = the set's origin) with the origin's floating address, and a client writing \
                             through that address (it runs until `down`), and print what runs where.",
                        )
                        .subcommand(Command::new("status").about("what runs where, and what the client sees"))
                        .subcommand(
                            Command::new("move")
                                .about("planned: pcs resource move slon-clone NODE --promoted (MOVE SET)")
                                .arg(Arg::new("to").long("to").help("the subscriber to make the origin [default: the best-scored one]")),
                        )
                        .subcommand(Command::new("failover").about("the origin's node loses power (FAILOVER), and comes back")),
                )
                .subcommand(Command::new("down").about("end the lab, the client included")),
        )
        .subcommand(
            Command::new("demo-client")
                .hide(true)
                .arg(Arg::new("lab").long("lab").required(true).value_parser(value_parser!(PathBuf)))
                .arg(Arg::new("conninfo").long("conninfo").required(true))
                .arg(Arg::new("mark").long("mark").default_value("timeline")),
        )
        .subcommand(Command::new("down").about("end the lab and remove its directory (idempotent)"))
        .subcommand(Command::new("status").about("show the nodes and the cluster as one node sees it"))
        .subcommand(
            Command::new("exec").about("run a command inside a node").arg(node_arg()).arg(
                Arg::new("command")
                    .required(true)
                    .num_args(1..)
                    .trailing_var_arg(true)
                    .allow_hyphen_values(true),
            ),
        )
        .subcommand(Command::new("partition").about("pull the node's cable out of the switch").arg(node_arg()))
        .subcommand(Command::new("heal").about("plug the node's cable back in").arg(node_arg()))
        .subcommand(Command::new("crash").about("kill every process of the node at once, like a power loss").arg(node_arg()))
        .subcommand(
            Command::new("restart")
                .about("boot a crashed node with its disks as they were and wait until it is online")
                .arg(node_arg()),
        )
        .subcommand(
            Command::new("logs").about("the last lines of the node's corosync and Pacemaker logs").arg(node_arg()).arg(
                Arg::new("lines").long("lines").value_parser(value_parser!(usize)).default_value("40"),
            ),
        )
        .subcommand(
            Command::new("fence-agent")
                .about("run the lab fence agent (as fence_tusklab), e.g. fence-agent -o list")
                .arg(Arg::new("args").num_args(0..).trailing_var_arg(true).allow_hyphen_values(true)),
        )
        .subcommand(
            Command::new("fence-daemon")
                .hide(true)
                .arg(Arg::new("lab").long("lab").required(true).value_parser(value_parser!(PathBuf))),
        )
        .subcommand(
            Command::new("init")
                .hide(true)
                .arg(Arg::new("lab").long("lab").required(true).value_parser(value_parser!(PathBuf)))
                .arg(Arg::new("node").long("node").conflicts_with("switch"))
                .arg(Arg::new("switch").long("switch").action(ArgAction::SetTrue)),
        )
}

fn run(matches: &ArgMatches) -> Result<i32> {
    let dir = matches
        .get_one::<PathBuf>("dir")
        .cloned()
        .unwrap_or_else(default_dir);
    let (name, sub) = matches.subcommand().expect("subcommand_required");
    let node = || sub.get_one::<String>("node").cloned().unwrap_or_default();
    match name {
        "up" => {
            let exe = std::env::current_exe().context("finding the tusk-lab binary")?;
            let nodes = *sub.get_one::<usize>("nodes").expect("has a default");
            let lab = Lab::up(&LabConfig::new(dir).nodes(nodes).exe(exe))?;
            print!("{}", lab.status()?);
            println!(
                "enter a node with: tusk-lab exec node1 bash; end the lab with: tusk-lab down"
            );
        }
        "demo" => return demo(dir, sub),
        "demo-client" => {
            let mark = sub.get_one::<String>("mark").expect("has a default");
            demo::client::run(
                sub.get_one::<PathBuf>("lab").expect("required"),
                sub.get_one::<String>("conninfo").expect("required"),
                Mark::from_name(mark).with_context(|| format!("no such mark {mark}"))?,
            )?
        }
        "down" => tusk_lab::down(&dir)?,
        "status" => print!("{}", Lab::attach(dir)?.status()?),
        "exec" => {
            let command: Vec<&String> = sub
                .get_many::<String>("command")
                .expect("required")
                .collect();
            let status = Lab::attach(dir)?
                .command(&node(), command[0])?
                .args(&command[1..])
                .status()
                .with_context(|| format!("running {}", command[0]))?;
            return Ok(status.code().unwrap_or(1));
        }
        "partition" => Lab::attach(dir)?.partition(&node())?,
        "heal" => Lab::attach(dir)?.heal(&node())?,
        "crash" => Lab::attach(dir)?.crash(&node())?,
        "restart" => Lab::attach(dir)?.restart(&node())?,
        "logs" => print!(
            "{}",
            Lab::attach(dir)?.logs(&node(), *sub.get_one::<usize>("lines").expect("default"))?
        ),
        "fence-agent" => {
            let args: Vec<String> = sub
                .get_many::<String>("args")
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            return Ok(agent::main(&args));
        }
        "fence-daemon" => daemon::run(sub.get_one::<PathBuf>("lab").expect("required"))?,
        "init" => {
            let lab_dir = sub.get_one::<PathBuf>("lab").expect("required");
            let role = match sub.get_one::<String>("node") {
                Some(node) => Role::Node(NodeDir::new(lab_dir, node)),
                None => Role::Switch {
                    hostname: "lab-switch".to_string(),
                },
            };
            init::run(role, lab_dir)?;
        }
        other => unreachable!("subcommand {other}"),
    }
    Ok(0)
}

/// `demo slony` and its subcommands.
fn demo_slony(dir: PathBuf, sub: &ArgMatches, command: &str, nodes: usize) -> Result<i32> {
    let mut out = std::io::stdout();
    let fault = match sub.subcommand() {
        None => {
            let exe = std::env::current_exe().context("finding the tusk-lab binary")?;
            demo::slony::up(
                &LabConfig::new(dir).nodes(nodes).exe(exe),
                command,
                &mut out,
            )?;
            return Ok(0);
        }
        Some(("status", _)) => {
            let lab = attach_demo(dir, true, command)?;
            print!("{}", demo::summary(&lab, &Layout::slony(&lab)?)?);
            return Ok(0);
        }
        Some(("move", _)) => Fault::Switchover,
        Some(("failover", _)) => Fault::Failover,
        Some((other, _)) => unreachable!("demo slony subcommand {other}"),
    };
    let to = sub
        .subcommand()
        .and_then(|(_, m)| m.try_get_one::<String>("to").ok().flatten().cloned());
    let lab = attach_demo(dir, true, command)?;
    let outcome =
        demo::slony::run_fault(&lab, &Layout::slony(&lab)?, fault, to.as_deref(), &mut out)?;
    println!(
        "\nNext: sudo {command} slony status, sudo {command} slony move --to {}, another fault, or sudo {command} down",
        outcome.old_primary
    );
    Ok(if outcome.ok() { 0 } else { 1 })
}

/// The running demo's lab, when it is the layout the command is for
/// (`slony`): the streaming demo's commands on the Slony demo's lab, or the
/// other way round, say which commands fit.
fn attach_demo(dir: PathBuf, slony: bool, command: &str) -> Result<Lab> {
    let lab = Lab::attach(dir)?;
    let is_slony = tusk_lab::postgres::observer(&lab)
        .and_then(|node| lab.view(&node))
        .is_ok_and(|view| !view.instances(tusk_lab::slony::RESOURCE).is_empty());
    match (slony, is_slony) {
        (false, true) => anyhow::bail!(
            "this lab runs the Slony demo: {command} slony move|failover|status, or {command} down"
        ),
        (true, false) => anyhow::bail!(
            "this lab runs the streaming demo: {command} failover|switchover|partition|status, \
             or {command} down (then {command} slony)"
        ),
        _ => Ok(lab),
    }
}

/// `demo` and its subcommands. Hints name the command the user typed:
/// `./demo` sets TUSK_DEMO_COMMAND.
fn demo(dir: PathBuf, sub: &ArgMatches) -> Result<i32> {
    let command =
        std::env::var("TUSK_DEMO_COMMAND").unwrap_or_else(|_| "tusk-lab demo".to_string());
    let mut out = std::io::stdout();
    let fault = match sub.subcommand() {
        None => {
            let exe = std::env::current_exe().context("finding the tusk-lab binary")?;
            let nodes = *sub.get_one::<usize>("nodes").expect("has a default");
            demo::up(
                &LabConfig::new(dir).nodes(nodes).exe(exe),
                &command,
                &mut out,
            )?;
            return Ok(0);
        }
        Some(("down", _)) => {
            tusk_lab::down(&dir)?;
            return Ok(0);
        }
        Some(("status", _)) => {
            let lab = attach_demo(dir, false, &command)?;
            print!("{}", demo::summary(&lab, &Layout::with_pgpool(&lab)?)?);
            return Ok(0);
        }
        Some(("slony", slony)) => {
            let nodes = *sub.get_one::<usize>("nodes").expect("has a default");
            return demo_slony(dir, slony, &command, nodes);
        }
        Some(("failover", _)) => Fault::Failover,
        Some(("switchover", _)) => Fault::Switchover,
        Some(("partition", _)) => Fault::Partition,
        Some((other, _)) => unreachable!("demo subcommand {other}"),
    };
    let to = sub
        .subcommand()
        .and_then(|(_, m)| m.try_get_one::<String>("to").ok().flatten().cloned());
    let lab = attach_demo(dir, false, &command)?;
    let outcome = demo::run_fault(
        &lab,
        &Layout::with_pgpool(&lab)?,
        fault,
        to.as_deref(),
        &mut out,
    )?;
    println!("\nNext: sudo {command} status, another fault, or sudo {command} down");
    Ok(if outcome.ok() { 0 } else { 1 })
}
