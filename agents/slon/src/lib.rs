//! `ocf:tusk:slon`, the Slony-I slon agent: for now the pieces that do not
//! depend on the agent's actions. The cluster name and the quoting of every
//! value an operator gives, and the judgement of slon's node lock.

pub mod cluster;
pub mod nodelock;
pub mod peer;
pub mod quote;
