use super::*;

const ACS: &str = "https://relay.example/saml/acs";

fn response(inner: &str) -> String {
    format!(
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Destination="{ACS}" ID="_r"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{inner}</samlp:Response>"#
    )
}

#[test]
fn one_assertion_with_the_right_destination_passes() {
    assert_eq!(check(&response("<saml:Assertion ID=\"_a\"/>"), ACS), Ok(()));
}

#[test]
fn two_assertions_are_refused() {
    let xml = response("<saml:Assertion ID=\"_a\"/><saml:Assertion ID=\"_b\"/>");
    assert_eq!(check(&xml, ACS), Err(Refused::AssertionCount(2)));
    let nested = response(
        "<samlp:Extensions><saml:Assertion ID=\"_a\"/></samlp:Extensions><saml:Assertion ID=\"_b\"/>",
    );
    assert_eq!(check(&nested, ACS), Err(Refused::AssertionCount(2)));
    assert_eq!(check(&response(""), ACS), Err(Refused::AssertionCount(0)));
}

#[test]
fn comments_doctype_and_pis_are_refused() {
    let c = response(
        "<saml:Assertion><saml:NameID>admin@corp<!---->.evil</saml:NameID></saml:Assertion>",
    );
    assert_eq!(check(&c, ACS), Err(Refused::Comment));
    let d = format!(
        "<!DOCTYPE r [<!ENTITY x \"y\">]>{}",
        response("<saml:Assertion/>")
    );
    assert_eq!(check(&d, ACS), Err(Refused::Doctype));
    let p = response("<?evil?><saml:Assertion/>");
    assert_eq!(check(&p, ACS), Err(Refused::ProcessingInstruction));
}

#[test]
fn wrong_or_missing_destination_is_refused() {
    let xml = response("<saml:Assertion/>");
    assert!(matches!(
        check(&xml, "https://other.example/saml/acs"),
        Err(Refused::Destination(_))
    ));
    let none = xml.replace(&format!("Destination=\"{ACS}\""), "");
    assert_eq!(check(&none, ACS), Err(Refused::Destination(None)));
}

#[test]
fn other_roots_and_encrypted_assertions_are_refused() {
    assert_eq!(
        check(
            "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>",
            ACS
        ),
        Err(Refused::Root)
    );
    let enc = response("<saml:EncryptedAssertion/>");
    assert_eq!(check(&enc, ACS), Err(Refused::Encrypted));
    assert!(check("", ACS).is_err());
}

#[test]
fn the_status_must_be_success() {
    let ok = response("<saml:Assertion/>");
    let failed = ok.replace("status:Success", "status:Responder");
    assert!(matches!(check(&failed, ACS), Err(Refused::Status(Some(_)))));
    let none = ok.replace(
        r#"<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>"#,
        "",
    );
    assert_eq!(check(&none, ACS), Err(Refused::Status(None)));
    // A nested StatusCode does not count as the top-level one.
    let nested = ok.replace(
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>"#,
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:StatusCode>"#,
    );
    assert!(matches!(check(&nested, ACS), Err(Refused::Status(Some(_)))));
}
