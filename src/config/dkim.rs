//! `[[dkim]]` signing keys and `[dkim_policy]`.

use super::error::ConfigErrors;
use super::load::File;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkimKey {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDkimPolicy {}

#[derive(Debug, Clone, Default)]
pub struct DkimConfig {}

pub(super) fn build(_files: &[File], _errors: &mut ConfigErrors) -> DkimConfig {
    DkimConfig::default()
}
