//! Reading request bodies field by field, collecting Pulp-style field errors
//! (`{"field": ["message"]}`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ApiError;

pub struct Input {
    map: Map<String, Value>,
    pub errors: BTreeMap<String, Vec<String>>,
    /// PATCH: nothing is required.
    pub partial: bool,
}

pub const REQUIRED: &str = "This field is required.";
pub const NOT_NULL: &str = "This field may not be null.";

impl Input {
    /// Parses a JSON object body; an empty body is an empty object.
    pub fn parse(body: &[u8], partial: bool) -> Result<Self, ApiError> {
        let map = if body.iter().all(|b| b.is_ascii_whitespace()) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(ApiError::detail(
                        400,
                        "Invalid data. Expected a dictionary, but got something else.",
                    ))
                }
                Err(e) => return Err(ApiError::detail(400, format!("JSON parse error - {e}"))),
            }
        };
        Ok(Input {
            map,
            errors: BTreeMap::new(),
            partial,
        })
    }

    pub fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub fn err(&mut self, k: &str, msg: impl Into<String>) {
        self.errors.entry(k.to_owned()).or_default().push(msg.into());
    }

    fn missing(&mut self, k: &str, required: bool) {
        if required && !self.partial {
            self.err(k, REQUIRED);
        }
    }

    /// A non-null string (required unless partial).
    pub fn string(&mut self, k: &str, required: bool) -> Option<String> {
        match self.map.get(k).cloned() {
            None => {
                self.missing(k, required);
                None
            }
            Some(Value::String(s)) => {
                if required && s.is_empty() {
                    self.err(k, "This field may not be blank.");
                    return None;
                }
                Some(s)
            }
            Some(Value::Null) => {
                self.err(k, NOT_NULL);
                None
            }
            Some(_) => {
                self.err(k, "Not a valid string.");
                None
            }
        }
    }

    /// A nullable string: `None` when absent, `Some(None)` for null (and for "" when
    /// `blank_is_null`).
    pub fn opt_string(&mut self, k: &str, blank_is_null: bool) -> Option<Option<String>> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if blank_is_null && s.is_empty() => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.err(k, "Not a valid string.");
                None
            }
        }
    }

    pub fn boolean(&mut self, k: &str) -> Option<bool> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "True" | "1") => Some(true),
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "False" | "0") => Some(false),
            Some(Value::Null) => {
                self.err(k, NOT_NULL);
                None
            }
            Some(_) => {
                self.err(k, "Must be a valid boolean.");
                None
            }
        }
    }

    /// A nullable integer of at least `min`.
    pub fn opt_uint(&mut self, k: &str, min: u64) -> Option<Option<u64>> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) if v >= min => Some(Some(v)),
                _ => {
                    self.err(k, format!("Ensure this value is greater than or equal to {min}."));
                    None
                }
            },
            Some(_) => {
                self.err(k, "A valid integer is required.");
                None
            }
        }
    }

    /// A nullable non-negative number.
    pub fn opt_float(&mut self, k: &str) -> Option<Option<f64>> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v >= 0.0 => Some(Some(v)),
                _ => {
                    self.err(k, "Ensure this value is greater than or equal to 0.0.");
                    None
                }
            },
            Some(_) => {
                self.err(k, "A valid number is required.");
                None
            }
        }
    }

    /// A nullable list of strings.
    pub fn opt_str_list(&mut self, k: &str) -> Option<Option<Vec<String>>> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for i in items {
                    match i {
                        Value::String(s) => out.push(s),
                        _ => {
                            self.err(k, "Not a valid string.");
                            return None;
                        }
                    }
                }
                Some(Some(out))
            }
            Some(v) => {
                self.err(
                    k,
                    format!("Expected a list of items but got type \"{}\".", type_name(&v)),
                );
                None
            }
        }
    }

    /// `pulp_labels`: an object of strings.
    pub fn labels(&mut self, k: &str) -> Option<BTreeMap<String, String>> {
        match self.map.get(k).cloned() {
            None => None,
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (lk, lv) in m {
                    match lv {
                        Value::String(s) => {
                            out.insert(lk, s);
                        }
                        _ => {
                            self.err(k, "Label values must be strings.");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(Value::Null) => {
                self.err(k, NOT_NULL);
                None
            }
            Some(_) => {
                self.err(k, "Expected a dictionary of items.");
                None
            }
        }
    }

    /// Any JSON value (for pass-through fields).
    pub fn raw(&self, k: &str) -> Option<Value> {
        self.map.get(k).cloned()
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self.errors))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}
