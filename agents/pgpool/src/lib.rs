//! `ocf:tusk:pgpool`, the pgpool-II resource agent, and what it knows of
//! pgpool and how it talks to it.

pub mod config;
pub mod daemon;
pub mod pcp;
pub mod pcppass;
pub mod settings;
