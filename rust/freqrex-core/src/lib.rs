//! freqrex-core: causal responsibility over the frequency space of audio.
//!
//! * [`space`]: the real-FFT and STFT decompositions of a clip and batch
//!   resynthesis of masked mutants.
//! * [`search`]: responsibility by iterative random partition refinement.
//! * [`extract`]: sufficient, sufficient-and-necessary and complete sets.
//! * [`engine`]: both as one ask/tell loop driven by the caller's model.

pub mod engine;
pub mod error;
pub mod extract;
pub mod geometry;
pub mod limits;
pub mod partition;
pub mod rng;
pub mod search;
pub mod space;

pub use engine::{outcome, plateau_ends, rank, rank_by, search_share, Engine, Phase};
pub use error::{CoreError, Result};
pub use extract::{ExtractOptions, Probe, Sets};
pub use partition::CutScale;
pub use search::{Outcome, Rule, SearchOptions, SearchStats};
pub use space::{FrequencySpace, SpaceKind};
