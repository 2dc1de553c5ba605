//! The pgpool-II resource agent's library: what the agent knows of pgpool
//! and how it talks to it. The OCF actions come on top of these modules.

pub mod pcp;
pub mod pcppass;
