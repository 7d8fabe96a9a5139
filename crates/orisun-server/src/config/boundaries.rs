//! Owns `ORISUN_BOUNDARIES`: the boundaries declared for creation at start-up, as a JSON list.

use super::ConfigError;
use clap::Args;
use orisun_core::BoundaryName;
use serde::Deserialize;

/// A boundary declared in `ORISUN_BOUNDARIES`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BoundaryDef {
    /// The boundary's name (an identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 characters).
    #[serde(deserialize_with = "de_boundary")]
    pub name: BoundaryName,
    /// Free text shown to operators.
    #[serde(default)]
    pub description: String,
}

/// The parsed `ORISUN_BOUNDARIES` list (a newtype so clap takes the JSON as one value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundaryList(pub Vec<BoundaryDef>);

/// The declared-boundaries section of the configuration.
#[derive(Debug, Clone, Args)]
pub struct BoundariesSection {
    /// Boundaries to create at start-up, as a JSON list: `[{"name":"orders","description":"..."}]`.
    #[arg(long, env = "ORISUN_BOUNDARIES", value_name = "ORISUN_BOUNDARIES", default_value = "[]", value_parser = parse_boundaries, help_heading = "Boundaries and users")]
    pub boundaries: BoundaryList,
}

impl BoundariesSection {
    /// Returns the declared boundaries, in the order of `ORISUN_BOUNDARIES`.
    pub fn declared(&self) -> &[BoundaryDef] {
        &self.boundaries.0
    }

    /// Returns the description `ORISUN_BOUNDARIES` gives `boundary` (empty when it gives none or
    /// does not list it).
    pub fn description_of(&self, boundary: &BoundaryName) -> String {
        self.declared()
            .iter()
            .find(|b| &b.name == boundary)
            .map(|b| b.description.clone())
            .unwrap_or_default()
    }

    /// Checks the rules of this section that clap cannot: no boundary is listed twice.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<&BoundaryName> = Vec::new();
        for b in self.declared() {
            if seen.contains(&&b.name) {
                return Err(ConfigError::new(
                    "ORISUN_BOUNDARIES",
                    format!("boundary {} is listed twice", b.name),
                ));
            }
            seen.push(&b.name);
        }
        Ok(())
    }
}

fn de_boundary<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BoundaryName, D::Error> {
    let name = String::deserialize(d)?;
    BoundaryName::new(name).map_err(serde::de::Error::custom)
}

fn parse_boundaries(text: &str) -> Result<BoundaryList, String> {
    if text.trim().is_empty() {
        return Ok(BoundaryList::default());
    }
    serde_json::from_str::<Vec<BoundaryDef>>(text)
        .map(BoundaryList)
        .map_err(|e| {
            format!(r#"expected a JSON list like [{{"name":"orders","description":"..."}}]: {e}"#)
        })
}
