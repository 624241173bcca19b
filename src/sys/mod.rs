//! What the exporter takes from the system it runs on: durations and the Unix clock
//! ([`duration`]), the open-files limit and how descriptors are shared out ([`fds`]), files
//! read without blocking or following surprises ([`safe_file`]), and the build it was made
//! from ([`version`]). Every other module may import these; they import nothing of the
//! crate.

pub mod duration;
pub mod fds;
pub mod safe_file;
pub mod version;
