//! The one place where an action's result becomes an exit code, an
//! `ocf-exit-reason:` line and a log line.

use crate::attributes::NodeAttributes;
use crate::log::Logger;
use crate::notify::Notification;
use crate::{AgentInfo, Deadline, OcfEnv, OcfError, Result, Status};
use std::process::ExitCode;

/// The actions Pacemaker (and ocf-tester) call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
    Notify,
    ValidateAll,
    MetaData,
    ReloadAgent,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "start" => Action::Start,
            "stop" => Action::Stop,
            // `status` is the LSB-era name some tools still send.
            "monitor" | "status" => Action::Monitor,
            "promote" => Action::Promote,
            "demote" => Action::Demote,
            "notify" => Action::Notify,
            "validate-all" => Action::ValidateAll,
            "meta-data" => Action::MetaData,
            "reload-agent" => Action::ReloadAgent,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::ValidateAll => "validate-all",
            Action::MetaData => "meta-data",
            Action::ReloadAgent => "reload-agent",
        }
    }
}

/// What one call is about, built once by the dispatcher and handed to the
/// action: no action reads Pacemaker's `OCF_RESKEY_CRM_meta_*` itself.
#[derive(Debug, Clone)]
pub struct Context {
    pub action: Action,
    pub env: OcfEnv,
    /// When the action must have answered by (see [`Deadline::for_timeout`]).
    pub deadline: Deadline,
    /// This node's name, as Pacemaker knows it.
    pub node: String,
}

impl Context {
    pub fn new(action: Action, env: OcfEnv, info: &AgentInfo) -> Context {
        Context {
            deadline: env.deadline(info.timeout_of(action.name())),
            node: env.node_name(),
            action,
            env,
        }
    }

    /// An instance of a promotable clone.
    pub fn promotable(&self) -> bool {
        self.env.promotable
    }

    /// A monitor with interval 0.
    pub fn is_probe(&self) -> bool {
        self.env.is_probe()
    }

    /// The clone notification this call carries (notify only).
    pub fn notification(&self) -> Result<Notification> {
        Notification::from_env()
    }

    /// This resource's node attributes and promotion scores, as this node
    /// publishes and reads them.
    pub fn attributes(&self) -> NodeAttributes {
        NodeAttributes::new(&self.env.instance, &self.node)
    }
}

/// An OCF resource agent: one method per action. The core answers what
/// is the same for every agent: meta-data, usage errors, an action the
/// meta-data does not list (unimplemented, 3), promote and demote outside a
/// promotable clone (unimplemented, with the reason), and a plain clone's
/// notifications (nothing to do).
pub trait Agent {
    fn info(&self) -> &AgentInfo;
    fn start(&self, ctx: &Context) -> Result<Status>;
    /// Must need as little configuration as possible: a stop that fails
    /// gets the node fenced.
    fn stop(&self, ctx: &Context) -> Result<Status>;
    fn monitor(&self, ctx: &Context) -> Result<Status>;
    fn validate(&self, ctx: &Context) -> Result<Status>;
    /// Called for promotable clones only.
    fn promote(&self, _ctx: &Context) -> Result<Status> {
        Err(OcfError::unimplemented("promote is not implemented"))
    }
    /// Called for promotable clones only.
    fn demote(&self, _ctx: &Context) -> Result<Status> {
        Err(OcfError::unimplemented("demote is not implemented"))
    }
    /// Called for promotable clones only; a plain clone's notifications are
    /// acknowledged by the core.
    fn notify(&self, _ctx: &Context) -> Result<Status> {
        Ok(Status::Success)
    }
}

/// Runs `ctx.action` on `agent`, after the checks every agent shares.
pub fn perform(agent: &dyn Agent, ctx: &Context) -> Result<Status> {
    let needs_promotable = matches!(ctx.action, Action::Promote | Action::Demote);
    if needs_promotable && !ctx.promotable() {
        return Err(OcfError::unimplemented(format!(
            "{} needs a promotable clone (pcs resource create ... promotable notify=true)",
            ctx.action.name()
        )));
    }
    match ctx.action {
        Action::Start => agent.start(ctx),
        Action::Stop => agent.stop(ctx),
        Action::Monitor => agent.monitor(ctx),
        Action::ValidateAll => agent.validate(ctx),
        Action::Promote => agent.promote(ctx),
        Action::Demote => agent.demote(ctx),
        Action::Notify if ctx.promotable() => agent.notify(ctx),
        Action::Notify => Ok(Status::Success),
        Action::MetaData | Action::ReloadAgent => Err(OcfError::unimplemented(format!(
            "action {} is not implemented",
            ctx.action.name()
        ))),
    }
}

/// The outcome of one call before it is reported.
fn outcome(
    info: &AgentInfo,
    args: &[String],
    run: impl FnOnce(Context) -> Result<Status>,
) -> Outcome {
    let cli = clap::Command::new(info.name)
        .about(info.shortdesc)
        .arg(
            clap::Arg::new("action")
                .required(true)
                .help("the OCF action to perform"),
        )
        .override_usage(format!(
            "{} {{start|stop|monitor|validate-all|meta-data|...}}",
            info.name
        ));
    let matches = match cli.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return Outcome::Usage(e),
    };
    let name: &String = matches.get_one("action").expect("action is required");
    let action = match Action::parse(name) {
        Some(a) if info.implements(a.name()) => a,
        _ => {
            return Outcome::Done(
                name.clone(),
                Err(OcfError::unimplemented(format!(
                    "action {name} is not implemented"
                ))),
            )
        }
    };
    if action == Action::MetaData {
        return Outcome::MetaData(info.metadata_xml());
    }
    let env = match OcfEnv::from_env() {
        Ok(env) => env,
        Err(e) => {
            Logger::from_env(info.name, "-").install();
            return Outcome::Done(action.name().to_string(), Err(e));
        }
    };
    Logger::from_env(info.name, &env.instance).install();
    Outcome::Done(
        action.name().to_string(),
        run(Context::new(action, env, info)),
    )
}

enum Outcome {
    Usage(clap::Error),
    MetaData(String),
    Done(String, Result<Status>),
}

/// The `main` of every agent: parses the action, runs it and reports the
/// result the way Pacemaker reads it.
pub fn main(agent: &dyn Agent) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let info = agent.info();
    match outcome(info, &args, |ctx| perform(agent, &ctx)) {
        Outcome::Usage(e) => {
            let _ = e.print();
            ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Status::ErrArgs.code(),
            })
        }
        Outcome::MetaData(xml) => {
            print!("{xml}");
            ExitCode::SUCCESS
        }
        Outcome::Done(action, Ok(status)) => {
            crate::debug!("{action}: {status}");
            ExitCode::from(status.code())
        }
        Outcome::Done(action, Err(e)) => {
            // Pacemaker shows this line as the failure's exit-reason in
            // crm_mon and pcs status; the reason is one line (OcfError).
            eprintln!("ocf-exit-reason:{}", e.reason());
            if matches!(e.status(), Status::Degraded | Status::DegradedPromoted) {
                // Running, with something to say: not a failure.
                crate::warning!("{action}: {} [{}]", e.reason(), e.status());
            } else {
                crate::error!("{action} failed: {} [{}]", e.reason(), e.status());
            }
            ExitCode::from(e.status().code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ActionSpec;

    const AGENT: AgentInfo = AgentInfo {
        name: "demo",
        version: "0",
        shortdesc: "demo",
        longdesc: "demo",
        params: &[],
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::new("meta-data", 5),
        ],
    };

    struct Demo;
    impl Agent for Demo {
        fn info(&self) -> &AgentInfo {
            &AGENT
        }
        fn start(&self, _: &Context) -> Result<Status> {
            Ok(Status::Success)
        }
        fn stop(&self, _: &Context) -> Result<Status> {
            Err(OcfError::generic("unexpected"))
        }
        fn monitor(&self, _: &Context) -> Result<Status> {
            Err(OcfError::generic("unexpected"))
        }
        fn validate(&self, _: &Context) -> Result<Status> {
            Err(OcfError::generic("unexpected"))
        }
    }

    fn ctx(action: Action, promotable: bool) -> Context {
        let env = OcfEnv::parse(|name| {
            (promotable && name == "OCF_RESKEY_CRM_meta_promoted_max").then(|| "1".to_string())
        });
        Context::new(action, env, &AGENT)
    }

    #[test]
    fn promote_and_demote_outside_a_promotable_clone_are_refused_by_the_core() {
        for action in [Action::Promote, Action::Demote] {
            let e = perform(&Demo, &ctx(action, false)).unwrap_err();
            assert_eq!(e.status(), Status::ErrUnimplemented);
            assert!(
                e.reason().contains("needs a promotable clone"),
                "{}",
                e.reason()
            );
            // Inside one, an agent that does not promote says so.
            let e = perform(&Demo, &ctx(action, true)).unwrap_err();
            assert_eq!(e.status(), Status::ErrUnimplemented);
            assert!(e.reason().contains("not implemented"), "{}", e.reason());
        }
        assert_eq!(
            perform(&Demo, &ctx(Action::Notify, false)),
            Ok(Status::Success)
        );
        assert_eq!(
            perform(&Demo, &ctx(Action::Notify, true)),
            Ok(Status::Success)
        );
    }

    #[test]
    fn the_context_carries_the_deadline_of_the_action() {
        let c = ctx(Action::Start, false);
        // No timeout from Pacemaker: the meta-data's 20 s, less the margin.
        assert!(c.deadline.remaining() > std::time::Duration::from_secs(17));
        assert!(c.deadline.remaining() <= std::time::Duration::from_secs(18));
    }

    fn call(args: &[&str]) -> Outcome {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        outcome(&AGENT, &args, |ctx| perform(&Demo, &ctx))
    }

    #[test]
    fn usage_errors_are_reported_as_such() {
        assert!(matches!(call(&["demo"]), Outcome::Usage(_)));
        assert!(matches!(
            call(&["demo", "start", "extra"]),
            Outcome::Usage(_)
        ));
    }

    #[test]
    fn actions_missing_from_the_metadata_are_unimplemented() {
        for name in ["no_cmd", "promote"] {
            match call(&["demo", name]) {
                Outcome::Done(_, Err(e)) => assert_eq!(e.status(), Status::ErrUnimplemented),
                _ => panic!("{name} should be unimplemented"),
            }
        }
    }

    #[test]
    fn meta_data_needs_no_environment_and_runs_no_action() {
        assert!(
            matches!(call(&["demo", "meta-data"]), Outcome::MetaData(x) if x.contains("<resource-agent name=\"demo\""))
        );
        assert!(matches!(
            call(&["demo", "start"]),
            Outcome::Done(_, Ok(Status::Success))
        ));
    }
}
