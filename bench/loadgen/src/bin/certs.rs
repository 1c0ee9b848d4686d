//! `certs --out DIR`: writes a throwaway CA (ca.pem) and a server certificate
//! for localhost/127.0.0.1 (server.pem, server.key) shared by postern's
//! listener, the sink and the load generator during one benchmark run.

fn main() -> Result<(), postern_loadgen::Error> {
    let a = postern_loadgen::args()?;
    let out: String = postern_loadgen::arg(&a, "out")?;
    postern_loadgen::write_certs(std::path::Path::new(&out))
}
