//! Pearson and Spearman correlation and mean squared error of (predicted, gold) pairs.

/// Pearson's r (0 when either side is constant or there are fewer than 2 pairs).
pub fn pearson(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len() as f64;
    if pairs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Ranks from 1, ties getting their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's rho: Pearson's r of the ranks.
pub fn spearman(pairs: &[(f64, f64)]) -> f64 {
    let xs = ranks(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let ys = ranks(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    pearson(&xs.into_iter().zip(ys).collect::<Vec<_>>())
}

pub fn mse(pairs: &[(f64, f64)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs.iter().map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / pairs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scipy() {
        // scipy.stats.pearsonr([1,2,3,4,5],[2,1,4,3,5]) = 0.8; spearmanr = 0.8.
        let pairs: Vec<(f64, f64)> = [(1., 2.), (2., 1.), (3., 4.), (4., 3.), (5., 5.)].to_vec();
        assert!((pearson(&pairs) - 0.8).abs() < 1e-12);
        assert!((spearman(&pairs) - 0.8).abs() < 1e-12);
        assert!((mse(&pairs) - 0.8).abs() < 1e-12);
        // Ties: spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138.
        let ties = [(1., 1.), (2., 3.), (2., 2.), (3., 4.)];
        assert!((spearman(&ties) - 0.948_683_298_050_513_8).abs() < 1e-12);
        assert_eq!(pearson(&[(1., 1.), (1., 2.)]), 0.0);
    }
}
