//! The MPI world (`--features mpi`, through rsmpi): the ranks `mpirun` started. Sums are a
//! reduce to rank 0 and a broadcast of the result, so every rank gets the same bits
//! whatever algorithm the MPI library picks (an all-reduce may round differently per rank);
//! large buffers go in buckets of [`BUCKET`] elements (MPI counts are 32-bit). Every
//! collective runs under the [`watchdog`](super::watchdog)'s time limit.

use std::time::Duration;

use anyhow::{Result, bail};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Root};

use super::Collective;
use super::watchdog::{Deadline, timeout_from_env};

/// Elements per reduce (16 MiB of f32).
pub const BUCKET: usize = 4 << 20;

pub struct MpiWorld {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    timeout: Duration,
    /// Finalizes MPI when dropped: kept for the process's life.
    _universe: Universe,
}

impl MpiWorld {
    /// Initializes MPI (once per process) and reads this rank's place in the world and on
    /// its machine.
    pub fn init() -> Result<Self> {
        let timeout = timeout_from_env()?;
        let Some(universe) = mpi::initialize() else {
            bail!("MPI was initialized twice in one process");
        };
        let world = universe.world();
        let local = world.split_shared(world.rank());
        Ok(Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            local_rank: local.rank() as usize,
            world,
            timeout,
            _universe: universe,
        })
    }

    fn guard(&self, what: &str) -> Deadline {
        Deadline::start(self.rank, what, self.timeout)
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn all_reduce_sum(&self, data: &mut [f32]) -> Result<()> {
        let _deadline = self.guard("the gradient sum (MPI reduce and broadcast)");
        let root = self.world.process_at_rank(0);
        let mut sum = vec![0.0f32; BUCKET.min(data.len())];
        for chunk in data.chunks_mut(BUCKET) {
            if self.rank == 0 {
                let sum = &mut sum[..chunk.len()];
                root.reduce_into_root(&*chunk, sum, SystemOperation::sum());
                chunk.copy_from_slice(sum);
            } else {
                root.reduce_into(&*chunk, SystemOperation::sum());
            }
            root.broadcast_into(chunk);
        }
        Ok(())
    }

    fn broadcast_bytes(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        let _deadline = self.guard("a broadcast from rank 0");
        self.broadcast_untimed(root, data)
    }

    fn broadcast_untimed(&self, root: usize, data: &mut Vec<u8>) -> Result<()> {
        let from = self.world.process_at_rank(root as i32);
        let mut len = data.len() as u64;
        from.broadcast_into(&mut len);
        data.resize(len as usize, 0);
        for chunk in data.chunks_mut(1 << 30) {
            from.broadcast_into(chunk);
        }
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    fn describe(&self) -> String {
        format!("{} MPI ranks", self.size)
    }
}
