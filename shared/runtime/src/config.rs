//! Function configuration from the environment `template.yaml` sets. The local runner passes a
//! function's environment resolved from the template through the same reader, without
//! touching the process environment.

use std::ops::RangeInclusive;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Reads variables through a lookup; empty values count as unset.
pub struct Env<F>(F);

/// The process environment (what Lambda gives a function), as a lookup for `from_lookup`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env(lookup)
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A whole number, `default` when unset.
    pub fn number(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        self.number_in(name, default, 0..=u64::MAX)
    }

    /// A whole number within `range`, `default` when unset.
    pub fn number_in(
        &self,
        name: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(value) = self.optional(name) else {
            return Ok(default);
        };
        match value.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ if *range.end() == u64::MAX => Err(ConfigError::Invalid {
                name,
                reason: format!("`{value}` is not a whole number"),
            }),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "`{value}` is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }

    /// `true`/`1` or `false`/`0`; `false` when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.optional(name).as_deref().map(str::trim) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                name,
                reason: format!("`{v}` is not true or false"),
            }),
        }
    }
}

/// A lookup over fixed pairs (the configurations' tests in every crate use it).
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_names_bad_values() {
        let env = Env::new(lookup(&[
            ("A", "12"),
            ("B", " "),
            ("C", "x"),
            ("D", "TRUE"),
        ]));
        assert_eq!(env.number("A", 1).unwrap(), 12);
        assert_eq!(env.number("B", 7).unwrap(), 7, "blank is unset");
        assert!(env.number("C", 1).unwrap_err().to_string().contains("C"));
        assert!(
            env.number_in("A", 1, 1..=10)
                .unwrap_err()
                .to_string()
                .contains("1 to 10")
        );
        assert!(env.flag("D").unwrap());
        assert!(env.required("B").is_err());
    }
}
