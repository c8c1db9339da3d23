//! A field of a PATCH body, where leaving a field out and sending `null` mean different
//! things: absent keeps the value, null clears it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One field of a PATCH body. Declare it `#[serde(default, skip_serializing_if =
/// "Patch::is_absent")]`: serde calls `Deserialize` only for a key that is present, so a
/// missing key stays [`Patch::Absent`].
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// The key was not sent: keep the value.
    #[default]
    Absent,
    /// The key was sent as `null`.
    Null,
    /// The key was sent with a value.
    Value(T),
}

impl<T> Patch<T> {
    /// Whether the key was left out.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// `None` when absent, `Some(None)` for null, `Some(Some(value))` for a value.
    #[allow(
        clippy::option_option,
        reason = "absent, null and a value are three different PATCH intents"
    )]
    pub fn as_option(&self) -> Option<Option<&T>> {
        match self {
            Self::Absent => None,
            Self::Null => Some(None),
            Self::Value(value) => Some(Some(value)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(deserializer)?.map_or(Self::Null, Self::Value))
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Skipped by `skip_serializing_if`; a bare Absent can only be spelled as null.
            Self::Absent | Self::Null => serializer.serialize_none(),
            Self::Value(value) => value.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::Patch;

    #[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
    struct Body {
        #[serde(default, skip_serializing_if = "Patch::is_absent")]
        role: Patch<String>,
    }

    #[test]
    fn absent_null_and_a_value_differ() {
        let read = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.role);
        assert_eq!(read("{}").ok(), Some(Patch::Absent));
        assert_eq!(read(r#"{"role":null}"#).ok(), Some(Patch::Null));
        assert_eq!(
            read(r#"{"role":"lead"}"#).ok(),
            Some(Patch::Value("lead".to_owned()))
        );
        assert!(read(r#"{"role":5}"#).is_err());
    }

    #[test]
    fn serializes_back_as_it_came() {
        for json in ["{}", r#"{"role":null}"#, r#"{"role":"lead"}"#] {
            let body: Body = serde_json::from_str(json).expect("valid");
            assert_eq!(serde_json::to_string(&body).expect("serializes"), json);
        }
    }
}
