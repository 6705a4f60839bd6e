//! Hash-based dropout: the GPU mask equals the CPU hash bit for bit, about p of the elements
//! drop, kept ones scale by 1/(1-p), and the same seed gives the same mask (the backward).

use taskgate::ops::dropout::{dropout, keeps, site_seed};

use crate::common::*;

#[test]
fn mask_matches_the_cpu_hash_and_rate() {
    for &(n, p) in &[
        (1usize, 0.5f32),
        (1000, 0.1),
        (100_003, 0.25),
        (70_001, 0.0),
    ] {
        let x = uniform(&mut rng(n as u64), n, 0.5, 1.5);
        let seed = site_seed(7, 3, n as u64);
        let got = download(&dropout(&upload(&x, &[n]), p, seed).unwrap());
        let want: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if keeps(i as u32, seed, p) {
                    v as f64 / (1.0 - p as f64)
                } else {
                    0.0
                }
            })
            .collect();
        assert_close(&format!("dropout n{n} p{p}"), &got, &want, 1e-7, 1e-6);
        let dropped = got.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        if n >= 1000 {
            assert!(
                (dropped - p as f64).abs() < 0.02,
                "dropped {dropped} for p {p}"
            );
        }
        let again = download(&dropout(&upload(&x, &[n]), p, seed).unwrap());
        assert_eq!(got, again, "the same seed gives the same mask");
    }
    assert_ne!(site_seed(1, 0, 0), site_seed(1, 1, 0));
    assert_ne!(site_seed(1, 0, 0), site_seed(1, 0, 1));
    assert!(dropout(&upload(&[1.0], &[1]), 1.0, 0).is_err());
}
