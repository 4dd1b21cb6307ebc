//! Identifiers: a kind prefix and a UUIDv7 in hex (`pipe_0190…`), so that ids sort by creation
//! time (lists come out oldest first) and an id of one kind is never mistaken for another.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Accepts exactly what `generate` makes.
            pub fn parse(s: &str) -> Option<Self> {
                let hex = s.strip_prefix(concat!($prefix, "_"))?;
                let well_formed = hex.len() == 32
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                well_formed.then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("not a {} id: {s}", $prefix))
                })
            }
        }
    };
}

id_type!(PipelineId, "pipe");
id_type!(ConnectorId, "conn");
id_type!(SchemaId, "schema");
id_type!(RunId, "run");
id_type!(ApiKeyId, "key");
id_type!(NodeId, "node");
id_type!(EdgeId, "edge");
id_type!(BackfillId, "bf");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_sort_by_time() {
        let a = PipelineId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = PipelineId::generate();
        assert_eq!(PipelineId::parse(a.as_str()), Some(a.clone()));
        assert!(a < b);
    }

    #[test]
    fn parse_rejects_other_kinds_and_malformed_ids() {
        let conn = ConnectorId::generate();
        assert_eq!(PipelineId::parse(conn.as_str()), None);
        for bad in ["", "pipe_", "pipe_XYZ", "pipe_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b", "PIPE_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4"] {
            assert_eq!(PipelineId::parse(bad), None, "{bad}");
        }
        assert!(PipelineId::parse("pipe_0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4").is_some());
    }
}
