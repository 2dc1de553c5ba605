//! Parameter declarations, written once per agent, that drive both the
//! parsing of `OCF_RESKEY_*` and the meta-data and man page.

use crate::{OcfError, Result};
use std::collections::BTreeMap;

/// The content types that both ra-api-1.dtd (which ocf-tester checks) and the
/// OCF 1.1 RelaxNG schema accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

/// One resource parameter, as the operator sets it with `pcs resource create ... name=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamType,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    /// The value used when the operator sets none (or sets it empty).
    pub default: Option<&'static str>,
    pub required: bool,
    /// No two resources in the cluster may share the value (OCF `unique`).
    pub unique: bool,
    /// The only values allowed, for an enumerated parameter (see
    /// [`Param::choice`]).
    pub choices: Option<&'static [&'static str]>,
}

impl Param {
    pub const fn new(name: &'static str, kind: ParamType) -> Self {
        Param {
            name,
            kind,
            shortdesc: "",
            longdesc: "",
            default: None,
            required: false,
            unique: false,
            choices: None,
        }
    }

    pub const fn string(name: &'static str) -> Self {
        Self::new(name, ParamType::String)
    }

    pub const fn integer(name: &'static str) -> Self {
        Self::new(name, ParamType::Integer)
    }

    pub const fn boolean(name: &'static str) -> Self {
        Self::new(name, ParamType::Boolean)
    }

    /// A parameter that takes one of `values`, checked when parsed and
    /// listed in the meta-data's description. ra-api-1.dtd (which ocf-tester
    /// validates against) knows no `select` content type, so the meta-data
    /// declares it a string; OCF 1.1's `<content type="select">` with one
    /// `<option>` each would let pcs check the value at create time.
    pub const fn choice(name: &'static str, values: &'static [&'static str]) -> Self {
        let mut p = Self::new(name, ParamType::String);
        p.choices = Some(values);
        p
    }

    pub const fn short(mut self, text: &'static str) -> Self {
        self.shortdesc = text;
        self
    }

    pub const fn long(mut self, text: &'static str) -> Self {
        self.longdesc = text;
        self
    }

    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The long description as meta-data and man page show it: with the
    /// allowed values of an enumerated parameter.
    pub fn description(&self) -> String {
        match self.choices {
            Some(values) => format!("{} Allowed values: {}.", self.longdesc, values.join(", ")),
            None => self.longdesc.to_string(),
        }
    }

    pub fn env_name(&self) -> String {
        format!("OCF_RESKEY_{}", self.name)
    }
}

/// A parsed, type-checked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    Integer(i64),
    Boolean(bool),
}

/// The values of all declared parameters, each checked against its type.
///
/// Agents turn this into their own typed configuration once; no action reads
/// `OCF_RESKEY_*` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    /// Reads every declared parameter from the process environment.
    pub fn from_env(decls: &[Param]) -> Result<Params> {
        Self::parse_checked(decls, crate::env::var)
    }

    /// Parses parameters with `lookup` standing in for the environment.
    pub fn parse(decls: &[Param], lookup: impl Fn(&str) -> Option<String>) -> Result<Params> {
        Self::parse_checked(decls, |name| Ok(lookup(name)))
    }

    /// Parses `(name, value)` pairs given by parameter name (`pgdata`, not
    /// `OCF_RESKEY_pgdata`): for tests and tools that build a
    /// configuration without an environment.
    pub fn from_pairs(decls: &[Param], pairs: &[(&str, &str)]) -> Result<Params> {
        Self::parse(decls, |env_name| {
            let name = env_name.strip_prefix("OCF_RESKEY_")?;
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// Like [`Params::parse`], with a lookup that may fail (a value that is
    /// not UTF-8).
    pub fn parse_checked(
        decls: &[Param],
        lookup: impl Fn(&str) -> Result<Option<String>>,
    ) -> Result<Params> {
        let mut values = BTreeMap::new();
        for decl in decls {
            // Pacemaker passes a parameter set to "" as an empty variable; an
            // empty value means "not set" for every parameter of ours.
            let raw = lookup(&decl.env_name())
                .map_err(|e| e.context(format!("parameter {}", decl.name)))?
                .filter(|v| !v.is_empty());
            let raw = match (raw, decl.default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) if decl.required => {
                    return Err(OcfError::configured(format!(
                        "required parameter {} is not set",
                        decl.name
                    )))
                }
                (None, None) => continue,
            };
            values.insert(decl.name, parse_value(decl, &raw)?);
        }
        Ok(Params { values })
    }

    fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A string parameter, or `None` when it is unset and has no default.
    ///
    /// Asking for an undeclared name or a parameter of another type is a
    /// programming error of the agent and panics, so tests catch it.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Value::String(s)) => Some(s),
            None => None,
            Some(other) => panic!("parameter {name} is {other:?}, not a string"),
        }
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.value(name) {
            Some(Value::Integer(i)) => Some(*i),
            None => None,
            Some(other) => panic!("parameter {name} is {other:?}, not an integer"),
        }
    }

    /// An enumerated parameter's value: always one of its choices.
    pub fn choice(&self, name: &str) -> Option<&str> {
        self.string(name)
    }

    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.value(name) {
            Some(Value::Boolean(b)) => Some(*b),
            None => None,
            Some(other) => panic!("parameter {name} is {other:?}, not a boolean"),
        }
    }
}

fn parse_value(decl: &Param, raw: &str) -> Result<Value> {
    let bad = |what: &str| {
        OcfError::configured(format!("parameter {}: '{raw}' is not {what}", decl.name))
    };
    if let Some(choices) = decl.choices {
        return match choices.iter().find(|c| **c == raw.trim()) {
            Some(c) => Ok(Value::String(c.to_string())),
            None => Err(bad(&format!("one of {}", choices.join(", ")))),
        };
    }
    match decl.kind {
        ParamType::String => Ok(Value::String(raw.to_string())),
        ParamType::Integer => raw
            .trim()
            .parse()
            .map(Value::Integer)
            .map_err(|_| bad("an integer")),
        ParamType::Boolean => parse_bool(raw)
            .map(Value::Boolean)
            .ok_or_else(|| bad("a boolean (true/false, yes/no, on/off, 1/0)")),
    }
}

/// The spellings Pacemaker's `crm_is_true` accepts.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    const DECLS: &[Param] = &[
        Param::string("pgdata").required(),
        Param::integer("pgport").default("5432"),
        Param::boolean("debug").default("false"),
        Param::string("start_opts"),
        Param::choice("sync", &["off", "available", "strict"]).default("available"),
    ];

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_fill_unset_and_empty_values() {
        let p = Params::parse(DECLS, env(&[("pgdata", "/d"), ("pgport", "")])).unwrap();
        assert_eq!(p.string("pgdata"), Some("/d"));
        assert_eq!(p.integer("pgport"), Some(5432));
        assert_eq!(p.boolean("debug"), Some(false));
        assert_eq!(p.string("start_opts"), None);
    }

    #[test]
    fn pairs_are_given_by_parameter_name() {
        let p = Params::from_pairs(DECLS, &[("pgdata", "/d"), ("OCF_RESKEY_pgport", "1")]).unwrap();
        assert_eq!(p.string("pgdata"), Some("/d"));
        assert_eq!(
            p.integer("pgport"),
            Some(5432),
            "a prefixed name is no parameter"
        );
    }

    #[test]
    fn a_missing_required_parameter_is_a_configuration_error() {
        let e = Params::parse(DECLS, env(&[])).unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert!(e.reason().contains("pgdata"), "{}", e.reason());
    }

    #[test]
    fn a_bad_integer_names_the_parameter_and_the_value() {
        let e = Params::parse(DECLS, env(&[("pgdata", "/d"), ("pgport", "54x2")])).unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert_eq!(e.reason(), "parameter pgport: '54x2' is not an integer");
    }

    #[test]
    fn booleans_accept_pacemaker_spellings_only() {
        for (raw, want) in [("yes", true), ("On", true), ("0", false), ("false", false)] {
            let p = Params::parse(DECLS, env(&[("pgdata", "/d"), ("debug", raw)])).unwrap();
            assert_eq!(p.boolean("debug"), Some(want), "{raw}");
        }
        let e = Params::parse(DECLS, env(&[("pgdata", "/d"), ("debug", "maybe")])).unwrap_err();
        assert!(
            e.reason().contains("'maybe' is not a boolean"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn enumerated_values_are_checked_when_parsed() {
        let p = Params::parse(DECLS, env(&[("pgdata", "/d"), ("sync", " strict ")])).unwrap();
        assert_eq!(p.choice("sync"), Some("strict"));
        let p = Params::parse(DECLS, env(&[("pgdata", "/d")])).unwrap();
        assert_eq!(p.choice("sync"), Some("available"));
        let e = Params::parse(DECLS, env(&[("pgdata", "/d"), ("sync", "on")])).unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert_eq!(
            e.reason(),
            "parameter sync: 'on' is not one of off, available, strict"
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_not_a_default() {
        let e = Params::parse_checked(DECLS, |name| {
            if name == "OCF_RESKEY_pgport" {
                crate::env::decode(name, std::ffi::OsString::from_vec(vec![b'5', 0xff]))
            } else {
                Ok((name == "OCF_RESKEY_pgdata").then(|| "/d".to_string()))
            }
        })
        .unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert!(
            e.reason().contains("pgport") && e.reason().contains("UTF-8"),
            "{}",
            e.reason()
        );
    }

    #[test]
    #[should_panic(expected = "not a string")]
    fn asking_for_the_wrong_type_is_a_programming_error() {
        let p = Params::parse(DECLS, env(&[("pgdata", "/d")])).unwrap();
        p.string("pgport");
    }
}
