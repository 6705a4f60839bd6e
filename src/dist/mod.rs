//! Data-parallel training's communication between ranks, behind one small trait: a
//! [`Collective`] sums gradients across ranks, broadcasts rank 0's bytes and ends the whole
//! job on an error. [`Single`] is the one-process world every build has; the MPI world
//! (`--features mpi`, [`mpi`]) is what `mpirun -np N taskgate train ...` gets. The sharding
//! arithmetic (which rows of a global batch a rank takes) lives here too, beside its tests.

#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(not(target_arch = "wasm32"))]
pub mod watchdog;

use std::ops::Range;
use std::rc::Rc;

use anyhow::Result;

/// The ranks of a job and their collectives. Every rank calls the same collectives in the
/// same order; the results are bit-identical on every rank.
pub trait Collective {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// How many ranks the job has.
    fn size(&self) -> usize;
    /// This process's rank among the ranks of its machine (which GPU it takes).
    fn local_rank(&self) -> usize;
    /// Sums `data` elementwise over the ranks, in place; every rank gets the same bits.
    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()>;
    /// Rank `root`'s `data` on every rank (the length travels too).
    fn broadcast_bytes(&self, root: usize, data: &mut Vec<u8>) -> Result<()>;
    /// [`Collective::broadcast_bytes`] without the time limit: where the other ranks wait
    /// for rank `root`'s own file work (reading a run directory, writing checkpoints), which
    /// may take long on slow storage; a rank that dies meanwhile still ends the job.
    fn broadcast_untimed(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        self.broadcast_bytes(root, data)
    }
    /// Ends every rank of the job with `code` (after this rank printed why).
    fn abort(&self, code: i32) -> !;
    /// What the job is, for the run's header line.
    fn describe(&self) -> String {
        format!("{} ranks", self.size())
    }
}

/// The one-process world: rank 0 of 1, every collective a no-op.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn all_reduce_sum(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast_bytes(&self, _: usize, _: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        "1 process".into()
    }
}

/// A shared handle on the job's collectives.
pub type Comm = Rc<dyn Collective>;

/// The one-process world's handle.
pub fn single() -> Comm {
    Rc::new(Single)
}

/// The rows of a global batch of `len` rows that `rank` of `size` takes: contiguous slices in
/// rank order, the first `len % size` ranks one row more than the others (a rank may get
/// none when `len < size`; it still joins every collective, with zero gradients).
pub fn shard_rows(len: usize, rank: usize, size: usize) -> Range<usize> {
    assert!(size > 0 && rank < size, "rank {rank} of {size}");
    let (base, extra) = (len / size, len % size);
    let start = rank * base + rank.min(extra);
    let end = start + base + usize::from(rank < extra);
    start..end
}

/// The job this process belongs to: the MPI world when an MPI launcher started it as one of
/// several ranks (`--features mpi`), else the one-process world. A build without MPI
/// started as one of several ranks is an error (N copies of one run would overwrite each
/// other's output).
#[cfg(not(target_arch = "wasm32"))]
pub fn world() -> Result<Comm> {
    match launcher_world_size() {
        None | Some(0) | Some(1) => Ok(single()),
        #[cfg(feature = "mpi")]
        Some(_) => Ok(Rc::new(mpi::MpiWorld::init()?)),
        #[cfg(not(feature = "mpi"))]
        Some(n) => anyhow::bail!(
            "an MPI launcher started this taskgate as one of {n} ranks, but it was built \
             without MPI: build it with `cargo build --release --features mpi` (an MPI \
             library and libclang needed), or run one process"
        ),
    }
}

/// The environment variables MPI launchers set in every rank they start (OpenMPI, MPICH and
/// Intel MPI through PMI, PMIx, Slurm's srun), and the world size each names.
pub fn launcher_world_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .find_map(|key| std::env::var(key).ok()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_at_most_one_row() {
        for len in [0, 1, 2, 3, 7, 16, 17] {
            for size in [1, 2, 3, 5] {
                let shards: Vec<_> = (0..size).map(|r| shard_rows(len, r, size)).collect();
                assert_eq!(shards[0].start, 0);
                assert_eq!(shards[size - 1].end, len);
                for pair in shards.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                    assert!(pair[0].len() >= pair[1].len());
                    assert!(pair[0].len() - pair[1].len() <= 1);
                }
            }
        }
        assert_eq!(shard_rows(7, 0, 2), 0..4);
        assert_eq!(shard_rows(7, 1, 2), 4..7);
        assert_eq!(shard_rows(1, 1, 2), 1..1);
    }

    #[test]
    fn the_single_world_is_rank_zero_of_one_and_leaves_data_alone() {
        let comm = single();
        assert_eq!((comm.rank(), comm.size(), comm.local_rank()), (0, 1, 0));
        let mut data = vec![1.5f32, -2.0];
        comm.all_reduce_sum(&mut data).unwrap();
        assert_eq!(data, [1.5, -2.0]);
    }
}
