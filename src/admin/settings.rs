/// `[admin]`: where the admin listener (metrics and health) runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub address: std::net::SocketAddr,
    /// Required for `/metrics` when set; always set off loopback.
    pub bearer_token: Option<crate::secret::Secret>,
    /// Off loopback the listener serves HTTPS with `[tls]`'s certificate.
    pub https: bool,
}
