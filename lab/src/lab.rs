//! The lab as a whole: bring it up, inject faults, look at it, end it.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::unistd::{Group, User};

use crate::corosync;
use crate::crm_mon::ClusterState;
use crate::error::LabError;
use crate::fence::history::{self, FenceEvent};
use crate::fence::protocol::{self, Request};
use crate::namespace::{self, kill_holder, spawn_holder};
use crate::network;
use crate::node::{self, NodeDir};
use crate::preflight;
use crate::process::{self, Recorded};
use crate::state::{Holder, NodeRecord, State, StateLock, MARKER};
use crate::{default_dir, log};

/// The stonith resource `up` creates.
pub const FENCE_DEVICE: &str = "lab-fence";

/// How a lab is brought up.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The state directory; two labs need two directories, nothing else.
    pub dir: PathBuf,
    pub nodes: usize,
    /// The tusk-lab binary: it is copied into the lab and runs there as every
    /// node's init, the fence daemon and the fence agent. Tests pass
    /// `env!("CARGO_BIN_EXE_tusk-lab")`.
    pub exe: PathBuf,
    /// How long `up` may take until every node is online with quorum.
    pub timeout: Duration,
}

impl LabConfig {
    pub fn new(dir: impl Into<PathBuf>) -> LabConfig {
        LabConfig {
            dir: dir.into(),
            nodes: 3,
            exe: default_exe(),
            timeout: Duration::from_secs(120),
        }
    }

    pub fn nodes(mut self, nodes: usize) -> LabConfig {
        self.nodes = nodes;
        self
    }

    pub fn exe(mut self, exe: impl Into<PathBuf>) -> LabConfig {
        self.exe = exe.into();
        self
    }

    fn validate(&self) -> Result<()> {
        if !(1..=16).contains(&self.nodes) {
            bail!("a lab has 1 to 16 nodes, not {}", self.nodes);
        }
        let dir = self.dir.to_string_lossy();
        // The directory ends up in an overlayfs option string and on command
        // lines: ',' ':' and spaces would be misread there.
        if !self.dir.is_absolute() || dir.contains([',', ':', ' ', '\n']) {
            bail!("the lab directory must be an absolute path without ',', ':' or spaces: {dir:?}");
        }
        // The nodes see the host's filesystem except where they mount their
        // own: a lab directory below one of those would be invisible to them
        // (the fence agent's socket, the overlay with fence_tusklab).
        let hidden =
            crate::node::DISKS
                .iter()
                .map(|d| d.node)
                .chain(["/run", "/dev/shm", "/usr/sbin"]);
        for private in hidden {
            if self.dir.starts_with(private) {
                bail!("the lab directory {dir} lies below {private}, which every node mounts privately");
            }
        }
        if !self.exe.is_file() {
            bail!("tusk-lab binary {} not found (LabConfig::exe; tests: env!(\"CARGO_BIN_EXE_tusk-lab\"))", self.exe.display());
        }
        Ok(())
    }
}

/// The running binary when it is tusk-lab itself, else TUSK_LAB_EXE.
fn default_exe() -> PathBuf {
    if let Some(exe) = std::env::var_os("TUSK_LAB_EXE") {
        return PathBuf::from(exe);
    }
    std::env::current_exe().unwrap_or_default()
}

/// A lab that is up, named by its state directory. Holds no process handles:
/// the record in the directory is the truth, re-read by every call, because
/// the fence daemon changes it too (a fenced node boots with a new init).
#[derive(Debug, Clone)]
pub struct Lab {
    dir: PathBuf,
}

impl Lab {
    /// Brings up a lab of `config.nodes` nodes and returns once every node is
    /// online with quorum and the fence device has started. Refuses when a
    /// lab is already up in the directory; removes what a crashed earlier run
    /// left there. On failure, shows the nodes' logs and removes everything.
    pub fn up(config: &LabConfig) -> Result<Lab> {
        preflight::check()?;
        config.validate()?;
        let dir = config.dir.clone();
        if dir.exists() {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and is not a tusk-lab directory; refusing to touch it",
                    dir.display()
                );
            }
            if is_up(&dir) {
                return Err(LabError::AlreadyUp(dir).into());
            }
            down(&dir).context("cleaning up after an earlier lab in the same directory")?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Traversable by hacluster and postgres: the nodes' disks are below.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        fs::write(dir.join(MARKER), b"")?;

        let lab = Lab { dir };
        let started = Instant::now();
        match lab.build(config, started) {
            Ok(()) => Ok(lab),
            Err(e) => {
                log(&format!("up failed: {e:#}"));
                for node in lab.nodes().unwrap_or_default() {
                    eprint!("{}", lab.logs(&node, 30).unwrap_or_default());
                }
                if let Err(down_err) = down(&lab.dir) {
                    log(&format!("removing the failed lab: {down_err:#}"));
                }
                Err(e)
            }
        }
    }

    fn build(&self, config: &LabConfig, started: Instant) -> Result<()> {
        let dir = &self.dir;
        let exe = install_binaries(dir, &config.exe)?;
        let lock = StateLock::acquire(dir)?;
        let nodes: Vec<(String, Ipv4Addr)> = (1..=config.nodes)
            .map(|i| (format!("node{i}"), network::node_address(i)))
            .collect();
        let mut state = State {
            exe: exe.clone(),
            switch: None,
            fence_daemon: None,
            client: None,
            nodes: nodes
                .iter()
                .map(|(name, addr)| NodeRecord {
                    name: name.clone(),
                    addr: *addr,
                    partitioned: false,
                    holder: None,
                })
                .collect(),
        };
        state.save(dir, &lock)?;

        // The switch first: every node's cable ends there.
        fs::create_dir_all(network::switch_dir(dir))?;
        let switch_log = network::switch_dir(dir).join("init.log");
        let switch = spawn_holder(
            &exe,
            &[OsStr::new("--lab"), dir.as_os_str(), OsStr::new("--switch")],
            &switch_log,
        )?;
        state.switch = Some(switch.clone());
        state.save(dir, &lock)?;
        wait_ready(
            &switch,
            &network::switch_ready_file(dir),
            &network::switch_dir(dir).join("init.log"),
            "switch",
        )?;
        network::build_switch(&switch)?;

        // The agents' own state directory, made by their first use
        // otherwise: it must exist to be made private to each node.
        fs::create_dir_all("/var/lib/tusk")?;
        let conf = corosync::corosync_conf(&nodes);
        for (name, _) in &nodes {
            let node = NodeDir::new(dir, name);
            node.create()?;
            fs::write(node.corosync_conf(), &conf)?;
            write_seed_cib(&node)?;
        }

        state.fence_daemon = Some(start_fence_daemon(dir, &exe)?);
        state.save(dir, &lock)?;

        let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
        self.boot(&mut state, &lock, &names)?;
        drop(lock);
        wait_fence_daemon(dir)?;

        self.wait_converged(config.timeout)?;
        let online = started.elapsed();
        self.register_fencing(Duration::from_secs(60))?;
        log(&format!(
            "up: {} nodes online with quorum after {:.1} s, fence device started after {:.1} s ({})",
            config.nodes,
            online.as_secs_f64(),
            started.elapsed().as_secs_f64(),
            dir.display()
        ));
        Ok(())
    }

    /// Boots nodes that are powered off: namespaces, disks, cable, corosync,
    /// Pacemaker. Each phase runs over all nodes before the next, so that a
    /// 3-node `up` waits for corosync once, not three times.
    fn boot(&self, state: &mut State, lock: &StateLock, names: &[String]) -> Result<()> {
        let switch = state
            .switch
            .clone()
            .context("the lab's switch is not running")?;
        let mut booted = Vec::new();
        for name in names {
            let node = NodeDir::new(&self.dir, name);
            let _ = fs::remove_file(node.ready_file());
            let args = [
                OsStr::new("--lab"),
                self.dir.as_os_str(),
                OsStr::new("--node"),
                OsStr::new(name),
            ];
            let holder = spawn_holder(&state.exe, &args, &node.init_log())
                .with_context(|| format!("starting {name}"))?;
            // Recorded at once, so that `down` finds it whatever fails next.
            state.node_mut(name)?.holder = Some(holder.clone());
            state.save(&self.dir, lock)?;
            booted.push((node, holder));
        }
        for (node, holder) in &booted {
            wait_ready(holder, &node.ready_file(), &node.init_log(), &node.name)?;
            let record = state.node(&node.name)?;
            network::cable(&switch, holder, &node.name, record.addr, record.partitioned)?;
        }
        for (node, holder) in &booted {
            node::start_corosync(holder, node)?;
        }
        for (node, holder) in &booted {
            node::wait_corosync(holder, node)?;
            node::start_pacemaker(holder, node)?;
        }
        Ok(())
    }

    /// `pcs stonith create`, run on the first node, then waits until the
    /// device has started somewhere.
    fn register_fencing(&self, timeout: Duration) -> Result<()> {
        let state = self.state()?;
        let hosts: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        let socket = protocol::socket_path(&self.dir);
        let first = &state.nodes[0].name;
        let output = self.exec(
            first,
            &[
                "pcs",
                "stonith",
                "create",
                FENCE_DEVICE,
                "fence_tusklab",
                &format!("pcmk_host_list={}", hosts.join(" ")),
                &format!("socket={}", socket.display()),
            ],
        )?;
        if !output.status.success() {
            bail!(
                "pcs stonith create failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        process::wait_for("the fence device to start", timeout, || {
            // A crm_mon that fails now and then (the CIB busy with the new
            // device) is a reason to ask again, not to give up.
            Ok(self.view(first).is_ok_and(|v| {
                v.instances(FENCE_DEVICE)
                    .iter()
                    .any(|r| r.active && !r.failed)
            }))
        })
    }

    /// Attaches to a lab that is up, from its state directory.
    pub fn attach(dir: impl Into<PathBuf>) -> Result<Lab> {
        let dir = dir.into();
        if !dir.join(MARKER).exists() || !State::path(&dir).exists() {
            return Err(LabError::NotUp(dir).into());
        }
        Ok(Lab { dir })
    }

    /// The lab in TUSK_LAB_DIR, or /tmp/tusk-lab.
    pub fn attach_default() -> Result<Lab> {
        Lab::attach(default_dir())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> Result<State> {
        State::load(&self.dir)
    }

    pub fn nodes(&self) -> Result<Vec<String>> {
        Ok(self.state()?.nodes.into_iter().map(|n| n.name).collect())
    }

    pub fn address(&self, node: &str) -> Result<Ipv4Addr> {
        Ok(self.state()?.node(node)?.addr)
    }

    /// Where a client workload connects from: the switch's address.
    pub fn switch_address(&self) -> Ipv4Addr {
        network::switch_address()
    }

    /// The switch's network namespace (`/proc/PID/ns/net`), for a thread
    /// that setns(2)s into it to reach the nodes as a client would.
    pub fn switch_netns(&self) -> Result<PathBuf> {
        network::netns_path(
            self.state()?
                .switch
                .as_ref()
                .context("the lab has no switch")?,
        )
    }

    /// Moves the calling thread into the switch's network namespace, for a
    /// client workload: from there the nodes' addresses are reachable (and
    /// nothing else is). Call it from a thread of its own; the rest of the
    /// process stays where it was.
    pub fn join_switch_network(&self) -> Result<()> {
        network::join_switch(
            self.state()?
                .switch
                .as_ref()
                .context("the lab has no switch")?,
        )
    }

    /// Powered on (its init runs).
    pub fn is_running(&self, node: &str) -> Result<bool> {
        Ok(self
            .state()?
            .node(node)?
            .holder
            .as_ref()
            .is_some_and(Holder::is_running))
    }

    fn running_holder(&self, node: &str) -> Result<Holder> {
        match &self.state()?.node(node)?.holder {
            Some(h) if h.is_running() => Ok(h.clone()),
            _ => Err(LabError::NodeDown(node.to_string()).into()),
        }
    }

    /// A command that runs `program` inside the node (all its namespaces).
    /// TUSK_LAB_DIR is set so that `fence_tusklab` run by hand finds its lab.
    pub fn command(&self, node: &str, program: impl AsRef<OsStr>) -> Result<Command> {
        let mut command = namespace::enter(&self.running_holder(node)?, program);
        command.env("TUSK_LAB_DIR", &self.dir);
        Ok(command)
    }

    /// Runs `args` inside the node and returns its output, whatever its exit
    /// status. A command still running after two minutes (a crm_mon or pcs
    /// stuck on a node that lost its cluster) is killed and is an error, so
    /// that every wait loop built on this keeps its deadline.
    pub fn exec<S: AsRef<OsStr>>(&self, node: &str, args: &[S]) -> Result<Output> {
        const LIMIT: Duration = Duration::from_secs(120);
        let (program, rest) = args.split_first().context("exec: no command given")?;
        let mut command = self.command(node, program)?;
        command.args(rest);
        let out = ocf::command::run(command, &ocf::Deadline::after(LIMIT))
            .map_err(|e| anyhow::anyhow!("running {:?} on {node}: {e}", program.as_ref()))?;
        Ok(Output {
            status: out.status,
            stdout: out.stdout.into_bytes(),
            stderr: out.stderr.into_bytes(),
        })
    }

    /// The cluster as `node`'s Pacemaker sees it.
    pub fn view(&self, node: &str) -> Result<ClusterState> {
        let output = self.exec(node, &["crm_mon", "--one-shot", "--output-as=xml"])?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        ClusterState::parse(&stdout).with_context(|| {
            format!(
                "crm_mon on {node} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
    }

    /// What `observer`'s Pacemaker recorded about fencing `target`.
    pub fn fence_history(&self, observer: &str, target: &str) -> Result<Vec<FenceEvent>> {
        let output = self.exec(
            observer,
            &["stonith_admin", "--history", target, "--output-as=xml"],
        )?;
        history::parse(&String::from_utf8_lossy(&output.stdout)).with_context(|| {
            format!(
                "stonith_admin on {observer} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
    }

    /// Nodes that are powered on and cabled: the ones expected to form the
    /// quorate partition.
    fn connected_nodes(&self) -> Result<Vec<String>> {
        Ok(self
            .state()?
            .nodes
            .into_iter()
            .filter(|n| !n.partitioned && n.holder.as_ref().is_some_and(Holder::is_running))
            .map(|n| n.name)
            .collect())
    }

    /// Waits until every connected node sees a DC, quorum, and every
    /// connected node online. Returns the first connected node's view.
    pub fn wait_converged(&self, timeout: Duration) -> Result<ClusterState> {
        let mut last = None;
        let waited = process::wait_for(
            "the cluster to converge (all connected nodes online with quorum)",
            timeout,
            || {
                let connected = self.connected_nodes()?;
                for observer in &connected {
                    let Ok(view) = self.view(observer) else {
                        return Ok(false);
                    };
                    let ok = view.dc().is_some()
                        && view.has_quorum()
                        && connected.iter().all(|n| view.is_online(n));
                    last = Some(view);
                    if !ok {
                        return Ok(false);
                    }
                }
                Ok(!connected.is_empty())
            },
        );
        match waited {
            Ok(()) => Ok(last.unwrap_or_default()),
            Err(e) => Err(e.context(format!("last view: {last:?}"))),
        }
    }

    /// Waits until `observer` sees `node` online (`true`) or offline.
    pub fn wait_node(
        &self,
        observer: &str,
        node: &str,
        online: bool,
        timeout: Duration,
    ) -> Result<ClusterState> {
        let mut last = None;
        let what = format!(
            "{observer} to see {node} {}",
            if online { "online" } else { "offline" }
        );
        process::wait_for(&what, timeout, || {
            let Ok(view) = self.view(observer) else {
                return Ok(false);
            };
            let ok = view.is_online(node) == online;
            last = Some(view);
            Ok(ok)
        })?;
        Ok(last.unwrap_or_default())
    }

    /// Pulls the node's cable out of the switch. The node keeps running, alone.
    pub fn partition(&self, node: &str) -> Result<()> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        if let Some(switch) = &state.switch {
            network::unplug(switch, node)?;
        }
        state.node_mut(node)?.partitioned = true;
        state.save(&self.dir, &lock)?;
        log(&format!("partition: {node}'s cable is out of the switch"));
        Ok(())
    }

    /// Plugs the node's cable back in.
    pub fn heal(&self, node: &str) -> Result<()> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        state.node_mut(node)?.partitioned = false;
        if let Some(switch) = &state.switch {
            network::plug(switch, node)?;
        }
        state.save(&self.dir, &lock)?;
        log(&format!("heal: {node}'s cable is back in the switch"));
        Ok(())
    }

    /// Power loss: every process of the node dies at once (SIGKILL to its
    /// init), and with its network namespace it loses its address and link.
    /// Its disks stay. Nothing happens if it is already off.
    pub fn crash(&self, node: &str) -> Result<()> {
        self.power_off(node)
    }

    pub fn power_off(&self, node: &str) -> Result<()> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        let Some(holder) = state.node(node)?.holder.clone() else {
            return Ok(());
        };
        let was_running = holder.is_running();
        kill_holder(&holder).with_context(|| format!("powering {node} off"))?;
        state.node_mut(node)?.holder = None;
        state.save(&self.dir, &lock)?;
        if was_running {
            log(&format!(
                "power off {node}: killed its init (PID {}) and with it every process of the node",
                holder.init.pid
            ));
        }
        Ok(())
    }

    /// Boots a powered-off node with its disks as they were, and returns
    /// without waiting for it to join (a power switch does not wait either).
    /// Nothing happens if it is already on.
    pub fn power_on(&self, node: &str) -> Result<()> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        if let Some(holder) = state.node(node)?.holder.clone() {
            if holder.is_running() {
                return Ok(());
            }
            // Died without the lab's doing (say, its init was killed by hand).
            kill_holder(&holder)?;
            state.node_mut(node)?.holder = None;
        }
        self.boot(&mut state, &lock, &[node.to_string()])?;
        log(&format!("power on {node}: booting its cluster stack"));
        Ok(())
    }

    /// Brings a crashed node back and waits until the cluster has it online
    /// again. When fencing already rebooted it, this only waits.
    pub fn restart(&self, node: &str) -> Result<()> {
        self.power_on(node)?;
        self.wait_converged(Duration::from_secs(120)).map(drop)
    }

    /// The last `lines` lines of the node's logs (and of its init), read from
    /// the host side, so this works while the node is down.
    pub fn logs(&self, node: &str, lines: usize) -> Result<String> {
        self.state()?.node(node)?;
        let dir = NodeDir::new(&self.dir, node);
        let mut out = String::new();
        let files = [
            ("init", dir.init_log()),
            (
                "/var/log/corosync/corosync.log",
                dir.log("corosync/corosync.log"),
            ),
            (
                "/var/log/corosync/corosync.out",
                dir.log("corosync/corosync.out"),
            ),
            (
                "/var/log/pacemaker/pacemakerd.out",
                dir.log("pacemaker/pacemakerd.out"),
            ),
            (
                "/var/log/pacemaker/pacemaker.log",
                dir.log("pacemaker/pacemaker.log"),
            ),
        ];
        for (name, path) in files {
            if let Some(text) = process::tail(&path, lines).filter(|t| !t.is_empty()) {
                out += &format!("===== {node}: {name} (last {lines} lines)\n{text}\n");
            }
        }
        Ok(out)
    }

    pub fn status(&self) -> Result<LabStatus> {
        let state = self.state()?;
        let nodes: Vec<NodeStatus> = state
            .nodes
            .iter()
            .map(|n| NodeStatus {
                name: n.name.clone(),
                addr: n.addr,
                partitioned: n.partitioned,
                init_pid: n
                    .holder
                    .as_ref()
                    .filter(|h| h.is_running())
                    .map(|h| h.init.pid),
            })
            .collect();
        let view = nodes
            .iter()
            .find(|n| n.init_pid.is_some() && !n.partitioned)
            .and_then(|n| Some((n.name.clone(), self.view(&n.name).ok()?)));
        Ok(LabStatus {
            dir: self.dir.clone(),
            switch_running: state.switch.as_ref().is_some_and(Holder::is_running),
            fence_daemon_running: state
                .fence_daemon
                .as_ref()
                .is_some_and(Recorded::is_running),
            nodes,
            view,
        })
    }

    /// Starts the lab's client: the lab's own copy of tusk-lab with `args`
    /// (a `demo-client` command), detached, its output in `DIR/client.log`,
    /// recorded so that `down` ends it (by PID, once /proc confirms it).
    /// Refuses while one runs.
    pub fn start_client<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Recorded> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        if let Some(running) = state.client.as_ref().filter(|c| c.is_running()) {
            bail!("the lab's client runs already (PID {})", running.pid);
        }
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("client.log"))?;
        let mut command = Command::new(&state.exe);
        command
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = process::detach(&mut command)
            .spawn()
            .context("starting the lab's client")?;
        // Not waited for: it outlives this command; `down` ends it by PID.
        let client = Recorded::of(child.id() as i32)?;
        state.client = Some(client);
        state.save(&self.dir, &lock)?;
        Ok(client)
    }

    /// Ends the lab's client, if one runs.
    pub fn stop_client(&self) -> Result<()> {
        let lock = StateLock::acquire(&self.dir)?;
        let mut state = self.state()?;
        if let Some(client) = state.client.take() {
            client.kill_and_wait(Duration::from_secs(10))?;
            state.save(&self.dir, &lock)?;
        }
        Ok(())
    }

    /// Ends the lab; see [`down`].
    pub fn down(&self) -> Result<()> {
        down(&self.dir)
    }
}

/// What `tusk-lab status` shows.
#[derive(Debug, Clone)]
pub struct LabStatus {
    pub dir: PathBuf,
    pub switch_running: bool,
    pub fence_daemon_running: bool,
    pub nodes: Vec<NodeStatus>,
    /// The first connected node's view of the cluster.
    pub view: Option<(String, ClusterState)>,
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    pub addr: Ipv4Addr,
    pub partitioned: bool,
    /// Host PID of its init, while it is powered on.
    pub init_pid: Option<i32>,
}

impl fmt::Display for LabStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "running" } else { "NOT running" };
        writeln!(f, "lab {}", self.dir.display())?;
        writeln!(
            f,
            "  switch {}, fence daemon {}",
            yes_no(self.switch_running),
            yes_no(self.fence_daemon_running)
        )?;
        for n in &self.nodes {
            let power = n
                .init_pid
                .map_or("off".to_string(), |pid| format!("on (init PID {pid})"));
            let cable = if n.partitioned { ", PARTITIONED" } else { "" };
            let cluster = match &self.view {
                Some((_, view)) => match view.node(&n.name) {
                    Some(v) if v.online => ", online",
                    Some(v) if v.unclean => ", UNCLEAN",
                    _ => ", offline",
                },
                None => "",
            };
            writeln!(f, "  {:<7} {:<14} {power}{cable}{cluster}", n.name, n.addr)?;
        }
        match &self.view {
            Some((observer, view)) => writeln!(
                f,
                "  as {observer} sees it: DC {}, {}",
                view.dc().unwrap_or("none"),
                if view.has_quorum() {
                    "quorate"
                } else {
                    "NO quorum"
                }
            ),
            None => writeln!(f, "  no connected node to ask"),
        }
    }
}

/// Ends the lab in `dir` and removes the directory: the fence daemon first
/// (so that nothing powers a node back on), then every node and the switch,
/// each by its recorded PID once /proc confirms it is still ours. Then
/// whatever a run that died before recording left: processes running the
/// lab's own copy of tusk-lab from this directory. Bridges, veths and mounts
/// need no cleaning: they die with their namespaces.
/// Idempotent; a directory that is not a lab's is refused.
pub fn down(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.join(MARKER).exists() {
        bail!(
            "{} is not a tusk-lab directory; refusing to touch it",
            dir.display()
        );
    }
    let lock = StateLock::acquire(dir)?;
    // Keep going past a failure: everything that can be ended is; the
    // directory stays (with its record) only if something could not be.
    let mut failures = Vec::new();
    let mut attempt = |what: &str, result: Result<()>| {
        if let Err(e) = result {
            failures.push(format!("{what}: {e:#}"));
        }
    };
    if let Ok(state) = State::load(dir) {
        if let Some(client) = &state.client {
            attempt(
                "ending the client",
                client.kill_and_wait(Duration::from_secs(10)),
            );
        }
        if let Some(daemon) = &state.fence_daemon {
            attempt(
                "ending the fence daemon",
                daemon.kill_and_wait(Duration::from_secs(10)),
            );
        }
        for node in &state.nodes {
            if let Some(holder) = &node.holder {
                attempt(&format!("ending {}", node.name), kill_holder(holder));
            }
        }
        if let Some(switch) = &state.switch {
            attempt("ending the switch", kill_holder(switch));
        }
    }
    for (process, parent) in leftover_processes(dir) {
        log(&format!(
            "down: ending unrecorded lab process {} ({})",
            process.pid,
            process::cmdline(process.pid).join(" ")
        ));
        attempt(
            &format!("ending process {}", process.pid),
            process.kill_and_wait(Duration::from_secs(10)),
        );
        if let Some(unshare) = parent {
            attempt(
                &format!("waiting for unshare {}", unshare.pid),
                unshare.wait_exited(Duration::from_secs(10)),
            );
        }
    }
    if !failures.is_empty() {
        bail!(
            "down could not end everything; {} is kept for another try:\n{}",
            dir.display(),
            failures.join("\n")
        );
    }
    drop(lock);
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    log(&format!("down: {} removed", dir.display()));
    Ok(())
}

/// Processes running this lab's copy of tusk-lab (namespace inits, the fence
/// daemon, the demo's client), with the `unshare` that started an init. The binary's path lies
/// inside this lab's directory, so no other lab's process matches; the
/// kernel's exe link is checked, not only argv[0], which a process sets
/// itself. The fence agent is left alone: it runs inside a node and dies
/// with it.
fn leftover_processes(dir: &Path) -> Vec<(Recorded, Option<Recorded>)> {
    let exe = installed_exe(dir).to_string_lossy().into_owned();
    // The kernel's link is the canonical path.
    let installed = fs::canonicalize(installed_exe(dir)).unwrap_or_else(|_| installed_exe(dir));
    process::all_pids()
        .unwrap_or_default()
        .into_iter()
        .filter(|pid| {
            let args = process::cmdline(*pid);
            args.first() == Some(&exe)
                && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == installed)
                && matches!(
                    args.get(1).map(String::as_str),
                    Some("init" | "fence-daemon" | "demo-client")
                )
        })
        .filter_map(|pid| {
            let stat = process::stat(pid)?;
            let parent = (process::is_namespace_init(pid)
                && process::cmdline(stat.ppid)
                    .first()
                    .is_some_and(|a| a.ends_with("unshare")))
            .then(|| Recorded::of(stat.ppid).ok())
            .flatten();
            Some((
                Recorded {
                    pid,
                    start: stat.start_ticks,
                },
                parent,
            ))
        })
        .collect()
}

/// True when anything of the lab in `dir` still runs.
fn is_up(dir: &Path) -> bool {
    let recorded = State::load(dir).is_ok_and(|s| {
        s.switch.as_ref().is_some_and(Holder::is_running)
            || s.fence_daemon.as_ref().is_some_and(Recorded::is_running)
            || s.client.as_ref().is_some_and(Recorded::is_running)
            || s.nodes
                .iter()
                .any(|n| n.holder.as_ref().is_some_and(Holder::is_running))
    });
    recorded || !leftover_processes(dir).is_empty()
}

fn installed_exe(dir: &Path) -> PathBuf {
    dir.join("bin/tusk-lab")
}

/// The lab's own copy of tusk-lab, and `fence_tusklab` (a hard link to it)
/// in the directory the nodes see on top of /usr/sbin. A copy, so that a
/// rebuild while the lab runs changes nothing in it.
fn install_binaries(dir: &Path, exe: &Path) -> Result<PathBuf> {
    let installed = installed_exe(dir);
    fs::create_dir_all(dir.join("bin"))?;
    fs::create_dir_all(dir.join("sbin"))?;
    fs::copy(exe, &installed).with_context(|| format!("copying {} into the lab", exe.display()))?;
    fs::set_permissions(&installed, fs::Permissions::from_mode(0o755))?;
    fs::hard_link(&installed, dir.join("sbin").join(crate::fence::agent::NAME))?;
    // TUSK_LAB_AGENTS (a directory holding the agents' binaries, such as
    // target/debug) or TUSK_LAB_AGENT (the postgresql agent alone): agents
    // the nodes run instead of the installed ones (see init.rs), so that a
    // lab tests a build without installing a package that other labs on the
    // machine share.
    for (name, source) in agent_overrides() {
        let copy = dir.join(crate::init::AGENT_COPIES).join(name);
        fs::create_dir_all(copy.parent().expect("a file in the lab directory"))?;
        fs::copy(&source, &copy)
            .with_context(|| format!("copying the {name} agent {source:?} into the lab"))?;
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755))?;
    }
    Ok(installed)
}

/// The agents to run instead of the installed ones: every agent binary in
/// TUSK_LAB_AGENTS, and TUSK_LAB_AGENT as the postgresql agent.
fn agent_overrides() -> Vec<(&'static str, PathBuf)> {
    let mut agents = Vec::new();
    if let Some(dir) = std::env::var_os("TUSK_LAB_AGENTS") {
        for name in crate::init::AGENTS {
            let binary = Path::new(&dir).join(name);
            if binary.is_file() {
                agents.push((name, binary));
            }
        }
    }
    if let Some(agent) = std::env::var_os("TUSK_LAB_AGENT") {
        agents.retain(|(name, _)| *name != "postgresql");
        agents.push(("postgresql", PathBuf::from(agent)));
    }
    agents
}

fn write_seed_cib(node: &NodeDir) -> Result<()> {
    let path = node.cib();
    fs::write(&path, corosync::SEED_CIB)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    let uid = User::from_name("hacluster")?.map(|u| u.uid.as_raw());
    let gid = Group::from_name("haclient")?.map(|g| g.gid.as_raw());
    chown(&path, uid, gid).with_context(|| format!("chown {}", path.display()))
}

/// Waits for an init's ready file; a dead init ends the wait with its log.
fn wait_ready(holder: &Holder, ready: &Path, init_log: &Path, what: &str) -> Result<()> {
    process::wait_for(
        &format!("{what}'s namespaces to be ready"),
        Duration::from_secs(10),
        || {
            if ready.exists() {
                return Ok(true);
            }
            if !holder.is_running() {
                bail!(
                    "{what}'s init died: {}",
                    process::tail(init_log, 20).unwrap_or_default()
                );
            }
            Ok(false)
        },
    )
}

fn start_fence_daemon(dir: &Path, exe: &Path) -> Result<Recorded> {
    let log_file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fence-daemon.log"))?;
    let mut command = Command::new(exe);
    command
        .arg("fence-daemon")
        .arg("--lab")
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    let child = process::detach(&mut command)
        .spawn()
        .context("starting the fence daemon")?;
    // Not waited for here: it outlives `tusk-lab up`; `down` ends it by PID.
    Recorded::of(child.id() as i32)
}

fn wait_fence_daemon(dir: &Path) -> Result<()> {
    let socket = protocol::socket_path(dir);
    process::wait_for(
        "the fence daemon to answer",
        Duration::from_secs(10),
        || Ok(protocol::call(&socket, &Request::Ping, "tusk-lab", Duration::from_secs(5)).is_ok()),
    )
}
