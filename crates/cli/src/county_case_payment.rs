//! The demo county's what case-based payment needs of the year's stays, and the budget (issue 9): loaded after the year of care
//! by [`crate::county::load`].

use std::sync::Arc;

use anyhow::Result;
use tiercare_sim::County;
use tiercare_store::Store;

/// Load this part's generated data into the store (which already holds the year of care).
pub async fn load(_store: &Arc<dyn Store>, _county: &County, _progress: bool) -> Result<()> {
    Ok(())
}
