//! The HTML pages: the landing page at `/` ([`landing`], filled into [`template`]) and the
//! live upgrade page at `/upgrade` ([`upgrade`]).

pub mod landing;
pub mod template;
pub mod upgrade;
