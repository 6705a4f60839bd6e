//! Plain choices the configuration names, kept here (at the bottom of the layers) so that
//! the kernels' launchers can import them from the configuration and not the other way round.

use serde::{Deserialize, Serialize};

/// Hidden-layer activations the model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Gelu,
    Tanh,
}
