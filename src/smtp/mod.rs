//! SMTP submission server: listener (accept, TLS, limits), the sans-IO
//! session state machine, and the DATA decoder.

pub mod conn;
pub mod data;
pub mod listener;
pub mod refusal;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod stream;
pub mod tls;
