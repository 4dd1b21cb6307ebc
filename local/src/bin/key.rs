//! `make key TENANT=<t> ROLE=<admin|editor|viewer> [NAME=<n>]`: issues an API key straight into
//! the auth table named by `AUTH_TABLE_NAME` (beside `TABLE_NAME`), through the usual AWS
//! environment (the Makefile points it at the local stack unless `TABLE_NAME` is already set).
//! The key alone is the last line printed.

use shared::app::Error;
use shared::context::{Api, Context, Stores};
use shared::domain::api_key::issue;
use shared::domain::tenant::{Role, TenantId};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let arg = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let tenant = TenantId::parse(&arg("TENANT").ok_or("TENANT is required")?).map_err(|e| format!("TENANT {e}"))?;
    let role = arg("ROLE").unwrap_or_else(|| "admin".into());
    let role = Role::parse(&role).ok_or(format!("ROLE must be one of {}", Role::NAMES))?;
    let name = arg("NAME").unwrap_or_else(|| format!("{} key", role.as_str()));
    let app = Api::from_sdk(&shared::context::load_aws_config().await)?;
    let issued = issue(&tenant, name, role, &shared::domain::now());
    app.store().create(&tenant, &issued.stored).await?;
    println!("issued {} key {} for tenant {tenant}:", role.as_str(), issued.stored.id);
    println!("{}", issued.key);
    Ok(())
}
