//! Accuracy, macro-F1 and multiclass MCC from (predicted, gold) pairs; multilabel F1.

/// Fraction of pairs with predicted == gold (0 for no pairs).
pub fn accuracy(pairs: &[(usize, usize)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs.iter().filter(|(p, g)| p == g).count() as f64 / pairs.len() as f64
}

fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// The mean over classes of each class's F1 (as scikit-learn's `average="macro"`, over the
/// classes present in gold or predictions).
pub fn macro_f1(pairs: &[(usize, usize)], classes: usize) -> f64 {
    let mut tp = vec![0.0; classes];
    let mut fp = vec![0.0; classes];
    let mut fn_ = vec![0.0; classes];
    for &(p, g) in pairs {
        if p == g {
            tp[p] += 1.0;
        } else {
            fp[p] += 1.0;
            fn_[g] += 1.0;
        }
    }
    let present: Vec<usize> = (0..classes)
        .filter(|&c| tp[c] + fp[c] + fn_[c] > 0.0)
        .collect();
    if present.is_empty() {
        return 0.0;
    }
    present
        .iter()
        .map(|&c| f1(tp[c], fp[c], fn_[c]))
        .sum::<f64>()
        / present.len() as f64
}

/// Matthews correlation for K classes (Gorodkin 2004; scikit-learn's `matthews_corrcoef`):
/// (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)), 0 when undefined.
pub fn mcc(pairs: &[(usize, usize)], classes: usize) -> f64 {
    let mut predicted = vec![0.0; classes];
    let mut truth = vec![0.0; classes];
    let mut correct = 0.0;
    for &(p, g) in pairs {
        predicted[p] += 1.0;
        truth[g] += 1.0;
        if p == g {
            correct += 1.0;
        }
    }
    let s = pairs.len() as f64;
    let pt: f64 = predicted.iter().zip(&truth).map(|(p, t)| p * t).sum();
    let pp: f64 = predicted.iter().map(|p| p * p).sum();
    let tt: f64 = truth.iter().map(|t| t * t).sum();
    let denominator = ((s * s - pp) * (s * s - tt)).sqrt();
    if denominator == 0.0 {
        0.0
    } else {
        (correct * s - pt) / denominator
    }
}

/// (micro-F1, macro-F1) of multilabel predictions; macro averages over labels that occur in
/// gold or predictions.
pub fn multilabel_f1(sets: &[(Vec<bool>, Vec<bool>)]) -> (f64, f64) {
    let labels = sets.first().map_or(0, |(p, _)| p.len());
    let (mut tp, mut fp, mut fn_) = (vec![0.0; labels], vec![0.0; labels], vec![0.0; labels]);
    for (p, g) in sets {
        for l in 0..labels {
            match (p[l], g[l]) {
                (true, true) => tp[l] += 1.0,
                (true, false) => fp[l] += 1.0,
                (false, true) => fn_[l] += 1.0,
                _ => {}
            }
        }
    }
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let micro = f1(sum(&tp), sum(&fp), sum(&fn_));
    let present: Vec<usize> = (0..labels)
        .filter(|&l| tp[l] + fp[l] + fn_[l] > 0.0)
        .collect();
    let macro_ = if present.is_empty() {
        0.0
    } else {
        present
            .iter()
            .map(|&l| f1(tp[l], fp[l], fn_[l]))
            .sum::<f64>()
            / present.len() as f64
    };
    (micro, macro_)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from scikit-learn 1.x on the same lists (see each comment).
    const PAIRS: [(usize, usize); 8] = [
        (0, 0),
        (1, 0),
        (1, 1),
        (2, 1),
        (2, 2),
        (2, 2),
        (0, 2),
        (1, 1),
    ];

    #[test]
    fn matches_scikit_learn() {
        // y_true = [0,0,1,1,2,2,2,1], y_pred = [0,1,1,2,2,2,0,1]
        assert!((accuracy(&PAIRS) - 0.625).abs() < 1e-12);
        // f1_score(average="macro") = mean(0.5, 0.666.., 0.666..) = 0.6111..
        assert!(
            (macro_f1(&PAIRS, 3) - 0.611_111_111_111).abs() < 1e-9,
            "{}",
            macro_f1(&PAIRS, 3)
        );
        // matthews_corrcoef = (5 * 8 - 22) / sqrt((64 - 22)(64 - 22)) = 0.428571..
        assert!((mcc(&PAIRS, 3) - 18.0 / 42.0).abs() < 1e-12);
        assert!((mcc(&[(0, 0), (1, 1)], 2) - 1.0).abs() < 1e-12);
        assert_eq!(
            mcc(&[(0, 0), (0, 1)], 2),
            0.0,
            "constant predictions: MCC 0"
        );
    }

    #[test]
    fn multilabel_micro_and_macro() {
        let b = |v: [u8; 3]| v.map(|x| x == 1).to_vec();
        let sets = vec![(b([1, 0, 1]), b([1, 0, 0])), (b([0, 1, 0]), b([0, 1, 1]))];
        // tp 2, fp 1, fn 1 -> micro 4/6; per label F1: 1, 1, 0 -> macro 2/3.
        let (micro, macro_) = multilabel_f1(&sets);
        assert!((micro - 2.0 / 3.0).abs() < 1e-12 && (macro_ - 2.0 / 3.0).abs() < 1e-12);
    }
}
