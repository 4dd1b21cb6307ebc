//! The execution engine: what a run does with records.
//!
//! The worker checks a pipeline's graph into a [`plan::Plan`] and hands the run to an
//! [`job::Engine`], which reports through [`job::Control`] at every batch boundary (heartbeat and
//! cancellation) and returns a [`job::Report`] or a [`job::RunFailure`].

pub mod coerce;
pub mod decode;
pub mod dedupe;
pub mod execute;
pub mod filter;
pub mod job;
pub mod plan;
pub mod preview;
pub mod record;
pub mod sink;
pub mod source;
pub mod transform;
