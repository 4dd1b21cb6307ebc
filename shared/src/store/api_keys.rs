//! API keys, in their tenant's partition.

use super::entity::Entity;
use crate::domain::api_key::ApiKey;

impl Entity for ApiKey {
    const KIND: &'static str = "KEY";
    fn id(&self) -> &str {
        self.id.as_str()
    }
}
