//! Entity-level span F1 for BIO tags (as conlleval / seqeval's default mode): a span starts at
//! `B-X`, or at `I-X` after a tag of another type or `O`, and continues over `I-X`.

/// True when every tag is `O` or `B-`/`I-` prefixed, and at least one is prefixed.
pub fn is_bio(tags: &[String]) -> bool {
    tags.iter()
        .all(|t| t == "O" || t.starts_with("B-") || t.starts_with("I-"))
        && tags.iter().any(|t| t != "O")
}

/// The (type, start, end) spans of a tag sequence.
pub fn spans(tags: &[&str]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) if p == "B" || p == "I" => (p, k),
            _ => ("O", ""),
        };
        let continues = prefix == "I" && current.as_ref().is_some_and(|(k, _)| k == kind);
        if !continues {
            if let Some((k, start)) = current.take() {
                out.push((k, start, i));
            }
            if prefix != "O" {
                current = Some((kind.to_string(), i));
            }
        }
    }
    if let Some((k, start)) = current {
        out.push((k, start, tags.len()));
    }
    out
}

/// Micro span F1 over (predicted, gold) tag sequences.
pub fn span_f1(sentences: &[(Vec<&str>, Vec<&str>)]) -> f64 {
    let (mut tp, mut predicted, mut gold) = (0usize, 0usize, 0usize);
    for (p, g) in sentences {
        let (ps, gs) = (spans(p), spans(g));
        tp += ps.iter().filter(|s| gs.contains(s)).count();
        predicted += ps.len();
        gold += gs.len();
    }
    if tp == 0 {
        0.0
    } else {
        2.0 * tp as f64 / (predicted + gold) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_conlleval() {
        let s = spans(&["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]);
        assert_eq!(
            s,
            vec![
                ("PER".into(), 0, 2),
                ("LOC".into(), 3, 4),
                ("LOC".into(), 4, 5),
                ("ORG".into(), 5, 6)
            ]
        );
        // gold: PER(0,2), LOC(3,4); predicted: PER(0,1), LOC(3,4) -> tp 1, 2 + 2 spans.
        let sentences = vec![(
            vec!["B-PER", "O", "O", "B-LOC"],
            vec!["B-PER", "I-PER", "O", "B-LOC"],
        )];
        assert!((span_f1(&sentences) - 0.5).abs() < 1e-12);
        assert!(is_bio(&["O".into(), "B-X".into()]) && !is_bio(&["NN".into(), "DT".into()]));
    }
}
