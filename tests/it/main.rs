//! The integration tests: one binary, one module per area. Every test stands
//! up its own world (test CA, mock HTTPS upstreams, a real `postern` process,
//! real SMTP clients) from the helpers in `common/` and the provider mocks
//! beside it, so tests are isolated and run in parallel.
//!
//! Run one area with `cargo test --test it relay::`.

mod common;
mod common_oauth;
mod dnsmasq;
mod gmail_setup;
mod msgraph_setup;
mod upstream_api;

mod abuse;
mod abuse_batch;
mod admin;
mod alerts;
mod attacks;
mod audit;
mod cli;
mod clients;
mod cluster;
mod config_errors;
mod connections;
mod console;
mod console_browser;
mod console_local;
mod console_pages;
mod control;
mod dkim;
mod dns_check;
mod docs;
mod failover;
mod faults;
mod header_security;
mod inspect;
mod limits;
mod quota;
mod relay;
mod reload;
mod scopes;
mod security;
mod smuggling;
mod spool;
mod systemd;
mod upstream_faults;
mod upstream_gmail;
mod upstream_json;
mod upstream_msgraph;
mod upstream_msgraph_faults;
mod upstream_ses;
mod validation;
