//! What each parameter trains at, from its name: frozen or not (`[train] freeze`, prefixes of
//! parameter names) and its learning-rate scale (`[train] layer_lr_decay`: the top encoder
//! layer 1, each layer below times the factor, the embeddings last, tasks 1). The optimizer
//! keeps no state for frozen parameters and the encoder's backward stops above the frozen
//! stages at its bottom (`frozen_below`).

use std::collections::HashSet;

use anyhow::{Result, bail};

use crate::model::spec::{Owner, ParamSpec};
use crate::nn::encoder::encoder_stage;

/// The freezing and learning-rate scales of one model's parameters.
#[derive(Clone, Debug)]
pub struct ParamPlan {
    frozen: HashSet<String>,
    /// Encoder layers (stages 0..=layers).
    layers: usize,
    layer_lr_decay: f64,
    /// The encoder stages below this one (embeddings 0, layer i at i + 1) hold only frozen
    /// parameters.
    pub frozen_below: usize,
}

impl ParamPlan {
    /// Every parameter trained at the base learning rate.
    pub fn all_trained() -> Self {
        Self {
            frozen: HashSet::new(),
            layers: 0,
            layer_lr_decay: 1.0,
            frozen_below: 0,
        }
    }

    /// The plan for `specs` (a model of `layers` encoder layers): `freeze` holds prefixes of
    /// parameter names, matched at dot boundaries (`encoder.layer.1` is not a prefix of
    /// `encoder.layer.10.*`), `encoder` standing for every encoder parameter; a prefix that
    /// names no parameter is an error naming it.
    pub fn resolve(
        specs: &[ParamSpec],
        layers: usize,
        freeze: &[String],
        layer_lr_decay: f64,
    ) -> Result<Self> {
        let mut frozen = HashSet::new();
        for (i, prefix) in freeze.iter().enumerate() {
            let prefix = prefix.trim().trim_end_matches('.');
            let matches = |spec: &ParamSpec| {
                if prefix == "encoder" {
                    return spec.owner == Owner::Encoder;
                }
                spec.name == prefix
                    || spec
                        .name
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('.'))
            };
            let mut named = false;
            for spec in specs.iter().filter(|s| matches(s)) {
                named = true;
                frozen.insert(spec.name.clone());
            }
            if !named {
                bail!(
                    "[train] freeze[{i}] = \"{prefix}\" names no parameter of this model; \
                     prefixes are \"encoder\", \"embeddings\", \"encoder.layer.N\" (N from 0 \
                     to {}), \"tasks.NAME\" or longer parameter names",
                    layers.saturating_sub(1)
                );
            }
        }
        let stage_frozen = |stage: usize| {
            specs
                .iter()
                .filter(|s| encoder_stage(&s.name) == Some(stage))
                .all(|s| frozen.contains(&s.name))
        };
        let frozen_below = (0..=layers)
            .take_while(|&stage| stage_frozen(stage))
            .count();
        Ok(Self {
            frozen,
            layers,
            layer_lr_decay,
            frozen_below,
        })
    }

    pub fn is_frozen(&self, name: &str) -> bool {
        self.frozen.contains(name)
    }

    /// Whether any parameter is frozen.
    pub fn any_frozen(&self) -> bool {
        !self.frozen.is_empty()
    }

    /// The factor on the learning rate of parameter `name`: `layer_lr_decay` to the power of
    /// its encoder stage's distance from the top layer (exactly 1 for tasks, and for every
    /// parameter when the decay is 1).
    pub fn lr_scale(&self, name: &str) -> f64 {
        match encoder_stage(name) {
            Some(stage) if self.layer_lr_decay != 1.0 => self
                .layer_lr_decay
                .powi((self.layers.saturating_sub(stage)) as i32),
            _ => 1.0,
        }
    }

    /// One line for the run's header: how many parameters are frozen, where the backward
    /// stops, and the layer decay.
    pub fn describe(&self, specs: &[ParamSpec], layer_lr_decay: f64) -> String {
        let total: usize = specs.iter().map(ParamSpec::numel).sum();
        let frozen: usize = specs
            .iter()
            .filter(|s| self.is_frozen(&s.name))
            .map(ParamSpec::numel)
            .sum();
        let mut line = format!(
            "frozen: {frozen} of {total} parameters ({} tensors)",
            self.frozen.len()
        );
        if self.encoder_frozen() {
            line.push_str("; the encoder is frozen: no backward through it");
        } else if self.frozen_below > 0 {
            line.push_str(&format!(
                "; the backward stops above {}",
                if self.frozen_below == 1 {
                    "the embeddings".to_string()
                } else {
                    format!("encoder.layer.{}", self.frozen_below - 2)
                }
            ));
        }
        if layer_lr_decay != 1.0 {
            line.push_str(&format!(
                "; layer_lr_decay {layer_lr_decay}: the embeddings train at {:.4} x lr",
                layer_lr_decay.powi(self.layers as i32)
            ));
        }
        line
    }

    /// Whether every encoder parameter is frozen.
    pub fn encoder_frozen(&self) -> bool {
        self.frozen_below > self.layers
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::spec::ModelSpec;
    use crate::nn::encoder::EncoderDims;
    use crate::tasks::{TaskKind, TaskSpec};

    /// The parameters of a small one-task model with `layers` encoder layers.
    pub(crate) fn specs(layers: usize) -> Vec<ParamSpec> {
        let mut task = TaskSpec::new("sentiment", TaskKind::CLASSIFICATION);
        task.labels = Some(vec!["neg".into(), "pos".into()]);
        ModelSpec {
            encoder: EncoderDims {
                vocab_size: 20,
                hidden: 8,
                layers,
                heads: 2,
                intermediate: 16,
                max_positions: 12,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                dropout: 0.0,
                attention_dropout: 0.0,
                seed: 0,
                max_length: 12,
            },
            tasks: vec![task],
        }
        .param_specs()
    }

    fn plan(freeze: &[&str], decay: f64) -> Result<ParamPlan> {
        let freeze: Vec<String> = freeze.iter().map(|s| s.to_string()).collect();
        ParamPlan::resolve(&specs(12), 12, &freeze, decay)
    }

    #[test]
    fn prefixes_match_at_dot_boundaries_and_encoder_means_all_of_it() {
        let p = plan(&["encoder.layer.1"], 1.0).unwrap();
        assert!(p.is_frozen("encoder.layer.1.attention.self.query.weight"));
        assert!(!p.is_frozen("encoder.layer.10.attention.self.query.weight"));
        assert!(!p.is_frozen("encoder.layer.11.output.dense.bias"));
        assert_eq!(
            p.frozen_below, 0,
            "the embeddings train: the backward goes all the way"
        );

        let p = plan(&["encoder"], 1.0).unwrap();
        for s in specs(12) {
            assert_eq!(
                p.is_frozen(&s.name),
                s.owner == Owner::Encoder,
                "{}",
                s.name
            );
        }
        assert_eq!(p.frozen_below, 13);
        assert!(p.encoder_frozen());

        let p = plan(&["tasks.sentiment"], 1.0).unwrap();
        assert!(p.is_frozen("tasks.sentiment.gate.weight"));
        assert!(!p.is_frozen("embeddings.word_embeddings.weight"));
        assert_eq!(p.frozen_below, 0);
    }

    #[test]
    fn the_backward_stops_above_the_frozen_bottom() {
        let p = plan(&["embeddings", "encoder.layer.0", "encoder.layer.1"], 1.0).unwrap();
        assert_eq!(p.frozen_below, 3);
        // A frozen layer above a trained one is passed through, not a stop.
        let p = plan(&["embeddings", "encoder.layer.1"], 1.0).unwrap();
        assert_eq!(p.frozen_below, 1);
        // Part of a layer frozen: that layer still needs its backward.
        let p = plan(&["embeddings", "encoder.layer.0.attention"], 1.0).unwrap();
        assert_eq!(p.frozen_below, 1);
    }

    #[test]
    fn a_prefix_that_names_nothing_is_an_error_naming_it() {
        for bad in ["encoder.layer.12", "tasks.topic", "encoder.lay", "decoder"] {
            let err = plan(&["embeddings", bad], 1.0).unwrap_err().to_string();
            assert!(err.contains(&format!("freeze[1] = \"{bad}\"")), "{err}");
            assert!(err.contains("0 to 11"), "{err}");
        }
    }

    #[test]
    fn layer_decay_scales_from_the_top_layer_down_to_the_embeddings() {
        let p = plan(&[], 0.5).unwrap();
        assert_eq!(p.lr_scale("encoder.layer.11.output.dense.weight"), 1.0);
        assert_eq!(p.lr_scale("encoder.layer.10.output.dense.weight"), 0.5);
        assert_eq!(
            p.lr_scale("encoder.layer.0.output.dense.weight"),
            0.5f64.powi(11)
        );
        assert_eq!(
            p.lr_scale("embeddings.word_embeddings.weight"),
            0.5f64.powi(12)
        );
        assert_eq!(p.lr_scale("tasks.sentiment.gate.weight"), 1.0);
        let p = plan(&[], 1.0).unwrap();
        assert_eq!(p.lr_scale("embeddings.word_embeddings.weight"), 1.0);
    }
}
