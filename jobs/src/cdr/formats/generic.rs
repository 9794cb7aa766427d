//! CSV with a header row naming this API's fields; any other column goes to `extra`.

use super::local_time;
use chrono_tz::Tz;
use serde_json::{Map, Value};

const TIME_FIELDS: [&str; 3] = ["start_time", "answer_time", "end_time"];

pub fn header(names: &[String]) -> Result<Vec<String>, String> {
    let names: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err("the header row has an empty column name".into());
    }
    Ok(names)
}

pub fn record(names: &[String], fields: &[String], tz: Tz) -> Result<Value, String> {
    if fields.len() != names.len() {
        return Err(format!("expected {} columns as in the header, found {}", names.len(), fields.len()));
    }
    let mut obj = Map::new();
    for (name, value) in names.iter().zip(fields) {
        let value = value.trim();
        if value.is_empty() {
            // An empty calling number is a withheld caller, not a missing column.
            if name == "src_number" {
                obj.insert(name.clone(), Value::String(String::new()));
            }
            continue;
        }
        if TIME_FIELDS.contains(&name.as_str()) {
            if let Some(t) = local_time(value, name, tz)? {
                obj.insert(name.clone(), t);
            }
        } else {
            obj.insert(name.clone(), Value::String(value.to_string()));
        }
    }
    Ok(Value::Object(obj))
}
