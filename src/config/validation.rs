//! `[validation]`: recipient address and domain checks.

use super::error::ConfigErrors;
use super::load::File;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {}

#[derive(Debug, Clone, Default)]
pub struct ValidationConfig {}

pub(super) fn build(_files: &[File], _errors: &mut ConfigErrors) -> ValidationConfig {
    ValidationConfig::default()
}
