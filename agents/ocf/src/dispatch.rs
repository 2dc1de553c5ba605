//! The one place where an action's result becomes an exit code, an
//! `ocf-exit-reason:` line and a log line.

use crate::log::Logger;
use crate::{AgentInfo, OcfEnv, OcfError, Result, Status};
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

/// The outcome of one call before it is reported.
fn outcome(
    info: &AgentInfo,
    args: &[String],
    run: impl FnOnce(Action, &OcfEnv) -> Result<Status>,
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
    let env = OcfEnv::from_env();
    Logger::from_env(info.name, &env.instance).install();
    Outcome::Done(action.name().to_string(), run(action, &env))
}

enum Outcome {
    Usage(clap::Error),
    MetaData(String),
    Done(String, Result<Status>),
}

/// The `main` of every agent: parses the action, runs it and reports the
/// result the way Pacemaker reads it.
pub fn main(info: &AgentInfo, run: impl FnOnce(Action, &OcfEnv) -> Result<Status>) -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match outcome(info, &args, run) {
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
            // crm_mon and pcs status.
            eprintln!("ocf-exit-reason:{}", e.reason());
            crate::error!("{action} failed: {} [{}]", e.reason(), e.status());
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

    fn call(args: &[&str]) -> Outcome {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        outcome(&AGENT, &args, |a, _| match a {
            Action::Start => Ok(Status::Success),
            _ => Err(OcfError::generic("unexpected")),
        })
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
