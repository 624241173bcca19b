//! What the exporter takes from the system it runs on: durations and the Unix clock
//! ([`duration`]), files read without blocking or following surprises ([`safe_file`]), and
//! the build it was made from ([`version`]). Every other module may import these; they
//! import nothing of the crate.

pub mod duration;
pub mod safe_file;
pub mod version;
