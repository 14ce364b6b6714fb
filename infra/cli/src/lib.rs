//! The `coursewire` command line's library side: what the subcommands share and what the
//! end-to-end tests drive directly.

pub mod deployment;
