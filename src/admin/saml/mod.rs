//! SAML 2.0 sign-in for the console, with samael (feature `xmlsec`).
//!
//! SP-initiated: `/saml/login` sends the browser to the IdP with an
//! HTTP-Redirect AuthnRequest whose id postern remembers; the IdP posts
//! the response to `/saml/acs`. samael verifies the signature and most
//! conditions; this module adds what samael leaves open:
//! - signature algorithms pinned to RSA/ECDSA with SHA-256 or stronger
//!   (samael allows every algorithm unless told);
//! - the raw XML checked first ([`precheck`]): size, no DOCTYPE or
//!   comments, one assertion, `Destination` equal to the ACS URL;
//! - `Audience` required (samael checks it only when present);
//! - `InResponseTo` an id postern issued, unexpired, used once;
//! - a replay cache of assertion ids until they expire;
//! - the IdP metadata must have a signing certificate (config refuses it
//!   otherwise: samael would skip verification).
//!
//! Verification (libxmlsec1) runs on the blocking pool.

mod cache;
pub mod precheck;
mod xmlsec_log;

use std::sync::Arc;
use std::time::{Duration, Instant};

use samael::crypto::AllowedSignatureAlgorithm;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::schema::Assertion;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};

use super::settings::{Role, Saml};

/// Largest form body the ACS reads.
pub const MAX_POST: usize = 256 * 1024;
/// Largest decoded response XML.
pub const MAX_XML: usize = 192 * 1024;
/// Clock skew allowed on NotBefore / NotOnOrAfter.
pub const MAX_SKEW: Duration = Duration::from_secs(180);

static VERIFY: std::sync::Mutex<()> = std::sync::Mutex::new(());

const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What config needs from the IdP metadata.
pub struct Idp {
    pub entity_id: String,
    pub sso_url: String,
}

impl Idp {
    /// Parses and checks IdP metadata: an entity id, an HTTP-Redirect
    /// single sign-on service and at least one signing certificate.
    pub fn parse(xml: &str) -> Result<Idp, String> {
        let md: EntityDescriptor = xml
            .parse()
            .map_err(|e| format!("not SAML metadata (an EntityDescriptor): {e}"))?;
        let entity_id = md
            .entity_id
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or("the metadata has no entityID")?;
        let sp = ServiceProvider {
            idp_metadata: md,
            ..ServiceProvider::default()
        };
        let sso_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or("the IdP has no SingleSignOnService with the HTTP-Redirect binding")?;
        match sp.idp_signing_certs() {
            Ok(Some(certs)) if !certs.is_empty() => {}
            Ok(_) => {
                return Err("the IdP metadata has no signing certificate (KeyDescriptor use=\"signing\" with an X509Certificate); without one no response could be verified".into());
            }
            Err(e) => return Err(format!("a certificate in the metadata is unreadable: {e}")),
        }
        Ok(Idp { entity_id, sso_url })
    }
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub name_id: String,
    /// None: authenticated but mapped to no role (403).
    pub role: Option<Role>,
}

/// Why a response was refused; the text goes to the audit event only.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the response is larger than {MAX_XML} bytes")]
    TooLarge,
    #[error("the response is not base64 UTF-8")]
    Encoding,
    #[error("{0}")]
    Precheck(#[from] precheck::Refused),
    #[error("samael: {0}")]
    Samael(String),
    #[error("the assertion has no AudienceRestriction")]
    NoAudience,
    #[error("the assertion has no NameID")]
    NoNameId,
    #[error("InResponseTo is missing, unknown, expired or used")]
    InResponseTo,
    #[error("the assertion was used before")]
    Replay,
    #[error("the assertion has no NotOnOrAfter")]
    NoExpiry,
    #[error("verification failed: {0}")]
    Internal(String),
}

/// The SAML service provider the console runs.
pub struct Sp {
    sp: ServiceProvider,
    settings: Saml,
    sso_url: String,
    acs_url: String,
    key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
    requests: cache::Ids,
    used: cache::Ids,
}

impl Sp {
    pub fn new(settings: &Saml, public_url: &str) -> Result<Arc<Sp>, String> {
        let idp = Idp::parse(&settings.idp_metadata_xml)?;
        xmlsec_log::silence_stderr();
        let md: EntityDescriptor = settings
            .idp_metadata_xml
            .parse()
            .map_err(|e| format!("IdP metadata: {e}"))?;
        let acs_url = format!("{public_url}/saml/acs");
        let certificate = match &settings.sp_certificate {
            Some(pem) => Some(samael::crypto::CertificateDer::from(
                openssl::x509::X509::from_pem(pem.as_bytes())
                    .and_then(|c| c.to_der())
                    .map_err(|e| format!("sp_certificate: {e}"))?,
            )),
            None => None,
        };
        let key = match &settings.sp_private_key {
            Some(pem) => Some(
                openssl::pkey::PKey::private_key_from_pem(pem.expose().as_bytes())
                    .map_err(|e| format!("sp_private_key: {e}"))?,
            ),
            None => None,
        };
        let sp = ServiceProviderBuilder::default()
            .entity_id(settings.sp_entity_id.clone())
            .acs_url(acs_url.clone())
            .slo_url(format!("{public_url}/console/signout"))
            .metadata_url(format!("{public_url}/saml/metadata"))
            .idp_metadata(md)
            .certificate(certificate)
            .allow_idp_initiated(settings.allow_idp_initiated)
            .max_clock_skew(chrono::Duration::seconds(MAX_SKEW.as_secs() as i64))
            .max_issue_delay(chrono::Duration::seconds(MAX_SKEW.as_secs() as i64))
            .allowed_signature_algorithms(Some(ALGORITHMS.to_vec()))
            .build()
            .map_err(|e| format!("SAML service provider: {e}"))?;
        Ok(Arc::new(Sp {
            sp,
            settings: settings.clone(),
            sso_url: idp.sso_url,
            acs_url,
            key,
            requests: cache::Ids::default(),
            used: cache::Ids::default(),
        }))
    }

    pub fn acs_url(&self) -> &str {
        &self.acs_url
    }

    /// The SP metadata document.
    pub fn metadata(&self) -> Result<String, String> {
        use samael::traits::ToXml;
        let md = self.sp.metadata().map_err(|e| e.to_string())?;
        md.to_string().map_err(|e| e.to_string())
    }

    /// Where to send the browser to sign in: a fresh AuthnRequest.
    pub fn login_url(&self) -> Result<String, String> {
        let mut req = self
            .sp
            .make_authentication_request(&self.sso_url)
            .map_err(|e| e.to_string())?;
        // samael's own ids have 32 random bits; ours cannot be guessed.
        req.id = format!("_{}", super::console::random_token());
        self.requests
            .insert(&req.id, Instant::now() + cache::REQUEST_LIFETIME);
        let url = match &self.key {
            Some(k) => req.signed_redirect("", k),
            None => req.redirect(""),
        }
        .map_err(|e| e.to_string())?
        .ok_or("the AuthnRequest has no destination")?;
        Ok(url.to_string())
    }

    /// Verifies a posted `SAMLResponse` (base64). CPU-bound: call it on
    /// the blocking pool.
    pub fn consume(&self, b64: &str) -> Result<Identity, Refusal> {
        if b64.len() > MAX_XML / 3 * 4 + 4 {
            return Err(Refusal::TooLarge);
        }
        use base64::Engine;
        let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| Refusal::Encoding)?;
        if bytes.len() > MAX_XML {
            return Err(Refusal::TooLarge);
        }
        let xml = String::from_utf8(bytes).map_err(|_| Refusal::Encoding)?;
        precheck::check(&xml, &self.acs_url)?;
        let live = self.requests.live();
        let ids: Vec<&str> = live.iter().map(String::as_str).collect();
        let assertion = {
            // One verification at a time: libxmlsec1's global state is
            // shared, and sign-ins are rare.
            let _one = VERIFY
                .lock()
                .map_err(|_| Refusal::Internal("lock".into()))?;
            let verdict = self.sp.parse_xml_response(&xml, Some(&ids));
            xmlsec_log::route_to_tracing();
            verdict.map_err(|e| match e {
                // Its text lists every live request id: not for logs.
                samael::service_provider::Error::AssertionInResponseToInvalid { .. }
                | samael::service_provider::Error::ResponseInResponseToInvalid { .. } => {
                    Refusal::InResponseTo
                }
                e => Refusal::Samael(e.to_string()),
            })?
        };
        self.after_samael(&assertion)
    }

    /// The checks samael does not make, on the verified assertion.
    fn after_samael(&self, a: &Assertion) -> Result<Identity, Refusal> {
        let audience_ok = a
            .conditions
            .as_ref()
            .and_then(|c| c.audience_restrictions.as_ref())
            .is_some_and(|rs| {
                !rs.is_empty()
                    && rs
                        .iter()
                        .all(|r| r.audience.contains(&self.settings.sp_entity_id))
            });
        if !audience_ok {
            return Err(Refusal::NoAudience);
        }
        let name_id = a
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .map(|n| n.value.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or(Refusal::NoNameId)?;
        let bearer = a
            .subject
            .as_ref()
            .and_then(|s| s.subject_confirmations.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| c.subject_confirmation_data.as_ref())
            .find(|d| d.recipient.as_deref() == Some(self.acs_url.as_str()));
        let expires = bearer
            .and_then(|d| d.not_on_or_after)
            .or_else(|| a.conditions.as_ref().and_then(|c| c.not_on_or_after))
            .ok_or(Refusal::NoExpiry)?;
        let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + MAX_SKEW;
        match bearer.and_then(|d| d.in_response_to.as_deref()) {
            Some(id) => {
                if !self.requests.take(id) {
                    return Err(Refusal::InResponseTo);
                }
            }
            None if self.settings.allow_idp_initiated => {}
            None => return Err(Refusal::InResponseTo),
        }
        if !self.used.insert(&a.id, Instant::now() + left) {
            return Err(Refusal::Replay);
        }
        Ok(Identity {
            role: self.role_of(a),
            name_id,
        })
    }

    /// The highest role any value of the role attribute maps to.
    fn role_of(&self, a: &Assertion) -> Option<Role> {
        a.attribute_statements
            .iter()
            .flatten()
            .flat_map(|s| s.attributes.iter())
            .filter(|at| at.name.as_deref() == Some(self.settings.role_attribute.as_str()))
            .flat_map(|at| at.values.iter())
            .filter_map(|v| v.value.as_deref())
            .filter_map(|v| self.settings.roles.get(v.trim()).copied())
            .max()
    }
}

#[cfg(test)]
mod tests;
