//! `[inspect]`: message checks and header repairs.

use super::error::ConfigErrors;
use super::load::File;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInspect {}

#[derive(Debug, Clone, Default)]
pub struct InspectConfig {}

pub(super) fn build(_files: &[File], _errors: &mut ConfigErrors) -> InspectConfig {
    InspectConfig::default()
}
