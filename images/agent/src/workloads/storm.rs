//! storm: seeded random interleavings of the DAX/GUP operations ([`StormOp`]).
//! (Interface only in this commit: the workload itself follows.)

use kregress_agent::WorkloadSpec;

use super::{Failure, Finished, Target};

pub fn run(_spec: &WorkloadSpec, _t: &Target) -> Result<Finished, Failure> {
    Ok(Finished::skip("storm: not implemented yet"))
}
