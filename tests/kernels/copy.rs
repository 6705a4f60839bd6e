//! Strided block copy (`ops::copy`) against a host copy: awkward sizes, overlapping
//! layouts of the key/value cache append, and blocks that do not fit.

use taskgate::ops::copy::{Block, copy_block};

use crate::common::*;

#[test]
fn block_copy_matches_host_copy() {
    // (rows, cols, src_ld, src_offset, dst_ld, dst_offset, dst_len)
    for &(rows, cols, sld, soff, dld, doff, dlen) in &[
        (1, 1, 1, 0, 1, 0, 1),
        (3, 5, 7, 2, 11, 4, 40),
        // the cache append: B = 2 rows of keys|values (2d = 8) from [B, 3d = 12] at column
        // d = 4, into row t = 2 of each sequence of a [B * 5, 8] cache.
        (2, 8, 12, 4, 40, 16, 80),
        (13, 257, 300, 17, 263, 1, 13 * 263 + 1),
    ] {
        let src: Vec<f32> = uniform(&mut rng(rows as u64), soff + rows * sld, -1.0, 1.0);
        let dst0 = vec![-7.0f32; dlen];
        let dst = upload(&dst0, &[dlen]);
        copy_block(
            &upload(&src, &[src.len()]),
            Block {
                ld: sld,
                offset: soff,
            },
            &dst,
            Block {
                ld: dld,
                offset: doff,
            },
            rows,
            cols,
        )
        .unwrap();
        let mut want = dst0.clone();
        for r in 0..rows {
            for c in 0..cols {
                want[doff + r * dld + c] = src[soff + r * sld + c];
            }
        }
        assert_eq!(download(&dst), want, "rows{rows} cols{cols}");
    }
}

#[test]
fn blocks_that_do_not_fit_are_refused() {
    let src = upload(&[0.0; 12], &[12]);
    let dst = upload(&[0.0; 12], &[12]);
    let at = |ld, offset| Block { ld, offset };
    assert!(copy_block(&src, at(4, 0), &dst, at(4, 1), 3, 4).is_err());
    assert!(copy_block(&src, at(3, 0), &dst, at(4, 0), 3, 4).is_err());
    assert!(copy_block(&src, at(4, 0), &dst, at(4, 0), 3, 4).is_ok());
}
