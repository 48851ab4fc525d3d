//! Errors of the core. Every user-reachable failure is a value, never a panic.

use thiserror::Error;

/// What can go wrong in the core.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// An option out of range or inconsistent with the others.
    #[error("invalid parameter: {0}")]
    Parameter(String),
    /// Audio that cannot be analysed (empty, non-finite, too short).
    #[error("invalid audio: {0}")]
    Audio(String),
    /// Model scores of the wrong shape or with non-finite values.
    #[error("invalid scores: {0}")]
    Scores(String),
    /// A call out of order in the ask/tell protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

pub(crate) fn param<T>(msg: impl Into<String>) -> Result<T> {
    Err(CoreError::Parameter(msg.into()))
}
