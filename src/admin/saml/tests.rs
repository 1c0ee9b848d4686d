use super::*;

const CERT: &str = "MIIBszCCAVmgAwIBAgIUVn8xF1bXq4lY0Z7o8wQ9b6F0wT0wCgYIKoZIzj0EAwIwDzENMAsGA1UEAwwEdGVzdDAeFw0yNDAxMDEwMDAwMDBaFw0zNDAxMDEwMDAwMDBaMA8xDTALBgNVBAMMBHRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ=";

fn metadata(key_descriptor: &str, binding: &str) -> String {
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {key_descriptor}
    <md:SingleSignOnService Binding="{binding}" Location="https://idp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    )
}

fn signing_key() -> String {
    format!(
        r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{CERT}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#
    )
}

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

#[test]
fn metadata_with_a_signing_certificate_and_redirect_binding_is_accepted() {
    let idp = Idp::parse(&metadata(&signing_key(), REDIRECT)).expect("valid metadata");
    assert_eq!(idp.entity_id, "https://idp.example/");
    assert_eq!(idp.sso_url, "https://idp.example/sso");
}

#[test]
fn metadata_without_a_signing_certificate_is_refused() {
    let err = Idp::parse(&metadata("", REDIRECT)).err().expect("refused");
    assert!(err.contains("no signing certificate"), "{err}");
    let enc_only = signing_key().replace("use=\"signing\"", "use=\"encryption\"");
    let err = Idp::parse(&metadata(&enc_only, REDIRECT))
        .err()
        .expect("refused");
    assert!(err.contains("no signing certificate"), "{err}");
}

#[test]
fn metadata_without_a_redirect_sso_service_is_refused() {
    let post = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
    let err = Idp::parse(&metadata(&signing_key(), post))
        .err()
        .expect("refused");
    assert!(err.contains("HTTP-Redirect"), "{err}");
}

#[test]
fn not_metadata_is_refused() {
    assert!(Idp::parse("<html/>").is_err());
    assert!(Idp::parse("not xml").is_err());
}
