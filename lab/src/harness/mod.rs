//! What scenario tests need on top of the lab: client load with a record of
//! acknowledged writes. The cluster's state is [`crate::ClusterState`].

pub mod workload;

pub use workload::{Load, Writer, WriterReport};
