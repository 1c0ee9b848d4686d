//! deliver stage (see lib.rs).
